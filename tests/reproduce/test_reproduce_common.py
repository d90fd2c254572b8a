"""The studies' training run and evaluation, built from the trainer's steps, on a tiny model."""

import math

import keras
import numpy as np
import pytest

from reproduce import common

pytestmark = pytest.mark.tf_only


def _data(classes: int = 3, size: int = 6, images: int = 24) -> common.InMemoryData:
    rng = np.random.default_rng(0)
    labels = rng.integers(0, classes, images).astype(np.int32)
    x = rng.normal(size=(images, size, size, 3)).astype(np.float32) + labels[:, None, None, None]
    # Training images a little larger than the crops, validation ones at the crop size.
    return common.InMemoryData(x, labels, x[:12, :4, :4], labels[:12], classes, "memory")


def _model(size: int = 4, classes: int = 3) -> keras.Model:
    keras.utils.set_random_seed(0)
    return keras.Sequential(
        [
            keras.Input((size, size, 3)),
            keras.layers.Flatten(),
            keras.layers.Dense(classes),
            keras.layers.Activation("softmax"),
        ]
    )


def test_train_classifier_logs_every_step_and_learns():
    data = _data()
    run = common.train_classifier(
        _model(), data, steps=30, learning_rate=0.05, batch_size=8, weight_decay=5e-4,
        image_size=4, seed=0,
    )  # fmt: skip
    assert set(run) == {"loss", "top1_error", "top5_error", "diverged", "seconds"}
    assert len(run["loss"]) == 30 and not run["diverged"]
    assert all(math.isfinite(loss) for loss in run["loss"])
    assert np.mean(run["loss"][-5:]) < np.mean(run["loss"][:5])
    # Top-min(5, classes) = top-3 of 3 classes: every label is in.
    assert 0 <= run["top1_error"] < 2 / 3 and run["top5_error"] == 0


def test_diverged_run_stops_with_nan_errors():
    data = _data()
    data.train_images[:] = np.nan
    run = common.train_classifier(
        _model(), data, steps=5, learning_rate=0.05, batch_size=8, weight_decay=0.0,
        image_size=4, seed=0,
    )  # fmt: skip
    assert run["diverged"] and len(run["loss"]) == 1
    assert math.isnan(run["top1_error"]) and math.isnan(run["top5_error"])


def test_evaluate_classifier_counts_ties_in():
    # A model that scores every class alike: each label ties with all, so every row is a hit
    # (the rule of rectifier_zoo.metrics.top_k_correct), over a last partial batch too.
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(4, kernel_initializer="zeros")])
    model.add(keras.layers.Activation("softmax"))
    images = np.ones((7, 2), np.float32)
    labels = np.array([0, 1, 2, 3, 0, 1, 2], np.int32)
    assert common.evaluate_classifier(model, images, labels, batch_size=3) == (0.0, 0.0)


def test_evaluate_classifier_top1_and_top5():
    model = keras.Sequential([keras.Input((6,)), keras.layers.Activation("softmax")])
    images = np.tile(np.arange(6, dtype=np.float32), (4, 1))  # class 5 scores highest
    labels = np.array([5, 4, 0, 1], np.int32)
    top1, top5 = common.evaluate_classifier(model, images, labels, batch_size=3)
    assert top1 == pytest.approx(3 / 4) and top5 == pytest.approx(1 / 4)


def test_prelu_slopes_reads_each_prelu_layer():
    from rectifier_zoo.layers import PReLU

    model = keras.Sequential(
        [keras.Input((3,)), keras.layers.Dense(3), PReLU(name="prelu1"), keras.layers.Dense(2)]
    )
    model.get_layer("prelu1").set_weights([np.array([0.1, 0.2, 0.3], np.float32)])
    assert common.prelu_slopes(model) == {"prelu1": pytest.approx(0.2)}
