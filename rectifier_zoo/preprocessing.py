"""The models' input contract outside the model: the mean subtraction as a function and a layer.

Every builder subtracts the mean inside the graph unless built with
`include_preprocessing=False`; then `preprocess_input` (NumPy arrays or backend tensors, any
backend) or `preprocessing_layer` (the very layer the builder puts in the graph) does it outside.
Sec. 2.3 "Training" subtracts the mean image; we subtract its per-channel mean on 0..255
(`paper.IMAGENET_MEAN_RGB`). For other channel counts the mean follows the first convolution's
adaptation (`channel_mean`).
"""

import keras
import numpy as np

from rectifier_zoo import paper
from rectifier_zoo.architectures import Architecture, get_architecture
from rectifier_zoo.checks import check_choice

DATA_FORMATS = ("channels_last", "channels_first")
LAYER_NAME = "mean_subtraction"


def _positive_int(name: str, value) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"`{name}` must be a positive integer. Received: {name}={value!r}")
    return value


def channel_mean(channels: int = 3) -> tuple[float, ...]:
    """The mean subtracted from each of `channels` input channels (0..255 scale).

    3: the RGB means; 1 (grayscale): the mean of the RGB means; any other count: the RGB means
    repeated (R, G, B, R, ...), as the first convolution's RGB kernels are repeated when RGB
    weights are loaded into such a model.
    """
    _positive_int("channels", channels)
    rgb = paper.IMAGENET_MEAN_RGB
    if channels == 1:
        return (sum(rgb) / 3.0,)
    return tuple(rgb[i % 3] for i in range(channels))


def _input_std(architecture, input_std) -> float:
    if architecture is not None and input_std is not None:
        raise ValueError("Pass `architecture` or `input_std`, not both.")
    if architecture is not None:
        architecture = get_architecture(architecture)
        return float(architecture.input_std)
    if input_std is None:
        return 1.0
    if (
        not isinstance(input_std, int | float)
        or isinstance(input_std, bool)
        or not np.isfinite(input_std)
        or input_std <= 0
    ):
        raise ValueError(
            f"`input_std` must be a positive number. Received: input_std={input_std!r}"
        )
    return float(input_std)


def _data_format(data_format) -> str:
    data_format = data_format or keras.config.image_data_format()
    check_choice("data_format", data_format, DATA_FORMATS)
    return data_format


def preprocessing_layer(
    channels: int = 3,
    *,
    architecture: str | Architecture | None = None,
    input_std: float | None = None,
    data_format: str | None = None,
    name: str = LAYER_NAME,
) -> keras.layers.Layer:
    """The layer the builders put after the input: `(x - channel_mean(channels)) / input_std`.

    A `keras.layers.Normalization` with fixed mean and variance, computed in float32 (also
    under mixed precision). Put it in front of a model built with `include_preprocessing=False`.

    Args:
        channels: input channels (3 for RGB).
        architecture: a registered name or an `Architecture`, whose `input_std` divides the
            mean-subtracted pixels (1 for the paper's models).
        input_std: the divisor itself, instead of `architecture`; default 1.
        data_format: `"channels_last"` or `"channels_first"`; default Keras's.
        name: the layer's name.
    """
    mean = channel_mean(channels)
    std = _input_std(architecture, input_std)
    axis = -1 if _data_format(data_format) == "channels_last" else 1
    return keras.layers.Normalization(
        axis=axis,
        mean=list(mean),
        variance=[std**2] * len(mean),
        dtype="float32",
        name=name,
    )


def preprocess_input(
    x,
    *,
    architecture: str | Architecture | None = None,
    input_std: float | None = None,
    data_format: str | None = None,
):
    """Mean-subtracts images in 0..255 for a model built with `include_preprocessing=False`.

    The same arithmetic as the model's own `mean_subtraction` layer. `x`'s channel count (1, 3
    or other) picks the mean (`channel_mean`); divides by `input_std` (or the architecture's)
    when given, by 1 otherwise (the paper's models).

    Args:
        x: images, channels last (or per `data_format`), RGB in 0..255: a NumPy array (a
            float32 NumPy array is returned) or a tensor of the current backend (a float32
            tensor is returned).
        architecture: a registered name or an `Architecture` whose `input_std` to use.
        input_std: the divisor itself.
        data_format: `"channels_last"` or `"channels_first"`; default Keras's.
    """
    std = _input_std(architecture, input_std)
    data_format = _data_format(data_format)
    is_numpy = isinstance(x, np.ndarray | list | tuple | int | float)
    xp = np if is_numpy else keras.ops
    x = np.asarray(x, "float32") if is_numpy else keras.ops.cast(x, "float32")
    if len(x.shape) < 3:
        raise ValueError(
            "`preprocess_input` expects images with a channel axis, e.g. (batch, height, width, "
            f"channels). Received: shape={tuple(x.shape)}"
        )
    axis = len(x.shape) - 1 if data_format == "channels_last" else len(x.shape) - 3
    mean = np.asarray(channel_mean(x.shape[axis]), "float32")
    mean = mean.reshape((-1,) + (1,) * (len(x.shape) - 1 - axis))
    return xp.subtract(x, mean) / np.float32(std)
