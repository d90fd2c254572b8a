"""Backbone features: `features_only=True`, `feature_levels`, `feature_info`, trunk freezing."""

import keras
import numpy as np
import pytest

import rectifier_zoo
from rectifier_zoo import ARCHITECTURES, weights
from rectifier_zoo.models import feature_info, set_trunk_trainable, trunk_layers

SIZE = 64


def _numpy(x):
    return keras.ops.convert_to_numpy(x)


def _images(channels=3, seed=0):
    rng = np.random.default_rng(seed)
    return rng.uniform(0, 255, (2, SIZE, SIZE, channels)).astype("float32")


@pytest.fixture(scope="module")
def tiny_file(tmp_path_factory):
    """A tiny classifier with non-default values everywhere, and its full weights file."""
    model = rectifier_zoo.model_tiny(classes=6, input_shape=(SIZE, SIZE, 3), seed=2)
    rng = np.random.default_rng(1)
    model.set_weights([rng.normal(0, 0.1, w.shape).astype(w.dtype) for w in model.get_weights()])
    path = tmp_path_factory.mktemp("features") / "tiny.weights.h5"
    model.save_weights(path)
    return model, str(path)


def test_feature_info_of_table_3_models():
    assert feature_info("model_a") == [
        {"level": "P1", "stride": 2, "channels": 96, "layer": "prelu1"},
        {"level": "P2", "stride": 4, "channels": 256, "layer": "prelu2_5"},
        {"level": "P3", "stride": 8, "channels": 512, "layer": "prelu3_5"},
        {"level": "P4", "stride": 16, "channels": 512, "layer": "prelu4_5"},
    ]
    assert [row["channels"] for row in feature_info("model_c")] == [96, 384, 768, 896]
    assert [row["layer"] for row in feature_info("model_b", "relu")] == [
        "relu1",
        "relu2_6",
        "relu3_6",
        "relu4_6",
    ]
    # Table 1's 3x3/3 pool: strides 2, 6, 12.
    assert [row["stride"] for row in feature_info(ARCHITECTURES["model_small"])] == [2, 6, 12]
    assert feature_info("model_a")[-1]["stride"] == ARCHITECTURES["model_a"].total_stride
    with pytest.raises(ValueError, match=r"Unknown architecture\..*architecture='vgg'"):
        feature_info("vgg")


def test_model_a_features_have_the_listed_strides_and_channels():
    # Full width, no weights, 64 px: the strides are those of the real graph.
    model = rectifier_zoo.model_a(features_only=True, input_shape=(SIZE, SIZE, 3))
    assert model.feature_info == feature_info("model_a")
    shapes = dict(zip(("P1", "P2", "P3", "P4"), model.output_shape, strict=True))
    for row in model.feature_info:
        side = SIZE // row["stride"]
        assert shapes[row["level"]] == (None, side, side, row["channels"])
    assert not any(layer.name.startswith("fc") for layer in model.layers)


def test_features_are_the_named_stage_outputs(tiny_file):
    classifier, _ = tiny_file
    model = rectifier_zoo.model_tiny(features_only=True, input_shape=(SIZE, SIZE, 3))
    model.set_weights(classifier.get_weights()[: len(model.get_weights())])
    outputs = model(_images())
    assert sorted(outputs) == ["P1", "P2", "P3"]
    reference = keras.Model(
        classifier.input,
        {row["level"]: classifier.get_layer(row["layer"]).output for row in model.feature_info},
    )
    expected = reference(_images())
    for level, value in outputs.items():
        np.testing.assert_allclose(_numpy(value), _numpy(expected[level]), rtol=1e-5, atol=1e-5)


def test_feature_levels_pick_and_truncate():
    model = rectifier_zoo.model_tiny(features_only=True, feature_levels=("P2", "P1"))
    assert [row["level"] for row in model.feature_info] == ["P1", "P2"]
    assert sorted(model(_images())) == ["P1", "P2"]
    # The graph stops at the deepest level asked for.
    assert not any(layer.name.startswith("conv3") for layer in model.layers)
    only = rectifier_zoo.model_tiny(features_only=True, feature_levels=["P3"])
    outputs = only(_images())
    assert list(outputs) == ["P3"] and tuple(outputs["P3"].shape) == (2, 8, 8, 16)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"feature_levels": ("P1",)}, r"`feature_levels` applies only with features_only=True"),
        ({"features_only": True, "feature_levels": ("P4",)}, r"Unknown feature_levels\."),
        ({"features_only": True, "feature_levels": "P1"}, r"non-empty sequence of levels"),
        ({"features_only": True, "feature_levels": ()}, r"non-empty sequence of levels"),
        ({"features_only": True, "feature_levels": ("P1", "P1")}, r"repeats a level"),
        ({"features_only": True, "pooling": "avg"}, r"`pooling` does not apply"),
        ({"features_only": "yes"}, r"`features_only` must be True or False"),
    ],
)
def test_feature_argument_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        rectifier_zoo.model_tiny(**kwargs)


@pytest.mark.parametrize("levels", [None, ("P1", "P2")])
def test_features_load_the_trunk_of_a_full_file(tiny_file, levels):
    classifier, path = tiny_file
    model = rectifier_zoo.model_tiny(features_only=True, feature_levels=levels, weights=path)
    for layer in model.layers:
        for got, want in zip(
            layer.get_weights(), classifier.get_layer(layer.name).get_weights(), strict=True
        ):
            np.testing.assert_array_equal(got, want)
    result = weights.load_weights(model, path)
    expected_skips = {"fc1", "prelu_fc1", "fc2", "prelu_fc2", "fc3"}
    if levels:
        expected_skips |= {"conv3_1", "prelu3_1", "conv3_2", "prelu3_2"}
    assert set(result.skipped) == expected_skips
    assert result.reinitialized == () and result.adapted == ()


def test_features_model_saves_and_loads(tiny_file, tmp_path):
    _, path = tiny_file
    model = rectifier_zoo.model_tiny(features_only=True, weights=path)
    model.save(tmp_path / "features.keras")
    loaded = keras.saving.load_model(tmp_path / "features.keras")
    got, want = loaded(_images()), model(_images())
    for level in want:
        np.testing.assert_allclose(_numpy(got[level]), _numpy(want[level]), rtol=1e-6)


def test_trunk_layers_and_freezing(tiny_file):
    _, path = tiny_file
    model = rectifier_zoo.model_tiny(classes=3, weights=path)
    names = [layer.name for layer in trunk_layers(model)]
    assert names[:3] == ["mean_subtraction", "conv1_pad", "conv1"] and names[-1] == "prelu3_2"
    frozen = set_trunk_trainable(model, False)
    assert frozen == [
        "conv1",
        "prelu1",
        "conv2_1",
        "prelu2_1",
        "conv2_2",
        "prelu2_2",
        "conv3_1",
        "prelu3_1",
        "conv3_2",
        "prelu3_2",
    ]
    trainable = {v.path.split("/")[0] for v in model.trainable_weights}
    assert trainable == {"fc1", "prelu_fc1", "fc2", "prelu_fc2", "fc3"}
    set_trunk_trainable(model, True)
    assert len(model.trainable_weights) == len(model.weights)
    with pytest.raises(ValueError, match="`trainable` must be True or False"):
        set_trunk_trainable(model, "no")
    pooled = rectifier_zoo.model_tiny(include_top=False, pooling="avg")
    assert "avg_pool" not in [layer.name for layer in trunk_layers(pooled)]


def test_frozen_trunk_does_not_move_in_training(tiny_file):
    _, path = tiny_file
    model = rectifier_zoo.model_tiny(classes=3, weights=path, input_shape=(SIZE, SIZE, 3))
    set_trunk_trainable(model, False)
    before = model.get_layer("conv2_1").get_weights()[0]
    classifier_before = model.get_layer("fc3").get_weights()[0]
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="sparse_categorical_crossentropy")
    model.train_on_batch(_images(), np.array([0, 2]))
    np.testing.assert_array_equal(model.get_layer("conv2_1").get_weights()[0], before)
    assert not np.array_equal(model.get_layer("fc3").get_weights()[0], classifier_before)
