"""What a benchmark run measures (no TensorFlow needed to describe it)."""

import dataclasses

from eca_keras.applications import list_models

MODES = ("inference", "training")


@dataclasses.dataclass(frozen=True)
class Settings:
    """What to measure. ``size=None`` uses each model's default input size."""

    models: tuple = ("eca_resnet50",)
    modes: tuple = ("inference",)
    batch_sizes: tuple = (1, 8)
    xla: tuple = (True, False)
    size: int = None
    rounds: int = 5
    min_round_seconds: float = 1.0
    keras_baselines: bool = True
    torch: bool = False
    memory: bool = False
    threads: int = None  # TensorFlow's and PyTorch's thread count; default: every core
    twins: bool = True  # time ECA against its plain twin (and keras.applications)

    def __post_init__(self):
        unknown = [name for name in self.models if name not in list_models()]
        if unknown:
            raise ValueError(
                f"Unknown model(s) {unknown}. Registered models: {', '.join(list_models())}."
            )
        bad_modes = [mode for mode in self.modes if mode not in MODES]
        if bad_modes or not self.modes:
            raise ValueError(f"`modes` must be among {MODES}. Received: {self.modes}")
        if not self.batch_sizes or any(int(b) < 1 for b in self.batch_sizes):
            raise ValueError(f"Batch sizes must be positive. Received: {self.batch_sizes}")
        if not self.xla:
            raise ValueError("`xla` needs at least one of True / False.")
        if self.size is not None and self.size < 32:
            raise ValueError(f"`size` must be at least 32. Received: size={self.size}")
        if self.threads is not None and self.threads < 1:
            raise ValueError(f"`threads` must be positive. Received: threads={self.threads}")
        if self.rounds < 1:
            raise ValueError(f"`rounds` must be at least 1. Received: rounds={self.rounds}")
