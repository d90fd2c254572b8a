"""The bookkeeping many tests repeat: config round trips, .keras save/load, a training step."""

import keras
import numpy as np


def assert_config_round_trip(obj):
    """`from_config(get_config())` gives an object with the same config."""
    config = obj.get_config()
    clone = type(obj).from_config(config)
    assert clone.get_config() == config
    return clone


def assert_saved_model_round_trip(model: keras.Model, inputs, path) -> keras.Model:
    """Saving to `.keras` and loading back gives identical outputs."""
    path = str(path)
    model.save(path)
    loaded = keras.saving.load_model(path)
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(loaded(inputs)),
        keras.ops.convert_to_numpy(model(inputs)),
        rtol=1e-6,
        atol=1e-6,
    )
    return loaded


def train_one_step(model: keras.Model, inputs, labels, learning_rate=0.01) -> float:
    """One SGD step through `model.train_on_batch`; returns the loss."""
    model.compile(
        optimizer=keras.optimizers.SGD(learning_rate, momentum=0.9),
        loss="sparse_categorical_crossentropy",
    )
    loss = model.train_on_batch(inputs, labels)
    return float(np.asarray(loss).reshape(-1)[0])
