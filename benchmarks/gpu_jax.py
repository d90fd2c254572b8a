"""Training-step throughput and MFU of Models A, B, C on one accelerator, Keras on JAX.

    KERAS_BACKEND=jax python benchmarks/gpu_jax.py [--batch_size 64] [--output gpu.json]

Runs where TensorFlow is not installed (the lent GPU machines have JAX only): the core of
rectifier_zoo is pure Keras. For each model: a jitted training step (forward, loss, backward,
SGD + momentum) at 224x224 under `mixed_bfloat16`, timed after compilation; achieved FLOP/s =
3 x 2 x multiply-adds x batch / step time; MFU against the peak bf16 matmul FLOP/s measured on
the same device in the same run. Also Model A with ReLU against PReLU. `benchmarks/gpu_jax.sh`
is the device tool's entry point.
"""

import argparse
import os
import statistics
import time

os.environ.setdefault("KERAS_BACKEND", "jax")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import keras  # noqa: E402
import numpy as np  # noqa: E402
from common import emit_json  # noqa: E402

import rectifier_zoo  # noqa: E402
from rectifier_zoo.info import count_multiply_adds  # noqa: E402


def peak_matmul_flops(size: int, repeats: int) -> float:
    a = jnp.asarray(np.random.default_rng(0).normal(size=(size, size)), dtype=jnp.bfloat16)
    product = jax.jit(lambda x: x @ x)
    product(a).block_until_ready()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        product(a).block_until_ready()
        times.append(time.perf_counter() - start)
    return 2 * size**3 / statistics.median(times)


def train_step_seconds(model: keras.Model, batch_size: int, input_size: int, steps: int) -> float:
    """Median seconds of a jitted stateless training step."""
    optimizer = keras.optimizers.SGD(learning_rate=1e-3, momentum=0.9)
    optimizer.build(model.trainable_variables)
    loss_fn = keras.losses.SparseCategoricalCrossentropy()
    rng = np.random.default_rng(0)
    images = jnp.asarray(rng.uniform(0, 255, (batch_size, input_size, input_size, 3)), "float32")
    labels = jnp.asarray(rng.integers(0, model.output_shape[-1], batch_size))

    def loss_and_updates(trainable, non_trainable):
        outputs, non_trainable = model.stateless_call(
            trainable, non_trainable, images, training=True
        )
        return loss_fn(labels, outputs), non_trainable

    grad_fn = jax.value_and_grad(loss_and_updates, has_aux=True)

    @jax.jit
    def step(state):
        trainable, non_trainable, optimizer_vars = state
        (loss, non_trainable), grads = grad_fn(trainable, non_trainable)
        trainable, optimizer_vars = optimizer.stateless_apply(optimizer_vars, grads, trainable)
        return loss, (trainable, non_trainable, optimizer_vars)

    state = (
        [v.value for v in model.trainable_variables],
        [v.value for v in model.non_trainable_variables],
        [v.value for v in optimizer.variables],
    )
    loss, state = step(state)  # compile
    loss.block_until_ready()
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        loss, state = step(state)
        loss.block_until_ready()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="model_a,model_b,model_c")
    parser.add_argument("--batch_size", type=int, default=64)
    parser.add_argument("--input_size", type=int, default=224)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--matmul_size", type=int, default=8192)
    parser.add_argument("--precision", default="mixed_bfloat16")
    parser.add_argument("--output", default=None)
    args = parser.parse_args()
    device = jax.devices()[0]
    peak = peak_matmul_flops(args.matmul_size, 10)
    print(f"device {device.device_kind}; peak bf16 matmul {peak / 1e12:.1f} TFLOP/s", flush=True)
    keras.config.set_dtype_policy(args.precision)
    variants = [(name, "prelu") for name in args.models.split(",")]
    if "model_a" in args.models:
        variants.append(("model_a", "relu"))
    rows = []
    for name, activation in variants:
        shape = (args.input_size, args.input_size, 3)
        model = rectifier_zoo.get_model(name, input_shape=shape, activation=activation, seed=0)
        seconds = train_step_seconds(model, args.batch_size, args.input_size, args.steps)
        flops = 6 * count_multiply_adds(model) * args.batch_size / seconds
        rows.append(
            {
                "model": name,
                "activation": activation,
                "step_seconds": seconds,
                "images_per_sec": args.batch_size / seconds,
                "achieved_flops": flops,
                "mfu": flops / peak,
            }
        )
        print(
            f"{name:8s} {activation:5s} {seconds * 1000:8.1f} ms/step "
            f"{args.batch_size / seconds:8.1f} img/s  MFU {flops / peak:.3f}",
            flush=True,
        )
        del model
        keras.backend.clear_session()
    by_key = {(r["model"], r["activation"]): r for r in rows}
    result = {
        "benchmark": "gpu_jax",
        "device": device.device_kind,
        "platform": device.platform,
        "versions": {"jax": jax.__version__, "keras": keras.__version__},
        "settings": vars(args),
        "peak_bf16_matmul_flops": peak,
        "rows": rows,
    }
    if ("model_a", "relu") in by_key and ("model_a", "prelu") in by_key:
        result["prelu_vs_relu"] = (
            by_key[("model_a", "prelu")]["step_seconds"]
            / by_key[("model_a", "relu")]["step_seconds"]
        )
        print(f"Model A PReLU / ReLU step time: {result['prelu_vs_relu']:.3f}")
    emit_json(result, args.output)


if __name__ == "__main__":
    main()
