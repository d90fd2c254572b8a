"""Where a training step's time goes, by kind of op: Model A against VGG19, float32 and bf16.

    python benchmarks/op_profile.py [--input_size 112] [--batch_size 8] [--steps 3]

Profiles a few training steps (SGD + momentum, `common.make_train_step`) of Model A and of
`keras.applications.VGG19` under `float32` and `mixed_bfloat16` with TensorFlow's profiler, and
sums the time of the ops the executor ran, by kind: convolutions, matmuls, the activations
(PReLU's element-wise ops, ReLU), bias adds, pooling (SPP included), casts, the loss, the
optimizer's update, other. Op times are summed over threads, so the figures are shares of
op time, not of wall time. What it answers: which part of a step does not get faster under
bf16 (the issue was Model A's bf16 speed-up on an AMX CPU, 2.25x, against VGG19's 3.3x), and
which single ops (node names: conv1, fc1, ...) take longest.
"""

import argparse
import collections
import glob
import os
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from common import cpu_label, emit_json, machine_info, make_train_step, with_policy  # noqa: E402
from tensorflow.tsl.profiler.protobuf import xplane_pb2  # noqa: E402

import rectifier_zoo  # noqa: E402

TOP_OPS = 8  # the slowest single ops listed per model and precision

XLA_EVENT = "CpuExecutable::ExecuteAsyncOnStream"

# First match wins: the optimizer's and the loss's ops by name scope, the rest by op type.
KINDS = (
    ("optimizer", lambda name, op: name.startswith(("sgd/", "SGD/"))),
    ("cast", lambda name, op: op == "Cast"),
    ("conv", lambda name, op: "Conv2D" in op),
    ("matmul", lambda name, op: "MatMul" in op),
    ("activation", lambda name, op: "prelu" in name or "relu" in name.lower() or "Relu" in op),
    ("bias", lambda name, op: op.startswith("BiasAdd")),
    ("pool", lambda name, op: "Pool" in op or "spp" in name),
    ("loss", lambda name, op: "loss" in name or "softmax" in name.lower() or "predictions" in name),
)


def kind_of(event_name: str) -> str:
    """The kind of an executor op event named "<node name>:<op type>", or "xla"."""
    if event_name == XLA_EVENT:
        return "xla"
    name, _, op = event_name.rpartition(":")
    for kind, matches in KINDS:
        if matches(name, op):
            return kind
    return "other"


def op_seconds(xspace: bytes) -> collections.Counter:
    """Seconds by op event ("<node>:<type>"), summed over the host's compute threads, from a
    profiler XSpace."""
    space = xplane_pb2.XSpace()
    space.ParseFromString(xspace)
    totals = collections.Counter()
    for plane in space.planes:
        if not plane.name.startswith("/host:CPU"):
            continue
        for line in plane.lines:
            if not line.name.startswith("tf_Compute"):
                continue
            for event in line.events:
                name = plane.event_metadata[event.metadata_id].name
                # The executor's spans ("ExecutorState::Process") enclose the op events and
                # would count every op twice. An XLA kernel (PReLU's fused training pass) is
                # not an op event: it shows as one run of a compiled executable.
                if (":" in name and "::" not in name) or name == XLA_EVENT:
                    totals[name] += event.duration_ps * 1e-12
    return totals


def by_kind(seconds: dict) -> dict:
    """Op seconds summed by kind (`KINDS`, "xla", then "other")."""
    totals = collections.Counter()
    for name, value in seconds.items():
        totals[kind_of(name)] += value
    return dict(totals)


def profile(step, steps: int) -> dict:
    """Op seconds per step by op event over `steps` profiled calls of `step`."""
    with tempfile.TemporaryDirectory() as logdir:
        tf.profiler.experimental.start(logdir)
        for _ in range(steps):
            step()
        tf.profiler.experimental.stop()
        (path,) = glob.glob(os.path.join(logdir, "**", "*.xplane.pb"), recursive=True)
        with open(path, "rb") as f:
            seconds = op_seconds(f.read())
    return collections.Counter({name: value / steps for name, value in seconds.items()})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--input_size", type=int, default=112)
    parser.add_argument("--batch_size", type=int, default=8)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--output", help="also write the JSON here")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    shape = (args.input_size, args.input_size, 3)
    images = rng.uniform(0, 255, (args.batch_size, *shape)).astype("float32")
    labels = rng.integers(0, 1000, args.batch_size)
    builders = {
        "model_a": lambda: rectifier_zoo.model_a(input_shape=shape, seed=0),
        "vgg19": lambda: keras.applications.VGG19(weights=None, input_shape=shape),
    }
    machine = machine_info()
    per_op = {}
    for policy in ("float32", "mixed_bfloat16"):
        for name, build in builders.items():
            step = make_train_step(with_policy(policy, build), images, labels)
            step()  # trace and warm up
            step()
            per_op[f"{name}/{policy}"] = profile(step, args.steps)
            keras.backend.clear_session()
    rows = {key: by_kind(seconds) for key, seconds in per_op.items()}
    kinds = [kind for kind, _ in KINDS] + ["xla", "other"]
    print(f"op ms per step on {cpu_label(machine)} ({args.input_size}px, batch {args.batch_size})")
    print(f"{'kind':12s}" + "".join(f"{key:>26s}" for key in rows))
    for kind in kinds + ["total"]:
        cells = [
            sum(row.values()) if kind == "total" else row.get(kind, 0.0) for row in rows.values()
        ]
        print(f"{kind:12s}" + "".join(f"{1000 * cell:26.1f}" for cell in cells))
    for name in builders:
        f32, bf16 = rows[f"{name}/float32"], rows[f"{name}/mixed_bfloat16"]
        speedups = {k: f32.get(k, 0) / bf16[k] for k in kinds if bf16.get(k)}
        print(
            f"{name} bf16 speed-up by kind: "
            + ", ".join(f"{k} {v:.2f}x" for k, v in speedups.items())
        )
    slowest = {}
    for key, seconds in per_op.items():
        slowest[key] = dict(seconds.most_common(TOP_OPS))
        print(f"{key}: slowest ops (ms/step): ")
        for op, value in slowest[key].items():
            print(f"  {1000 * value:10.1f}  {op}")
    emit_json(
        {
            "benchmark": "op_profile",
            "machine": machine,
            "settings": vars(args),
            "op_seconds": rows,
            "slowest_ops": slowest,
        },
        args.output,
    )


if __name__ == "__main__":
    main()
