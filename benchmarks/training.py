"""Training-step throughput of Model A against keras.applications.VGG19 and the machine's peak.

    python benchmarks/training.py [--input_size 224] [--batch_size 8] [--repeats 11] [--quick]

In one process, interleaved, median of the repetitions:
- a training step (SGD + momentum) of Model A (PReLU) and of `keras.applications.VGG19`, same
  input size and batch, in float32; achieved FLOP/s = 3 x 2 x multiply-adds x batch / step time
  (forward + two backward products, the usual convention, applied to both nets alike);
- Model A and VGG19 under `mixed_bfloat16` (bf16 matrix units where the CPU has them, e.g.
  AMX): `model_a_bf16_speedup` and `vgg19_bf16_speedup` are each net's bf16 step speed over its
  own float32 step, so Model A's bf16 gain is judged against the peer's on the same CPU;
- Model A under `mixed_bfloat16` again, its fc layers `keras.layers.Dense` instead of ours:
  `model_a_bf16_vs_keras_dense` is our bf16 step's time over that one's (below 1: what
  `rectifier_zoo.layers.Dense`'s float32 kernel gradient saves at small batches);
- Model A under `mixed_bfloat16` trained by `rectifier_zoo.CaffeSGD` (the paper's update, with
  coupled weight decay, as `training/train.py` trains) instead of Keras's SGD with momentum:
  `model_a_bf16_caffe_sgd_vs_keras_sgd` is that step's time over the Keras SGD one's;
- the machine's peak FLOP/s in float32 and in bfloat16: the best of several warmed-up ops on all
  threads (square matmuls of a few sizes and a large 3x3 convolution), each timed as its best
  repetition. MFU = achieved FLOP/s / the peak of the same dtype. An MFU above 1 means the peak
  was not the peak: `mfu` raises `MeasurementError` rather than report it.

Every figure has its spread: [min, max] of the per-repetition values (`*_range`).
Targets (`benchmarks/targets.py`): Model A >= 0.95x VGG19's achieved FLOP/s in float32, and
Model A's bf16 speed-up >= VGG19's.
"""

import argparse
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from common import (  # noqa: E402
    cpu_label,
    emit_json,
    interleaved_times,
    machine_info,
    make_train_step,
    ratio_range,
    with_policy,
)
from targets import TARGETS  # noqa: E402

import rectifier_zoo  # noqa: E402
from rectifier_zoo.info import count_multiply_adds  # noqa: E402
from rectifier_zoo.layers import Dense  # noqa: E402

TARGET_VS_VGG19 = TARGETS["training.model_a_vs_vgg19_flops"]
MATMUL_SIZES = (1024, 2048, 4096)
# A large 3x3 convolution (one of Model A's / VGG's shapes): batch, side, channels in and out.
CONV_SHAPE = (8, 56, 256, 256)


class MeasurementError(RuntimeError):
    """A figure that cannot be right (an MFU above 1): the measurement, not the model, is off."""


def mfu(achieved_flops: float, peak_flops: float, label: str = "MFU") -> float:
    """Achieved / peak FLOP/s. Raises MeasurementError when that is above 1: the step then did
    more FLOP/s than the measured "peak", so the peak is wrong (not the best op, not warmed up,
    not all threads) and no MFU from it may be reported."""
    if not peak_flops > 0:
        raise MeasurementError(f"{label}: peak FLOP/s must be > 0. Received: {peak_flops}")
    value = achieved_flops / peak_flops
    if value > 1.0:
        raise MeasurementError(
            f"{label} = {value:.3f} > 1: {achieved_flops / 1e9:.1f} GFLOP/s achieved against a "
            f"measured peak of {peak_flops / 1e9:.1f} GFLOP/s. The peak is not the peak."
        )
    return value


def _peak_ops(dtype: str) -> dict:
    """name -> (FLOPs per call, a function that runs the op and blocks on its result)."""
    ops = {}
    for size in MATMUL_SIZES:
        a = tf.cast(tf.random.normal((size, size)), dtype)

        @tf.function
        def product(a=a):
            return tf.reduce_sum(tf.cast(tf.linalg.matmul(a, a)[0, :8], "float32"))

        ops[f"matmul_{size}"] = (2 * size**3, lambda f=product: float(f()))
    batch, side, c_in, c_out = CONV_SHAPE
    x = tf.cast(tf.random.normal((batch, side, side, c_in)), dtype)
    w = tf.cast(tf.random.normal((3, 3, c_in, c_out)) * 0.01, dtype)

    @tf.function
    def conv():
        y = tf.nn.conv2d(x, w, strides=1, padding="SAME")
        return tf.reduce_sum(tf.cast(y[0, 0, 0, :8], "float32"))

    ops["conv3x3"] = (2 * batch * side * side * 9 * c_in * c_out, lambda: float(conv()))
    return ops


def best_flops(ops: dict, times: dict) -> tuple[str, float, dict]:
    """The peak from timed ops: (best op, its FLOP/s, FLOP/s of every op), each op at its best
    (shortest) repetition: a peak is what the machine can do, not what it does on average."""
    per_op = {name: ops[name] / min(times[name]) for name in ops}
    best = max(per_op, key=per_op.get)
    return best, per_op[best], per_op


def measure_peak(dtype: str, repeats: int) -> dict:
    """The machine's peak FLOP/s in `dtype`: the best of `_peak_ops`, warmed up (two calls
    each), all threads (TensorFlow's default)."""
    ops = _peak_ops(dtype)
    for _, function in ops.values():
        function()
        function()
    times = interleaved_times({name: f for name, (_, f) in ops.items()}, max(repeats, 3))
    best, flops, per_op = best_flops({name: n for name, (n, _) in ops.items()}, times)
    return {"flops": flops, "op": best, "per_op_flops": per_op}


def run(input_size: int, batch_size: int, repeats: int) -> dict:
    if keras.backend.backend() != "tensorflow":
        raise SystemExit("training.py times TensorFlow steps: set KERAS_BACKEND=tensorflow")
    rng = np.random.default_rng(0)
    images = rng.uniform(0, 255, (batch_size, input_size, input_size, 3)).astype("float32")
    labels = rng.integers(0, 1000, batch_size)
    shape = (input_size, input_size, 3)

    def vgg19():
        return keras.applications.VGG19(weights=None, input_shape=shape, classes=1000)

    def model_a():
        return rectifier_zoo.model_a(input_shape=shape, seed=0)

    def model_a_keras_dense():
        def clone(layer):
            keras_class = keras.layers.Dense if isinstance(layer, Dense) else layer.__class__
            return keras_class.from_config(layer.get_config())

        return keras.models.clone_model(model_a(), clone_function=clone)

    models = {
        "model_a": model_a(),
        "vgg19": vgg19(),
        "model_a_bf16": with_policy("mixed_bfloat16", model_a),
        "vgg19_bf16": with_policy("mixed_bfloat16", vgg19),
        "model_a_bf16_keras_dense": with_policy("mixed_bfloat16", model_a_keras_dense),
        "model_a_bf16_caffe_sgd": with_policy("mixed_bfloat16", model_a),
    }
    optimizers = {
        "model_a_bf16_caffe_sgd": rectifier_zoo.CaffeSGD(
            1e-3, model=models["model_a_bf16_caffe_sgd"]
        )
    }
    multiply_adds = {name: count_multiply_adds(model) for name, model in models.items()}
    steps = {}
    for name, model in models.items():
        step = make_train_step(model, images, labels, optimizer=optimizers.get(name))
        for _ in range(2):  # trace, then warm up (the first bf16 step after it was 1.4x slower)
            step()
        steps[name] = step
    times = interleaved_times(steps, repeats)
    seconds = {name: float(np.median(values)) for name, values in times.items()}
    flop = {name: 6 * multiply_adds[name] * batch_size for name in models}
    flops = {name: flop[name] / seconds[name] for name in models}
    # The steps' best repetitions count towards nothing but the check: the peak must beat them.
    best_step_flops = {name: flop[name] / min(times[name]) for name in models}
    peak = {
        "float32": measure_peak("float32", repeats),
        "bfloat16": measure_peak("bfloat16", repeats),
    }
    dtype_of = {"model_a": "float32", "vgg19": "float32"}
    for name in models:  # every step, at its best repetition, must stay under its dtype's peak
        dtype = dtype_of.get(name, "bfloat16")
        mfu(best_step_flops[name], peak[dtype]["flops"], f"{name} (best repetition) MFU")
    f32, bf16 = peak["float32"]["flops"], peak["bfloat16"]["flops"]
    mfus = {
        "model_a_mfu": mfu(flops["model_a"], f32, "model_a MFU"),
        "model_a_bf16_mfu": mfu(flops["model_a_bf16"], bf16, "model_a_bf16 MFU"),
        "vgg19_mfu": mfu(flops["vgg19"], f32, "vgg19 MFU"),
        "vgg19_bf16_mfu": mfu(flops["vgg19_bf16"], bf16, "vgg19_bf16 MFU"),
    }
    ratio = multiply_adds["model_a"] / multiply_adds["vgg19"]
    return {
        "benchmark": "training",
        "input_size": input_size,
        "batch_size": batch_size,
        "repeats": repeats,
        "multiply_adds_per_image": multiply_adds,
        "step_seconds_median": seconds,
        "step_seconds_all": times,
        "achieved_flops": flops,
        "peak_flops": peak,
        "model_a_vs_vgg19_flops": flops["model_a"] / flops["vgg19"],
        "model_a_vs_vgg19_flops_range": [
            ratio * r for r in ratio_range(times["vgg19"], times["model_a"])
        ],
        **mfus,
        "model_a_mfu_range": [
            flop["model_a"] / max(times["model_a"]) / f32,
            flop["model_a"] / min(times["model_a"]) / f32,
        ],
        "model_a_bf16_speedup": seconds["model_a"] / seconds["model_a_bf16"],
        "model_a_bf16_speedup_range": ratio_range(times["model_a"], times["model_a_bf16"]),
        "vgg19_bf16_speedup": seconds["vgg19"] / seconds["vgg19_bf16"],
        "vgg19_bf16_speedup_range": ratio_range(times["vgg19"], times["vgg19_bf16"]),
        "model_a_bf16_vs_keras_dense": (
            seconds["model_a_bf16"] / seconds["model_a_bf16_keras_dense"]
        ),
        "model_a_bf16_vs_keras_dense_range": ratio_range(
            times["model_a_bf16"], times["model_a_bf16_keras_dense"]
        ),
        "model_a_bf16_caffe_sgd_vs_keras_sgd": (
            seconds["model_a_bf16_caffe_sgd"] / seconds["model_a_bf16"]
        ),
        "model_a_bf16_caffe_sgd_vs_keras_sgd_range": ratio_range(
            times["model_a_bf16_caffe_sgd"], times["model_a_bf16"]
        ),
        "target_vs_vgg19": TARGET_VS_VGG19.bound,
        "machine": machine_info(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--input_size", type=int, default=224)
    parser.add_argument("--batch_size", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=11)
    parser.add_argument("--quick", action="store_true", help="batch 4, 3 repetitions")
    parser.add_argument("--output", help="also write the JSON here")
    args = parser.parse_args()
    batch_size, repeats = (4, 3) if args.quick else (args.batch_size, args.repeats)
    result = run(args.input_size, batch_size, repeats)
    print(
        f"training step at {args.input_size}x{args.input_size}, batch {batch_size}, "
        f"median of {repeats} interleaved repetitions, on {cpu_label(result['machine'])}"
    )
    print("| model | step (s) | achieved GFLOP/s |")
    print("|---|---:|---:|")
    for name, seconds in result["step_seconds_median"].items():
        print(f"| {name} | {seconds:.3f} | {result['achieved_flops'][name] / 1e9:.1f} |")
    for dtype, peak in result["peak_flops"].items():
        print(f"peak {dtype}: {peak['flops'] / 1e9:.1f} GFLOP/s ({peak['op']}, best of ops)")
    ratio = result["model_a_vs_vgg19_flops"]
    print(
        f"Model A / VGG19 achieved FLOP/s: {ratio:.3f} (target {TARGET_VS_VGG19}: "
        f"{'met' if TARGET_VS_VGG19.met(ratio) else 'MISSED'}); MFU float32 "
        f"{result['model_a_mfu']:.3f}, bf16 {result['model_a_bf16_mfu']:.3f}; "
        f"bf16 speed-up {result['model_a_bf16_speedup']:.2f}x (VGG19's "
        f"{result['vgg19_bf16_speedup']:.2f}x)"
    )
    emit_json(result, args.output)


if __name__ == "__main__":
    main()
