"""The paper's initialization ("MSRA", He et al. 2015, Sec. 2.2)."""

import math

import keras

from rectifier_zoo.checks import check_choice

MODES = ("fan_in", "fan_out")

# Names accepted wherever the package takes an initializer by string.
NAMED_INITIALIZERS = {
    # Eqn. 10, forward form: keeps the responses' variance constant.
    "msra_fan_in": {"mode": "fan_in"},
    # Eqn. 14, backward form: keeps the gradients' variance constant; used for Models A/B/C.
    "msra_fan_out": {"mode": "fan_out"},
    # The "Xavier" init the paper compares against (Caffe's): std sqrt(1/n), n the fan-in,
    # which is the MSRA rule with a = 1.
    "xavier": {"mode": "fan_in", "negative_slope": 1.0},
}


def _fans(shape) -> tuple[int, int]:
    """Fan-in and fan-out of a Dense (in, out) or conv (k..., in, out) kernel."""
    if len(shape) < 2:
        size = int(shape[0]) if shape else 1
        return size, size
    receptive_field = math.prod(int(s) for s in shape[:-2])
    return int(shape[-2]) * receptive_field, int(shape[-1]) * receptive_field


@keras.saving.register_keras_serializable(package="rectifier_zoo")
class MSRANormal(keras.initializers.RandomNormal):
    """Zero-mean Gaussian with `std = sqrt(2 / ((1 + a^2) * n))` (He et al. 2015, Eqn. 15).

    `n = k * k * c_in` (the fan-in, `mode="fan_in"`, the forward form of Eqn. 10) or
    `n = k * k * c_out` (the fan-out, `mode="fan_out"`, the backward form of Eqn. 14, which the
    paper used for Models A, B and C). `a` is the negative slope of the rectifier that follows:
    0 for ReLU, the PReLU's initial slope for PReLU (`rectifier_zoo.paper.PRELU_INITIAL_SLOPE`,
    0.25, which the builders pass); `a = 1` gives `std = sqrt(1 / n)`, the "Xavier"
    initialization the paper compares against.

    How this differs from `keras.initializers.HeNormal`: HeNormal draws from a normal
    distribution truncated at two standard deviations (and rescales it), always uses the fan-in
    and has no slope term. The paper's initialization is a plain, untruncated Gaussian.

    Also available by name: `"msra_fan_in"`, `"msra_fan_out"` and `"xavier"` through
    `rectifier_zoo.initializers.get`, and `"rectifier_zoo>MSRANormal"` through
    `keras.initializers.get`.

    A subclass of `keras.initializers.RandomNormal` whose standard deviation is computed from
    the kernel's shape at each call.

    Args:
        negative_slope: the slope `a` of the rectifier after the layer.
        mode: `"fan_in"` or `"fan_out"`.
        seed: an int or `keras.random.SeedGenerator` for reproducible draws.

    Reference: He et al., "Delving Deep into Rectifiers", ICCV 2015, Sec. 2.2.
    """

    def __init__(self, negative_slope: float = 0.0, mode: str = "fan_out", seed=None):
        check_choice("mode", mode, MODES)
        if not isinstance(negative_slope, int | float) or isinstance(negative_slope, bool):
            raise ValueError(
                f"`negative_slope` must be a number. Received: negative_slope={negative_slope!r}"
            )
        super().__init__(mean=0.0, stddev=1.0, seed=seed)
        self.negative_slope = float(negative_slope)
        self.mode = mode

    def stddev_for(self, shape) -> float:
        """The standard deviation used for a kernel of `shape`."""
        fan_in, fan_out = _fans(shape)
        n = fan_in if self.mode == "fan_in" else fan_out
        return math.sqrt(2.0 / ((1.0 + self.negative_slope**2) * n))

    def __call__(self, shape, dtype=None):
        return keras.random.normal(
            shape, stddev=self.stddev_for(shape), dtype=dtype, seed=self.seed
        )

    def get_config(self):
        seed = super().get_config()["seed"]
        return {"negative_slope": self.negative_slope, "mode": self.mode, "seed": seed}


def get(identifier, negative_slope: float = 0.0, seed=None) -> keras.initializers.Initializer:
    """An initializer from one of our names, a Keras identifier or an instance.

    Args:
        identifier: `"msra_fan_out"`, `"msra_fan_in"`, `"xavier"`, any name or config that
            `keras.initializers.get` accepts, or an `Initializer` instance (returned as is).
        negative_slope: the rectifier's negative slope `a` for the MSRA names (ignored by
            `"xavier"`, which is `a = 1` by definition).
        seed: seed for the MSRA names.
    """
    if isinstance(identifier, str) and identifier in NAMED_INITIALIZERS:
        kwargs = {"negative_slope": negative_slope, **NAMED_INITIALIZERS[identifier]}
        return MSRANormal(seed=seed, **kwargs)
    try:
        initializer = keras.initializers.get(identifier)
    except ValueError:
        initializer = None
    if initializer is None:
        raise ValueError(
            f"Unknown initializer. Expected one of {sorted(NAMED_INITIALIZERS)}, a Keras "
            f"initializer name or an Initializer instance. Received: initializer={identifier!r}"
        )
    return initializer
