"""Validation top-1 of `serving_default` with and without DCT-domain JPEG downscaling.

The serving graph decodes a JPEG whose shorter side is at least twice the eval resize at 1/2,
1/4 or 1/8 scale (libjpeg's scaled IDCT) instead of decoding it whole and resizing. This checks
that it changes no decisions that matter: a small PReLU net (`model_tiny`) is trained with
`model.fit` on the built-in synthetic set's evaluation views, exported twice (downscaling on and
off), and both exports score the validation images as they are and upscaled `--upscale` times
(re-encoded as JPEG, so they take the downscaled path: 64-160 px become 512-1280 px).

    python benchmarks/jpeg_downscale_accuracy.py [--epochs 15] [--upscale 8] [--output out.json]

Target: top-1 with and without downscaling equal within 0.5 points.
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
from rectifier_zoo import data, export  # noqa: E402
from rectifier_zoo.data import testing, transforms  # noqa: E402

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


def top1_error(path: str, encoded: list[bytes], labels: np.ndarray, batch: int = 25) -> float:
    serve = tf.saved_model.load(path).signatures["serving_default"]
    predictions = []
    for start in range(0, len(encoded), batch):
        chunk = tf.constant(encoded[start : start + batch])
        predictions.append(serve(images=chunk)["classes"].numpy()[:, 0])
    return float(np.mean(np.concatenate(predictions) != labels))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--upscale", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", default=None, help="JSON file")
    args = parser.parse_args()
    start = time.perf_counter()
    keras.utils.set_random_seed(args.seed)
    source = data.get_source("synthetic")
    train_bytes, train_labels = read_split(source, "train")
    val_bytes, val_labels = read_split(source, "validation")
    model = rectifier_zoo.model_tiny(classes=source.num_classes, seed=args.seed)
    model.compile(
        optimizer=keras.optimizers.Adam(1e-3),  # any decent classifier will do here
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    model.fit(views(train_bytes), train_labels, batch_size=32, epochs=args.epochs, verbose=0)
    work = tempfile.mkdtemp(prefix="rectifier_zoo_downscale_")
    names = list(source.class_names)
    exports = {
        downscale: export.export_model(
            model,
            os.path.join(work, str(downscale)),
            class_names=names,
            crop_size=CROP,
            eval_resize=RESIZE,
            jpeg_downscale=downscale,
        )  # fmt: skip
        for downscale in (True, False)
    }
    large = upscaled(val_bytes, args.upscale)
    rows = {}
    for label, encoded in [("original", val_bytes), (f"upscaled_x{args.upscale}", large)]:
        rows[label] = {
            "downscale_on": top1_error(exports[True], encoded, val_labels),
            "downscale_off": top1_error(exports[False], encoded, val_labels),
        }
        rows[label]["difference_points"] = 100 * abs(
            rows[label]["downscale_on"] - rows[label]["downscale_off"]
        )
    result = {
        "benchmark": "jpeg_downscale_accuracy",
        "model": "model_tiny",
        "train": {"images": len(train_bytes), "epochs": args.epochs, "seed": args.seed},
        "validation_images": len(val_bytes),
        "top1_error": rows,
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, TF {tf.__version__}",
        "seconds": time.perf_counter() - start,
    }
    print(f"model_tiny, {args.epochs} epochs on {len(train_bytes)} synthetic images")
    print(f"{'validation images':<22} {'top-1 % on':>11} {'top-1 % off':>12} {'diff pts':>9}")
    for label, row in rows.items():
        print(
            f"{label:<22} {100 * row['downscale_on']:>11.2f} {100 * row['downscale_off']:>12.2f} "
            f"{row['difference_points']:>9.2f}"
        )
    emit_json(result, args.output)


if __name__ == "__main__":
    main()
