"""Training-step throughput of Model A against keras.applications.VGG19 and the machine's peak.

    python benchmarks/training.py [--input_size 224] [--batch_size 8] [--repeats 5] [--quick]

In one process, interleaved, median of the repetitions:
- a training step (SGD + momentum) of Model A (PReLU) and of `keras.applications.VGG19`, same
  input size and batch, in float32; achieved FLOP/s = 3 x 2 x multiply-adds x batch / step time
  (forward + two backward products, the usual convention, applied to both nets alike);
- Model A under `mixed_bfloat16` (bf16 matrix units where the CPU has them, AMX here);
- the peak matrix-multiply FLOP/s of the same machine: a large `tf.linalg.matmul` in float32
  and in bfloat16. MFU = achieved FLOP/s of Model A / the float32 (or bf16) peak.

Target (`benchmarks/targets.py`): Model A >= 0.95x VGG19's achieved FLOP/s in float32.
"""

import argparse
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from common import emit_json, interleaved_medians, machine_info, make_train_step  # noqa: E402
from targets import TARGETS  # noqa: E402

import rectifier_zoo  # noqa: E402
from rectifier_zoo.info import count_multiply_adds  # noqa: E402

TARGET_VS_VGG19 = TARGETS["training.model_a_vs_vgg19_flops"]
MATMUL_SIZE = 4096


def _with_policy(policy: str, build):
    previous = keras.config.dtype_policy().name
    keras.config.set_dtype_policy(policy)
    try:
        return build()
    finally:
        keras.config.set_dtype_policy(previous)


def peak_matmul_flops(dtype: str, repeats: int) -> float:
    """FLOP/s of a square matmul of MATMUL_SIZE, the best the machine's BLAS does."""
    a = tf.random.normal((MATMUL_SIZE, MATMUL_SIZE), dtype="float32")
    a = tf.cast(a, dtype)

    @tf.function
    def product():
        return tf.reduce_sum(tf.cast(tf.linalg.matmul(a, a)[0, :8], "float32"))

    product()
    seconds = interleaved_medians({"matmul": lambda: float(product())}, repeats)["matmul"]
    return 2 * MATMUL_SIZE**3 / seconds


def run(input_size: int, batch_size: int, repeats: int) -> dict:
    if keras.backend.backend() != "tensorflow":
        raise SystemExit("training.py times TensorFlow steps: set KERAS_BACKEND=tensorflow")
    rng = np.random.default_rng(0)
    images = rng.uniform(0, 255, (batch_size, input_size, input_size, 3)).astype("float32")
    labels = rng.integers(0, 1000, batch_size)
    shape = (input_size, input_size, 3)
    models = {
        "model_a": rectifier_zoo.model_a(input_shape=shape, seed=0),
        "vgg19": keras.applications.VGG19(weights=None, input_shape=shape, classes=1000),
        "model_a_bf16": _with_policy(
            "mixed_bfloat16", lambda: rectifier_zoo.model_a(input_shape=shape, seed=0)
        ),
    }
    multiply_adds = {name: count_multiply_adds(model) for name, model in models.items()}
    steps = {}
    for name, model in models.items():
        step = make_train_step(model, images, labels)
        step()  # trace and warm up
        steps[name] = step
    seconds = interleaved_medians(steps, repeats)
    flops = {name: 6 * multiply_adds[name] * batch_size / seconds[name] for name in models}
    peak = {
        "float32": peak_matmul_flops("float32", repeats),
        "bfloat16": peak_matmul_flops("bfloat16", repeats),
    }
    return {
        "benchmark": "training",
        "input_size": input_size,
        "batch_size": batch_size,
        "repeats": repeats,
        "multiply_adds_per_image": multiply_adds,
        "step_seconds_median": seconds,
        "achieved_flops": flops,
        "peak_matmul_flops": peak,
        "model_a_vs_vgg19_flops": flops["model_a"] / flops["vgg19"],
        "model_a_mfu": flops["model_a"] / peak["float32"],
        "model_a_bf16_mfu": flops["model_a_bf16"] / peak["bfloat16"],
        "model_a_bf16_speedup": seconds["model_a"] / seconds["model_a_bf16"],
        "target_vs_vgg19": TARGET_VS_VGG19.bound,
        "machine": machine_info(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--input_size", type=int, default=224)
    parser.add_argument("--batch_size", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="batch 4, 3 repetitions")
    parser.add_argument("--output", help="also write the JSON here")
    args = parser.parse_args()
    batch_size, repeats = (4, 3) if args.quick else (args.batch_size, args.repeats)
    result = run(args.input_size, batch_size, repeats)
    print(
        f"training step at {args.input_size}x{args.input_size}, batch {batch_size}, "
        f"median of {repeats} interleaved repetitions"
    )
    print("| model | step (s) | achieved GFLOP/s |")
    print("|---|---:|---:|")
    for name, seconds in result["step_seconds_median"].items():
        print(f"| {name} | {seconds:.3f} | {result['achieved_flops'][name] / 1e9:.1f} |")
    for dtype, value in result["peak_matmul_flops"].items():
        print(f"peak {dtype} matmul ({MATMUL_SIZE}^3): {value / 1e9:.1f} GFLOP/s")
    ratio = result["model_a_vs_vgg19_flops"]
    print(
        f"Model A / VGG19 achieved FLOP/s: {ratio:.3f} (target {TARGET_VS_VGG19}: "
        f"{'met' if TARGET_VS_VGG19.met(ratio) else 'MISSED'}); MFU float32 "
        f"{result['model_a_mfu']:.3f}, bf16 {result['model_a_bf16_mfu']:.3f}; "
        f"bf16 speed-up {result['model_a_bf16_speedup']:.2f}x"
    )
    emit_json(result, args.output)


if __name__ == "__main__":
    main()
