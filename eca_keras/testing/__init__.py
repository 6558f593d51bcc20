"""Test and benchmark tooling, not part of the runtime package: independent PyTorch reference
models (:mod:`~eca_keras.testing.torch_reference`), checkpoint writers
(:mod:`~eca_keras.testing.checkpoints`) and timm's own models as references
(:mod:`~eca_keras.testing.references`). Everything here needs torch."""
