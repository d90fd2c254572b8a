"""PReLU, SpatialPyramidPooling and Dense against NumPy and Keras references, under the active
backend."""

import math

import keras
import numpy as np
import pytest
from helpers import assert_config_round_trip, assert_saved_model_round_trip
from keras.src import testing as keras_testing

import rectifier_zoo
from rectifier_zoo import PReLU, SpatialPyramidPooling
from rectifier_zoo.layers import Dense

BACKEND = keras.backend.backend()


def _inputs(shape, seed=0):
    # Values bounded away from 0, where the rectifier's derivative is undefined.
    rng = np.random.default_rng(seed)
    x = rng.uniform(0.1, 2.0, size=shape) * rng.choice([-1.0, 1.0], size=shape)
    return x.astype("float32")


def _prelu_grads(layer, x, upstream, training=False):
    """(dx, da) of sum(layer(x) * upstream), with the backend's own autodiff."""
    if BACKEND == "tensorflow":
        import tensorflow as tf

        x = tf.constant(x)
        with tf.GradientTape() as tape:
            tape.watch(x)
            loss = tf.reduce_sum(layer(x, training=training) * upstream)
        dx, da = tape.gradient(loss, [x, layer.negative_slope.value])
    elif BACKEND == "jax":
        import jax
        import jax.numpy as jnp

        def loss(slope, inputs):
            outputs, _ = layer.stateless_call([slope], [], inputs, training=training)
            return jnp.sum(outputs * upstream)

        da, dx = jax.grad(loss, argnums=(0, 1))(layer.negative_slope.value, jnp.asarray(x))
    else:
        pytest.skip(f"no gradient helper for backend {BACKEND}")
    return np.asarray(dx), np.asarray(da)


PRELU_CASES = [
    # (input shape, channel_shared, data_format, channel axis)
    ((2, 5, 6, 4), False, "channels_last", 3),
    ((2, 4, 5, 6), False, "channels_first", 1),
    ((2, 5, 6, 4), True, "channels_last", None),
    ((3, 7), False, "channels_last", 1),  # after a Dense layer: one slope per unit
    ((3, 7), True, "channels_first", None),
]


@pytest.mark.parametrize("training", [False, True])  # True: the fused kernels on TensorFlow
@pytest.mark.parametrize("shape, shared, data_format, axis", PRELU_CASES)
def test_prelu_forward_and_gradients_match_numpy(shape, shared, data_format, axis, training):
    layer = PReLU(channel_shared=shared, data_format=data_format)
    x = _inputs(shape)
    layer.build(shape)
    slope_shape = () if shared else (shape[axis],)
    assert tuple(layer.negative_slope.shape) == slope_shape
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(layer.negative_slope), 0.25)
    # Distinct slopes per channel, so a broadcast on the wrong axis would show.
    slopes = np.linspace(-0.3, 1.4, num=math.prod(slope_shape)).reshape(slope_shape)
    layer.negative_slope.assign(slopes.astype("float32"))
    a = slopes if shared else np.expand_dims(slopes, [d for d in range(len(shape)) if d != axis])

    expected = np.maximum(x, 0) + a * np.minimum(x, 0)
    outputs = keras.ops.convert_to_numpy(layer(x, training=training))
    np.testing.assert_allclose(outputs, expected, rtol=1e-6)

    upstream = _inputs(shape, seed=1)
    dx, da = _prelu_grads(layer, x, upstream, training)
    np.testing.assert_allclose(dx, upstream * np.where(x > 0, 1.0, a), rtol=1e-6)
    contribution = upstream * np.minimum(x, 0)
    reduce_axes = tuple(d for d in range(len(shape)) if d != axis)
    expected_da = contribution.sum() if shared else contribution.sum(axis=reduce_axes)
    np.testing.assert_allclose(da, expected_da, rtol=1e-5)


@pytest.mark.tf_only
@pytest.mark.parametrize("shape, shared, data_format, axis", PRELU_CASES)
def test_prelu_fused_training_pass_equals_the_portable_ops_in_bfloat16(
    shape, shared, data_format, axis
):
    # The fused kernels (training on TensorFlow) against the portable formula (inference), on
    # the same bf16 inputs: the same output and input gradient bit for bit (the same products);
    # the slope's gradient, summed in float32 by the fused kernel, to within bf16 rounding of
    # the exact sum.
    layer = PReLU(channel_shared=shared, data_format=data_format, dtype="mixed_bfloat16")
    layer.build(shape)
    slope_shape = tuple(layer.negative_slope.shape)
    layer.negative_slope.assign(
        np.linspace(-0.3, 1.4, num=math.prod(slope_shape)).reshape(slope_shape)
    )
    import ml_dtypes

    x = _inputs(shape).astype(ml_dtypes.bfloat16)
    x[(0,) * len(shape)] = 0.0  # the kink: both sides take the slope's subgradient
    upstream = _inputs(shape, seed=1)
    fused, portable = (
        [layer(x, training=True), *_prelu_grads(layer, x, upstream, training=True)],
        [layer(x, training=False), *_prelu_grads(layer, x, upstream, training=False)],
    )
    for ours, theirs in zip(fused[:2], portable[:2], strict=True):
        np.testing.assert_array_equal(
            keras.ops.convert_to_numpy(keras.ops.cast(ours, "float32")),
            keras.ops.convert_to_numpy(keras.ops.cast(theirs, "float32")),
        )
    axes = tuple(d for d in range(len(shape)) if d != axis)
    terms = x.astype("float64") * upstream.astype(ml_dtypes.bfloat16).astype("float64") * (x < 0)
    exact = terms.sum() if shared else terms.sum(axis=axes)
    np.testing.assert_allclose(fused[2], exact, rtol=2**-7)


@pytest.mark.tf_only
def test_prelu_fuses_only_its_training_pass():
    # Training calls on TensorFlow run XLA kernels; inference (and so every export, which
    # traces inference) keeps plain ops that TF Serving, TFLite and ONNX load.
    import tensorflow as tf

    layer = PReLU()
    x = _inputs((2, 5, 5, 3))

    def compiled_functions(training):
        graph = tf.function(lambda t: layer(t, training=training)).get_concrete_function(
            tf.TensorSpec(x.shape)
        )
        library = graph.graph.as_graph_def().library.function
        return [f for f in library if f.attr["_XlaMustCompile"].b]

    assert compiled_functions(training=True)
    assert compiled_functions(training=False) == []


def test_prelu_accepts_unknown_spatial_size_and_round_trips(tmp_path):
    inputs = keras.Input((None, None, 3))
    outputs = PReLU(name="prelu")(keras.layers.Conv2D(4, 3, name="conv")(inputs))
    model = keras.Model(inputs, outputs)
    for size in (5, 9):
        assert model(np.ones((1, size, size + 2, 3), "float32")).shape == (1, size - 2, size, 4)
    layer = model.get_layer("prelu")
    clone = assert_config_round_trip(layer)
    assert (clone.channel_shared, clone.initial_slope) == (False, 0.25)
    assert_saved_model_round_trip(model, _inputs((2, 6, 7, 3)), tmp_path / "m.keras")


def test_prelu_slope_has_no_regularizer_or_constraint_and_can_leave_its_range():
    layer = PReLU(initial_slope=1.5)
    layer.build((None, 3))
    assert layer.negative_slope.regularizer is None and layer.negative_slope.constraint is None
    assert layer.losses == []
    out = keras.ops.convert_to_numpy(layer(np.array([[-2.0, -1.0, 3.0]], "float32")))
    np.testing.assert_allclose(out, [[-3.0, -1.5, 3.0]])


@pytest.mark.parametrize("policy", ["mixed_bfloat16", "mixed_float16"])
def test_prelu_under_mixed_precision_keeps_slope_in_float32(policy):
    layer = PReLU(dtype=policy)
    x = _inputs((2, 4, 4, 3))
    y = layer(x)
    assert layer.negative_slope.dtype == "float32"
    assert keras.backend.standardize_dtype(y.dtype) == policy.split("_")[1]
    expected = np.maximum(x, 0) + 0.25 * np.minimum(x, 0)
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(keras.ops.cast(y, "float32")), expected, rtol=1e-2, atol=1e-2
    )


def test_weight_decay_exclusions_keep_slopes_and_biases_out_of_decay():
    model = rectifier_zoo.model_tiny(input_shape=(32, 32, 3), classes=3)
    exclusions = rectifier_zoo.weight_decay_exclusions(model)
    assert exclusions == ["bias", "negative_slope"]
    optimizer = keras.optimizers.SGD(learning_rate=1.0, weight_decay=0.5)
    optimizer.exclude_from_weight_decay(var_names=exclusions)
    variables = model.trainable_variables
    before = [keras.ops.convert_to_numpy(v) for v in variables]
    optimizer.apply_gradients([(keras.ops.zeros(v.shape), v) for v in variables])
    for variable, old in zip(variables, before, strict=True):
        new = keras.ops.convert_to_numpy(variable)
        if variable.name == "kernel":
            np.testing.assert_allclose(new, old * 0.5, rtol=1e-6)  # decoupled decay: w -= lr*wd*w
        else:
            np.testing.assert_array_equal(new, old)


def _spp_reference(x, levels):
    """Max over bin (i, j) = rows [floor(i*h/n), ceil((i+1)*h/n)) x the same for columns."""
    batch, h, w, c = x.shape
    out = []
    for n in levels:
        level = np.empty((batch, n, n, c), x.dtype)
        for i in range(n):
            r0, r1 = math.floor(i * h / n), math.ceil((i + 1) * h / n)
            for j in range(n):
                c0, c1 = math.floor(j * w / n), math.ceil((j + 1) * w / n)
                level[:, i, j] = x[:, r0:r1, c0:c1].max(axis=(1, 2))
        out.append(level.reshape(batch, -1))
    return np.concatenate(out, axis=1)


@pytest.mark.parametrize("size", [(14, 14), (13, 17), (5, 5), (3, 2), (1, 1), (6, 31)])
@pytest.mark.parametrize("levels", [(7, 3, 2, 1), (6, 3, 2, 1)])
def test_spp_matches_numpy_reference(size, levels):
    x = _inputs((2, *size, 5))
    layer = SpatialPyramidPooling(levels)
    out = keras.ops.convert_to_numpy(layer(x))
    assert out.shape == (2, 5 * sum(n * n for n in levels))
    np.testing.assert_array_equal(out, _spp_reference(x, levels))


def test_spp_on_14x14_against_the_window_stride_rule():
    # SPP-net's rule (He et al., ECCV 2014): window ceil(a/n), stride floor(a/n), no padding.
    # On 14x14 it gives the same bins as ours for n = 7, 2, 1. For n = 3 it gives rows [0,5)
    # [4,9) [8,13) and never looks at row 13; ours gives [0,5) [4,10) [9,14), covering the map.
    x = _inputs((2, 14, 14, 3))
    layer = SpatialPyramidPooling((7, 3, 2, 1))
    out = np.split(
        keras.ops.convert_to_numpy(layer(x)), np.cumsum([3 * n * n for n in (7, 3, 2)]), 1
    )
    for n, ours in zip((7, 3, 2, 1), out, strict=True):
        pooled = keras.layers.MaxPooling2D(math.ceil(14 / n), math.floor(14 / n))(x)
        assert pooled.shape[1:3] == (n, n)
        window_stride = keras.ops.convert_to_numpy(pooled).reshape(2, -1)
        if n == 3:
            assert [edges for edges in rectifier_zoo.layers.spp_bins(14, 3)] == [
                (0, 5),
                (4, 10),
                (9, 14),
            ]
            assert not np.array_equal(ours, window_stride)
        else:
            np.testing.assert_array_equal(ours, window_stride)


def test_spp_channels_first_gives_the_same_vector():
    x = _inputs((2, 9, 11, 4))
    last = SpatialPyramidPooling((3, 1), data_format="channels_last")(x)
    first = SpatialPyramidPooling((3, 1), data_format="channels_first")(
        np.transpose(x, (0, 3, 1, 2))
    )
    np.testing.assert_array_equal(
        keras.ops.convert_to_numpy(first), keras.ops.convert_to_numpy(last)
    )


def test_spp_in_a_graph_with_unknown_spatial_size():
    layer = SpatialPyramidPooling((7, 3, 2, 1))
    sizes = [(14, 14), (13, 17), (4, 3)]
    if BACKEND == "tensorflow":
        import tensorflow as tf

        # What the SavedModel export does: trace once with None dims, no autograph.
        fn = tf.function(
            layer, input_signature=[tf.TensorSpec([None, None, None, 2])], autograph=False
        )
        graph = fn.get_concrete_function()
        assert graph.structured_outputs.shape.as_list() == [None, 2 * 63]
    elif BACKEND == "jax":
        import jax

        graph = jax.jit(layer)
    else:
        pytest.skip(f"no graph mode check for backend {BACKEND}")
    for size in sizes:
        x = _inputs((2, *size, 2))
        np.testing.assert_array_equal(np.asarray(graph(x)), _spp_reference(x, (7, 3, 2, 1)))


def test_spp_round_trips_and_reports_its_output_shape(tmp_path):
    layer = SpatialPyramidPooling([6, 3, 2, 1])
    assert assert_config_round_trip(layer).levels == (6, 3, 2, 1)
    assert layer.compute_output_shape((None, None, None, 8)) == (None, 8 * 50)
    inputs = keras.Input((None, None, 3))
    model = keras.Model(inputs, keras.layers.Dense(2)(layer(inputs)))
    assert_saved_model_round_trip(model, _inputs((2, 7, 8, 3)), tmp_path / "spp.keras")


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: PReLU(channel_shared="yes"), r"`channel_shared` must be True or False"),
        (lambda: PReLU(data_format="NHWC"), r"Unknown data_format\. Expected one of .*NHWC"),
        (lambda: SpatialPyramidPooling(levels=()), r"`levels` must be a non-empty sequence"),
        (lambda: SpatialPyramidPooling(levels=(7, 0)), r"Received: levels=\(7, 0\)"),
        (lambda: SpatialPyramidPooling(levels=7), r"Received: levels=7"),
        (
            lambda: SpatialPyramidPooling(data_format="nchw"),
            r"Unknown data_format\. Expected one of",
        ),
    ],
)
def test_layer_argument_errors(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_layers_need_known_channels():
    with pytest.raises(ValueError, match="needs a known number of channels"):
        PReLU().build((None, 4, 4, None))
    with pytest.raises(ValueError, match="needs a known number of channels"):
        SpatialPyramidPooling().build((None, 4, 4, None))


def _dense_pass(layer, x, upstream, training):
    """(y, dx, dkernel, dbias) of sum(layer(x) * upstream) on TensorFlow, as float32 NumPy."""
    import tensorflow as tf

    x = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = layer(x, training=training)
        loss = tf.reduce_sum(tf.cast(y, "float32") * upstream)
    grads = tape.gradient(loss, [x, layer.kernel, layer.bias])
    return [np.asarray(tf.cast(t, "float32")) for t in [y, *grads]]


@pytest.mark.tf_only
@pytest.mark.parametrize("batch", [3, 32, 33])
def test_dense_training_pass_under_bfloat16_against_keras_dense(batch):
    # The same layer as keras.layers.Dense: the same output and input and bias gradients bit for
    # bit. The kernel's gradient: at batches up to 32 the float32 product of the same bf16
    # operands (Keras rounds it to bf16), above that Keras's own.
    import ml_dtypes

    from rectifier_zoo import fused

    ours = Dense(6, activation="relu", dtype="mixed_bfloat16")
    theirs = keras.layers.Dense(6, activation="relu", dtype="mixed_bfloat16")
    for layer in (ours, theirs):
        layer.build((None, 40))
    theirs.set_weights(ours.get_weights())
    x = _inputs((batch, 40)).astype(ml_dtypes.bfloat16)
    upstream = _inputs((batch, 6), seed=1)
    mine, keras_pass = (_dense_pass(layer, x, upstream, training=True) for layer in (ours, theirs))
    for index in (0, 1, 3):
        np.testing.assert_array_equal(mine[index], keras_pass[index])
    if batch > fused.FLOAT32_KERNEL_GRAD_MAX_BATCH:
        np.testing.assert_array_equal(mine[2], keras_pass[2])
        return
    # d(loss)/d(y) before the ReLU, in bf16 as the backward pass carries it.
    pre_activation = x.astype("float32") @ ours.kernel.numpy().astype(ml_dtypes.bfloat16).astype(
        "float32"
    ) + ours.bias.numpy().astype(ml_dtypes.bfloat16).astype("float32")
    grad_y = (upstream.astype(ml_dtypes.bfloat16) * (pre_activation > 0)).astype("float32")
    exact = x.astype("float32").T @ grad_y
    np.testing.assert_allclose(mine[2], exact, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(keras_pass[2], exact, rtol=2**-8, atol=1e-6)
    assert not np.array_equal(keras_pass[2], exact)  # Keras's is rounded; ours is not


def test_dense_is_keras_dense_outside_bfloat16_training():
    # float32 training, and inference in every policy: Keras's own call, to the bit.
    x = _inputs((4, 10))
    for policy, training in [("float32", True), ("mixed_bfloat16", False)]:
        ours = Dense(3, dtype=policy)
        theirs = keras.layers.Dense(3, dtype=policy)
        ours.build((None, 10))
        theirs.build((None, 10))
        theirs.set_weights(ours.get_weights())
        np.testing.assert_array_equal(
            keras.ops.convert_to_numpy(keras.ops.cast(ours(x, training=training), "float32")),
            keras.ops.convert_to_numpy(keras.ops.cast(theirs(x, training=training), "float32")),
        )


class KerasLayerHarnessTest(keras_testing.TestCase):
    """Keras's own layer checks: build, config and serialization round trip, symbolic and
    eager calls, masking, a training run (`fit`), mixed precision."""

    def test_prelu(self):
        for kwargs, shape in [
            ({}, (2, 4, 5, 3)),
            ({"channel_shared": True}, (2, 4, 5, 3)),
            ({"data_format": "channels_first"}, (2, 3, 4, 5)),
            ({"initial_slope": 0.1}, (2, 6)),
        ]:
            self.run_layer_test(
                PReLU,
                init_kwargs=kwargs,
                input_shape=shape,
                expected_output_shape=shape,
                expected_num_trainable_weights=1,
                expected_num_non_trainable_weights=0,
                expected_num_losses=0,
                supports_masking=True,
            )

    def test_spatial_pyramid_pooling(self):
        for kwargs, shape, width in [
            ({}, (2, 14, 14, 3), 3 * 63),
            ({"levels": (6, 3, 2, 1)}, (2, 13, 9, 4), 4 * 50),
            ({"levels": (2, 1), "data_format": "channels_first"}, (2, 3, 5, 5), 3 * 5),
        ]:
            self.run_layer_test(
                SpatialPyramidPooling,
                init_kwargs=kwargs,
                input_shape=shape,
                expected_output_shape=(shape[0], width),
                expected_num_trainable_weights=0,
                expected_num_non_trainable_weights=0,
                expected_num_losses=0,
                supports_masking=False,
            )

    def test_dense(self):
        # With a bf16 policy the harness's `fit` trains the fused path on TensorFlow, at a batch
        # under and over `fused.FLOAT32_KERNEL_GRAD_MAX_BATCH`.
        for kwargs, shape in [
            ({"units": 4}, (2, 5)),
            ({"units": 4, "dtype": "mixed_bfloat16"}, (2, 5)),
            ({"units": 3, "use_bias": False, "dtype": "mixed_bfloat16"}, (40, 6)),
        ]:
            self.run_layer_test(
                Dense,
                init_kwargs=kwargs,
                input_shape=shape,
                expected_output_shape=(shape[0], kwargs["units"]),
                expected_num_trainable_weights=1 + kwargs.get("use_bias", True),
                expected_num_non_trainable_weights=0,
                expected_num_losses=0,
                supports_masking=True,
            )
