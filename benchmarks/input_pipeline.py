"""Speed of the training transform: fused decode-and-crop against the alternatives.

    python benchmarks/input_pipeline.py [--images 64] [--repeats 7] [--output results.json]

Writes ImageNet-sized JPEGs (about 500x375, ~100 kB like ImageNet) into a temporary folder,
then measures images per CPU-second on one thread (one tf.data thread, one intra-op thread) for:
  fused:    `tf.image.decode_and_crop_jpeg` of the scale-jitter window, resize, flip, lighting;
  unfused:  decode the whole JPEG, slice the same window, the same resize, flip, lighting;
  keras_layers: what a user would write with Keras's own preprocessing layers on decoded
            images: `tf.io.decode_jpeg`, `keras.layers.Resizing(256, 256,
            crop_to_aspect_ratio=True)`, `RandomCrop(224, 224)`, `RandomFlip("horizontal")`
            (a fixed s = 256, the cheapest scale, and no lighting: in Keras's favour);
  fused_integer_fast: `fused` with `dct_method="INTEGER_FAST"` in the JPEG decode (patched in
            for this benchmark only; the package decodes with TensorFlow's default);
  keras_cv: a keras-cv `JitteredResize` pipeline, only if keras_cv imports.
Variants run in the same process, in interleaved repetitions; the median is reported, and each
ratio's [min, max] over the repetitions (`*_range`) as its spread. A last row
runs the full `make_dataset` pipeline on the folder with all cores. Prints a table and one JSON
line; `--output` also writes the JSON.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import os
import platform
import statistics
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from common import cpu_info, cpu_label, emit_json, ratio_range  # noqa: E402
from targets import TARGETS  # noqa: E402

from rectifier_zoo import data  # noqa: E402
from rectifier_zoo.data import testing  # noqa: E402

TARGET_VS_KERAS = TARGETS["input_pipeline.fused_vs_keras_layers"]
TARGET_PER_CORE = TARGETS["input_pipeline.images_per_sec_per_core"]


def _write_images(folder: str, count: int, seed: int) -> list[bytes]:
    """ImageNet-like JPEGs: mostly 500x375 landscape, some portrait and other sizes."""
    rng = np.random.default_rng(seed)
    shapes = [(375, 500), (333, 500), (500, 375), (400, 500), (375, 500), (500, 333)]
    encoded = []
    os.makedirs(os.path.join(folder, "train", "class_a"), exist_ok=True)
    for i in range(count):
        height, width = shapes[i % len(shapes)]
        image = testing.smooth_image(int(rng.integers(1 << 30)), height, width)
        # Photo-like detail at several scales, so the JPEG has ImageNet's typical size (~100 kB).
        detail = rng.normal(0, 18, size=(height // 2, width // 2, 3))
        image = np.clip(
            image + tf.image.resize(detail, [height, width], method="nearest").numpy(), 0, 255
        ).astype(np.uint8)
        jpeg = testing.encode_jpeg(image, quality=90)
        encoded.append(jpeg)
        with open(os.path.join(folder, "train", "class_a", f"img_{i:04d}.JPEG"), "wb") as f:
            f.write(jpeg)
    return encoded


def _single_core_dataset(encoded: list[bytes], fn) -> tf.data.Dataset:
    ds = tf.data.Dataset.from_tensor_slices(encoded).enumerate()
    ds = ds.map(fn)  # sequential: one image at a time
    # Batches, as a trainer takes them; also keeps the Python loop's per-element cost out.
    ds = ds.batch(16)
    options = tf.data.Options()
    options.threading.private_threadpool_size = 1
    options.autotune.enabled = False
    return ds.with_options(options)


def _time_pass(ds: tf.data.Dataset, count: int) -> tuple[float, float]:
    """Images per CPU-second of this process, and per wall-clock second.

    CPU time is the per-core figure: it does not drop when other processes share the cores
    (wall time on a busy 2-core machine does).
    """
    cpu_start, wall_start = time.process_time(), time.perf_counter()
    for _ in ds:
        pass
    return count / (time.process_time() - cpu_start), count / (time.perf_counter() - wall_start)


@contextlib.contextmanager
def _dct_method(method: str):
    """While tracing inside this context, `tf.image.decode_and_crop_jpeg` decodes with
    `dct_method=method` (the package's fused decode calls it; tf.data traces at `map`)."""
    original = tf.image.decode_and_crop_jpeg
    tf.image.decode_and_crop_jpeg = functools.partial(original, dct_method=method)
    try:
        yield
    finally:
        tf.image.decode_and_crop_jpeg = original


def _keras_layers_variant(config: data.TransformConfig):
    """Keras's own preprocessing layers on the decoded image: the user's alternative."""
    import keras

    size = config.crop_size
    resize = keras.layers.Resizing(256, 256, crop_to_aspect_ratio=True)
    crop = keras.layers.RandomCrop(size, size, seed=0)
    flip = keras.layers.RandomFlip("horizontal", seed=0)

    def fn(index, image_bytes):
        image = tf.io.decode_jpeg(image_bytes, channels=3)
        image = resize(tf.cast(image, tf.float32))
        image = crop(image, training=True)
        return flip(image, training=True)

    return fn


def _keras_cv_variant(config: data.TransformConfig):
    try:
        import keras_cv  # noqa: F401
    except Exception as error:  # only in the optional `bench` extra; any import failure skips it
        print(f"keras_cv: skipped (keras_cv does not import: {type(error).__name__}: {error})")
        return None
    layer = keras_cv.layers.JitteredResize(
        target_size=(config.crop_size, config.crop_size),
        scale_factor=(config.min_scale / 256.0 * 0.875, config.max_scale / 256.0 * 0.875),
        bounding_box_format="xywh",
    )

    def fn(index, image_bytes):
        image = tf.io.decode_jpeg(image_bytes, channels=3)
        image = layer(tf.cast(image, tf.float32))
        return tf.image.flip_left_right(image)

    return fn


def run(num_images: int, repeats: int, output: str | None) -> dict:
    # One intra-op thread, so a transform uses one core at a time.
    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    config = data.TransformConfig()  # the paper's sizes: s in [256, 512], 224 crops
    with tempfile.TemporaryDirectory() as folder:
        encoded = _write_images(folder, num_images, seed=0)
        mean_kb = sum(map(len, encoded)) / len(encoded) / 1024
        variants = {
            "fused": lambda i, b: data.train_transform(b, tf.stack([0, i]), config, decode="jpeg"),
            "unfused": lambda i, b: data.train_transform(
                b, tf.stack([0, i]), config, decode="full"
            ),
        }
        variants["keras_layers"] = _keras_layers_variant(config)
        keras_cv_fn = _keras_cv_variant(config)
        if keras_cv_fn is not None:
            variants["keras_cv_jittered_resize"] = keras_cv_fn
        datasets = {name: _single_core_dataset(encoded, fn) for name, fn in variants.items()}
        with _dct_method("INTEGER_FAST"):
            datasets["fused_integer_fast"] = _single_core_dataset(encoded, variants["fused"])
        for ds in datasets.values():  # warm-up: tracing and first allocations
            _time_pass(ds, num_images)
        rates = {name: [] for name in datasets}
        wall_rates = {name: [] for name in datasets}
        for _ in range(repeats):
            for name, ds in datasets.items():  # interleaved, so drift hits all variants alike
                cpu_rate, wall_rate = _time_pass(ds, num_images)
                rates[name].append(cpu_rate)
                wall_rates[name].append(wall_rate)
        medians = {name: statistics.median(values) for name, values in rates.items()}
        wall_medians = {name: statistics.median(values) for name, values in wall_rates.items()}

        # The whole pipeline (file reads, parallel decode, batching) on all cores.
        cores = os.cpu_count() or 1
        source = data.FolderSource(folder)
        ds = data.make_dataset(
            source, "train", is_training=True, global_batch_size=32, config=config, seed=0
        )
        batches = max(4, 3 * num_images // 32)
        iterator = iter(ds)
        next(iterator)
        cpu_start, wall_start = time.process_time(), time.perf_counter()
        for _ in range(batches):
            next(iterator)
        pipeline_cpu_rate = batches * 32 / (time.process_time() - cpu_start)
        pipeline_rate = batches * 32 / (time.perf_counter() - wall_start)
        load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None

    speedup = medians["fused"] / medians["unfused"]
    vs_keras = medians["fused"] / medians["keras_layers"]
    integer_fast = medians["fused_integer_fast"] / medians["fused"]
    cpu = cpu_info()
    result = {
        "benchmark": "input_pipeline",
        "transform": "train (s in [256, 512], 224 crop, flip, PCA lighting)",
        "images": num_images,
        "mean_jpeg_kb": round(mean_kb, 1),
        "repeats": repeats,
        "images_per_second_per_core": {k: round(v, 1) for k, v in medians.items()},
        "images_per_wall_second_one_thread": {k: round(v, 1) for k, v in wall_medians.items()},
        "all_repeats_per_core": {k: [round(v, 1) for v in values] for k, values in rates.items()},
        "fused_speedup": round(speedup, 3),
        "fused_speedup_range": ratio_range(rates["fused"], rates["unfused"]),
        "fused_vs_keras_layers": round(vs_keras, 3),
        "fused_vs_keras_layers_range": ratio_range(rates["fused"], rates["keras_layers"]),
        "integer_fast_vs_default": round(integer_fast, 3),
        "integer_fast_vs_default_range": ratio_range(rates["fused_integer_fast"], rates["fused"]),
        "images_per_second_per_core_range": {
            k: [min(values), max(values)] for k, values in rates.items()
        },
        "pipeline_images_per_second": round(pipeline_rate, 1),
        "pipeline_images_per_cpu_second": round(pipeline_cpu_rate, 1),
        "load_average_1min": load,
        "targets": {
            "fused_vs_keras_layers": float(TARGET_VS_KERAS.bound),
            "per_core": float(TARGET_PER_CORE.bound),
        },
        "targets_met": TARGET_VS_KERAS.met(vs_keras) and TARGET_PER_CORE.met(medians["fused"]),
        "machine": {
            **cpu,
            "cpu_count": cores,
            "processor": platform.processor() or platform.machine(),
            "python": platform.python_version(),
            "tensorflow": tf.__version__,
        },
    }
    print(
        f"Training transform on {num_images} JPEGs ~500x375 ({mean_kb:.0f} kB), "
        f"median of {repeats} interleaved repeats, 1 thread, on {cpu_label(cpu)}:"
    )
    print(f"{'variant':<26}{'images/s/core':>14}{'vs unfused':>11}{'wall images/s':>15}")
    for name, rate in medians.items():
        print(
            f"{name:<26}{rate:>14.1f}{rate / medians['unfused']:>10.2f}x{wall_medians[name]:>15.1f}"
        )
    print(
        f"{'make_dataset, ' + str(cores) + ' cores':<26}{pipeline_cpu_rate:>14.1f}{'':>11}"
        f"{pipeline_rate:>15.1f}"
    )
    print(
        "images/s/core = images per CPU-second of the process; wall = per elapsed second "
        f"(1-minute load average {load})"
    )
    print(
        f"fused vs unfused {speedup:.2f}x (no target), INTEGER_FAST vs default DCT "
        f"{integer_fast:.2f}x; targets: fused {TARGET_VS_KERAS}x Keras layers ({vs_keras:.2f}x) "
        f"and {TARGET_PER_CORE} images/s/core: {'met' if result['targets_met'] else 'NOT met'}"
    )
    emit_json(result, output)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=64, help="JPEGs per timed pass")
    parser.add_argument("--repeats", type=int, default=7, help="interleaved timed passes")
    parser.add_argument("--output", default=None, help="write the JSON result here")
    args = parser.parse_args(argv)
    if args.images < 1 or args.repeats < 1:
        parser.error(
            f"--images and --repeats must be >= 1. Received: {args.images}, {args.repeats}"
        )
    run(args.images, args.repeats, args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
