"""CaffeSGD against the NumPy form of Caffe's update, under the active backend."""

import math

import keras
import numpy as np
import pytest
from helpers import assert_config_round_trip

import rectifier_zoo
from rectifier_zoo import CaffeSGD, PReLU

BACKEND = keras.backend.backend()


def _net(seed=0, dtype=None):
    """Dense -> PReLU -> Dense: kernels, biases and slopes, with fixed nonzero values."""
    model = keras.Sequential(
        [
            keras.Input((6,)),
            keras.layers.Dense(5, dtype=dtype),
            PReLU(dtype=dtype),
            keras.layers.Dense(3, dtype=dtype),
        ]
    )
    rng = np.random.default_rng(seed)
    # Biases and slopes away from 0, so that decaying them by mistake would show.
    for v in model.trainable_variables:
        v.assign(rng.uniform(0.5, 1.5, size=v.shape) * rng.choice([-1.0, 1.0], size=v.shape))
    return model


def _values(model):
    return [keras.ops.convert_to_numpy(v).astype("float64") for v in model.trainable_variables]


def _assert_close(got, expected, atol=1e-6):
    for i, (g, e) in enumerate(zip(got, expected, strict=True)):
        np.testing.assert_allclose(g, e, rtol=0, atol=atol, err_msg=f"variable {i}")


def _reference(weights, grads_per_step, lrs, momentum, weight_decay, decayed, nesterov=False):
    """Caffe's SGD in NumPy: g += wd * w (decayed only); v = m * v - lr * g; w += v."""
    weights = [w.copy() for w in weights]
    velocities = [np.zeros_like(w) for w in weights]
    for grads, lr in zip(grads_per_step, lrs, strict=True):
        for i, (w, g) in enumerate(zip(weights, grads, strict=True)):
            g = g + weight_decay * w if decayed[i] else g
            velocities[i] = momentum * velocities[i] - lr * g
            weights[i] = w + (momentum * velocities[i] - lr * g if nesterov else velocities[i])
    return weights


def _random_grads(model, steps, seed=1):
    rng = np.random.default_rng(seed)
    return [
        [rng.normal(size=v.shape).astype("float32") for v in model.trainable_variables]
        for _ in range(steps)
    ]


def _apply(optimizer, model, grads_per_step, scale=1.0):
    """A custom loop's steps: `apply_gradients` (on JAX, `stateless_apply` under loss scaling)."""
    variables = model.trainable_variables
    stateless = BACKEND == "jax" and isinstance(optimizer, keras.optimizers.LossScaleOptimizer)
    if stateless:
        # Keras's LossScaleOptimizer cannot step statefully on JAX (its `cond` leaks tracers,
        # with Keras's own SGD too); JAX loops and `model.fit` go through `stateless_apply`.
        optimizer.build(variables)
    for grads in grads_per_step:
        scaled = [g * np.float32(scale) for g in grads]
        if not stateless:
            optimizer.apply_gradients(zip(scaled, variables, strict=True))
            continue
        new_values, new_state = optimizer.stateless_apply(
            [v.value for v in optimizer.variables], scaled, [v.value for v in variables]
        )
        for v, value in zip(variables + optimizer.variables, new_values + new_state, strict=True):
            v.assign(value)


def _is_kernel(model):
    return [v.name == "kernel" for v in model.trainable_variables]


@pytest.mark.parametrize("nesterov", [False, True])
def test_two_steps_match_the_coupled_formula(nesterov):
    model = _net()
    before = _values(model)
    grads = _random_grads(model, steps=2)
    # A schedule: the second step runs at half the rate, as after a drop.
    schedule = keras.optimizers.schedules.PiecewiseConstantDecay([0], [0.1, 0.05])
    # A large decay, so that decaying a slope or a bias, or skipping a kernel, is far off.
    optimizer = CaffeSGD(schedule, momentum=0.9, weight_decay=0.05, nesterov=nesterov, model=model)
    _apply(optimizer, model, grads)

    decayed = _is_kernel(model)
    assert decayed == [True, False, False, True, False], [v.path for v in model.weights]
    expected = _reference(before, grads, [0.1, 0.05], 0.9, 0.05, decayed, nesterov)
    got = _values(model)
    diffs = {
        v.path: float(np.max(np.abs(g - e)))
        for v, g, e in zip(model.trainable_variables, got, expected, strict=True)
    }
    assert max(diffs.values()) < 1e-6, f"max abs diff vs the NumPy formula: {diffs}"

    # Slopes and biases: no decay, but momentum (the second step carries 0.9 of the first).
    undecayed_with_momentum = _reference(before, grads, [0.1, 0.05], 0.9, 0.0, decayed, nesterov)
    no_momentum = _reference(before, grads, [0.1, 0.05], 0.0, 0.05, decayed, nesterov)
    decayed_everywhere = _reference(before, grads, [0.1, 0.05], 0.9, 0.05, [True] * 5, nesterov)
    for i, variable in enumerate(model.trainable_variables):
        if decayed[i]:
            continue
        np.testing.assert_allclose(got[i], undecayed_with_momentum[i], atol=1e-6)
        assert np.max(np.abs(got[i] - no_momentum[i])) > 1e-3, variable.path
        assert np.max(np.abs(got[i] - decayed_everywhere[i])) > 1e-3, variable.path


@pytest.mark.skipif(BACKEND != "tensorflow", reason="the fused update is TensorFlow's")
@pytest.mark.parametrize("momentum", [0.9, 0.0])
def test_tensorflow_updates_each_variable_in_one_xla_kernel(momentum):
    # TensorFlow runs each element-wise op of an update as its own pass over the variable;
    # CaffeSGD's update is compiled by XLA into one call per variable instead.
    import tensorflow as tf

    model = _net()
    optimizer = CaffeSGD(0.1, momentum=momentum, model=model)
    grads = [tf.constant(g) for g in _random_grads(model, steps=1)[0]]
    optimizer.build(model.trainable_variables)

    @tf.function
    def step():
        optimizer.apply_gradients(zip(grads, model.trainable_variables, strict=True))

    graph = step.get_concrete_function().graph
    compiled = [op for op in graph.get_operations() if op.node_def.attr["_XlaMustCompile"].b]
    assert len(compiled) == len(model.trainable_variables), [op.type for op in compiled]


@pytest.mark.skipif(BACKEND != "tensorflow", reason="tf.function's variable captures")
def test_tensorflow_steps_of_a_new_model_after_the_old_one_is_gone():
    # Variables built lazily inside a tf.function, as a custom loop does, then a second model of
    # the same shapes once the first is deleted: the fused update kernel, shared by every
    # optimizer, must update this model's variables (it failed on the deleted ones).
    import gc

    import tensorflow as tf

    def train_in_a_tf_function(seed):
        model = _net(seed)
        before = _values(model)
        grads = _random_grads(model, steps=2, seed=seed)
        optimizer = CaffeSGD(0.1, momentum=0.9, weight_decay=0.05, model=model)

        @tf.function
        def step(grads):
            optimizer.apply_gradients(zip(grads, model.trainable_variables, strict=True))

        for step_grads in grads:
            step([tf.constant(g) for g in step_grads])
        expected = _reference(before, grads, [0.1, 0.1], 0.9, 0.05, _is_kernel(model))
        _assert_close(_values(model), expected, atol=1e-5)

    for seed in (0, 1):
        train_in_a_tf_function(seed)
        gc.collect()


def test_momentum_zero_and_no_decay():
    model = _net()
    before = _values(model)
    grads = _random_grads(model, steps=2)
    optimizer = CaffeSGD(0.1, momentum=0.0, weight_decay=0.05, model=model)
    _apply(optimizer, model, grads)
    assert optimizer.momentums == []
    expected = _reference(before, grads, [0.1, 0.1], 0.0, 0.05, _is_kernel(model))
    _assert_close(_values(model), expected)

    model = _net()
    optimizer = CaffeSGD(0.1, weight_decay=None)
    _apply(optimizer, model, grads)
    expected = _reference(before, grads, [0.1, 0.1], 0.9, 0.0, [True] * 5)
    _assert_close(_values(model), expected)


def test_exclude_from_weight_decay_as_in_keras():
    model = _net()
    first_kernel = model.trainable_variables[0]
    caffe = CaffeSGD(0.1, momentum=0.0, weight_decay=0.1)
    keras_sgd = keras.optimizers.SGD(0.1, weight_decay=0.1)
    for optimizer in (caffe, keras_sgd):
        optimizer.exclude_from_weight_decay(var_list=[first_kernel], var_names=["bias"])
    decayed = [caffe._use_weight_decay(v) for v in model.trainable_variables]
    assert decayed == [keras_sgd._use_weight_decay(v) for v in model.trainable_variables]
    assert decayed == [False, False, True, True, False]

    # With zero gradients only the decay moves a variable: w * (1 - lr * wd) where decayed.
    before = _values(model)
    _apply(caffe, model, [[np.zeros(v.shape, "float32") for v in model.trainable_variables]])
    for w, w0, d in zip(_values(model), before, decayed, strict=True):
        np.testing.assert_allclose(w, w0 * (0.99 if d else 1.0), rtol=1e-6)
    assert caffe.get_config()["weight_decay_exclusions"] == ["bias"]


def test_model_gives_the_default_exclusions():
    # Per-channel and shared slopes, biases, kernels: the kinds of variables of the paper's
    # models (a conv kernel is named "kernel" too; Dense keeps the test fast on JAX).
    model = keras.Sequential(
        [
            keras.Input((6,)),
            keras.layers.Dense(5, name="conv1"),
            PReLU(name="prelu1"),
            keras.layers.Dense(3, name="fc1"),
            PReLU(channel_shared=True, name="prelu_fc1"),
            keras.layers.Dense(2, name="predictions"),
        ]
    )
    names = rectifier_zoo.weight_decay_exclusions(model)
    assert names == ["bias", "negative_slope"]
    optimizer = CaffeSGD(model=model)
    optimizer.build(model.trainable_variables)
    assert optimizer.get_config()["weight_decay_exclusions"] == names
    decayed = [v.path for v in model.trainable_variables if optimizer._use_weight_decay(v)]
    assert decayed == [f"{model.name}/{n}/kernel" for n in ("conv1", "fc1", "predictions")]
    # Without `model=`, nothing is left out, as with Keras's optimizers; extra names add up.
    plain = CaffeSGD()
    assert all(plain._use_weight_decay(v) for v in model.trainable_variables)
    everything = CaffeSGD(model=model, weight_decay_exclusions=["kernel"])
    assert not any(everything._use_weight_decay(v) for v in model.trainable_variables)
    # Exclusions are fixed once the optimizer is built.
    with pytest.raises(ValueError, match="before the optimizer is built"):
        optimizer.exclude_from_weight_decay(var_names=["kernel"])


def test_names_match_the_short_name_on_every_backend():
    # A layer whose name contains an excluded pattern: its kernel is still decayed. (The
    # TensorFlow backend hands `update_step` a tf.Variable named by its whole path.)
    model = keras.Sequential([keras.Input((5,)), keras.layers.Dense(3, name="bias_fc")])
    kernel, bias = (keras.ops.convert_to_numpy(v) for v in model.trainable_variables)
    bias = bias + 1.0
    model.trainable_variables[1].assign(bias)
    optimizer = CaffeSGD(0.1, momentum=0.0, weight_decay=0.1, model=model)
    _apply(optimizer, model, [[np.zeros(v.shape, "float32") for v in model.trainable_variables]])
    got_kernel, got_bias = _values(model)
    np.testing.assert_allclose(got_kernel, kernel * 0.99, rtol=1e-6)
    np.testing.assert_allclose(got_bias, bias, rtol=1e-6)


def test_loss_scale_optimizer_unscales_before_the_decay():
    grads = _random_grads(_net(), steps=2)
    plain, scaled = _net(), _net()
    _apply(CaffeSGD(0.1, weight_decay=0.05, model=plain), plain, grads)
    wrapped = keras.optimizers.LossScaleOptimizer(
        CaffeSGD(0.1, weight_decay=0.05, model=scaled), initial_scale=1024.0
    )
    _apply(wrapped, scaled, grads, scale=1024.0)
    _assert_close(_values(scaled), _values(plain))


@pytest.fixture
def mixed_float16():
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_float16")
    yield
    keras.config.set_dtype_policy(previous)


def _tiny_data(seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(96, 6)).astype("float32")
    y = (x[:, 0] > 0).astype("int32") + (x[:, 1] > 0).astype("int32")
    return x, y


def _fit(model, optimizer, epochs=3):
    model.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy")
    x, y = _tiny_data()
    history = model.fit(x, y, batch_size=16, epochs=epochs, shuffle=False, verbose=0)
    return history.history["loss"]


def _classifier():
    return keras.Sequential(
        [
            keras.Input((6,)),
            # Seeded initializers, not keras.utils.set_random_seed (which imports TensorFlow).
            keras.layers.Dense(16, kernel_initializer=keras.initializers.GlorotUniform(seed=1)),
            PReLU(),
            keras.layers.Dense(3, kernel_initializer=keras.initializers.GlorotUniform(seed=2)),
            keras.layers.Activation("softmax", dtype="float32"),
        ]
    )


def test_fit_decreases_the_loss():
    model = _classifier()
    losses = _fit(model, CaffeSGD(0.05, model=model))
    assert all(math.isfinite(loss) for loss in losses), losses
    assert losses[-1] < 0.8 * losses[0], losses


def test_fit_under_mixed_precision(mixed_float16):
    model = _classifier()
    losses = _fit(model, CaffeSGD(0.05, model=model))
    # compile wraps the optimizer for float16 loss scaling; variables stay float32.
    assert isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)
    assert isinstance(model.optimizer.inner_optimizer, CaffeSGD)
    assert all(v.dtype == "float32" for v in model.trainable_variables)
    assert all(math.isfinite(loss) for loss in losses), losses
    assert losses[-1] < 0.8 * losses[0], losses


def test_config_round_trip():
    schedule = keras.optimizers.schedules.PiecewiseConstantDecay([100], [0.01, 0.001])
    for optimizer in (
        CaffeSGD(0.02, momentum=0.5, weight_decay=1e-4, nesterov=True, model=_net()),
        CaffeSGD(schedule, weight_decay_exclusions=["bias"], clipnorm=1.0),
    ):
        clone = assert_config_round_trip(optimizer)
        assert clone._excluded_names == optimizer._excluded_names
        restored = keras.optimizers.deserialize(keras.optimizers.serialize(optimizer))
        assert isinstance(restored, CaffeSGD)
        assert restored.get_config() == optimizer.get_config()


def test_keras_save_and_load_with_the_optimizer(tmp_path):
    model = _net()
    model.compile(
        optimizer=CaffeSGD(0.1, weight_decay=0.05, model=model), loss="mean_squared_error"
    )
    rng = np.random.default_rng(0)
    x = rng.normal(size=(8, 6)).astype("float32")
    y = rng.normal(size=(8, 3)).astype("float32")
    model.train_on_batch(x, y)
    path = str(tmp_path / "caffe_sgd.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)

    assert isinstance(loaded.optimizer, CaffeSGD)
    assert loaded.optimizer.get_config() == model.optimizer.get_config()
    for v in loaded.trainable_variables:
        assert loaded.optimizer._use_weight_decay(v) == (v.name == "kernel"), v.path
    # The velocities were saved: one more step gives the same weights.
    model.train_on_batch(x, y)
    loaded.train_on_batch(x, y)
    _assert_close(_values(loaded), _values(model))


def _zero_grad_shrink(optimizer, steps):
    """-log(w / w0) of a kernel after `steps` steps of zero gradient."""
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(4, use_bias=False)])
    kernel = model.trainable_variables[0]
    kernel.assign(np.full(kernel.shape, 2.0, "float32"))
    _apply(optimizer, model, [[np.zeros(kernel.shape, "float32")]] * steps)
    return float(-np.log(np.mean(keras.ops.convert_to_numpy(kernel)) / 2.0))


def test_differs_from_keras_sgd_weight_decay():
    # At momentum 0 both take w * (1 - lr * wd) per step: the same coefficient.
    caffe = _zero_grad_shrink(CaffeSGD(0.1, momentum=0.0, weight_decay=0.01), steps=5)
    decoupled = _zero_grad_shrink(
        keras.optimizers.SGD(0.1, momentum=0.0, weight_decay=0.01), steps=5
    )
    assert caffe == pytest.approx(decoupled, rel=1e-4)
    assert caffe == pytest.approx(-5 * math.log(1 - 0.1 * 0.01), rel=1e-4)

    # At momentum 0.9 Keras's decoupled decay stays outside the velocity; the paper's goes
    # through it and, once the velocity has built up, decays about 1 / (1 - 0.9) = 10x faster.
    caffe = _zero_grad_shrink(CaffeSGD(0.1, momentum=0.9, weight_decay=0.01), steps=60)
    decoupled = _zero_grad_shrink(
        keras.optimizers.SGD(0.1, momentum=0.9, weight_decay=0.01), steps=60
    )
    assert decoupled == pytest.approx(-60 * math.log(1 - 0.1 * 0.01), rel=1e-4)
    assert 7.0 < caffe / decoupled < 10.0, (caffe, decoupled)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (
            {"learning_rate": -0.1},
            "`learning_rate` must be a finite number in [0.0, inf). Received: learning_rate=-0.1",
        ),
        ({"learning_rate": math.inf}, "Received: learning_rate=inf"),
        ({"learning_rate": math.nan}, "Received: learning_rate=nan"),
        ({"learning_rate": "0.1"}, "Received: learning_rate='0.1'"),
        (
            {"momentum": 1.0},
            "`momentum` must be a finite number in [0.0, 1.0). Received: momentum=1.0",
        ),
        ({"momentum": -0.5}, "Received: momentum=-0.5"),
        ({"momentum": math.nan}, "Received: momentum=nan"),
        (
            {"weight_decay": -5e-4},
            "`weight_decay` must be a finite number in [0.0, inf). Received: weight_decay=-0.0005",
        ),
        ({"weight_decay": math.inf}, "Received: weight_decay=inf"),
        ({"nesterov": "yes"}, "`nesterov` must be True or False. Received: nesterov='yes'"),
        (
            {"weight_decay_exclusions": "bias"},
            "`weight_decay_exclusions` must be a list of "
            "non-empty strings. Received: weight_decay_exclusions='bias'",
        ),
    ],
)
def test_bad_arguments(kwargs, message):
    with pytest.raises(ValueError) as error:
        CaffeSGD(**kwargs)
    assert message in str(error.value)


def test_unbuilt_model_is_refused():
    unbuilt = keras.Sequential([keras.layers.Dense(3), PReLU()])
    with pytest.raises(ValueError, match="`model` must be a built keras.Model"):
        CaffeSGD(model=unbuilt)
    with pytest.raises(ValueError, match="Received: var_names='bias'"):
        CaffeSGD().exclude_from_weight_decay(var_names="bias")
