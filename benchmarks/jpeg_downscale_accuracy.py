"""Validation top-1 of `serving_default` with and without DCT-domain JPEG downscaling.

The serving graph decodes a JPEG whose shorter side is at least twice the eval resize at 1/2,
1/4 or 1/8 scale (libjpeg's scaled IDCT) instead of decoding it whole and resizing. This checks
that it changes no decisions that matter: a small PReLU net (`model_tiny`) is trained with
`model.fit` on the built-in synthetic set's evaluation views, exported twice (downscaling on and
off), and both exports score the validation images as they are and upscaled `--upscale` times
(re-encoded as JPEG, so they take the downscaled path: 64-160 px become 512-1280 px).

    python benchmarks/jpeg_downscale_accuracy.py [--epochs 15] [--upscale 8] [--seeds 0 1 2]

Target (`benchmarks/targets.py`): top-1 with and without downscaling equal within 0.5 points.
With 500 validation images one image is 0.2 points, so the number of changed predictions is
printed too.
"""

import argparse
import os
import platform
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from common import emit_json  # noqa: E402

import rectifier_zoo  # noqa: E402
from rectifier_zoo import data  # noqa: E402
from rectifier_zoo.data import testing, transforms  # noqa: E402
from rectifier_zoo.serving import export  # noqa: E402

CROP, RESIZE = 64, 72


def read_split(source, split: str) -> tuple[list[bytes], np.ndarray]:
    files, labels = source.files(split)
    encoded = []
    for path in files:
        with open(path, "rb") as f:
            encoded.append(f.read())
    return encoded, np.asarray(labels)


def views(encoded: list[bytes]) -> np.ndarray:
    config = transforms.TransformConfig(
        crop_size=CROP, min_scale=CROP, max_scale=CROP, eval_resize=RESIZE
    )
    ds = tf.data.Dataset.from_tensor_slices(encoded).map(
        lambda image: transforms.eval_transform(image, config), num_parallel_calls=tf.data.AUTOTUNE
    )
    return np.stack(list(ds.as_numpy_iterator()))


def upscaled(encoded: list[bytes], factor: int) -> list[bytes]:
    out = []
    for image_bytes in encoded:
        image = tf.io.decode_image(image_bytes, channels=3, expand_animations=False)
        size = tf.shape(image)[:2] * factor
        big = tf.cast(tf.round(tf.image.resize(tf.cast(image, tf.float32), size)), tf.uint8)
        out.append(testing.encode_jpeg(np.clip(big.numpy(), 0, 255), quality=90))
    return out


def predictions(path: str, encoded: list[bytes], batch: int = 25) -> np.ndarray:
    serve = tf.saved_model.load(path).signatures["serving_default"]
    top1 = []
    for start in range(0, len(encoded), batch):
        chunk = tf.constant(encoded[start : start + batch])
        top1.append(serve(images=chunk)["classes"].numpy()[:, 0])
    return np.concatenate(top1)


def one_seed(seed, epochs, train, val, large, names, work) -> dict:
    """Trains a model with `seed`, exports it twice, and compares the two on both sets."""
    keras.utils.set_random_seed(seed)
    model = rectifier_zoo.model_tiny(classes=len(names), seed=seed)
    model.compile(
        optimizer=keras.optimizers.Adam(1e-3),  # any decent classifier will do here
        loss="sparse_categorical_crossentropy",
    )
    model.fit(views(train[0]), train[1], batch_size=32, epochs=epochs, verbose=0)
    exports = {
        downscale: export.export_model(
            model,
            os.path.join(work, f"{seed}_{downscale}"),
            class_names=names,
            crop_size=CROP,
            eval_resize=RESIZE,
            jpeg_downscale=downscale,
        )  # fmt: skip
        for downscale in (True, False)
    }
    rows = {}
    for label, encoded in [("original", val[0]), ("upscaled", large)]:
        on, off = (predictions(exports[d], encoded) for d in (True, False))
        rows[label] = {
            "top1_error_downscale_on": float(np.mean(on != val[1])),
            "top1_error_downscale_off": float(np.mean(off != val[1])),
            "difference_points": 100 * abs(float(np.mean(on != val[1]) - np.mean(off != val[1]))),
            "changed_predictions": int(np.sum(on != off)),
        }
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--upscale", type=int, default=8)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--output", default=None, help="JSON file")
    args = parser.parse_args()
    start = time.perf_counter()
    source = data.get_source("synthetic")
    train = read_split(source, "train")
    val = read_split(source, "validation")
    large = upscaled(val[0], args.upscale)
    work = tempfile.mkdtemp(prefix="rectifier_zoo_downscale_")
    names = list(source.class_names)
    seeds = {
        seed: one_seed(seed, args.epochs, train, val, large, names, work) for seed in args.seeds
    }
    result = {
        "benchmark": "jpeg_downscale_accuracy",
        "model": "model_tiny",
        "train": {"images": len(train[0]), "epochs": args.epochs, "optimizer": "Adam(1e-3)"},
        "validation_images": len(val[0]),
        "upscale": args.upscale,
        "seeds": seeds,
        "max_difference_points": max(
            row["difference_points"] for rows in seeds.values() for row in rows.values()
        ),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, TF {tf.__version__}",
        "seconds": time.perf_counter() - start,
    }
    print(f"model_tiny, {args.epochs} epochs on {len(train[0])} synthetic images, per seed:")
    print(
        f"{'seed':>4} {'validation images':<18} {'top-1 % on':>10} {'top-1 % off':>11} "
        f"{'diff pts':>8} {'changed':>7}"
    )
    for seed, rows in seeds.items():
        for label, row in rows.items():
            label = f"x{args.upscale} upscaled" if label == "upscaled" else label
            print(
                f"{seed:>4} {label:<18} {100 * row['top1_error_downscale_on']:>10.2f} "
                f"{100 * row['top1_error_downscale_off']:>11.2f} "
                f"{row['difference_points']:>8.2f} {row['changed_predictions']:>7d}"
            )
    emit_json(result, args.output)


if __name__ == "__main__":
    main()
