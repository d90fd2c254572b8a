"""What the benchmark scripts share: the machine's description, interleaved timing, and a
compiled TensorFlow training step."""

import os
import platform
import statistics
import time

from rectifier_zoo.machine import cpu_info, cpu_label  # noqa: F401 (the benchmarks' names)


def machine_info() -> dict:
    """CPU model (and AMX or not), cores, GPU (if TensorFlow sees one) and library versions, for
    every result row."""
    info = cpu_info()
    info.update(cores=os.cpu_count(), python=platform.python_version())
    import keras

    info.update(keras=keras.__version__, backend=keras.backend.backend())
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        info["tensorflow"] = tf.__version__
        gpus = tf.config.list_physical_devices("GPU")
        info["gpu"] = ", ".join(gpu.name for gpu in gpus) or None
    return info


def interleaved_times(functions: dict, repeats: int, calls: int = 1) -> dict:
    """Seconds per call of each function in each of `repeats` interleaved repetitions.

    Each repetition times every function once, in turn, so a drift in machine speed (another
    process, thermal limits) hits all of them alike. Each function must block until its work is
    done (e.g. return after reading the result back).
    """
    times = {name: [] for name in functions}
    for _ in range(repeats):
        for name, function in functions.items():
            start = time.perf_counter()
            for _ in range(calls):
                function()
            times[name].append((time.perf_counter() - start) / calls)
    return times


def interleaved_medians(functions: dict, repeats: int, calls: int = 1) -> dict:
    """Median seconds per call of each function, timed in interleaved repetitions."""
    times = interleaved_times(functions, repeats, calls)
    return {name: statistics.median(values) for name, values in times.items()}


def ratio_range(numerators: list, denominators: list) -> list:
    """[min, max] of the per-repetition ratios of two interleaved series: the spread of a
    ratio figure (its median is the figure)."""
    ratios = [a / b for a, b in zip(numerators, denominators, strict=True)]
    return [min(ratios), max(ratios)]


def relative_spread(value: float, value_range) -> float | None:
    """(max - min) / value: the spread of a figure over its repetitions, relative to it."""
    if not value_range or not value:
        return None
    return (value_range[1] - value_range[0]) / abs(value)


def with_policy(policy: str, build):
    """`build()` under the Keras dtype policy `policy` (e.g. "mixed_bfloat16"); the previous
    policy is restored after."""
    import keras

    previous = keras.config.dtype_policy().name
    keras.config.set_dtype_policy(policy)
    try:
        return build()
    finally:
        keras.config.set_dtype_policy(previous)


def make_train_step(model, images, labels, jit_compile: bool = False, optimizer=None):
    """A `tf.function` training step (forward, loss, backward, update) that returns after the
    update has run (it reads the loss back). The update is Keras's SGD with momentum 0.9 unless
    an `optimizer` is given."""
    import keras
    import tensorflow as tf

    if optimizer is None:
        optimizer = keras.optimizers.SGD(learning_rate=1e-3, momentum=0.9)
    optimizer.build(model.trainable_variables)
    loss_fn = keras.losses.SparseCategoricalCrossentropy()

    @tf.function(jit_compile=jit_compile)
    def step():
        with tf.GradientTape() as tape:
            loss = loss_fn(labels, model(images, training=True))
        optimizer.apply(tape.gradient(loss, model.trainable_variables), model.trainable_variables)
        return loss

    def run():
        return float(step())

    return run


def emit_json(result: dict, output: str | None) -> None:
    """Prints the result as one JSON line (what benchmarks/run.py reads) and writes it to
    `output` when given."""
    import json

    print(json.dumps(result))
    if output:
        with open(output, "w") as f:
            json.dump(result, f, indent=2)
