"""The ECA layer: Efficient Channel Attention (Wang et al., CVPR 2020).

Global average pooling gives one descriptor per channel; a 1D convolution with a single shared
kernel slides across the channel axis (local cross-channel interaction, no dimensionality
reduction), a sigmoid turns the result into per-channel gates, and the input is rescaled by them.
Written with Keras 3 ops only, so it runs on every Keras backend.

The channel convolution is written as ``k`` shifted multiply-adds over the ``(batch, channels)``
descriptor. XLA fuses them with the sigmoid into one small kernel, where a convolution op would be
a library call of its own (and, in training, two more for its gradients); in a TensorFlow graph
they are ``2k`` tiny ops that run inline, cheaper than a oneDNN convolution call (3-7 us, ~40 us
at 2048 channels) and its two backward calls. Only the TFLite converter's form
(:func:`converter_form`) keeps the single convolution op, which becomes one ``CONV_2D`` (for
``k > 1``; ``k = 1`` is a scalar multiply). All compute the same function.

A block's last BatchNorm can be handed to the layer in its affine form (``affine``, see
:class:`ECA`): the gate then folds into the normalisation, ``x * (scale * g) + offset * g``, and
the normalised tensor is never written, in training too.

For export, :func:`export_lowering` (ONNX) and :func:`converter_form` (SavedModel, TFLite) trace
other forms of the same function (see there).
"""

import contextlib
import contextvars
import math

import keras
from keras import ops

_PADDINGS = ("zeros", "circular")
DATA_FORMATS = ("channels_last", "channels_first")
_EXPORT_FORM = contextvars.ContextVar("eca_export_form", default=None)


@contextlib.contextmanager
def _export_form(form):
    token = _EXPORT_FORM.set(form)
    try:
        yield
    finally:
        _EXPORT_FORM.reset(token)


def export_lowering():
    """ECA layers traced inside this block keep the gate at the input's rank (pooling with
    ``keepdims``) and write the channel convolution as ``k`` shifted multiply-adds, so that the
    gate meets the input in one broadcast multiply with no reshape or convolution on the way.
    Same function, same weights. ONNX converters then keep the whole network channels-last;
    through the usual form tf2onnx wraps every ECA multiply in two full-size transposes."""
    return _export_form("onnx")


def converter_form():
    """ECA layers traced inside this block write the normalised tensor ``x * scale + offset``
    (``affine``), pool it and multiply it by the gate, ignoring ``descriptor``: TFLite's
    converter folds the normalisation into the convolution only when nothing else reads the
    convolution's output, and the folded gate (two per-image operators) would cost more there.
    A layer with ``k = 1`` computes its gate at the input's rank (one scalar multiply, as in
    :func:`export_lowering`): 10 of ECA-MobileNetV2's 17 layers, whose int8 file then has 20
    RESHAPE and 10 CONV_2D operators fewer. Same function, same weights."""
    return _export_form("converter")


def _scale_and_offset(affine):
    """A ``(2, channels)`` ``[scale, offset]`` tensor as two float32 tensors, or None."""
    return None if affine is None else ops.unstack(ops.cast(affine, "float32"), 2)


def eca_kernel_size(channels, gamma=2, b=1, min_size=1):
    """The paper's adaptive kernel size: ``k = |log2(C)/gamma + b/gamma|_odd``.

    Read as in the official code: ``t = int(abs((log2(C) + b) / gamma))``, ``k = t`` if ``t`` is odd
    else ``t + 1``. timm additionally enforces ``k >= 3`` (pass ``min_size=3``).
    """
    if channels is None or int(channels) < 1:
        raise ValueError(f"`channels` must be a positive integer. Received: channels={channels}")
    if gamma <= 0:
        raise ValueError(f"`gamma` must be positive. Received: gamma={gamma}")
    t = int(abs((math.log2(int(channels)) + b) / gamma))
    k = t if t % 2 else t + 1
    return max(k, min_size)


def compiled_by_xla():
    """Whether the ops being traced now will be compiled by XLA: always on JAX; on TensorFlow
    inside a ``tf.function(jit_compile=True)`` (``model.compile(jit_compile=True)``, and Keras'
    default on GPUs); never on other backends."""
    backend = keras.backend.backend()
    if backend == "jax":
        return True
    if backend != "tensorflow":
        return False
    import tensorflow as tf

    enclosing = getattr(tf.__internal__, "get_enclosing_xla_context", None)
    return enclosing is not None and enclosing() is not None


def standardize_data_format(data_format):
    """``data_format`` or Keras' global image data format, checked (every layer here takes one)."""
    data_format = data_format or keras.config.image_data_format()
    if data_format not in DATA_FORMATS:
        raise ValueError(
            f"`data_format` must be one of {DATA_FORMATS}. Received: data_format={data_format!r}"
        )
    return data_format


def _check_kernel_size(kernel_size):
    if kernel_size is None:
        return None
    if isinstance(kernel_size, bool) or not isinstance(kernel_size, int):
        raise ValueError(
            f"`kernel_size` must be None (adaptive) or a positive odd integer. "
            f"Received: kernel_size={kernel_size!r}"
        )
    if kernel_size < 1 or kernel_size % 2 == 0:
        raise ValueError(
            "`kernel_size` must be a positive odd integer, so that the padded convolution keeps "
            f"every channel centred. Received: kernel_size={kernel_size}"
        )
    return kernel_size


@keras.saving.register_keras_serializable(package="eca_keras")
class ECA(keras.layers.Layer):
    """Efficient Channel Attention.

    ``out = x * sigmoid(conv1d_k(GAP(x)))``, the 1D convolution running across channels with one
    shared kernel of size ``k``, no bias, and padding ``(k - 1) / 2`` on both ends.

    Args:
        kernel_size: odd int, or None to derive it from the channel count with
            :func:`eca_kernel_size` (``gamma``, ``b``).
        gamma, b: parameters of the adaptive kernel-size rule (paper: 2 and 1).
        min_kernel_size: lower bound for the adaptive size (1 in the paper, 3 in timm).
        padding: ``"zeros"`` (the paper) or ``"circular"`` (timm's CECA: the channel axis wraps).
        data_format: ``"channels_last"`` or ``"channels_first"``; default
            ``keras.config.image_data_format()``.
        kernel_initializer: initializer of the ``(k, 1, 1)`` kernel. The default reproduces
            PyTorch's ``Conv1d`` initialisation, ``U(-1/sqrt(k), 1/sqrt(k))``.

    Call arguments:
        inputs: a rank-3, rank-4 or rank-5 tensor (sequences, images, volumes) with a known
            channel dimension. Output: the same shape and dtype.
        descriptor: optional, the channel descriptor ``GAP(inputs)`` computed another way, shape
            ``(batch, channels)`` or with size-1 spatial axes. A model builder passes one it can
            get more cheaply than by reading ``inputs`` again (before a pointwise convolution
            whose input is narrower, see ``applications.blocks.conv_bn_eca``). With ``affine``
            it is used in every mode; without, only in inference (models built before 0.3 pass
            one normalised with the moving statistics).
        affine: optional ``(2, channels)`` tensor ``[scale, offset]`` of a BatchNormalization
            in its affine form (``DescriptorBatchNormalization(x, affine=True)``). The layer
            then attends over ``inputs * scale + offset``: its descriptor is
            ``GAP(inputs) * scale + offset`` and its output
            ``inputs * (scale * gates) + offset * gates``, so the normalised tensor is neither
            written nor kept for the backward pass.
        training: Python bool.

    Pooling runs in the compute dtype; the small convolution and the sigmoid run in float32 under
    mixed precision.

    The kernel has shape ``(k, 1, 1)``, as a Keras ``Conv1D`` kernel: a PyTorch ``Conv1d`` weight
    ``[1, 1, k]`` maps onto it by a reshape, without flipping.
    """

    def __init__(
        self,
        kernel_size=None,
        gamma=2,
        b=1,
        min_kernel_size=1,
        padding="zeros",
        data_format=None,
        kernel_initializer=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.kernel_size = _check_kernel_size(kernel_size)
        if gamma <= 0:
            raise ValueError(f"`gamma` must be positive. Received: gamma={gamma}")
        if padding not in _PADDINGS:
            raise ValueError(f"`padding` must be one of {_PADDINGS}. Received: padding={padding!r}")
        data_format = standardize_data_format(data_format)
        self.gamma = gamma
        self.b = b
        self.min_kernel_size = min_kernel_size
        self.padding = padding
        self.data_format = data_format
        self.kernel_initializer = keras.initializers.get(
            kernel_initializer or keras.initializers.VarianceScaling(1.0 / 3.0, "fan_in", "uniform")
        )
        self.supports_masking = True

    def build(self, input_shape):
        rank = len(input_shape)
        if rank not in (3, 4, 5):
            raise ValueError(
                "ECA expects a rank-3, rank-4 or rank-5 input (batch, spatial..., channels). "
                f"Received input_shape={tuple(input_shape)} (rank {rank})."
            )
        channels = input_shape[-1 if self.data_format == "channels_last" else 1]
        if channels is None:
            raise ValueError(
                "ECA needs a known channel dimension to size its kernel. "
                f"Received input_shape={tuple(input_shape)} with data_format={self.data_format}."
            )
        self.channels = int(channels)
        self.kernel_size_ = self.kernel_size or eca_kernel_size(
            self.channels, self.gamma, self.b, self.min_kernel_size
        )
        self.kernel = self.add_weight(
            name="kernel",
            shape=(self.kernel_size_, 1, 1),
            initializer=self.kernel_initializer,
            trainable=True,
            dtype=self.variable_dtype,
        )
        half = (self.kernel_size_ - 1) // 2
        # Circular padding as a gather: indices wrap around the channel axis any number of times.
        self._circular_index = [i % self.channels for i in range(-half, self.channels + half)]

    def channel_weights(self, inputs, descriptor=None, affine=None):
        """The per-channel gates ``sigmoid(conv1d(GAP(x)))``, shape ``(batch, channels)``;
        ``descriptor``, when given, stands for ``GAP(x)``; with ``affine`` x is
        ``inputs * scale + offset``."""
        return self._gates(inputs, descriptor, _scale_and_offset(affine))

    def _gates(self, inputs, descriptor, scale_and_offset):
        """:meth:`channel_weights` with ``affine`` already split into float32 scale and offset."""
        if not self.built:
            self.build(inputs.shape)
        if descriptor is None:
            rank = len(inputs.shape)
            if self.data_format == "channels_last":
                spatial_axes = tuple(range(1, rank - 1))
            else:
                spatial_axes = tuple(range(2, rank))
            pooled = ops.mean(inputs, axis=spatial_axes)
        else:
            pooled = ops.reshape(descriptor, (-1, self.channels))
        pooled = ops.cast(pooled, "float32")  # (batch, channels)
        if scale_and_offset is not None:
            scale, offset = scale_and_offset
            pooled = pooled * scale + offset
        if self.padding == "circular" and self.kernel_size_ > 1:
            pooled = ops.take(pooled, self._circular_index, axis=1)
            padding = "valid"
        else:
            padding = "same"
        if _EXPORT_FORM.get() == "converter":
            # One 2D convolution over a (batch, 1, channels, 1) image: one TFLite CONV_2D.
            kernel = ops.reshape(ops.cast(self.kernel, "float32"), (1, self.kernel_size_, 1, 1))
            image = ops.reshape(pooled, (-1, 1, pooled.shape[1], 1))
            attention = ops.conv(image, kernel, padding=padding, data_format="channels_last")
            attention = ops.reshape(attention, (-1, self.channels))
        else:
            attention = self._shifted_products(pooled, padding)
        return ops.sigmoid(attention)

    def _shifted_products(self, pooled, padding):
        """The channel convolution as ``sum_j w[j] * padded[:, j : j + C]``."""
        half = (self.kernel_size_ - 1) // 2
        if padding == "same" and half:
            pooled = ops.pad(pooled, [[0, 0], [half, half]])
        kernel = ops.reshape(ops.cast(self.kernel, "float32"), (-1,))
        weights = ops.unstack(kernel, self.kernel_size_)
        attention = pooled[:, : self.channels] * weights[0]
        for j in range(1, self.kernel_size_):
            attention = attention + pooled[:, j : j + self.channels] * weights[j]
        return attention

    def _gate_at_input_rank(self, inputs):
        """The gates shaped to broadcast over ``inputs`` (size-1 spatial axes), computed as in
        :func:`export_lowering`."""
        if not self.built:
            self.build(inputs.shape)
        rank = len(inputs.shape)
        axis = rank - 1 if self.data_format == "channels_last" else 1
        spatial_axes = tuple(i for i in range(1, rank) if i != axis)
        pooled = ops.cast(ops.mean(inputs, axis=spatial_axes, keepdims=True), "float32")
        half = (self.kernel_size_ - 1) // 2
        if half and self.padding == "circular":
            pooled = ops.take(pooled, self._circular_index, axis=axis)
        elif half:
            pooled = ops.pad(pooled, [[half, half] if i == axis else [0, 0] for i in range(rank)])
        kernel = ops.cast(self.kernel, "float32")  # (k, 1, 1)
        attention = None
        for j in range(self.kernel_size_):
            window = tuple(
                slice(j, j + self.channels) if i == axis else slice(None) for i in range(rank)
            )
            # k = 1: no window (an identity slice would stay in a TFLite file as STRIDED_SLICE).
            term = (pooled[window] if half else pooled) * kernel[j, 0, 0]
            attention = term if attention is None else attention + term
        return ops.sigmoid(attention)

    def call(self, inputs, descriptor=None, affine=None, training=None):
        scale_and_offset = _scale_and_offset(affine)  # split once, for every use below
        form = _EXPORT_FORM.get()
        if form is not None:
            if scale_and_offset is not None:
                scale, offset = scale_and_offset
                inputs = inputs * self._per_channel(scale, inputs) + self._per_channel(
                    offset, inputs
                )
                scale_and_offset = None
            if not self.built:
                self.build(inputs.shape)
            if form == "onnx" or self.kernel_size_ == 1:
                # k = 1 in the converter's form too: one scalar MUL, no RESHAPE or CONV_2D.
                return inputs * ops.cast(self._gate_at_input_rank(inputs), inputs.dtype)
            descriptor = None
        elif scale_and_offset is None and training:
            descriptor = None  # a legacy descriptor holds the moving statistics
        gates = self._gates(inputs, descriptor, scale_and_offset)
        if scale_and_offset is None:
            return inputs * self._per_channel(gates, inputs)
        scale, offset = scale_and_offset
        return inputs * self._per_channel(scale * gates, inputs) + self._per_channel(
            offset * gates, inputs
        )

    def _per_channel(self, values, inputs):
        """``values`` (``(channels,)`` or ``(batch, channels)``) shaped to broadcast over
        ``inputs``, in their dtype."""
        shape = [1] * len(inputs.shape)
        shape[0] = -1 if len(values.shape) == 2 else 1
        shape[-1 if self.data_format == "channels_last" else 1] = self.channels
        return ops.reshape(ops.cast(values, inputs.dtype), shape)  # one op

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "kernel_size": self.kernel_size,
                "gamma": self.gamma,
                "b": self.b,
                "min_kernel_size": self.min_kernel_size,
                "padding": self.padding,
                "data_format": self.data_format,
                "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
            }
        )
        return config
