"""Cost of PReLU in a training step: ours vs ReLU vs `keras.layers.PReLU`, side by side.

A Model-A-shaped net (Table 3 widths and depth) at a reduced input size and batch is trained
with SGD + momentum in one process, one variant after the other in each repetition
(interleaved, so drifts in machine speed hit all variants alike); the median step time of each
variant and the ratios to ReLU are printed as a table and a JSON line.

    python benchmarks/prelu_overhead.py [--input_size 64] [--batch_size 8] [--repeats 15] [--quick]

Targets (`benchmarks/targets.py`): ours <= 1.05x ReLU, and ours <= keras.layers.PReLU
(shared_axes=[1, 2]).
"""

import argparse
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
from common import emit_json, interleaved_medians, machine_info, make_train_step  # noqa: E402
from targets import TARGETS  # noqa: E402

import rectifier_zoo  # noqa: E402
from rectifier_zoo import paper  # noqa: E402

VS_RELU = TARGETS["prelu_overhead.ours_vs_relu"]
VS_KERAS_PRELU = TARGETS["prelu_overhead.ours_vs_keras_prelu"]


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


def run(input_size: int, batch_size: int, repeats: int, steps: int) -> dict:
    if keras.backend.backend() != "tensorflow":
        raise SystemExit("prelu_overhead.py times TensorFlow steps: set KERAS_BACKEND=tensorflow")
    rng = np.random.default_rng(0)
    images = rng.uniform(0, 255, (batch_size, input_size, input_size, 3)).astype("float32")
    labels = rng.integers(0, 1000, batch_size)
    steps_by_variant = {}
    for name, build in VARIANTS.items():
        model = build(input_shape=(input_size, input_size, 3), seed=0)
        step = make_train_step(model, images, labels)
        for _ in range(2):  # trace and warm up
            step()
        steps_by_variant[name] = step
    median = interleaved_medians(steps_by_variant, repeats, steps)
    return {
        "benchmark": "prelu_overhead",
        "model": "model_a",
        "input_size": input_size,
        "batch_size": batch_size,
        "repeats": repeats,
        "steps_per_repeat": steps,
        "step_seconds_median": median,
        "ours_vs_relu": median["ours"] / median["relu"],
        "ours_shared_vs_relu": median["ours_shared"] / median["relu"],
        "keras_prelu_vs_relu": median["keras_prelu"] / median["relu"],
        "ours_vs_keras_prelu": median["ours"] / median["keras_prelu"],
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
        f"median of {args.repeats} interleaved repetitions"
    )
    print("| variant | step (s) | vs ReLU |")
    print("|---|---:|---:|")
    for name, seconds in result["step_seconds_median"].items():
        print(f"| {name} | {seconds:.3f} | {seconds / result['step_seconds_median']['relu']:.3f} |")
    verdict = VS_RELU.met(result["ours_vs_relu"]) and VS_KERAS_PRELU.met(
        result["ours_vs_keras_prelu"]
    )
    print(
        f"target ours {VS_RELU.op} {VS_RELU.bound}x ReLU and {VS_KERAS_PRELU.op} "
        f"{VS_KERAS_PRELU.bound}x keras PReLU: {'met' if verdict else 'MISSED'}"
    )
    emit_json(result, args.output)


if __name__ == "__main__":
    main()
