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
    assert set(run) == {
        "loss", "top1_error", "top5_error", "test_views", "epochs", "epoch_top1_error",
        "trace_steps", "trace", "diverged", "seconds",
    }  # fmt: skip
    assert run["epochs"] == run["epoch_top1_error"] == []
    assert run["trace_steps"] == run["trace"] == []
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


def test_train_classifier_records_the_error_of_every_epoch():
    # 24 images, batch 8: an epoch is 3 steps; 7 steps end 2 epochs and a third of one.
    data = _data()
    model = _model()
    run = common.train_classifier(
        model, data, steps=7, learning_rate=0.05, batch_size=8, weight_decay=0.0,
        image_size=4, seed=0, epoch_eval=True,
    )  # fmt: skip
    assert run["epochs"] == pytest.approx([0, 1, 2, 7 / 3])
    assert len(run["epoch_top1_error"]) == 4
    assert all(0 <= e <= 1 for e in run["epoch_top1_error"])
    # The last entry is the trained model's centre-crop error, the run's final figure.
    assert run["epoch_top1_error"][-1] == pytest.approx(run["top1_error"])
    top1, _ = common.evaluate_classifier(model, data.val_images, data.val_labels)
    assert run["top1_error"] == pytest.approx(top1)


def test_train_classifier_traces_the_model_every_k_steps():
    # A reading before the first step, every 3 steps and after the last (7 is no multiple).
    model = _model()
    kernel = model.layers[-2].kernel
    run = common.train_classifier(
        model, _data(), steps=7, learning_rate=0.05, batch_size=8, weight_decay=0.0,
        image_size=4, seed=0, trace=lambda m: {"norm": float(np.linalg.norm(kernel))},
        trace_every=3,
    )  # fmt: skip
    assert run["trace_steps"] == [0, 3, 6, 7]
    norms = [reading["norm"] for reading in run["trace"]]
    # Each reading is taken then, not at the end: the kernel moves between them.
    assert len(set(norms)) == 4
    assert norms[-1] == pytest.approx(float(np.linalg.norm(kernel)))
    with pytest.raises(ValueError, match="trace_every"):
        common.train_classifier(
            _model(), _data(), steps=1, learning_rate=0.05, batch_size=8, weight_decay=0.0,
            image_size=4, seed=0, trace=common.prelu_slopes,
        )  # fmt: skip


def test_train_classifier_decays_kernels_only_and_moves_slopes_like_weights(monkeypatch):
    # Sec. 2.1: the slopes get the weights' learning rate and momentum and no weight decay.
    from rectifier_zoo.layers import PReLU

    made = []

    class Recorded(common.CaffeSGD):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            made.append(self)

    monkeypatch.setattr(common, "CaffeSGD", Recorded)
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((4, 4, 3)),
            keras.layers.Conv2D(4, 2, name="conv1"),
            PReLU(name="prelu1"),
            keras.layers.Flatten(),
            keras.layers.Dense(3, activation="softmax", name="fc"),
        ]
    )
    common.train_classifier(
        model, _data(), steps=3, learning_rate=0.05, batch_size=8, weight_decay=5e-4,
        image_size=4, seed=0,
    )  # fmt: skip
    (optimizer,) = made
    decayed = {v.path: optimizer._use_weight_decay(v) for v in model.trainable_variables}
    assert [path for path, d in decayed.items() if d] == [
        f"{model.name}/conv1/kernel",
        f"{model.name}/fc/kernel",
    ], decayed
    assert optimizer.momentum == 0.9 and float(optimizer.learning_rate) == pytest.approx(0.05)
    # One rate and one momentum for every variable: the slope moved.
    assert float(np.mean(model.get_layer("prelu1").get_weights()[0])) != pytest.approx(0.25)


def test_train_classifier_rejects_unknown_views():
    with pytest.raises(ValueError, match="test_views"):
        common.train_classifier(
            _model(), _data(), steps=1, learning_rate=0.05, batch_size=8, weight_decay=0.0,
            image_size=4, seed=0, test_views="dense",
        )  # fmt: skip


def test_center_crop_takes_the_middle():
    images = np.arange(2 * 6 * 5 * 1).reshape(2, 6, 5, 1)
    np.testing.assert_array_equal(common.center_crop(images, 3), images[:, 1:4, 1:4])
    assert common.stored_size(64) == 72 and common.stored_size(224) == 252


def _softmax(logits):
    e = np.exp(logits - logits.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def test_ten_view_averages_softmax_over_corners_centre_and_flips():
    # A linear model on 3x3 crops of 5x5 images, checked against the views cut by hand.
    keras.utils.set_random_seed(3)
    classes, crop = 4, 3
    model = keras.Sequential(
        [
            keras.Input((crop, crop, 2)),
            keras.layers.Flatten(),
            keras.layers.Dense(classes, activation="softmax"),
        ]
    )
    kernel, bias = (w.numpy() for w in model.layers[-1].weights)
    rng = np.random.default_rng(0)
    images = rng.normal(size=(3, 5, 5, 2)).astype(np.float32)
    expected = []
    for image in images:
        views = [image[y : y + crop, x : x + crop] for y, x in ((0, 0), (0, 2), (2, 0), (2, 2))]
        views.append(image[1:4, 1:4])  # the centre
        views += [view[:, ::-1] for view in views]  # horizontal flips
        assert len(views) == 10
        logits = np.stack([v.reshape(-1) for v in views]) @ kernel + bias
        expected.append(_softmax(logits.astype(np.float64)).mean(axis=0))
    expected = np.stack(expected)
    probabilities = common.ten_view_probabilities(model, images, crop, batch_size=2)
    np.testing.assert_allclose(probabilities, expected, rtol=1e-5, atol=1e-6)
    # The errors rank the averaged scores: the best class is a top-1 hit, the worst a miss.
    best, worst = expected.argmax(1), expected.argmin(1)
    assert common.evaluate_ten_view(model, images, best, crop) == (0.0, 0.0)
    top1, topk = common.evaluate_ten_view(model, images, worst, crop)
    assert top1 == 1.0 and topk == 0.0  # top-min(5, 4) = top-4 of 4 classes: all in


def test_ten_view_is_the_final_error_of_a_ten_view_run():
    data = _data(size=6)
    data.val_images = data.train_images[:12]  # stored at 6, crops of 4
    model = _model()
    run = common.train_classifier(
        model, data, steps=3, learning_rate=0.05, batch_size=8, weight_decay=0.0,
        image_size=4, seed=0, test_views="ten_view",
    )  # fmt: skip
    assert run["test_views"] == "ten_view"
    assert (run["top1_error"], run["top5_error"]) == common.evaluate_ten_view(
        model, data.val_images, data.val_labels, 4
    )


def test_load_synthetic_standardizes_both_splits_by_the_training_split(tmp_path):
    data = common.load_synthetic(16, 0.5, 12, 6, str(tmp_path))
    assert data.train_images.shape == (12, 18, 18, 3) and data.val_images.shape == (6, 18, 18, 3)
    assert data.train_images.dtype == data.val_images.dtype == np.float32
    np.testing.assert_allclose(data.train_images.mean(axis=(0, 1, 2)), 0, atol=1e-5)
    np.testing.assert_allclose(data.train_images.std(axis=(0, 1, 2)), 1, rtol=1e-5)
    # The validation split by the training split's mean and std, as read from the same files.
    raw = common.data_lib.get_source(
        "synthetic", str(tmp_path), difficulty=0.5, train_images=12, val_images=6
    )
    x_train, _ = common._read_split(raw, "train", 18)
    x_val, _ = common._read_split(raw, "validation", 18)
    mean, std = x_train.mean(axis=(0, 1, 2)), x_train.std(axis=(0, 1, 2))
    np.testing.assert_array_equal(data.val_images, (x_val - mean) / std)
