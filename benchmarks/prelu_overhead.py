"""Cost of PReLU in a training step: ours vs ReLU vs `keras.layers.PReLU`, side by side.

A Model-A-shaped net (Table 3 widths and depth) at a reduced input size and batch is trained
with SGD + momentum in one process, one variant after the other in each repetition
(interleaved, so drifts in machine speed hit all variants alike); the median step time of each
variant and the ratios to ReLU are printed as a table and a JSON line.

    python benchmarks/prelu_overhead.py [--input_size 64] [--batch_size 8] [--repeats 15] [--quick]

Also ReLU and ours under `mixed_bfloat16`, in the same interleaved repetitions.
Targets (`benchmarks/targets.py`): ours <= 1.05x ReLU, ours <= keras.layers.PReLU
(shared_axes=[1, 2]), and under bf16 ours <= 1.02x ReLU (bf16). Each ratio has its spread
(`<ratio>_range`: [min, max] of the per-repetition ratios).
"""

import argparse
import functools
import os
import statistics

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
from common import (  # noqa: E402
    emit_json,
    interleaved_times,
    machine_info,
    make_train_step,
    ratio_range,
    with_policy,
)  # noqa: E402
from targets import TARGETS  # noqa: E402

import rectifier_zoo  # noqa: E402
from rectifier_zoo import paper  # noqa: E402

VS_RELU = TARGETS["prelu_overhead.ours_vs_relu"]
VS_KERAS_PRELU = TARGETS["prelu_overhead.ours_vs_keras_prelu"]
VS_RELU_BF16 = TARGETS["prelu_overhead.ours_bf16_vs_relu_bf16"]


def keras_prelu_model(**kwargs) -> keras.Model:
    """Model A with every ReLU replaced by `keras.layers.PReLU` (one slope per channel)."""

    def swap(layer):
        if isinstance(layer, keras.layers.ReLU):
            conv = not layer.name.startswith("relu_fc")
            return keras.layers.PReLU(
                alpha_initializer=keras.initializers.Constant(paper.PRELU_INITIAL_SLOPE),
                shared_axes=[1, 2] if conv else None,
                name=layer.name.replace("relu", "prelu"),
            )
        return layer.__class__.from_config(layer.get_config())

    return keras.models.clone_model(
        rectifier_zoo.model_a(activation="relu", **kwargs), clone_function=swap
    )


VARIANTS = {
    "relu": lambda **kw: rectifier_zoo.model_a(activation="relu", **kw),
    "ours": lambda **kw: rectifier_zoo.model_a(activation="prelu", **kw),
    "ours_shared": lambda **kw: rectifier_zoo.model_a(
        activation="prelu", channel_shared=True, **kw
    ),
    "keras_prelu": keras_prelu_model,
}


# ReLU and ours again under mixed_bfloat16: PReLU's element-wise ops must not eat bf16's gain.
BF16_VARIANTS = ("relu", "ours")


def run(input_size: int, batch_size: int, repeats: int, steps: int) -> dict:
    if keras.backend.backend() != "tensorflow":
        raise SystemExit("prelu_overhead.py times TensorFlow steps: set KERAS_BACKEND=tensorflow")
    rng = np.random.default_rng(0)
    images = rng.uniform(0, 255, (batch_size, input_size, input_size, 3)).astype("float32")
    labels = rng.integers(0, 1000, batch_size)
    builds = [(name, name, "float32") for name in VARIANTS]
    builds += [(f"{name}_bf16", name, "mixed_bfloat16") for name in BF16_VARIANTS]
    steps_by_variant = {}
    for key, name, policy in builds:
        build = functools.partial(VARIANTS[name], input_shape=(input_size,) * 2 + (3,), seed=0)
        model = with_policy(policy, build)
        step = make_train_step(model, images, labels)
        for _ in range(2):  # trace and warm up
            step()
        steps_by_variant[key] = step
    times = interleaved_times(steps_by_variant, repeats, steps)
    median = {key: statistics.median(values) for key, values in times.items()}

    def ratio(a, b):
        return {
            f"{a}_vs_{b}": median[a] / median[b],
            f"{a}_vs_{b}_range": ratio_range(times[a], times[b]),
        }

    return {
        "benchmark": "prelu_overhead",
        "model": "model_a",
        "input_size": input_size,
        "batch_size": batch_size,
        "repeats": repeats,
        "steps_per_repeat": steps,
        "step_seconds_median": median,
        **ratio("ours", "relu"),
        **ratio("ours_shared", "relu"),
        **ratio("keras_prelu", "relu"),
        **ratio("ours", "keras_prelu"),
        **ratio("ours_bf16", "relu_bf16"),
        "machine": machine_info(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--input_size", type=int, default=64)
    parser.add_argument("--batch_size", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--steps", type=int, default=3, help="steps timed per repetition")
    parser.add_argument("--quick", action="store_true", help="5 repetitions")
    parser.add_argument("--output", help="also write the JSON here")
    args = parser.parse_args()
    repeats = 5 if args.quick else args.repeats
    result = run(args.input_size, args.batch_size, repeats, args.steps)
    print(
        f"Model A, {args.input_size}x{args.input_size}, batch {args.batch_size}, "
        f"median of {repeats} interleaved repetitions"
    )
    print("| variant | step (s) | vs ReLU |")
    print("|---|---:|---:|")
    for name, seconds in result["step_seconds_median"].items():
        relu = result["step_seconds_median"]["relu_bf16" if name.endswith("_bf16") else "relu"]
        print(f"| {name} | {seconds:.3f} | {seconds / relu:.3f} |")
    verdict = (
        VS_RELU.met(result["ours_vs_relu"])
        and VS_KERAS_PRELU.met(result["ours_vs_keras_prelu"])
        and VS_RELU_BF16.met(result["ours_bf16_vs_relu_bf16"])
    )
    print(
        f"target ours {VS_RELU} x ReLU, {VS_KERAS_PRELU} x keras PReLU, under bf16 "
        f"{VS_RELU_BF16} x ReLU: {'met' if verdict else 'MISSED'}"
    )
    emit_json(result, args.output)


if __name__ == "__main__":
    main()
