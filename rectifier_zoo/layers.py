"""The paper's layers: PReLU, spatial pyramid pooling, and the fc layers' Dense.

Only `keras` and `keras.ops` are used here, so the layers run under every Keras backend. One
exception, for speed: on the TensorFlow backend a training call of `PReLU` runs the fused XLA
kernels of `rectifier_zoo.fused`, and one of `Dense` under mixed precision its matmul with a
float32 kernel gradient (imported only then); inference calls, and so every export, use the
portable ops.
"""

from collections.abc import Sequence

import keras
from keras import ops

from rectifier_zoo import paper
from rectifier_zoo.checks import check_choice

SLOPE_WEIGHT_NAME = "negative_slope"
DATA_FORMATS = ("channels_last", "channels_first")


def _check_data_format(data_format: str | None) -> str:
    data_format = data_format or keras.config.image_data_format()
    check_choice("data_format", data_format, DATA_FORMATS)
    return data_format


def _channel_axis(data_format: str, rank: int) -> int:
    if rank <= 2 or data_format == "channels_last":
        return rank - 1
    return 1


@keras.saving.register_keras_serializable(package="rectifier_zoo")
class PReLU(keras.layers.Layer):
    """Parametric rectified linear unit (He et al. 2015, Eqn. 1).

    `f(y) = max(0, y) + a * min(0, y)`, with the slope `a` learned: one per channel
    (`channel_shared=False`, the paper's default) or one per layer (`channel_shared=True`).
    On a convolutional feature map the channel axis follows `data_format`; after a Dense layer
    (rank 2) there is one slope per unit. Spatial dimensions may be of any, even unknown, size.

    How this differs from `keras.layers.PReLU`: Keras starts the slope at 0 (a ReLU) and keeps
    one slope per element unless `shared_axes` is given; here the slope starts at 0.25 as in the
    paper (Sec. 2.1, `rectifier_zoo.paper.PRELU_INITIAL_SLOPE`) and the sharing is stated by
    `channel_shared`.

    The slope has no regularizer and no constraint (the paper lets it go negative or above 1).
    It is named `"negative_slope"`, so an optimizer can leave it out of weight decay by name;
    `rectifier_zoo.weight_decay_exclusions(model)` gives the whole list for a model. Under a
    mixed precision policy the slope is stored in float32 and cast to the compute dtype in `call`.

    Args:
        channel_shared: one slope for the whole layer instead of one per channel.
        initial_slope: the starting value of `a`; the paper uses 0.25.
        data_format: `"channels_last"` or `"channels_first"` for rank-4 inputs; defaults to
            `keras.config.image_data_format()`.
        **kwargs: base layer arguments (`name`, `dtype`, ...).

    Reference: He et al., "Delving Deep into Rectifiers", ICCV 2015, Sec. 2.1.
    """

    def __init__(
        self,
        channel_shared: bool = False,
        initial_slope: float = paper.PRELU_INITIAL_SLOPE,
        data_format: str | None = None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if not isinstance(channel_shared, bool):
            raise ValueError(
                "`channel_shared` must be True or False. "
                f"Received: channel_shared={channel_shared!r}"
            )
        data_format = _check_data_format(data_format)
        self.channel_shared = channel_shared
        self.initial_slope = float(initial_slope)
        self.data_format = data_format
        self.supports_masking = True

    def build(self, input_shape):
        if self.channel_shared:
            shape = ()
            self._broadcast_shape = None
        else:
            rank = len(input_shape)
            axis = _channel_axis(self.data_format, rank)
            channels = input_shape[axis]
            if channels is None:
                raise ValueError(
                    "PReLU with channel_shared=False needs a known number of channels on axis "
                    f"{axis}. Received: input_shape={tuple(input_shape)}"
                )
            shape = (channels,)
            # channels_first feature maps need the slope as (C, 1, ..., 1) to broadcast.
            self._broadcast_shape = (
                (channels,) + (1,) * (rank - 1 - axis) if axis != rank - 1 else None
            )
        self.negative_slope = self.add_weight(
            name=SLOPE_WEIGHT_NAME,
            shape=shape,
            initializer=keras.initializers.Constant(self.initial_slope),
            regularizer=None,
            constraint=None,
            trainable=True,
        )

    def call(self, inputs, training=None):
        slope = self.negative_slope
        if self._broadcast_shape is not None:
            slope = ops.reshape(slope, self._broadcast_shape)
        if training and keras.backend.backend() == "tensorflow":
            from rectifier_zoo import fused  # TensorFlow only: fused XLA kernels for training

            return fused.prelu(inputs, ops.cast(slope, inputs.dtype))
        # relu(y) + a * min(y, 0): element-wise passes that XLA backends (JAX) fuse; the
        # gradient w.r.t. `a` is min(y, 0) summed over the broadcast axes (Eqns. 2-4).
        return ops.relu(inputs) + slope * ops.minimum(inputs, 0)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "channel_shared": self.channel_shared,
                "initial_slope": self.initial_slope,
                "data_format": self.data_format,
            }
        )
        return config


def spp_bins(size, num_bins: int) -> list[tuple]:
    """Bin edges of one pyramid level along one axis of length `size`.

    Bin `i` covers `[floor(i * size / n), ceil((i + 1) * size / n))`, so every bin is non-empty
    for any `size >= 1` and the bins cover the whole axis. On the paper's 14x14 map this equals
    the SPP-net rule (window `ceil(a/n)`, stride `floor(a/n)`) for n = 7, 2, 1; for n = 3 that
    rule gives rows [0,5) [4,9) [8,13) and drops row 13, this one [0,5) [4,10) [9,14).
    `size` may be a Python int or a scalar tensor (unknown spatial size in a TensorFlow graph).
    The ceiling is written as `(a + n - 1) // n` on non-negative numbers, where floor and
    truncating division agree: graph converters (tf2onnx, for one) turn `//` into truncation,
    which would shift the bins of the `-(-a // n)` form.
    """
    return [
        ((i * size) // num_bins, ((i + 1) * size + num_bins - 1) // num_bins)
        for i in range(num_bins)
    ]


@keras.saving.register_keras_serializable(package="rectifier_zoo")
class SpatialPyramidPooling(keras.layers.Layer):
    """Spatial pyramid max pooling (He et al., SPP-net, ECCV 2014), as used by Models A, B, C.

    For an `h x w` map and a level of `n x n` bins, bin `(i, j)` max-pools rows
    `[floor(i*h/n), ceil((i+1)*h/n))` and the same columns, so any input size (down to 1x1)
    gives exactly `n x n` bins per level, and the bins cover the whole map. On the 14x14 map of
    Models A/B/C this equals the SPP-net window `ceil(a/n)`, stride `floor(a/n)` rule for the
    7x7, 2x2 and 1x1 levels; for 3x3 that rule skips the last row and column, this one does not
    (see `spp_bins`).

    Output: a flat vector of `channels * sum(n * n for n in levels)` values. Levels come in the
    given order; inside a level the bins are in row-major order `(i, j)` with the channels
    fastest, i.e. the flattening of an `(n, n, channels)` array. The order is the same for both
    data formats, so the fully connected layers after it do not depend on the data format.

    A level whose bins tile a map of static size equally (n divides both sides: 7, 2 and 1 on
    14x14) is one max pool. Any other level uses that max pooling is separable: it first pools
    row bands (n reductions) and then column bands (n more), instead of n * n window
    reductions. Both give the same values; at exact ties the pool's gradient goes to one of the
    tied elements, the reductions' is shared among them.

    Args:
        levels: the pyramid's bins per side, e.g. `(7, 3, 2, 1)` for Models A/B/C (63 bins)
            and `(6, 3, 2, 1)` for the 14-layer model (50 bins).
        data_format: `"channels_last"` or `"channels_first"`; defaults to
            `keras.config.image_data_format()`.
        **kwargs: base layer arguments.

    Reference: He et al., "Spatial Pyramid Pooling in Deep Convolutional Networks for Visual
    Recognition", ECCV 2014; "Delving Deep into Rectifiers", ICCV 2015, Table 3.
    """

    def __init__(
        self, levels: Sequence[int] = (7, 3, 2, 1), data_format: str | None = None, **kwargs
    ):
        super().__init__(**kwargs)
        levels = tuple(levels) if isinstance(levels, Sequence) else levels
        if (
            not isinstance(levels, tuple)
            or not levels
            or not all(isinstance(n, int) and not isinstance(n, bool) and n >= 1 for n in levels)
        ):
            raise ValueError(
                "`levels` must be a non-empty sequence of positive integers (bins per side), "
                f"e.g. (7, 3, 2, 1). Received: levels={levels!r}"
            )
        data_format = _check_data_format(data_format)
        self.levels = levels
        self.data_format = data_format
        self.input_spec = keras.layers.InputSpec(ndim=4)

    @property
    def num_bins(self) -> int:
        return sum(n * n for n in self.levels)

    def build(self, input_shape):
        if input_shape[self._channel_axis] is None:
            raise ValueError(
                "SpatialPyramidPooling needs a known number of channels. "
                f"Received: input_shape={tuple(input_shape)}"
            )

    @property
    def _channel_axis(self) -> int:
        return -1 if self.data_format == "channels_last" else 1

    def call(self, inputs):
        if self.data_format == "channels_first":
            inputs = ops.transpose(inputs, (0, 2, 3, 1))
        shape = ops.shape(inputs)
        height, width, channels = shape[1], shape[2], inputs.shape[-1]
        pooled = []
        for n in self.levels:
            if isinstance(height, int) and isinstance(width, int) and not height % n + width % n:
                # Equal bins that tile the map (7x7, 2x2 and 1x1 on a 14x14 map): one max pool.
                window = (height // n, width // n)
                bins = ops.max_pool(inputs, window, window, data_format="channels_last")
            else:
                rows = [ops.max(inputs[:, a:b], axis=1) for a, b in spp_bins(height, n)]
                rows = ops.stack(rows, axis=1)  # (batch, n, width, channels)
                bins = [ops.max(rows[:, :, a:b], axis=2) for a, b in spp_bins(width, n)]
                bins = ops.stack(bins, axis=2)  # (batch, n, n, channels)
            pooled.append(ops.reshape(bins, (-1, n * n * channels)))
        return ops.concatenate(pooled, axis=-1) if len(pooled) > 1 else pooled[0]

    def compute_output_shape(self, input_shape):
        return (input_shape[0], input_shape[self._channel_axis] * self.num_bins)

    def get_config(self):
        config = super().get_config()
        config.update({"levels": list(self.levels), "data_format": self.data_format})
        return config


@keras.saving.register_keras_serializable(package="rectifier_zoo")
class Dense(keras.layers.Dense):
    """`keras.layers.Dense`, the fully connected layer of Models A, B, C (fc6-fc8).

    The same layer, config and weights; one difference, for speed: a training call on the
    TensorFlow backend under mixed precision (float32 kernel, bf16 or float16 compute) on a
    rank-2 input takes the kernel's gradient through `rectifier_zoo.fused.dense`. At small
    batches that gradient is computed in float32 from the same low-precision operands rather
    than rounded to bf16 and cast, which is both cheaper (Model A's 132M-weight fc1 dominates
    its bf16 step at batch 8) and no less exact. Every other call is Keras's own.
    """

    def call(self, inputs, training=None):
        if (
            training
            and keras.backend.backend() == "tensorflow"
            and self.quantization_mode is None
            and self.compute_dtype != self.variable_dtype
            and len(inputs.shape) == 2
        ):
            from rectifier_zoo import fused  # TensorFlow only

            # The float32 variable itself, not the copy that Keras's autocasting casts to the
            # compute dtype: `fused.dense` casts it and returns its gradient in float32.
            with keras.src.backend.AutocastScope(None):
                outputs = fused.dense(inputs, self.kernel)
            if self.bias is not None:
                outputs = ops.add(outputs, self.bias)
            return self.activation(outputs) if self.activation is not None else outputs
        return super().call(inputs, training=training)
