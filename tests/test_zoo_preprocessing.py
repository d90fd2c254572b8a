"""The input contract outside the model: `preprocess_input` and `preprocessing_layer`."""

import dataclasses

import keras
import numpy as np
import pytest

import rectifier_zoo
from rectifier_zoo import ARCHITECTURES, paper
from rectifier_zoo.preprocessing import channel_mean

SIZE = 40


def _numpy(x):
    return keras.ops.convert_to_numpy(x)


def _images(channels=3, seed=0):
    rng = np.random.default_rng(seed)
    return rng.uniform(0, 255, (2, SIZE, SIZE, channels)).astype("float32")


def _pair(architecture=None, channels=3):
    """The same weights with the mean subtraction in the graph and without it."""
    build = (
        rectifier_zoo.model_tiny
        if architecture is None
        else lambda **kw: rectifier_zoo.build_model(architecture, **kw)
    )
    shape = (SIZE, SIZE, channels)
    inside = build(input_shape=shape, classes=5, classifier_activation=None, seed=3)
    outside = build(
        input_shape=shape, classes=5, classifier_activation=None, include_preprocessing=False
    )
    outside.set_weights(inside.get_weights())
    return inside, outside


@pytest.mark.parametrize("as_tensor", [False, True])
def test_preprocess_input_matches_the_layer_in_the_graph(as_tensor):
    inside, outside = _pair()
    images = _images()
    x = keras.ops.convert_to_tensor(images) if as_tensor else images
    processed = rectifier_zoo.preprocess_input(x)
    assert isinstance(processed, np.ndarray) != as_tensor
    np.testing.assert_allclose(
        _numpy(outside(processed)), _numpy(inside(images)), rtol=1e-5, atol=1e-5
    )


def test_preprocess_input_arithmetic():
    images = _images()
    expected = images - np.array(paper.IMAGENET_MEAN_RGB, "float32")
    np.testing.assert_allclose(rectifier_zoo.preprocess_input(images), expected, rtol=1e-6)
    np.testing.assert_allclose(
        rectifier_zoo.preprocess_input(images, input_std=2.0), expected / 2, rtol=1e-6
    )
    gray = _images(channels=1)
    np.testing.assert_allclose(
        rectifier_zoo.preprocess_input(gray), gray - channel_mean(1)[0], rtol=1e-6
    )
    first = np.moveaxis(images, -1, 1)
    np.testing.assert_allclose(
        rectifier_zoo.preprocess_input(first, data_format="channels_first"),
        np.moveaxis(expected, -1, 1),
        rtol=1e-6,
    )
    uint8 = images.astype("uint8")
    assert rectifier_zoo.preprocess_input(uint8).dtype == np.float32


def test_preprocess_input_with_an_architectures_input_std():
    scaled = dataclasses.replace(ARCHITECTURES["model_tiny"], name="tiny_scaled", input_std=58.0)
    inside, outside = _pair(scaled)
    images = _images()
    np.testing.assert_allclose(
        _numpy(outside(rectifier_zoo.preprocess_input(images, architecture=scaled))),
        _numpy(inside(images)),
        rtol=1e-5,
        atol=1e-5,
    )
    np.testing.assert_allclose(
        rectifier_zoo.preprocess_input(images, architecture="model_a"),
        rectifier_zoo.preprocess_input(images),
    )


@pytest.mark.parametrize("channels", [1, 3, 4])
def test_preprocessing_layer_in_front_of_a_bare_model(channels):
    inside, outside = _pair(channels=channels)
    inputs = keras.Input((SIZE, SIZE, channels))
    wrapped = keras.Model(inputs, outside(rectifier_zoo.preprocessing_layer(channels)(inputs)))
    images = _images(channels)
    np.testing.assert_allclose(
        _numpy(wrapped(images)), _numpy(inside(images)), rtol=1e-5, atol=1e-5
    )
    assert inside.get_layer("mean_subtraction").get_config()["mean"] == list(channel_mean(channels))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"input_std": 0}, r"`input_std` must be a positive number"),
        ({"input_std": 2.0, "architecture": "model_a"}, r"Pass `architecture` or `input_std`"),
        ({"architecture": "vgg"}, r"Unknown architecture\."),
        ({"data_format": "nhwc"}, r"Unknown data_format\."),
    ],
)
def test_preprocess_input_argument_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        rectifier_zoo.preprocess_input(_images(), **kwargs)


def test_preprocess_input_needs_a_channel_axis():
    with pytest.raises(ValueError, match=r"expects images with a channel axis"):
        rectifier_zoo.preprocess_input(np.zeros((4, 4)))
