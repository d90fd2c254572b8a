"""The builder: names, shapes, paper defaults, counts against Table 3, and its errors."""

from pathlib import Path

import keras
import numpy as np
import pytest
from helpers import assert_saved_model_round_trip, train_one_step

import rectifier_zoo
from rectifier_zoo import ARCHITECTURES, PReLU
from rectifier_zoo.architectures import ALTERNATE, Architecture, ConvStage
from rectifier_zoo.imagenet import IMAGENET_MEAN_RGB
from rectifier_zoo.info import count_multiply_adds, format_table, model_rows

TINY = ARCHITECTURES["model_tiny"]


def _images(batch=2, height=40, width=52, seed=0):
    return np.random.default_rng(seed).uniform(0, 255, (batch, height, width, 3)).astype("float32")


def _numpy(x):
    return keras.ops.convert_to_numpy(x)


def test_tiny_model_has_deterministic_names_and_any_input_size():
    model = rectifier_zoo.model_tiny(classes=7)
    names = [layer.name for layer in model.layers]
    assert names[:6] == ["images", "mean_subtraction", "conv1_pad", "conv1", "prelu1", "pool1"]
    assert names[6:9] == ["conv2_1", "prelu2_1", "conv2_2"]
    assert names[-9:] == [
        "spp",
        "fc1",
        "prelu_fc1",
        "dropout_fc1",
        "fc2",
        "prelu_fc2",
        "dropout_fc2",
        "fc3",
        "predictions",
    ]
    assert model.input_shape == (None, None, None, 3)
    for size in [(TINY.min_input_size, TINY.min_input_size), (40, 52), (97, 33)]:
        probabilities = _numpy(model(_images(2, *size)))
        assert probabilities.shape == (2, 7)
        np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)


def test_depth_counts_the_weight_layers():
    for name in ("model_tiny", "model_small"):
        model = rectifier_zoo.get_model(name)
        weighted = [
            layer
            for layer in model.layers
            if isinstance(layer, keras.layers.Conv2D | keras.layers.Dense)
        ]
        assert len(weighted) == ARCHITECTURES[name].depth
    assert ARCHITECTURES["model_small"].depth == 14
    assert ARCHITECTURES["model_deep"].depth == 30
    assert [ARCHITECTURES[n].depth for n in ("model_a", "model_b", "model_c")] == [19, 22, 22]


def test_deep_model_depth_is_configurable():
    model = rectifier_zoo.model_deep(depth=22, classes=10)
    convs = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
    assert len(convs) == 22 - 3 and convs[-1].name == "conv3_14"
    assert model.name == "model_deep_22"
    with pytest.raises(ValueError, match=r"`depth` must be an integer >= 14.*Received: depth=13"):
        rectifier_zoo.model_deep(depth=13)


def test_include_top_false_returns_the_conv_map_or_a_pooled_vector():
    conv_map = rectifier_zoo.model_tiny(include_top=False, input_shape=(64, 64, 3))
    assert conv_map.output_shape == (None, 8, 8, 16)
    assert rectifier_zoo.model_tiny(include_top=False, pooling="avg").output_shape == (None, 16)
    assert rectifier_zoo.model_tiny(include_top=False, pooling="max").output_shape == (None, 16)
    assert rectifier_zoo.model_tiny(include_top=False, pooling="spp").output_shape == (None, 16 * 5)


def test_input_tensor_is_used_as_the_input():
    inputs = keras.Input((48, 48, 3), name="my_images")
    model = rectifier_zoo.model_tiny(input_tensor=inputs, classes=4)
    assert model.inputs[0] is inputs
    assert model.output_shape == (None, 4)


def test_paper_initialization_defaults():
    model = rectifier_zoo.model_small(input_shape=(64, 64, 3))
    kernel = _numpy(model.get_layer("conv3_6").kernel)  # 2x2x256x256: fan-out 1024
    expected = np.sqrt(2.0 / ((1 + 0.25**2) * 2 * 2 * 256))
    assert kernel.std() == pytest.approx(expected, rel=0.02)
    for name, std in [("fc1", 0.01), ("fc2", 0.01), ("fc3", 0.001)]:
        assert _numpy(model.get_layer(name).kernel).std() == pytest.approx(std, rel=0.02)
    assert all(np.all(_numpy(v) == 0) for v in model.trainable_weights if v.name == "bias")
    slopes = [v for v in model.trainable_weights if v.name == "negative_slope"]
    assert len(slopes) == 13 and all(np.all(_numpy(v) == 0.25) for v in slopes)


def test_paper_names_the_default_fc_stds():
    default = rectifier_zoo.model_tiny(classes=5, seed=3)
    named = rectifier_zoo.model_tiny(classes=5, seed=3, fc_initializer="paper")
    for name in ("fc1", "fc2", "fc3"):
        np.testing.assert_array_equal(
            _numpy(named.get_layer(name).kernel), _numpy(default.get_layer(name).kernel)
        )
    msra = rectifier_zoo.model_tiny(classes=5, seed=3, fc_initializer="msra_fan_in")
    assert (
        _numpy(msra.get_layer("fc3").kernel).std()
        > 10 * _numpy(named.get_layer("fc3").kernel).std()
    )


def test_relu_and_xavier_options():
    model = rectifier_zoo.model_small(activation="relu", kernel_initializer="xavier")
    assert not any(isinstance(layer, PReLU) for layer in model.layers)
    assert model.get_layer("relu3_6") is not None
    kernel = _numpy(model.get_layer("conv3_6").kernel)
    assert kernel.std() == pytest.approx(np.sqrt(1.0 / (2 * 2 * 256)), rel=0.02)
    fan_in = rectifier_zoo.model_small(activation="relu", kernel_initializer="msra_fan_in")
    kernel = _numpy(fan_in.get_layer("conv2_4").kernel)  # 2x2x128x128: fan-in 512
    assert kernel.std() == pytest.approx(np.sqrt(2.0 / 512), rel=0.02)


def test_channel_shared_prelu_has_one_slope_per_layer():
    model = rectifier_zoo.model_tiny(channel_shared=True)
    slopes = [v for v in model.trainable_weights if v.name == "negative_slope"]
    assert len(slopes) == 7 and all(tuple(v.shape) == () for v in slopes)


def test_mean_is_subtracted_inside_the_model():
    with_mean = rectifier_zoo.model_tiny(include_top=False, seed=1)
    without = rectifier_zoo.model_tiny(include_top=False, include_preprocessing=False, seed=1)
    without.set_weights(with_mean.get_weights())
    images = _images()
    np.testing.assert_allclose(
        _numpy(with_mean(images)),
        _numpy(without(images - np.array(IMAGENET_MEAN_RGB, "float32"))),
        rtol=1e-5,
        atol=1e-5,
    )


def test_dropout_only_in_training():
    model = rectifier_zoo.model_tiny(classes=5, classifier_activation=None)
    images = _images()
    np.testing.assert_array_equal(_numpy(model(images)), _numpy(model(images)))
    assert not np.allclose(_numpy(model(images, training=True)), _numpy(model(images)))
    no_dropout = rectifier_zoo.model_tiny(dropout=0.0)
    assert not any(isinstance(layer, keras.layers.Dropout) for layer in no_dropout.layers)


def test_seeded_layers_do_not_share_kernels_or_dropout_masks():
    # Keras initializers with an int seed repeat their draw: each layer needs its own seed.
    model = rectifier_zoo.model_tiny(seed=5)
    conv2_2, conv3_1 = (_numpy(model.get_layer(n).kernel) for n in ("conv2_2", "conv3_1"))
    assert conv2_2.shape == conv3_1.shape and not np.array_equal(conv2_2, conv3_1)
    assert model.get_layer("dropout_fc1").seed != model.get_layer("dropout_fc2").seed


def test_seeded_builds_repeat():
    a = rectifier_zoo.model_tiny(seed=3).get_weights()
    b = rectifier_zoo.model_tiny(seed=3).get_weights()
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x, y)


@pytest.mark.parametrize("channel_shared", [False, True])
def test_one_training_step_and_keras_round_trip(channel_shared, tmp_path):
    model = rectifier_zoo.model_tiny(classes=3, channel_shared=channel_shared)
    images, labels = _images(4, 32, 32), np.array([0, 1, 2, 1])
    slopes_before = [_numpy(v) for v in model.trainable_weights if v.name == "negative_slope"]
    assert np.isfinite(train_one_step(model, images, labels))
    slopes_after = [_numpy(v) for v in model.trainable_weights if v.name == "negative_slope"]
    assert any(not np.array_equal(a, b) for a, b in zip(slopes_before, slopes_after, strict=True))
    loaded = assert_saved_model_round_trip(model, images, tmp_path / "tiny.keras")
    assert isinstance(loaded.get_layer("prelu2_1"), PReLU)


def test_mixed_precision_model_outputs_float32_scores():
    keras.config.set_dtype_policy("mixed_bfloat16")
    try:
        model = rectifier_zoo.model_tiny(classes=3)
        scores = model(_images())
    finally:
        keras.config.set_dtype_policy("float32")
    assert keras.backend.standardize_dtype(scores.dtype) == "float32"
    assert model.get_layer("prelu2_1").negative_slope.dtype == "float32"
    assert model.get_layer("conv2_1").compute_dtype == "bfloat16"


@pytest.mark.tf_only
def test_mixed_precision_training_step_runs_every_heavy_op_in_bfloat16():
    # What stays float32 in a mixed_bfloat16 step must be the variables' casts, the optimizer's
    # update, the softmax and the loss, and the fc kernels' gradients at small batches: every
    # convolution, matmul, PReLU op and pooling (SPP included), forward and backward, computes
    # in bf16. PReLU's training pass runs as fused kernels (function calls): their outputs, the
    # slope's gradient too, are bf16. An fc kernel's gradient is a branch (`fused.dense`): one
    # float32 matmul of the bf16 operands up to batch 32, a bf16 one above.
    import tensorflow as tf

    keras.config.set_dtype_policy("mixed_bfloat16")
    try:
        model = rectifier_zoo.model_tiny(classes=3)
    finally:
        keras.config.set_dtype_policy("float32")
    loss_fn = keras.losses.SparseCategoricalCrossentropy()

    @tf.function
    def gradients(images, labels):
        with tf.GradientTape() as tape:
            loss = loss_fn(labels, model(images, training=True))
        return tape.gradient(loss, model.trainable_variables)

    graph = gradients.get_concrete_function(_images(), np.array([0, 2])).graph
    heavy = {"Conv2D", "Conv2DBackpropInput", "Conv2DBackpropFilter", "MatMul", "MaxPool"}
    heavy |= {"MaxPoolGrad", "AvgPool", "AvgPoolGrad", "Relu", "ReluGrad", "Minimum"}
    calls = {"PartitionedCall", "StatefulPartitionedCall"}
    dtypes = {}
    for op in graph.get_operations():
        if op.type in heavy or ("prelu" in op.name and op.type in calls):
            dtypes.setdefault(op.type, set()).update(t.dtype.name for t in op.outputs)
    assert {"Conv2D", "Conv2DBackpropFilter", "MatMul", "PartitionedCall"} <= set(dtypes)
    assert {t: d for t, d in dtypes.items() if d != {"bfloat16"}} == {}
    library = {f.signature.name: f for f in graph.as_graph_def().library.function}

    def matmul_dtypes(branch):
        nodes = library[branch.name].node_def
        return {tf.dtypes.as_dtype(n.attr["T"].type).name for n in nodes if n.op == "MatMul"}

    branches = [op for op in graph.get_operations() if op.type in {"If", "StatelessIf"}]
    assert len(branches) == 3  # fc1, fc2, fc3
    for op in branches:
        assert matmul_dtypes(op.get_attr("then_branch")) == {"float32"}
        assert matmul_dtypes(op.get_attr("else_branch")) == {"bfloat16"}


def test_registry():
    assert rectifier_zoo.list_models() == [
        "model_a",
        "model_b",
        "model_c",
        "model_small",
        "model_deep",
        "model_tiny",
    ]
    assert rectifier_zoo.get_model("model_tiny", classes=2).output_shape == (None, 2)
    assert (
        "Model C" in rectifier_zoo.model_c.__doc__ and "15 pixels" in rectifier_zoo.model_c.__doc__
    )


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (
            {"activation": "elu"},
            r"Unknown activation\. Expected one of \('prelu', 'relu'\)\. "
            r"Received: activation='elu'",
        ),
        ({"include_top": False, "pooling": "mean"}, r"Unknown pooling\. .*pooling='mean'"),
        ({"pooling": "avg"}, r"`pooling` applies only with include_top=False"),
        ({"include_top": "no"}, r"`include_top` must be True or False"),
        ({"classes": 0}, r"`classes` must be a positive integer\. Received: classes=0"),
        ({"dropout": 1.0}, r"`dropout` must be a number in \[0, 1\)\. Received: dropout=1\.0"),
        ({"input_shape": (32, 32)}, r"`input_shape` must be \(height, width, channels\)"),
        ({"input_shape": (32, 32, 0)}, r"Received: input_shape=\(32, 32, 0\)"),
        ({"input_shape": (6, 64, 3)}, r"too small for model_tiny: .* at least 7"),
        ({"kernel_initializer": "msra"}, r"Unknown initializer"),
        ({"weights": "imagenet"}, r"No 'imagenet' weights are published for model_tiny"),
    ],
)
def test_builder_argument_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        rectifier_zoo.model_tiny(**kwargs)


def test_get_model_rejects_unknown_names():
    with pytest.raises(
        ValueError, match=r"Unknown name\. Expected one of \('model_a'.*name='vgg19'"
    ):
        rectifier_zoo.get_model("vgg19")


def test_multiply_adds_counted_from_the_graph():
    model = rectifier_zoo.model_tiny(input_shape=(64, 64, 3), classes=10)
    # conv1 7x7x3x8 on 32x32; conv2 3x3 on 16x16; conv3 3x3 on 8x8; spp 5 bins x 16; fc.
    expected = (
        32 * 32 * 49 * 3 * 8
        + 16 * 16 * 9 * (8 * 16 + 16 * 16)
        + 8 * 8 * 9 * 16 * 16 * 2
        + 80 * 32
        + 32 * 32
        + 32 * 10
    )
    assert count_multiply_adds(model) == expected
    with pytest.raises(ValueError, match="needs a model built with a fixed input size"):
        count_multiply_adds(rectifier_zoo.model_tiny())


def test_table_1_and_30_layer_shapes():
    small = rectifier_zoo.model_small(include_top=False, input_shape=(224, 224, 3))
    # 224 -> conv 7x7/2 (pad 3) 112 -> pool 3x3/3 37 -> pool 2x2/2 18
    assert small.output_shape == (None, 18, 18, 256)
    assert ARCHITECTURES["model_a"].feature_map_size(224) == 14
    assert ARCHITECTURES["model_a"].total_stride == 16


@pytest.mark.parametrize("padding", [ALTERNATE, "same"])
def test_stacked_2x2_convs_keep_the_receptive_fields_centred(padding):
    """Four 2x2 box filters on a centred impulse: alternating 1-pixel and no padding (Table 1's
    models) keeps the size and leaves the response symmetric about the centre; "same" (Keras
    pads bottom/right) shifts it 2 pixels towards the top-left."""
    stage = ConvStage(4, 1, 2, padding=padding)
    architecture = Architecture("boxes", (stage,), spp_levels=(1,), fc_units=(1,), reference="")
    model = rectifier_zoo.models.build_model(
        architecture, include_top=False, input_shape=(9, 9, 1), include_preprocessing=False
    )
    assert model.output_shape == (None, 9, 9, 1) and stage.output_size(9) == 9
    for layer in model.layers:
        if isinstance(layer, keras.layers.Conv2D):
            layer.set_weights([np.full((2, 2, 1, 1), 0.25), np.zeros(1)])
    impulse = np.zeros((1, 9, 9, 1), "float32")
    impulse[0, 4, 4, 0] = 1.0
    response = keras.ops.convert_to_numpy(model(impulse))[0, :, :, 0]
    rows = response.sum(axis=1)
    centre = float((rows * np.arange(9)).sum() / rows.sum())
    assert response.sum() == pytest.approx(1.0)
    if padding == ALTERNATE:
        np.testing.assert_allclose(response, response[::-1, ::-1], atol=1e-7)
        assert centre == pytest.approx(4.0)
    else:
        assert centre == pytest.approx(2.0)
    # An odd number of alternating layers ends one pixel larger.
    assert ConvStage(3, 1, 2, padding=ALTERNATE).output_size(9) == 10


def test_paper_counts_of_table_3():
    """Multiply-adds within 1.5% of Table 3's; parameters within 0.5% of our pinned counts (the
    paper gives none)."""
    counted = {"model_a": 1.906e10, "model_b": 2.322e10, "model_c": 5.346e10}
    rows = model_rows(224, names=list(counted))
    for row in rows:
        architecture = ARCHITECTURES[row["model"]]
        assert row["multiply_adds"] == pytest.approx(counted[row["model"]], rel=0.015)
        assert row["multiply_adds"] == pytest.approx(row["paper_multiply_adds"], rel=0.015)
        assert row["params"] == pytest.approx(architecture.counted_params, rel=0.005)
    table = format_table(rows)
    assert table.splitlines()[0] == (
        "| model | depth | params (M, counted) | multiply-adds at 224 (x10^10, counted) | "
        "paper multiply-adds (x10^10) | reference |"
    )
    assert "| model_c | 22 | 330.6 | 5.346 | 5.30 | He et al. 2015, Table 3 |" in table
    # README's model table is the output of `python -m rectifier_zoo.info`, not typed by hand.
    readme = (Path(__file__).parents[1] / "README.md").read_text(encoding="utf-8")
    for line in table.splitlines():
        assert line in readme, f"README's model table is stale: {line}"
