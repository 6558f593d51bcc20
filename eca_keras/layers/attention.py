"""Self-attention over feature maps, as timm's convolution + attention hybrids use it.

- :class:`BottleneckAttention`: global multi-head self-attention over every position of a fixed-size
  feature map, with 2D relative position logits (Srinivas et al., "Bottleneck Transformers for
  Visual Recognition", 2021; timm's ``BottleneckAttn``).
- :class:`HaloAttention`: blocked local self-attention, each ``block_size`` x ``block_size``
  block of queries attending to its block and a ``halo_size`` border around it (Vaswani et al.,
  "Scaling Local Self-Attention for Parameter Efficient Visual Backbones", 2021; timm's
  ``HaloAttn``).

Both take and return ``(batch, height, width, channels)`` maps (or channels first), learn bias-free
pointwise projections and one relative embedding table per spatial axis, shared by the heads, and
compute ``softmax(q k^T / sqrt(d) + relative logits) v``. Their weights map one to one onto timm's
modules: a projection's ``(in, out)`` kernel is timm's ``Conv2d`` weight ``[out, in, 1, 1]``
transposed; the embedding tables are timm's ``pos_embed.height_rel`` / ``width_rel`` as they are.
Channel orders follow timm's: the query, key and value heads of ``BottleneckAttention``'s projection
are ``[q heads | k heads | v heads]``; ``HaloAttention``'s key/value projection is split per head
into ``[k | v]``; outputs are ``(head, value channel)``, head major.
"""

import keras
import numpy as np
from keras import initializers, layers, ops
from keras.saving import register_keras_serializable

from eca_keras.layers.eca import standardize_data_format


def default_key_dim(channels, num_heads):
    """timm's query/key width per head when none is given: the channels rounded to a multiple of
    8 (never more than 10% down), shared by the heads."""
    rounded = max(8, int(channels + 4) // 8 * 8)
    if rounded < 0.9 * channels:
        rounded += 8
    return rounded // num_heads


def relative_to_absolute_index(queries, window):
    """Flat indices that turn relative logits ``(queries, 2 * window - 1)`` into absolute ones
    ``(queries, window)``: query ``i`` and key ``j`` read relative offset ``j - i + window - 1``."""
    rows = np.arange(queries)[:, None]
    keys = np.arange(window)[None, :]
    return (rows * (2 * window - 1) + keys - rows + window - 1).reshape(-1)


def relative_logits(q, height_rel, width_rel, window):
    """2D relative position logits of queries ``q`` ``(n, qh, qw, d)`` against a ``window`` x
    ``window`` grid of keys (the queries' own grid for bottleneck attention): ``(n, qh * qw,
    window * window)``, the height term of the key's row plus the width term of its column."""
    _, qh, qw, _ = q.shape
    by_width = _absolute(ops.einsum("nhwd,rd->nhwr", q, width_rel), qw, window)  # (n,qh,qw,win)
    q_transposed = ops.transpose(q, (0, 2, 1, 3))
    by_height = _absolute(ops.einsum("nwhd,rd->nwhr", q_transposed, height_rel), qh, window)
    by_height = ops.transpose(by_height, (0, 2, 1, 3))  # (n, qh, qw, win)
    logits = ops.expand_dims(by_height, -1) + ops.expand_dims(by_width, -2)
    return ops.reshape(logits, (-1, qh * qw, window * window))


def _absolute(logits, queries, window):
    """``(n, a, queries, 2 * window - 1)`` relative logits -> ``(n, a, queries, window)``."""
    _, a, _, span = logits.shape
    flat = ops.reshape(logits, (-1, a, queries * span))
    index = relative_to_absolute_index(queries, window)
    return ops.reshape(ops.take(flat, index, axis=2), (-1, a, queries, window))


class _SpatialAttention(layers.Layer):
    """What both attention layers share: arguments, the relative embeddings, the data format."""

    def __init__(self, num_heads, key_dim=None, strides=1, data_format=None, **kwargs):
        super().__init__(**kwargs)
        if strides not in (1, 2):
            raise ValueError(f"`strides` must be 1 or 2. Received: strides={strides!r}")
        data_format = standardize_data_format(data_format)
        self.num_heads = int(num_heads)
        self.key_dim = key_dim
        self.strides = strides
        self.data_format = data_format

    def _attend(self, equation, q, k, v, query_size, key_size):
        """``softmax(q k^T * scale + relative logits) v``: ``equation`` gives ``q k^T``; the
        relative logits are those of ``query_size`` x ``query_size`` queries over
        ``key_size`` x ``key_size`` keys."""
        # self.scale is a Python float, so it takes the tensor's dtype (a cast would round it
        # to float32 first).
        logits = ops.einsum(equation, q, k) * self.scale
        rel = relative_logits(
            ops.reshape(q, (-1, query_size, query_size, self.key_dim_)),
            ops.cast(self.height_rel, q.dtype),
            ops.cast(self.width_rel, q.dtype),
            key_size,
        )
        logits = logits + ops.reshape(rel, (-1, *logits.shape[1:]))
        return ops.matmul(self._softmax(logits, q.dtype), v)

    def _dimensions(self, input_shape):
        """Checks a rank-4 input with a known channel count; returns (height, width, channels)."""
        if len(input_shape) != 4:
            raise ValueError(
                f"{type(self).__name__} expects a rank-4 input. "
                f"Received input_shape={tuple(input_shape)}"
            )
        if self.data_format == "channels_last":
            height, width, channels = input_shape[1:]
        else:
            channels, height, width = input_shape[1:]
        if channels is None or channels % self.num_heads:
            raise ValueError(
                f"{type(self).__name__} needs a known channel count divisible by num_heads="
                f"{self.num_heads}. Received input_shape={tuple(input_shape)}"
            )
        self.channels = int(channels)
        self.key_dim_ = int(self.key_dim or default_key_dim(self.channels, self.num_heads))
        self.value_dim = self.channels // self.num_heads
        self.scale = self.key_dim_**-0.5
        return height, width, self.channels

    def _projection(self, name, inputs, outputs):
        return self.add_weight(
            name=name,
            shape=(inputs, outputs),
            initializer=initializers.TruncatedNormal(stddev=inputs**-0.5),
            dtype=self.variable_dtype,
        )

    def _relative_embeddings(self, window):
        """timm's ``pos_embed.height_rel`` and ``width_rel``: ``(2 * window - 1, key_dim)``."""
        return [
            self.add_weight(
                name=name,
                shape=(2 * window - 1, self.key_dim_),
                initializer=initializers.TruncatedNormal(stddev=self.scale),
                dtype=self.variable_dtype,
            )
            for name in ("height_rel", "width_rel")
        ]

    def _to_channels_last(self, x):
        return x if self.data_format == "channels_last" else ops.transpose(x, (0, 2, 3, 1))

    def _from_channels_last(self, x):
        return x if self.data_format == "channels_last" else ops.transpose(x, (0, 3, 1, 2))

    def _softmax(self, logits, dtype):
        """Softmax over the keys, in float32 at least (under mixed precision too)."""
        wide = keras.backend.result_type(dtype, "float32")
        return ops.cast(ops.softmax(ops.cast(logits, wide), axis=-1), dtype)

    def compute_output_shape(self, input_shape):
        batch = input_shape[0]
        if self.data_format == "channels_last":
            height, width, channels = input_shape[1:]
        else:
            channels, height, width = input_shape[1:]
        height, width = (None if d is None else d // self.strides for d in (height, width))
        if self.data_format == "channels_last":
            return (batch, height, width, channels)
        return (batch, channels, height, width)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "num_heads": self.num_heads,
                "key_dim": self.key_dim,
                "strides": self.strides,
                "data_format": self.data_format,
            }
        )
        return config


@register_keras_serializable(package="eca_keras")
class BottleneckAttention(_SpatialAttention):
    """Multi-head self-attention over a whole feature map with 2D relative position logits.

    ``qkv = x W`` (a bias-free pointwise projection to ``num_heads * (2 * key_dim + value_dim)``
    channels, ``value_dim = channels // num_heads``), every position attends to every position:
    ``softmax(q k^T / sqrt(key_dim) + r(q)) v``, where ``r(q)`` adds, per query and key, the dot
    products of the query with the learnt embeddings of their relative row and column offsets.
    ``strides=2`` average-pools the output 2x2. Output: the input's channel count.

    The embedding tables are sized for the feature map the layer is built on, so it runs at that
    height and width only (timm's ``fixed_input_size``).

    Args:
        num_heads: attention heads (timm's default 4).
        key_dim: query/key width per head; default ``channels // num_heads``, rounded as timm does.
        strides: 1, or 2 to average-pool the output.
        data_format: ``"channels_last"`` or ``"channels_first"``; default Keras' image format.
    """

    def __init__(self, num_heads=4, key_dim=None, strides=1, data_format=None, **kwargs):
        super().__init__(num_heads, key_dim, strides, data_format, **kwargs)

    def build(self, input_shape):
        height, width, channels = self._dimensions(input_shape)
        if height is None or width is None:
            raise ValueError(
                "BottleneckAttention sizes its relative position embeddings for a fixed feature "
                f"map: it needs a known height and width. Received input_shape={tuple(input_shape)}"
            )
        if height != width:
            raise ValueError(
                f"BottleneckAttention expects a square feature map. Received {height}x{width}."
            )
        self.size = int(height)
        projected = self.num_heads * (2 * self.key_dim_ + self.value_dim)
        self.qkv_kernel = self._projection("qkv_kernel", channels, projected)
        self.height_rel, self.width_rel = self._relative_embeddings(self.size)

    def call(self, inputs):
        x = self._to_channels_last(inputs)
        size, heads, key_dim, value_dim = self.size, self.num_heads, self.key_dim_, self.value_dim
        if tuple(x.shape[1:3]) != (size, size):
            raise ValueError(
                f"BottleneckAttention {self.name!r} was built for {size}x{size} feature maps. "
                f"Received {x.shape[1]}x{x.shape[2]}."
            )
        qkv = ops.matmul(x, ops.cast(self.qkv_kernel, x.dtype))
        q, k, v = ops.split(qkv, [heads * key_dim, 2 * heads * key_dim], axis=-1)
        positions = size * size

        def per_head(t, depth):  # (b, h, w, heads * depth) -> (b, heads, positions, depth)
            return ops.transpose(ops.reshape(t, (-1, positions, heads, depth)), (0, 2, 1, 3))

        q, k, v = per_head(q, key_dim), per_head(k, key_dim), per_head(v, value_dim)
        out = self._attend("bnqd,bnkd->bnqk", q, k, v, size, size)  # (b, heads, pos., dv)
        out = ops.reshape(ops.transpose(out, (0, 2, 1, 3)), (-1, size, size, heads * value_dim))
        if self.strides == 2:
            out = ops.average_pool(out, 2, 2, padding="valid", data_format="channels_last")
        return self._from_channels_last(out)


@register_keras_serializable(package="eca_keras")
class HaloAttention(_SpatialAttention):
    """Blocked local self-attention: each block of queries attends to its block plus a halo.

    The map is cut into ``block_size`` x ``block_size`` blocks; the keys and values of a block are
    the ``window = block_size + 2 * halo_size`` square around it (zero padded at the map's border,
    those positions included in the softmax, as in timm). ``q = x W_q`` (``num_heads * key_dim``
    channels), ``[k | v] = x W_kv`` (per head ``key_dim + value_dim``), and
    ``softmax(q k^T / sqrt(key_dim) + r(q)) v`` per block, ``r`` the relative position logits of
    the query inside its block against the window. ``strides=2`` subsamples the queries (a
    strided query projection, blocks of ``block_size / 2``), or with ``avg_down`` (or an odd block
    size) average-pools the output 2x2. Output: the input's channel count.

    Height and width must be multiples of ``block_size``; any such size works.

    Args:
        num_heads: attention heads (timm's default 8).
        key_dim: query/key width per head; default ``channels // num_heads``, rounded as timm does.
        block_size: side of a block of queries.
        halo_size: width of the border of keys around each block.
        strides: 1 or 2.
        avg_down: with ``strides=2``, pool the output instead of striding the queries.
        data_format: ``"channels_last"`` or ``"channels_first"``; default Keras' image format.
    """

    def __init__(
        self,
        num_heads=8,
        key_dim=None,
        block_size=8,
        halo_size=3,
        strides=1,
        avg_down=False,
        data_format=None,
        **kwargs,
    ):
        super().__init__(num_heads, key_dim, strides, data_format, **kwargs)
        if block_size < 1 or halo_size < 0:
            raise ValueError(
                "`block_size` must be positive and `halo_size` non-negative. "
                f"Received: block_size={block_size}, halo_size={halo_size}"
            )
        self.block_size = int(block_size)
        self.halo_size = int(halo_size)
        self.avg_down = bool(avg_down)
        self.window = self.block_size + 2 * self.halo_size
        pooled = strides > 1 and (avg_down or block_size % strides != 0)
        self.pool_output = pooled
        self.query_stride = 1 if pooled else strides
        self.query_block = self.block_size // self.query_stride

    def build(self, input_shape):
        height, width, channels = self._dimensions(input_shape)
        for size in (height, width):
            if size is not None and size % self.block_size:
                raise ValueError(
                    f"HaloAttention needs a height and width divisible by block_size="
                    f"{self.block_size}. Received input_shape={tuple(input_shape)}"
                )
        self.q_kernel = self._projection("q_kernel", channels, self.num_heads * self.key_dim_)
        kv_channels = self.num_heads * (self.key_dim_ + self.value_dim)
        self.kv_kernel = self._projection("kv_kernel", channels, kv_channels)
        self.height_rel, self.width_rel = self._relative_embeddings(self.window)

    def call(self, inputs):
        x = self._to_channels_last(inputs)
        height, width = x.shape[1:3]
        if height is None or width is None:
            raise ValueError("HaloAttention needs a known height and width to cut its blocks.")
        heads, key_dim, value_dim = self.num_heads, self.key_dim_, self.value_dim
        rows, cols = height // self.block_size, width // self.block_size
        blocks, block, window = rows * cols, self.query_block, self.window

        stride = self.query_stride
        strided = x[:, ::stride, ::stride, :] if stride > 1 else x
        q = ops.matmul(strided, ops.cast(self.q_kernel, x.dtype))
        q = ops.reshape(q, (-1, rows, block, cols, block, heads, key_dim))
        q = ops.transpose(q, (0, 5, 1, 3, 2, 4, 6))  # (b, heads, rows, cols, i, j, d)
        q = ops.reshape(q, (-1, heads, blocks, block * block, key_dim))

        kv = ops.matmul(x, ops.cast(self.kv_kernel, x.dtype))
        kv = self._windows(kv, rows, cols)  # (b, blocks, window * window, heads * (dk + dv))
        kv = ops.reshape(kv, (-1, blocks, window * window, heads, key_dim + value_dim))
        kv = ops.transpose(kv, (0, 3, 1, 2, 4))
        k, v = ops.split(kv, [key_dim], axis=-1)

        out = self._attend("bnkqd,bnkwd->bnkqw", q, k, v, block, window)  # (b, n, k, ij, dv)
        out = ops.reshape(out, (-1, heads, rows, cols, block, block, value_dim))
        out = ops.transpose(out, (0, 2, 4, 3, 5, 1, 6))  # (b, rows, i, cols, j, heads, dv)
        out = ops.reshape(out, (-1, rows * block, cols * block, heads * value_dim))
        if self.pool_output:
            out = ops.average_pool(out, 2, 2, padding="valid", data_format="channels_last")
        return self._from_channels_last(out)

    def _windows(self, kv, rows, cols):
        """The ``window`` x ``window`` neighbourhood of every block (zero padded by the halo):
        ``(b, h, w, c) -> (b, rows * cols, window * window, c)``, blocks and positions row major."""
        halo, window, step = self.halo_size, self.window, self.block_size
        kv = ops.pad(kv, [[0, 0], [halo, halo], [halo, halo], [0, 0]])
        channels = kv.shape[-1]
        starts = np.arange(window)[None, :]
        kv = ops.take(kv, (np.arange(rows)[:, None] * step + starts).reshape(-1), axis=1)
        kv = ops.take(kv, (np.arange(cols)[:, None] * step + starts).reshape(-1), axis=2)
        kv = ops.reshape(kv, (-1, rows, window, cols, window, channels))
        kv = ops.transpose(kv, (0, 1, 3, 2, 4, 5))
        return ops.reshape(kv, (-1, rows * cols, window * window, channels))

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "block_size": self.block_size,
                "halo_size": self.halo_size,
                "avg_down": self.avg_down,
            }
        )
        return config
