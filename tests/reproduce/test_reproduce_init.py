"""The init study: the statistics code on networks of known variance, and its smoke run."""

import json
import math

import keras
import numpy as np
import pytest

from rectifier_zoo import initializers
from reproduce import init
from reproduce.settings import SMOKE_SETTINGS

pytestmark = pytest.mark.tf_only


def _dense_stack(initializer: str, depth: int, width: int, activation: str = "relu"):
    keras.utils.set_random_seed(0)
    kernel_initializer = initializers.get(initializer)
    layers = [keras.Input((width,))]
    for _ in range(depth):
        layers.append(keras.layers.Dense(width, kernel_initializer=kernel_initializer))
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
    stats = init.layer_statistics(_dense_stack(initializer, 10, 1024), images, labels)
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
    stats = init.layer_statistics(_dense_stack("xavier", 10, 1024), images, labels)
    forward = np.array(stats["forward_std"])
    backward = np.array(stats["backward_std"])
    assert forward[-1] / forward[0] == pytest.approx(2.0 ** (-9 / 2), rel=0.35)
    assert backward[0] / backward[-1] == pytest.approx(2.0 ** (-9 / 2), rel=0.35)
    ratios = forward[1:] / forward[:-1]
    np.testing.assert_allclose(ratios, 2**-0.5, rtol=0.15)


def test_xavier_keeps_variance_of_linear_stack():
    # Without a rectifier, std sqrt(1/n) preserves the variance exactly in expectation.
    images, labels = _inputs(1024)
    stats = init.layer_statistics(
        _dense_stack("xavier", 8, 1024, activation="linear"), images, labels
    )
    np.testing.assert_allclose(stats["forward_std"], 1.0, rtol=0.25)


def test_layer_statistics_matches_numpy_for_one_layer():
    images, labels = _inputs(16, batch=64)
    model = keras.Sequential([keras.Input((16,)), keras.layers.Dense(4, use_bias=False)])
    stats = init.layer_statistics(model, images, labels % 4)
    kernel = model.layers[0].kernel.numpy()
    logits = images @ kernel
    probabilities = np.exp(logits - logits.max(1, keepdims=True))
    probabilities /= probabilities.sum(1, keepdims=True)
    probabilities[np.arange(64), labels % 4] -= 1
    gradient = probabilities @ kernel.T / 64
    assert stats["forward_std"][0] == pytest.approx(logits.std(), rel=1e-4)
    assert stats["backward_std"][0] == pytest.approx(gradient.std(), rel=1e-4)


def test_layer_statistics_same_on_probabilities_as_on_logits():
    # A softmax at the end changes neither statistic: the fc outputs are still the logits, and
    # the cross-entropy gradient is the same.
    images, labels = _inputs(16, batch=64)
    logits_model = _dense_stack("msra_fan_in", 3, 16)
    logits_model.add(keras.layers.Dense(4))
    softmax_model = keras.Sequential([*logits_model.layers, keras.layers.Activation("softmax")])
    on_logits = init.layer_statistics(logits_model, images, labels % 4)
    on_probabilities = init.layer_statistics(softmax_model, images, labels % 4)
    np.testing.assert_allclose(on_probabilities["forward_std"], on_logits["forward_std"])
    np.testing.assert_allclose(
        on_probabilities["backward_std"], on_logits["backward_std"], rtol=1e-5
    )


def test_fig2_run_is_model_b_and_fig3_run_the_30_layer_model():
    from rectifier_zoo.architectures import ARCHITECTURES, deep_architecture

    assert init.architecture(22) is ARCHITECTURES["model_b"]
    assert init.architecture(22).depth == 22
    assert init.architecture(30) == deep_architecture(30)
    assert init.architecture(30).depth == 30
    call = init.builder_call(22, "msra_fan_out", 0.25, 96, 2)
    assert call == {
        "depth": 22, "architecture": "model_b", "width": 0.25, "input_size": 96,
        "init": "msra_fan_out", "kernel_initializer": "msra_fan_out",
        "fc_initializer": "msra_fan_in", "activation": "relu", "seed": 2,
    }  # fmt: skip


def _run(depth, init, seed, loss, errors):
    return {
        "depth": depth, "init": init, "seed": seed, "final_loss": loss,
        "epochs": list(range(len(errors))), "epoch_top1_error": errors,
    }  # fmt: skip


def test_claims_are_judged_per_seed():
    ln10 = math.log(10)
    runs = []
    for seed in (0, 1):
        # Fig. 3: seed 0 as the paper (MSRA learns, Xavier stalls); seed 1 fan-out stalls too.
        runs += [
            _run(30, "msra_fan_in", seed, 1.5, [0.9, 0.6]),
            _run(30, "msra_fan_out", seed, 1.5 if seed == 0 else ln10, [0.9, 0.6]),
            _run(30, "xavier", seed, ln10 + 0.01, [0.9, 0.9]),
            # Fig. 2: all learn both seeds; Xavier slower in seed 0, as fast as fan-in in seed 1.
            _run(22, "msra_fan_in", seed, 1.0, [0.9, 0.5, 0.3]),
            _run(22, "msra_fan_out", seed, 1.1, [0.9, 0.4, 0.3]),
            _run(22, "xavier", seed, 1.2, [0.9, 0.8, 0.4] if seed == 0 else [0.9, 0.5, 0.3]),
        ]
    summary = {
        "ln_classes": ln10,
        "depths": {
            "30": {"architecture": "model_deep", "figure": "Fig. 3"},
            "22": {"architecture": "model_b", "figure": "Fig. 2"},
        },
        "runs": runs,
    }
    claims = init.claims(summary)
    assert claims["30"]["holds"] == [True, False] and claims["30"]["seeds_holding"] == 1
    assert claims["30"]["checks"]["msra_fan_out converges"] == [True, False]
    assert claims["30"]["checks"]["xavier stalls"] == [True, True]
    assert claims["22"]["checks"]["xavier converges"] == [True, True]
    assert claims["22"]["checks"]["msra_fan_in faster than xavier"] == [True, False]
    assert claims["22"]["holds"] == [True, False]


def test_plateau_departure_tells_never_left_from_left_and_fell_back():
    ln10 = math.log(10)
    window = init.PLATEAU_WINDOW
    # Never leaves ln(10): Fig. 3's Xavier.
    flat = [ln10] * 300
    assert init.plateau_departure(flat, ln10) == {
        "left_at": None, "back_at": None, "ends_on_plateau": True,
    }  # fmt: skip
    # Leaves at step 101 (1.0 from then on): the first full window below ln(10) - 0.05 ends
    # where the mean first drops below the threshold, 100 + ceil(0.05 / (ln10 - 1) * 50) steps.
    left = [ln10] * 100 + [1.0] * 200
    result = init.plateau_departure(left, ln10)
    assert result["back_at"] is None and result["ends_on_plateau"] is False
    means = np.convolve(left, np.ones(window) / window, "valid")
    assert result["left_at"] == int(np.flatnonzero(means < ln10 - init.STALL_MARGIN)[0]) + window
    assert 100 < result["left_at"] <= 100 + window
    # Leaves, then falls back for good at step 201: back once a whole window sits on ln(10)
    # again (within PLATEAU_MARGIN), i.e. at step 200 + 50.
    fell = [ln10] * 100 + [1.0] * 100 + [ln10] * 150
    result = init.plateau_departure(fell, ln10)
    assert result["left_at"] == init.plateau_departure(left, ln10)["left_at"]
    assert result["back_at"] == 200 + window and result["ends_on_plateau"] is True
    # A run shorter than the window is judged on one window of all its steps.
    assert init.plateau_departure([1.0] * 10, ln10)["left_at"] == 10


def test_plateau_departures_of_a_summary_are_per_depth_init_and_seed():
    ln10 = math.log(10)
    runs = [
        {"depth": 22, "init": "xavier", "seed": 0, "loss": [ln10] * 60},
        {"depth": 22, "init": "xavier", "seed": 1, "loss": [ln10] * 60 + [0.5] * 60},
    ]
    table = init.plateau_departures({"ln_classes": ln10, "runs": runs})
    left = [d["left_at"] for d in table["22"]["xavier"]]
    assert left[0] is None and 60 < left[1] <= 60 + init.PLATEAU_WINDOW


def test_smoke_init_study(smoke_results):
    out, summaries = smoke_results
    folder = out / "init"
    for name in ("init_statistics.png", "init_training.png", "report.md", "summary.json"):
        assert (folder / name).stat().st_size > 0, name
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["quick"] is True
    # The CPU, so that runs on two machines can be told apart and compared.
    assert {"cpu", "cpu_family", "cpu_model", "avx512", "amx"} <= set(summary["machine"])
    assert summary["ln_classes"] == pytest.approx(math.log(10))
    # The smoke depth is 22: Fig. 2's Model B, built at the settings' width and input size.
    assert summary["depths"] == {"22": {"architecture": "model_b", "figure": "Fig. 2"}}
    assert set(summary["final_loss"]["22"]) == {"msra_fan_in", "msra_fan_out", "xavier"}
    runs = summary["runs"]
    assert len(runs) == 3 * len(SMOKE_SETTINGS.seeds)
    for r in runs:
        assert r["architecture"] == "model_b" and r["width"] == SMOKE_SETTINGS.init_width
        assert r["input_size"] == SMOKE_SETTINGS.init_image_size and r["activation"] == "relu"
        assert r["seed"] in SMOKE_SETTINGS.seeds
        assert {"kernel_initializer", "fc_initializer"} <= set(r)
        # 20 images at batch 4: epoch 0, the end of epoch 1, then the last step (6 / 5).
        assert r["epochs"] == pytest.approx([0, 1, 1.2])
        assert len(r["epoch_top1_error"]) == 3
        assert len(r["loss"]) == SMOKE_SETTINGS.init_steps_at(22)
    # Model B's 22 weight layers: 19 conv + 3 fc.
    stats = summary["statistics"]["22"]["xavier"]
    assert len(stats["forward_std"]) == len(stats["backward_std"]) == 22
    assert summary["statistics_builds"]["22"]["xavier"]["architecture"] == "model_b"
    assert summary["claims"]["22"]["figure"] == "Fig. 2"
    report = (folder / "report.md").read_text()
    assert "## What reproduced" in report and "init_statistics.png" in report
    assert "holds for" in report and "`model_b`" in report
    assert set(summaries["init"]) == set(summary)


def test_init_figures_and_report_from_saved_summary(smoke_results, tmp_path):
    # plot and report need nothing but the summary.json.
    out, _ = smoke_results
    summary = json.loads((out / "init" / "summary.json").read_text())
    init.plot(summary, str(tmp_path))
    init.report(summary, str(tmp_path))
    assert (tmp_path / "init" / "init_training.png").stat().st_size > 0
    assert (tmp_path / "init" / "report.md").read_text().startswith("# Initialization study")
    # A summary written before the plateau steps were recorded: the report computes them.
    del summary["plateau"]
    init.report(summary, str(tmp_path))
    report = (tmp_path / "init" / "report.md").read_text()
    assert "Step at which the loss left ln(classes)" in report
