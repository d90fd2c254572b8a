"""The decay-against-gradient ratios at initialization (`reproduce.decay`)."""

import keras
import numpy as np
import pytest

from reproduce import decay

pytestmark = pytest.mark.tf_only


def test_ratio_is_the_gradient_norm_over_the_decay_term():
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [keras.Input((4,)), keras.layers.Dense(3, activation="softmax", name="fc")]
    )
    images = np.random.default_rng(0).normal(size=(5, 4)).astype(np.float32)
    labels = np.array([0, 1, 2, 0, 1])
    ratios = decay.decay_ratios(model, images, labels, weight_decay=1e-3)
    # d(mean cross-entropy)/dW of a softmax layer: x^T (p - onehot) / batch.
    kernel = keras.ops.convert_to_numpy(model.layers[0].kernel)
    bias = keras.ops.convert_to_numpy(model.layers[0].bias)
    logits = images @ kernel + bias
    p = np.exp(logits - logits.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    gradient = images.T @ (p - np.eye(3)[labels]) / len(labels)
    expected = np.linalg.norm(gradient) / (1e-3 * np.linalg.norm(kernel))
    assert list(ratios) == ["fc"]
    np.testing.assert_allclose(ratios["fc"], expected, rtol=1e-4)


def test_xavier_gradients_are_far_weaker_against_the_decay_than_msra(tmp_path):
    results = decay.measure(22, (40,), 0.0625, (0,), 4, 20, data_dir=str(tmp_path))
    by_init = results[40]
    assert set(by_init) == {"msra_fan_in", "msra_fan_out", "xavier"}
    layers = by_init["xavier"]["layers"]
    assert layers[0] == "conv1" and layers[-1] == "fc3" and len(layers) == 22
    # Model B's 19 convs shrink Xavier's signal by ~1/sqrt(2) each: orders of magnitude.
    assert np.median(by_init["msra_fan_in"]["ratio"]) > 100 * np.median(by_init["xavier"]["ratio"])


@pytest.mark.parametrize(
    "args, message",
    [
        (["--sizes", "96,big"], "--sizes and --seeds take integers"),
        (["--batch", "64", "--train_images", "32"], "must not exceed --train_images"),
    ],
)
def test_wrong_flags_are_refused(capsys, args, message):
    with pytest.raises(SystemExit) as error:
        decay.main(args)
    assert error.value.code == 2
    assert message in capsys.readouterr().err
