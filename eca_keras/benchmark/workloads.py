"""The steps being timed: inference and a training step of Keras models, and the PyTorch rival.

Each builder returns a zero-argument callable that runs one step on a fixed batch and blocks
until the result is on the host, ready for :func:`eca_keras.benchmark.timing.compare`.
"""

import os
import sys

import keras
import numpy as np

from eca_keras.applications import get_model, list_models, model_info, preprocess_input
from eca_keras.benchmark.settings import MODES


def keras_baseline(name):
    """The ``keras.applications`` model a registered model is measured against, or None."""
    return model_info(name).keras_baseline


def torch_models():
    """The registered models with a PyTorch reference to race (the official re-implementation)."""
    return [name for name in list_models() if model_info(name).reference == "official"]


def import_torch():
    """``torch`` (None where it is not installed), imported so that its optimizers cannot crash
    this process. They load ``torch._dynamo``, which imports ``triton``, and importing triton
    after TensorFlow kills the process with a segmentation fault (the two bundle clashing
    native libraries; torch 2.14 with TensorFlow 2.21 on Linux). So torch and its dynamo load
    now when TensorFlow has not; when it has, triton (GPU kernels, never used by these CPU
    timings) is hidden from torch, which then runs without it."""
    if "tensorflow" in sys.modules and "triton" not in sys.modules:
        sys.modules["triton"] = None  # ``import triton`` raises ImportError, torch's signal
    try:
        import torch
        import torch._dynamo  # noqa: F401 (loads triton, where it can still load safely)
    except ImportError:
        return None
    return torch


def check_backend():
    if keras.backend.backend() != "tensorflow":
        raise RuntimeError(
            "The benchmark times TensorFlow graphs (with and without XLA); run it with "
            f"KERAS_BACKEND=tensorflow. Current backend: {keras.backend.backend()!r}."
        )


def cpu_threads():
    """Cores this process may run on: the thread count both TensorFlow and PyTorch get."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def use_threads(threads):
    """Asks TensorFlow for ``threads`` intra-op threads (possible only before its runtime
    starts); returns the count it runs with, which the PyTorch rival then gets too."""
    import tensorflow as tf

    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
    except RuntimeError:  # TensorFlow already initialised: keep its setting
        pass
    return tf.config.threading.get_intra_op_parallelism_threads() or cpu_threads()


def input_size(name, size=None):
    return size or model_info(name).default_size


def batch_of_images(batch, size, seed=0):
    """Random pixels in [0, 255] put through ``preprocess_input`` (what the models take), and
    integer labels. Raw pixels would drive randomly initialised networks to activations in the
    thousands and saturate ECA's gates (a third of them exactly 0 in ECA-ResNet50's last block),
    which is neither a trained model's regime nor a fair one to time."""
    rng = np.random.default_rng(seed)
    images = preprocess_input(rng.uniform(0, 255, (batch, size, size, 3)).astype("float32"))
    labels = rng.integers(0, 1000, (batch,)).astype("int32")
    return np.asarray(images, "float32"), labels


def build_keras(name, size, variant):
    """``variant``: "eca" (the registered model), "plain" (its twin) or "keras" (its
    ``keras.applications`` counterpart); random weights, 1000 classes."""
    shape = (size, size, 3)
    if variant == "keras":
        constructor = getattr(keras.applications, keras_baseline(name))
        return constructor(weights=None, input_shape=shape)
    return get_model(name, weights=None, input_shape=shape, attention=variant == "eca")


def keras_step(model, mode, batch, xla):
    """One inference (``model(x, training=False)``) or training step (forward, backward and an
    SGD-with-momentum update through ``train_on_batch``), compiled with XLA or not."""
    import tensorflow as tf

    images, labels = batch_of_images(batch, model.input_shape[1])
    images, labels = tf.constant(images), tf.constant(labels)
    if mode == "inference":

        def forward(x):
            return model(x, training=False)

        compiled = tf.function(forward, jit_compile=xla)
        return lambda: compiled(images).numpy()
    if mode == "training":
        model.compile(
            optimizer=keras.optimizers.SGD(0.01, momentum=0.9),
            loss="sparse_categorical_crossentropy",
            jit_compile=xla,
        )
        model.optimizer.build(model.trainable_variables)  # else the first step traces twice
        return lambda: model.train_on_batch(images, labels)
    raise ValueError(f"`mode` must be one of {MODES}. Received: mode={mode!r}")


def torch_step(name, mode, batch, size, attention=True, threads=None):
    """The same step for the independent PyTorch implementation of official model ``name``
    (NCHW, as the official code runs), on ``threads`` threads (default: :func:`cpu_threads`).
    The returned callable's ``model`` attribute is the PyTorch module."""
    torch = import_torch()
    if torch is None:
        raise ImportError("The PyTorch rival needs torch: pip install 'eca_keras[benchmark]'")
    from eca_keras.testing.references import reference_model

    if name not in torch_models():
        raise ValueError(
            f"No PyTorch reference for {name!r}. It exists for: {', '.join(torch_models())}."
        )
    torch.set_num_threads(threads or cpu_threads())
    model = reference_model(name, attention)
    images, labels = batch_of_images(batch, size)
    images = torch.from_numpy(images.transpose(0, 3, 1, 2).copy())
    labels = torch.from_numpy(labels).long()
    if mode == "inference":
        model.eval()

        def infer():
            with torch.inference_mode():
                model(images)

        infer.model = model
        return infer
    if mode == "training":
        model.train()
        optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
        loss_fn = torch.nn.CrossEntropyLoss()

        def train():
            optimizer.zero_grad(set_to_none=True)
            loss_fn(model(images), labels).backward()
            optimizer.step()

        train.model = model
        return train
    raise ValueError(f"`mode` must be one of {MODES}. Received: mode={mode!r}")
