"""The reproduction studies: the statistics code on networks of known variance, and smoke runs."""

import importlib.util
import json
import math
import os

import keras
import numpy as np
import pytest

from rectifier_zoo import initializers
from rectifier_zoo.architectures import ARCHITECTURES
from reproduce import studies

pytestmark = pytest.mark.tf_only

needs_matplotlib = pytest.mark.skipif(
    importlib.util.find_spec("matplotlib") is None,
    reason="the figures need matplotlib (the `reproduce` extra)",
)


def _dense_stack(initializer: str, depth: int, width: int, activation: str = "relu"):
    keras.utils.set_random_seed(0)
    init = initializers.get(initializer)
    layers = [keras.Input((width,))]
    for _ in range(depth):
        layers.append(keras.layers.Dense(width, kernel_initializer=init))
        if activation == "relu":
            layers.append(keras.layers.ReLU())
    return keras.Sequential(layers)


def _inputs(width: int, batch: int = 512):
    rng = np.random.default_rng(0)
    return rng.normal(size=(batch, width)).astype("float32"), rng.integers(0, width, batch)


@pytest.mark.parametrize("initializer", ["msra_fan_in", "msra_fan_out"])
def test_msra_keeps_variance_through_relu_stack(initializer):
    # Eqns. 10 / 14 on square layers (fan-in = fan-out): Var[y_l] = Var[y_{l-1}] and
    # Var[dx_l] = Var[dx_{l+1}], so the std is constant along the stack.
    images, labels = _inputs(1024)
    stats = studies.layer_statistics(_dense_stack(initializer, 10, 1024), images, labels)
    assert len(stats["layers"]) == 10
    forward = np.array(stats["forward_std"])
    backward = np.array(stats["backward_std"])
    # The first layer sees an unrectified unit Gaussian: Var[y_1] = n Var[w] = 2.
    assert forward[0] == pytest.approx(math.sqrt(2.0), rel=0.1)
    assert forward[-1] / forward[1] == pytest.approx(1.0, rel=0.35)
    assert backward[1] / backward[-1] == pytest.approx(1.0, rel=0.35)


def test_xavier_halves_variance_per_relu_layer():
    # std sqrt(1/n): each ReLU halves E[x^2], so the std shrinks by sqrt(2) per layer.
    images, labels = _inputs(1024)
    stats = studies.layer_statistics(_dense_stack("xavier", 10, 1024), images, labels)
    forward = np.array(stats["forward_std"])
    backward = np.array(stats["backward_std"])
    assert forward[-1] / forward[0] == pytest.approx(2.0 ** (-9 / 2), rel=0.35)
    assert backward[0] / backward[-1] == pytest.approx(2.0 ** (-9 / 2), rel=0.35)
    ratios = forward[1:] / forward[:-1]
    np.testing.assert_allclose(ratios, 2**-0.5, rtol=0.15)


def test_xavier_keeps_variance_of_linear_stack():
    # Without a rectifier, std sqrt(1/n) preserves the variance exactly in expectation.
    images, labels = _inputs(1024)
    stats = studies.layer_statistics(
        _dense_stack("xavier", 8, 1024, activation="linear"), images, labels
    )
    np.testing.assert_allclose(stats["forward_std"], 1.0, rtol=0.25)


def test_layer_statistics_matches_numpy_for_one_layer():
    images, labels = _inputs(16, batch=64)
    model = keras.Sequential([keras.Input((16,)), keras.layers.Dense(4, use_bias=False)])
    stats = studies.layer_statistics(model, images, labels % 4)
    kernel = model.layers[0].kernel.numpy()
    logits = images @ kernel
    probabilities = np.exp(logits - logits.max(1, keepdims=True))
    probabilities /= probabilities.sum(1, keepdims=True)
    probabilities[np.arange(64), labels % 4] -= 1
    gradient = probabilities @ kernel.T / 64
    assert stats["forward_std"][0] == pytest.approx(logits.std(), rel=1e-4)
    assert stats["backward_std"][0] == pytest.approx(gradient.std(), rel=1e-4)


def test_scaled_architecture_keeps_depth():
    small = ARCHITECTURES["model_small"]
    scaled = studies.scaled_architecture(small, 0.25)
    assert scaled.depth == small.depth == 14
    assert [s.filters for s in scaled.stages] == [16, 32, 64]
    assert scaled.fc_units == (1024, 1024)
    assert studies.scaled_architecture(small, 1) is small


def test_unknown_study_names_choices(tmp_path):
    with pytest.raises(ValueError, match=r"`study` must be one of .*Received: study='bogus'"):
        studies.run_study("bogus", str(tmp_path))


@pytest.fixture(scope="module")
def smoke_results(tmp_path_factory):
    root = tmp_path_factory.mktemp("reproduce")
    data_dir = str(root / "data")
    summaries = studies.run_study(
        "all", str(root / "out"), quick=True, settings=studies.SMOKE_SETTINGS, data_dir=data_dir
    )
    return root / "out", summaries


@needs_matplotlib
def test_smoke_init_study(smoke_results):
    out, _ = smoke_results
    folder = out / "init"
    for name in ("init_statistics.png", "init_training_loss.png", "report.md", "summary.json"):
        assert (folder / name).stat().st_size > 0, name
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["ln_classes"] == pytest.approx(math.log(10))
    assert set(summary["final_loss"]) == {"msra_fan_in", "msra_fan_out", "xavier"}
    stats = summary["statistics"]["16"]["xavier"]
    assert len(stats["forward_std"]) == len(stats["backward_std"]) == 16
    report = (folder / "report.md").read_text()
    assert "## What reproduced" in report and "init_statistics.png" in report


@needs_matplotlib
def test_smoke_prelu_and_slopes_studies(smoke_results):
    out, _ = smoke_results
    prelu = json.loads((out / "prelu" / "summary.json").read_text())
    assert set(prelu["results"]) == set(studies.PRELU_VARIANTS)
    for result in prelu["results"].values():
        assert {"top1_error_mean", "top1_error_std", "top5_error_mean", "top5_error_std"} <= set(
            result
        )
    assert (out / "prelu" / "prelu_errors.png").stat().st_size > 0
    assert "| ReLU |" in (out / "prelu" / "report.md").read_text()
    slopes = json.loads((out / "slopes" / "summary.json").read_text())
    shared = slopes["slopes"]["prelu_shared"]
    # conv1 + 4 conv2 + 6 conv3 + fc1 + fc2, in depth order.
    assert len(shared["layers"]) == 13
    assert shared["groups"][0] == "conv1" and shared["groups"][-1] == "fc2"
    assert (out / "slopes" / "slopes.png").stat().st_size > 0
    assert "paper" in (out / "slopes" / "report.md").read_text()


@needs_matplotlib
def test_slopes_study_reuses_prelu_results(smoke_results, monkeypatch):
    out, _ = smoke_results
    if not os.path.exists(out / "prelu" / "summary.json"):
        pytest.skip("needs the smoke run's files")

    def fail(*args, **kwargs):
        raise AssertionError("the prelu study should not run again")

    monkeypatch.setattr(studies, "run_prelu_study", fail)
    monkeypatch.setattr(studies, "_plot_slopes", lambda *args: None)
    studies.run_slopes_study(str(out), studies.SMOKE_SETTINGS, quick=True)
