"""The bundled evaluator: test views, ensembles of exported SavedModels, top-1 / top-5 error.

    from rectifier_zoo import data
    from rectifier_zoo.serving import evaluation
    result = evaluation.evaluate(["exported_models/model_a/3", "exported_models/model_b/1"],
                                 data.get_source("imagenet2012"), protocol="dense")
    evaluation.print_table(result); evaluation.write_results(result, "eval.json")

It needs nothing but the SavedModels (`rectifier_zoo.export`): `predict_images` scores the
`center` and `ten_view` crops, `dense` the paper's multi-view testing on feature maps. Protocols
(the paper's Sec. 2.3, "Testing", and the 10-view testing of Sec. 3):

- `center`: shorter side 256 (the export's `eval_resize`), centre 224 crop;
- `ten_view`: shorter side 256, the 4 corner and the centre 224 crops plus their mirrors;
- `dense`: at each scale (default 256, 384, 480) the whole image, shorter side s, scored by
  every 14x14 window of the last conv map, and the same on the mirror; all scores averaged.

Several scales with `center` / `ten_view` average those views over the scales. An ensemble
averages its members' probabilities (optionally weighted); every image is decoded once for all
members, and the members must agree on the class list.
"""

import csv
import dataclasses
import json
import os
import platform
import sys
import time
from collections.abc import Sequence

import numpy as np
import tensorflow as tf

from rectifier_zoo.data import sources as sources_lib
from rectifier_zoo.data import transforms
from rectifier_zoo.serving import export

PROTOCOLS = ("center", "ten_view", "dense")
DEFAULT_DENSE_SCALES = (256, 384, 480)
_ENDPOINTS = {"center": "predict_images", "ten_view": "predict_images", "dense": "dense"}
CSV_FIELDS = (
    "model",
    "role",
    "weight",
    "protocol",
    "scales",
    "crop_size",
    "top1_error",
    "top5_error",
    "images",
    "skipped_images",
    "seconds",
    "images_per_second",
    "machine",
)


class EvaluationError(ValueError):
    """A problem with the evaluator's inputs, reported as one line."""


@dataclasses.dataclass
class Member:
    """One loaded SavedModel of an ensemble."""

    path: str
    signature: object
    class_names: list[str]
    metadata: dict
    weight: float = 1.0
    seconds: float = 0.0


def load_member(path: str, protocol: str, weight: float = 1.0) -> Member:
    """Loads an exported SavedModel and checks that it has the protocol's endpoint."""
    if not os.path.isdir(path):
        raise EvaluationError(f"Model folder not found: {path}")
    if not os.path.exists(os.path.join(path, "saved_model.pb")):
        raise EvaluationError(f"Not a SavedModel (no saved_model.pb): {path}")
    endpoint = _ENDPOINTS[protocol]
    loaded = tf.saved_model.load(path)
    if endpoint not in loaded.signatures:
        raise EvaluationError(
            f"SavedModel {path} has no '{endpoint}' endpoint, which protocol {protocol!r} needs "
            f"(it has: {', '.join(sorted(loaded.signatures))}); re-export it with "
            "training/export.py"
        )
    try:
        class_names = export.read_class_names(path)
        metadata = export.read_metadata(path)
    except FileNotFoundError as error:
        raise EvaluationError(str(error)) from None
    member = Member(path, loaded.signatures[endpoint], class_names, metadata, float(weight))
    member.loaded = loaded  # keeps the variables alive while the signature is used
    return member


def top_k_correct(probabilities: np.ndarray, labels: np.ndarray, k: int) -> np.ndarray:
    """Whether each label is among the `k` highest probabilities of its row (ties count in)."""
    probabilities = np.asarray(probabilities)
    labels = np.asarray(labels).astype(np.int64)
    label_scores = probabilities[np.arange(len(labels)), labels]
    higher = (probabilities > label_scores[:, None]).sum(axis=1)
    return higher < k


def error_rates(probabilities: np.ndarray, labels: np.ndarray) -> dict:
    """`top1_error` and `top5_error` as fractions (top-5 is top-min(5, classes))."""
    k = min(5, np.asarray(probabilities).shape[1])
    return {
        "top1_error": float(1.0 - top_k_correct(probabilities, labels, 1).mean()),
        "top5_error": float(1.0 - top_k_correct(probabilities, labels, k).mean()),
    }


def resize_shorter_side(image: tf.Tensor, size: int) -> tf.Tensor:
    """Float32 image with its shorter side resized to `size` (bilinear, clipped to 0..255)."""
    shape = tf.cast(tf.shape(image)[:2], tf.float32)
    ratio = float(size) / tf.reduce_min(shape)
    new_shape = tf.cast(tf.round(shape * ratio), tf.int32)
    new_shape = tf.maximum(new_shape, size)
    resized = tf.image.resize(tf.cast(image, tf.float32), new_shape, method="bilinear")
    return tf.clip_by_value(resized, 0.0, 255.0)


def ten_view_crops(image: tf.Tensor, crop_size: int) -> tf.Tensor:
    """The 4 corner and the centre crops of an (already resized) image, then their mirrors.

    Returns:
        [10, crop_size, crop_size, channels]: top-left, top-right, bottom-left, bottom-right,
        centre, then the same five mirrored left-right.
    """
    height, width = tf.shape(image)[0], tf.shape(image)[1]
    bottom, right = height - crop_size, width - crop_size
    offsets = [(0, 0), (0, right), (bottom, 0), (bottom, right), (bottom // 2, right // 2)]
    crops = tf.stack([image[y : y + crop_size, x : x + crop_size] for y, x in offsets], axis=0)
    return tf.concat([crops, tf.reverse(crops, axis=[2])], axis=0)


def center_crop(image: tf.Tensor, crop_size: int) -> tf.Tensor:
    height, width = tf.shape(image)[0], tf.shape(image)[1]
    y, x = (height - crop_size) // 2, (width - crop_size) // 2
    return image[y : y + crop_size, x : x + crop_size]


def _decode(image_bytes):
    image = tf.io.decode_image(image_bytes, channels=3, expand_animations=False)
    image.set_shape([None, None, 3])
    return image


def make_view_dataset(
    source: sources_lib.Source,
    split: str,
    protocol: str,
    scales: Sequence[int],
    crop_size: int,
    batch_size: int,
    skipped: list[str] | None = None,
) -> tf.data.Dataset:
    """Decoded-once views of every image: `(views, labels)`.

    `center` / `ten_view`: views [batch, num_views, crop, crop, 3]; `dense`: one image per
    element, a tuple of one [1, H_s, W_s, 3] image per scale. Truncated files and files that
    are not images are dropped, and their names appended to `skipped`, as training does.
    """
    skipped = [] if skipped is None else skipped

    def record_skip(key):
        skipped.append(key.numpy().decode("utf-8", errors="replace"))
        return False

    def decodable(image_bytes, label, key):
        ok = transforms.looks_decodable(image_bytes)
        return tf.cond(ok, lambda: ok, lambda: tf.py_function(record_skip, [key], tf.bool))

    ds = source.read(split, deterministic=True).filter(decodable)

    def crops(image_bytes, label, key):
        if protocol == "center" and len(scales) == 1:
            # The export's serving_default view: fused decode of the crop window, then resize.
            config = transforms.TransformConfig(
                crop_size=crop_size, min_scale=crop_size, max_scale=crop_size,
                eval_resize=scales[0],
            )  # fmt: skip
            return transforms.eval_transform(image_bytes, config)[None], label
        image = _decode(image_bytes)
        views = []
        for scale in scales:
            resized = resize_shorter_side(image, scale)
            if protocol == "center":
                views.append(center_crop(resized, crop_size)[None])
            else:
                views.append(ten_view_crops(resized, crop_size))
        views = tf.concat(views, axis=0)
        views.set_shape([None, crop_size, crop_size, 3])
        return views, label

    def pyramid(image_bytes, label, key):
        image = _decode(image_bytes)
        return tuple(resize_shorter_side(image, s)[None] for s in scales), label

    # A file that passes the cheap check and still fails to decode is dropped too; evaluate()
    # counts it from the difference between listed and scored images.
    ds = ds.map(
        pyramid if protocol == "dense" else crops,
        num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=True,
    ).ignore_errors()
    if protocol != "dense":
        ds = ds.batch(batch_size)
    return ds.prefetch(tf.data.AUTOTUNE)


def _check_members(members: Sequence[Member]) -> None:
    first = members[0]
    for member in members[1:]:
        if member.class_names != first.class_names:
            raise EvaluationError(
                f"Ensemble members disagree on the class list: {first.path} "
                f"({len(first.class_names)} classes) vs {member.path} "
                f"({len(member.class_names)} classes); all must be trained on the same classes"
            )


def _score(member: Member, protocol: str, views) -> np.ndarray:
    start = time.perf_counter()
    if protocol == "dense":
        scores = [
            member.signature(images=image, mirror=tf.constant(True))["probabilities"]
            for image in views
        ]
        result = tf.reduce_mean(tf.stack(scores, axis=0), axis=0).numpy()
    else:
        shape = tf.shape(views)
        flat = tf.reshape(views, tf.concat([[-1], shape[2:]], axis=0))
        probabilities = member.signature(images=flat)["probabilities"]
        probabilities = tf.reshape(probabilities, [shape[0], shape[1], -1])
        result = tf.reduce_mean(probabilities, axis=1).numpy()
    member.seconds += time.perf_counter() - start
    return result


def machine_description() -> str:
    return f"{platform.machine()} {os.cpu_count()} CPUs, {platform.system()}, TF {tf.__version__}"


def evaluate(
    model_paths: Sequence[str],
    source: sources_lib.Source,
    *,
    split: str = "validation",
    protocol: str = "center",
    scales: Sequence[int] | None = None,
    batch_size: int = 32,
    weights: Sequence[float] | None = None,
    crop_size: int | None = None,
    max_images: int | None = None,
    progress: bool = True,
) -> dict:
    """Evaluates one SavedModel or an ensemble of several on a data set.

    Args:
        model_paths: exported SavedModel version folders; several make an ensemble.
        source: a `rectifier_zoo.data` source.
        split: "validation" (or "train").
        protocol: one of `PROTOCOLS`.
        scales: shorter sides; default: the export's `eval_resize` (256) for `center` and
            `ten_view`, (256, 384, 480) for `dense`.
        batch_size: images per batch for `center` / `ten_view` (`dense` scores one at a time).
        weights: ensemble weights (default equal); normalized to sum 1.
        crop_size: test crop; default: the export's (224).
        max_images: stop after this many images (None: the whole split).
        progress: show a progress bar on stderr.

    Returns:
        `{"rows": [...one per member, then the ensemble...], "probabilities": ensemble scores
        [images, classes], "labels": [images]}`.
    """
    if protocol not in PROTOCOLS:
        raise EvaluationError(f"protocol must be one of {PROTOCOLS}. Received: {protocol!r}")
    if not model_paths:
        raise EvaluationError("No models given: pass at least one SavedModel folder")
    weights = [1.0] * len(model_paths) if weights is None else [float(w) for w in weights]
    if len(weights) != len(model_paths) or any(w < 0 for w in weights) or sum(weights) <= 0:
        raise EvaluationError(
            f"weights must be {len(model_paths)} non-negative numbers with a positive sum. "
            f"Received: weights={weights}"
        )
    if batch_size < 1:
        raise EvaluationError(f"batch_size must be >= 1. Received: batch_size={batch_size}")
    members = [load_member(p, protocol, w) for p, w in zip(model_paths, weights, strict=True)]
    _check_members(members)
    contract = members[0].metadata.get("input_contract", {})
    crop_size = crop_size or int(contract.get("crop_size", 224))
    if scales is None:
        scales = (
            DEFAULT_DENSE_SCALES
            if protocol == "dense"
            else (int(contract.get("eval_resize", 256)),)
        )
    scales = tuple(int(s) for s in scales)
    if not scales or min(scales) < crop_size:
        raise EvaluationError(
            f"scales must be shorter sides >= the crop size {crop_size}. Received: scales={scales}"
        )
    num_classes = len(members[0].class_names)
    if source.num_classes != num_classes:
        raise EvaluationError(
            f"The data set has {source.num_classes} classes, the models {num_classes}"
        )
    try:
        total = source.num_examples(split)
        skipped = []
        ds = make_view_dataset(source, split, protocol, scales, crop_size, batch_size, skipped)
    except (FileNotFoundError, ValueError) as error:
        message = str(error)
        if "No image files" in message or "no images" in message.lower():
            message = f"The data set is empty: {message}"
        raise EvaluationError(message) from None
    if max_images is not None:
        total = min(total, max_images)
    bar = _ProgressBar(total, enabled=progress)
    per_member = [[] for _ in members]
    labels = []
    count = 0
    start = time.perf_counter()
    for views, label in ds:
        label = np.atleast_1d(label.numpy())
        if max_images is not None and count + len(label) > max_images:
            # Only batched (center / ten_view) elements can overshoot; dense ones hold one image.
            label = label[: max_images - count]
            views = views[: len(label)]
        if len(label) == 0:
            break
        for scores, member in zip(per_member, members, strict=True):
            scores.append(_score(member, protocol, views))
        labels.append(label)
        count += len(label)
        bar.update(count)
        if max_images is not None and count >= max_images:
            break
    seconds = time.perf_counter() - start
    bar.close()
    if count == 0:
        raise EvaluationError(f"The data set is empty: no '{split}' images in {source.name}")
    labels = np.concatenate(labels)
    probabilities = [np.concatenate(scores, axis=0) for scores in per_member]
    total_weight = sum(weights)
    ensemble = sum(w * p for w, p in zip(weights, probabilities, strict=True)) / total_weight
    if max_images is None and total is not None:
        # Files dropped after the cheap check (they failed to decode) are not in `skipped`.
        num_skipped = max(total - count, len(skipped))
    else:
        num_skipped = len(skipped)
    common = {
        "skipped_images": num_skipped,
        "protocol": protocol,
        "scales": list(scales),
        "crop_size": crop_size,
        "images": int(count),
        "machine": machine_description(),
    }
    rows = []
    for member, member_probabilities in zip(members, probabilities, strict=True):
        rows.append(
            {
                "model": member.path,
                "role": "member",
                "weight": member.weight / total_weight,
                **common,
                **error_rates(member_probabilities, labels),
                "seconds": member.seconds,
                "images_per_second": count / max(member.seconds, 1e-9),
            }
        )
    rows.append(
        {
            "model": ",".join(m.path for m in members),
            "role": "ensemble",
            "weight": 1.0,
            **common,
            **error_rates(ensemble, labels),
            "seconds": seconds,
            "images_per_second": count / max(seconds, 1e-9),
        }
    )
    return {
        "rows": rows,
        "probabilities": ensemble,
        "labels": labels,
        "skipped_names": skipped,
    }


class _ProgressBar:
    def __init__(self, total: int | None, enabled: bool):
        self.total, self.enabled, self.start = total, enabled, time.perf_counter()

    def update(self, count: int) -> None:
        if not self.enabled:
            return
        rate = count / max(time.perf_counter() - self.start, 1e-9)
        if self.total:
            done = int(30 * min(count / self.total, 1.0))
            bar = f"[{'=' * done}{'.' * (30 - done)}] {count}/{self.total}"
        else:
            bar = f"{count} images"
        sys.stderr.write(f"\r{bar} {rate:.1f} images/s")
        sys.stderr.flush()

    def close(self) -> None:
        if self.enabled:
            sys.stderr.write("\n")


def format_table(result: dict) -> str:
    """The rows as a fixed-width table (errors in percent)."""
    header = f"{'role':<9} {'top-1 %':>8} {'top-5 %':>8} {'images':>7} {'images/s':>9}  model"
    lines = [header, "-" * len(header)]
    for row in result["rows"]:
        lines.append(
            f"{row['role']:<9} {100 * row['top1_error']:>8.2f} {100 * row['top5_error']:>8.2f} "
            f"{row['images']:>7d} {row['images_per_second']:>9.1f}  {row['model']}"
        )
    first = result["rows"][0]
    lines.append(f"protocol={first['protocol']} scales={first['scales']} crop={first['crop_size']}")
    if first["skipped_images"]:
        names = ", ".join(result["skipped_names"][:5])
        lines.append(f"skipped {first['skipped_images']} undecodable images ({names})")
    return "\n".join(lines)


def print_table(result: dict) -> None:
    print(format_table(result))


def write_results(result: dict, json_path: str) -> tuple[str, str]:
    """Writes the rows as JSON (`json_path`) and CSV (same name, `.csv`); returns both paths."""
    folder = os.path.dirname(os.path.abspath(json_path))
    os.makedirs(folder, exist_ok=True)
    with open(json_path, "w", encoding="utf-8") as f:
        json.dump({"rows": result["rows"]}, f, indent=2)
    csv_path = os.path.splitext(json_path)[0] + ".csv"
    with open(csv_path, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=CSV_FIELDS, extrasaction="ignore")
        writer.writeheader()
        for row in result["rows"]:
            writer.writerow({**row, "scales": " ".join(str(s) for s in row["scales"])})
    return json_path, csv_path
