"""Training-step throughput and MFU of Models A, B, C on one accelerator, Keras on JAX.

    KERAS_BACKEND=jax python benchmarks/gpu_jax.py [--batch_size 64] [--output gpu.json]

Runs where TensorFlow is not installed (the lent GPU machines have JAX only): the core of
rectifier_zoo is pure Keras. For each model: a jitted training step (forward, loss, backward,
SGD + momentum) at 224x224 under `mixed_bfloat16`, timed after compilation; achieved FLOP/s =
3 x 2 x multiply-adds x batch / step time; MFU against the peak bf16 matmul FLOP/s measured on
the same device in the same run. Also Model A with ReLU, and with PReLU whose slope is frozen
at 0 (a ReLU in value, built from the PReLU layer): every step is compiled first, then all are
timed in interleaved repetitions, so an order effect cannot pass for a speed difference. Each
row lists the cuDNN/cuBLAS custom calls of its compiled step. `benchmarks/gpu_jax.sh` is the
device tool's entry point.
"""

import argparse
import collections
import functools
import os
import re
import statistics
import time

os.environ.setdefault("KERAS_BACKEND", "jax")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import keras  # noqa: E402
import numpy as np  # noqa: E402
from common import emit_json, interleaved_times, ratio_range  # noqa: E402

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


def compiled_train_step(model: keras.Model, batch_size: int, input_size: int):
    """A jitted stateless training step, compiled, as a function that runs one step and blocks
    until it is done, and how many times each custom call (cuDNN convolutions, cuBLAS matmuls)
    appears in the compiled step. The batch is an argument of the step, as in training: a batch
    closed over would be a constant that XLA folds."""
    optimizer = keras.optimizers.SGD(learning_rate=1e-3, momentum=0.9)
    optimizer.build(model.trainable_variables)
    loss_fn = keras.losses.SparseCategoricalCrossentropy()
    rng = np.random.default_rng(0)
    images = jnp.asarray(rng.uniform(0, 255, (batch_size, input_size, input_size, 3)), "float32")
    labels = jnp.asarray(rng.integers(0, model.output_shape[-1], batch_size))

    def loss_and_updates(trainable, non_trainable, images, labels):
        outputs, non_trainable = model.stateless_call(
            trainable, non_trainable, images, training=True
        )
        return loss_fn(labels, outputs), non_trainable

    grad_fn = jax.value_and_grad(loss_and_updates, has_aux=True)

    @functools.partial(jax.jit, donate_argnums=0)
    def step(state, images, labels):
        trainable, non_trainable, optimizer_vars = state
        (loss, non_trainable), grads = grad_fn(trainable, non_trainable, images, labels)
        trainable, optimizer_vars = optimizer.stateless_apply(optimizer_vars, grads, trainable)
        return loss, (trainable, non_trainable, optimizer_vars)

    state = [
        [jnp.array(v.value) for v in model.trainable_variables],
        [jnp.array(v.value) for v in model.non_trainable_variables],
        [jnp.array(v.value) for v in optimizer.variables],
    ]
    compiled = step.lower(state, images, labels).compile()
    calls = collections.Counter(re.findall(r'custom_call_target="([^"]+)"', compiled.as_text()))

    def run():
        loss, state[:] = compiled(state, images, labels)
        loss.block_until_ready()

    run()  # warm-up: the first call also allocates
    return run, dict(calls)


def build(name: str, variant: str, input_size: int) -> keras.Model:
    """`variant` is "prelu", "relu", or "relu_as_prelu": PReLU layers with the slope frozen at
    0, a ReLU in value that XLA cannot pattern-match into cuDNN's fused conv + bias + ReLU."""
    shape = (input_size, input_size, 3)
    activation = "relu" if variant == "relu" else "prelu"
    model = rectifier_zoo.get_model(name, input_shape=shape, activation=activation, seed=0)
    if variant == "relu_as_prelu":
        for layer in model.layers:
            if isinstance(layer, rectifier_zoo.PReLU):
                layer.negative_slope.assign(np.zeros(layer.negative_slope.shape))
                layer.trainable = False
    return model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--variants",
        default="model_a:prelu,model_b:prelu,model_c:prelu,model_a:relu,model_a:relu_as_prelu",
        help="model:variant pairs; variant is prelu, relu or relu_as_prelu",
    )
    parser.add_argument("--batch_size", type=int, default=64)
    parser.add_argument("--input_size", type=int, default=224)
    parser.add_argument("--steps", type=int, default=5, help="steps per timed repetition")
    parser.add_argument("--repeats", type=int, default=5, help="interleaved repetitions")
    parser.add_argument("--matmul_size", type=int, default=8192)
    parser.add_argument("--precision", default="mixed_bfloat16")
    parser.add_argument("--output", default=None)
    args = parser.parse_args()
    device = jax.devices()[0]
    peak = peak_matmul_flops(args.matmul_size, 10)
    print(f"device {device.device_kind}; peak bf16 matmul {peak / 1e12:.1f} TFLOP/s", flush=True)
    keras.config.set_dtype_policy(args.precision)
    variants = [tuple(pair.split(":")) for pair in args.variants.split(",")]
    steps, calls, multiply_adds = {}, {}, {}
    for name, variant in variants:
        # Every step is compiled before any is timed, and the timing interleaves them, so an
        # order effect (clocks, allocator, another tenant) hits them alike.
        model = build(name, variant, args.input_size)
        multiply_adds[name] = count_multiply_adds(model)
        steps[(name, variant)], calls[(name, variant)] = compiled_train_step(
            model, args.batch_size, args.input_size
        )
        print(f"compiled {name} {variant}: {calls[(name, variant)]}", flush=True)
    times = interleaved_times(steps, args.repeats, args.steps)
    rows = []
    for (name, variant), values in times.items():
        seconds = statistics.median(values)
        flops = 6 * multiply_adds[name] * args.batch_size / seconds
        rows.append(
            {
                "model": name,
                "activation": variant,
                "step_seconds": seconds,
                "step_seconds_range": [min(values), max(values)],
                "images_per_sec": args.batch_size / seconds,
                "achieved_flops": flops,
                "mfu": flops / peak,
                "custom_calls": calls[(name, variant)],
            }
        )
        print(
            f"{name:8s} {variant:13s} {seconds * 1000:8.1f} ms/step "
            f"({min(values) * 1000:.1f}-{max(values) * 1000:.1f}) "
            f"{args.batch_size / seconds:8.1f} img/s  MFU {flops / peak:.3f}",
            flush=True,
        )
    result = {
        "benchmark": "gpu_jax",
        "device": device.device_kind,
        "platform": device.platform,
        "versions": {"jax": jax.__version__, "keras": keras.__version__},
        "settings": vars(args),
        "peak_bf16_matmul_flops": peak,
        "rows": rows,
    }
    prelu = times.get(("model_a", "prelu"))
    for other in ("relu", "relu_as_prelu"):
        if prelu and ("model_a", other) in times:
            key = f"prelu_vs_{other}"
            result[key] = statistics.median(prelu) / statistics.median(times[("model_a", other)])
            result[key + "_range"] = ratio_range(prelu, times[("model_a", other)])
            print(f"Model A step time, PReLU / {other}: {result[key]:.3f}")
    emit_json(result, args.output)


if __name__ == "__main__":
    main()
