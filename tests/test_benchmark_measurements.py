"""The benchmarks' measurement logic on fake timings: an honest ceiling (MFU never above 1),
relative targets, spreads and the quick run's "too noisy to judge", the CPU with every figure."""

import copy
import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(__file__)), "benchmarks"))
import common  # noqa: E402
import run as runner  # noqa: E402
from targets import Target  # noqa: E402
from test_benchmark_runner import RAW  # noqa: E402

import training  # noqa: E402


def test_mfu_above_one_is_an_error_not_a_figure():
    # The step (1.2 TFLOP/s) beats the "peak" matmul (1 TFLOP/s): the peak is wrong.
    with pytest.raises(training.MeasurementError, match="not the peak"):
        training.mfu(1.2e12, 1.0e12)
    assert training.mfu(0.5e12, 1.0e12) == 0.5
    with pytest.raises(training.MeasurementError):
        training.mfu(1.0, 0.0)


def test_peak_is_the_best_op_at_its_best_repetition():
    flop = {"matmul_1024": 2 * 1024**3, "matmul_4096": 2 * 4096**3, "conv3x3": 10**11}
    times = {"matmul_1024": [0.02, 0.01], "matmul_4096": [1.0, 0.5], "conv3x3": [0.2, 0.25]}
    best, flops, per_op = training.best_flops(flop, times)
    assert best == "conv3x3" and flops == pytest.approx(5e11)
    assert per_op["matmul_4096"] == pytest.approx(2 * 4096**3 / 0.5)
    # Whatever the fake timings, no op's FLOP/s (any step's, as an op) exceeds the peak.
    assert all(value <= flops for value in per_op.values())
    assert training.mfu(max(per_op.values()), flops) <= 1.0


def test_run_refuses_a_result_with_mfu_above_one():
    raw = copy.deepcopy(RAW)
    raw["training"]["model_a_mfu"] = 1.152  # the AMX Xeon's figure against one 4096^3 matmul
    with pytest.raises(runner.MeasurementError, match="MFU above 1"):
        runner.summarize(raw, quick=False)
    runner.check_measurements({"training.model_a_mfu": 1.0, "training.model_a_bf16_mfu": 0.3})


def test_relative_target_reads_the_peer_figure():
    target = Target(">=", "training.vgg19_bf16_speedup")
    assert target.met(1.7, {"training.vgg19_bf16_speedup": 1.6}) is True
    assert target.met(1.5, {"training.vgg19_bf16_speedup": 1.6}) is False
    assert target.met(1.5, {}) is None  # the peer was not measured: no verdict
    assert Target(">=", 2).met(2.0) is True


def test_quick_says_too_noisy_when_the_spread_covers_the_target():
    raw = copy.deepcopy(RAW)
    raw["training"]["model_a_vs_vgg19_flops_range"] = [0.85, 1.0]  # covers the 0.95 bound
    raw["input_pipeline"]["fused_vs_keras_layers_range"] = [2.2, 2.6]  # clear of 2
    quick = {row["key"]: row for row in runner.summarize(raw, quick=True)["targets"]}
    assert quick["training.model_a_vs_vgg19_flops"]["met"] == runner.TOO_NOISY
    assert quick["training.model_a_vs_vgg19_flops"]["relative_spread"] == pytest.approx(0.15 / 0.9)
    assert quick["input_pipeline.fused_vs_keras_layers"]["met"] is True
    full = {row["key"]: row for row in runner.summarize(raw, quick=False)["targets"]}
    assert full["training.model_a_vs_vgg19_flops"]["met"] is False  # the full run decides
    table = runner.markdown(runner.summarize(raw, quick=True))
    assert "| 0.900 | ±8% | >= 0.95 | too noisy to judge |" in table


def test_cpu_info_names_the_model_and_its_vector_units():
    xeon = (
        "processor\t: 0\nvendor_id\t: GenuineIntel\ncpu family\t: 6\nmodel\t\t: 143\n"
        "model name\t: Intel Xeon Platinum 8480+\nflags\t\t: fpu avx512f amx_bf16 amx_tile\n"
        "\nprocessor\t: 1\nmodel name\t: another\nflags\t\t: fpu\n"
    )
    assert common.cpu_info(xeon) == {
        "cpu": "Intel Xeon Platinum 8480+",
        "cpu_family": 6,
        "cpu_model": 143,
        "avx512": True,
        "amx": True,
    }
    # A VM's "AMD EPYC" is Zen 3 (family 25 model 1, AVX2) or Zen 4 (model 17, AVX-512).
    zen3 = "cpu family\t: 25\nmodel\t\t: 1\nmodel name\t: AMD EPYC\nflags\t\t: fpu avx2\n"
    info = common.cpu_info(zen3)
    assert info == {
        "cpu": "AMD EPYC",
        "cpu_family": 25,
        "cpu_model": 1,
        "avx512": False,
        "amx": False,
    }
    assert common.cpu_label(info) == "AMD EPYC (family 25 model 1), no AVX-512, no AMX"
    # Older results record less: what is not known is not guessed.
    assert common.cpu_label({"cpu": "x86_64", "amx": True}) == "x86_64, AMX"
    assert common.cpu_label({"cpu": "x86_64"}) == "x86_64, AMX unknown"
    unknown = common.cpu_info("")
    assert unknown["cpu_family"] is None and unknown["avx512"] is False and unknown["cpu"]


def test_ratio_range_and_spread():
    assert common.ratio_range([2.0, 3.0], [1.0, 2.0]) == [1.5, 2.0]
    assert common.relative_spread(2.0, [1.5, 2.5]) == pytest.approx(0.5)
    assert common.relative_spread(2.0, None) is None


def test_quick_relative_target_is_too_noisy_when_the_ranges_overlap():
    raw = copy.deepcopy(RAW)  # Model A's bf16 speed-up 1.7 against VGG19's 1.8
    raw["training"]["model_a_bf16_speedup_range"] = [1.5, 1.75]
    raw["training"]["vgg19_bf16_speedup_range"] = [1.72, 1.9]
    raw["input_pipeline"]["images_per_second_per_core_range"] = {"fused": [200.0, 800.0]}
    rows = {row["key"]: row for row in runner.summarize(raw, quick=True)["targets"]}
    assert rows["training.model_a_bf16_speedup"]["met"] == runner.TOO_NOISY
    assert rows["input_pipeline.images_per_sec_per_core"]["range"] == [200.0, 800.0]
    assert rows["input_pipeline.images_per_sec_per_core"]["met"] == runner.TOO_NOISY
    raw["training"]["vgg19_bf16_speedup_range"] = [1.76, 1.9]  # apart: judged even when quick
    rows = {row["key"]: row for row in runner.summarize(raw, quick=True)["targets"]}
    assert rows["training.model_a_bf16_speedup"]["met"] is False


def test_extra_arguments_per_benchmark():
    extra = runner.parse_extra(["training=--input_size 112", "training=--repeats 3"])
    assert extra == {"training": ("--input_size", "112", "--repeats", "3")}
    with pytest.raises(SystemExit, match="NAME=ARGS"):
        runner.parse_extra(["nope=--x 1"])


def test_op_profile_kinds():
    import op_profile

    assert op_profile.kind_of("model_a_1/conv1_1/convolution:Conv2D") == "conv"
    assert (
        op_profile.kind_of("gradient_tape/m/conv2_1/Conv2DBackpropFilter:Conv2DBackpropFilter")
        == "conv"
    )
    assert op_profile.kind_of("gradient_tape/model_a_1/fc1_1/MatMul/MatMul:MatMul") == "matmul"
    assert op_profile.kind_of("model_a_1/prelu2_1/Minimum:Minimum") == "activation"
    assert op_profile.kind_of("sgd/Mul_60:Mul") == "optimizer"
    assert op_profile.kind_of("model_a_1/conv1_1/Cast:Cast") == "cast"
    assert op_profile.kind_of("model_a_1/spp_1/MaxPool:MaxPool") == "pool"
    assert op_profile.kind_of("StatelessRandomUniformV2:StatelessRandomUniformV2") == "other"
    assert op_profile.kind_of("CpuExecutable::ExecuteAsyncOnStream") == "xla"


@pytest.mark.tf_only
def test_op_profile_times_the_ops_of_a_real_step():
    # The profiler's trace of a model_tiny step: its convs, matmuls and PReLU's XLA kernels
    # are found, each op is counted once (the executor's enclosing spans are not ops).
    import numpy as np
    import op_profile

    import rectifier_zoo

    rng = np.random.default_rng(0)
    step = common.make_train_step(
        rectifier_zoo.model_tiny(classes=3),
        rng.uniform(0, 255, (2, 40, 40, 3)).astype("float32"),
        np.array([0, 2]),
    )
    step()
    seconds = op_profile.profile(step, 2)
    kinds = op_profile.by_kind(seconds)
    assert kinds["conv"] > 0 and kinds["matmul"] > 0 and kinds["optimizer"] > 0
    assert kinds["xla"] > 0
    assert not any("::" in name for name in seconds if name != op_profile.XLA_EVENT)
    assert any("Conv2DBackpropFilter" in name for name in seconds)
