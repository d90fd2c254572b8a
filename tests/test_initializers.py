"""The MSRA initializer against its formula (He et al. 2015, Eqns. 10, 14, 15)."""

import math

import keras
import numpy as np
import pytest
from helpers import assert_config_round_trip

from rectifier_zoo import initializers
from rectifier_zoo.initializers import MSRANormal

CONV = (3, 3, 256, 512)  # fan-in 2304, fan-out 4608, 1.2M draws
DENSE = (2048, 1024)


def _draw(initializer, shape):
    return keras.ops.convert_to_numpy(initializer(shape, dtype="float32")).astype("float64")


@pytest.mark.parametrize("shape", [CONV, DENSE], ids=["conv", "dense"])
@pytest.mark.parametrize("mode", ["fan_in", "fan_out"])
@pytest.mark.parametrize("slope", [0.0, 0.25])
def test_empirical_std_matches_the_formula(shape, mode, slope):
    fan_in = math.prod(shape[:-1])
    fan_out = math.prod(shape[:-2]) * shape[-1]
    n = fan_in if mode == "fan_in" else fan_out
    expected = math.sqrt(2.0 / ((1.0 + slope**2) * n))
    values = _draw(MSRANormal(negative_slope=slope, mode=mode, seed=1), shape)
    assert values.std() == pytest.approx(expected, rel=0.02)
    assert abs(values.mean()) < 0.01 * expected
    # Untruncated: a million Gaussian draws reach well past the 2-sigma cut of HeNormal.
    assert np.abs(values).max() > 4 * expected


def test_xavier_is_std_sqrt_one_over_fan_in():
    values = _draw(initializers.get("xavier", negative_slope=0.25, seed=2), CONV)
    assert values.std() == pytest.approx(math.sqrt(1.0 / (3 * 3 * 256)), rel=0.02)


@pytest.mark.parametrize(
    "name, mode, slope", [("msra_fan_in", "fan_in", 0.25), ("msra_fan_out", "fan_out", 0.25)]
)
def test_named_initializers(name, mode, slope):
    initializer = initializers.get(name, negative_slope=slope)
    assert isinstance(initializer, MSRANormal)
    assert (initializer.mode, initializer.negative_slope) == (mode, slope)


def test_passes_keras_identifiers_and_instances_through():
    assert isinstance(initializers.get("glorot_uniform"), keras.initializers.GlorotUniform)
    instance = keras.initializers.Zeros()
    assert initializers.get(instance) is instance


def test_serializable_and_usable_by_keras_name():
    initializer = MSRANormal(negative_slope=0.25, mode="fan_in", seed=3)
    clone = assert_config_round_trip(initializer)
    np.testing.assert_array_equal(_draw(clone, (4, 5)), _draw(initializer, (4, 5)))
    by_name = keras.initializers.get("rectifier_zoo>MSRANormal")
    assert isinstance(by_name, MSRANormal) and by_name.mode == "fan_out"
    layer = keras.layers.Dense(3, kernel_initializer="rectifier_zoo>MSRANormal")
    layer.build((None, 4))
    restored = keras.layers.Dense.from_config(layer.get_config())
    assert isinstance(restored.kernel_initializer, MSRANormal)


def test_seeded_draws_repeat():
    a = _draw(MSRANormal(seed=7), (3, 3, 4, 4))
    b = _draw(MSRANormal(seed=7), (3, 3, 4, 4))
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize(
    "make, match",
    [
        (
            lambda: MSRANormal(mode="fan_avg"),
            r"Unknown mode\. Expected one of \('fan_in', 'fan_out'\)\. Received: mode='fan_avg'",
        ),
        (lambda: MSRANormal(negative_slope="0.25"), r"`negative_slope` must be a number"),
        (lambda: initializers.get("msra"), r"Unknown initializer\. Expected one of"),
    ],
)
def test_argument_errors(make, match):
    with pytest.raises(ValueError, match=match):
        make()
