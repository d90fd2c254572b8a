"""The bundled evaluator: test views, ensembles of exported SavedModels, top-1 / top-5 error.

    from rectifier_zoo import data
    from rectifier_zoo.serving import evaluation, report
    result = evaluation.evaluate(["exported_models/model_a/3", "exported_models/model_b/1"],
                                 data.get_source("imagenet2012"), protocol="dense")
    report.print_table(result); report.write_results(result, "eval.json")

It needs nothing but the exports (`contract`): `predict_images` scores the `center` and
`ten_view` crops, `dense` the paper's multi-view testing on feature maps (the protocols and
their default scales: `protocols`; the views: `views`). Several scales with `center` /
`ten_view` average those views over the scales. An ensemble averages its members'
probabilities (optionally weighted); every image is decoded once for all members, and the
members must agree on the class list.
"""

import dataclasses
import os
import platform
import time
from collections.abc import Sequence

import keras
import numpy as np
import tensorflow as tf

from rectifier_zoo import paper
from rectifier_zoo.checks import check_choice
from rectifier_zoo.data import sources as sources_lib
from rectifier_zoo.metrics import top_k_correct
from rectifier_zoo.serving import contract, protocols, views
from rectifier_zoo.serving.protocols import PROTOCOLS
from rectifier_zoo.serving.report import ProgressBar

__all__ = ["PROTOCOLS", "EvaluationError", "Member", "error_rates", "evaluate", "load_member"]


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
    endpoint = protocols.ENDPOINTS[protocol]
    loaded = tf.saved_model.load(path)
    if endpoint not in loaded.signatures:
        raise EvaluationError(
            f"SavedModel {path} has no '{endpoint}' endpoint, which protocol {protocol!r} needs "
            f"(it has: {', '.join(sorted(loaded.signatures))}); re-export it with "
            "training/export.py"
        )
    try:
        class_names = contract.read_class_names(path)
        metadata = contract.read_metadata(path)
    except (FileNotFoundError, ValueError) as error:
        raise EvaluationError(str(error)) from None
    member = Member(path, loaded.signatures[endpoint], class_names, metadata, float(weight))
    member.loaded = loaded  # keeps the variables alive while the signature is used
    return member


def _error(probabilities: np.ndarray, labels: np.ndarray, k: int) -> float:
    correct = keras.ops.convert_to_numpy(top_k_correct(labels, probabilities, k))
    return float(1.0 - correct.mean())


def error_rates(probabilities: np.ndarray, labels: np.ndarray) -> dict:
    """`top1_error` and `top5_error` as fractions (top-5 is top-min(5, classes); ties count in)."""
    probabilities = np.asarray(probabilities)
    labels = np.asarray(labels)
    k = min(contract.TOP_K, probabilities.shape[1])
    return {
        "top1_error": _error(probabilities, labels, 1),
        "top5_error": _error(probabilities, labels, k),
    }


def _check_members(members: Sequence[Member]) -> None:
    first = members[0]
    for member in members[1:]:
        if member.class_names != first.class_names:
            raise EvaluationError(
                f"Ensemble members disagree on the class list: {first.path} "
                f"({len(first.class_names)} classes) vs {member.path} "
                f"({len(member.class_names)} classes); all must be trained on the same classes"
            )


def _score(member: Member, protocol: str, batch) -> np.ndarray:
    start = time.perf_counter()
    if protocol == protocols.DENSE:
        scores = [
            member.signature(images=image, mirror=tf.constant(True))[contract.PROBABILITIES]
            for image in batch
        ]
        result = tf.reduce_mean(tf.stack(scores, axis=0), axis=0).numpy()
    else:
        shape = tf.shape(batch)
        flat = tf.reshape(batch, tf.concat([[-1], shape[2:]], axis=0))
        probabilities = member.signature(images=flat)[contract.PROBABILITIES]
        probabilities = tf.reshape(probabilities, [shape[0], shape[1], -1])
        result = tf.reduce_mean(probabilities, axis=1).numpy()
    member.seconds += time.perf_counter() - start
    return result


def machine_description() -> str:
    return f"{platform.machine()} {os.cpu_count()} CPUs, {platform.system()}, TF {tf.__version__}"


def _check_arguments(model_paths, protocol, weights, batch_size) -> list[float]:
    try:
        check_choice("protocol", protocol, PROTOCOLS)
    except ValueError as error:
        raise EvaluationError(str(error)) from None
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
    return weights


def evaluate(
    model_paths: Sequence[str],
    source: sources_lib.Source,
    *,
    split: str = "validation",
    protocol: str = protocols.CENTER,
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
        scales: shorter sides; default: the export's `eval_resize` for `center` and `ten_view`,
            `paper.DENSE_SCALES` for `dense`.
        batch_size: images per batch for `center` / `ten_view` (`dense` scores one at a time).
        weights: ensemble weights (default equal); normalized to sum 1.
        crop_size: test crop; default: the export's.
        max_images: stop after this many images (None: the whole split).
        progress: show a progress bar on stderr.

    Returns:
        `{"rows": [...one per member, then the ensemble...], "probabilities": ensemble scores
        [images, classes], "labels": [images], "skipped_names": [...]}`.
    """
    weights = _check_arguments(model_paths, protocol, weights, batch_size)
    members = [load_member(p, protocol, w) for p, w in zip(model_paths, weights, strict=True)]
    _check_members(members)
    # Exports record their test view; the paper's is the fallback.
    input_contract = members[0].metadata.get(contract.INPUT_CONTRACT, {})
    crop_size = crop_size or int(input_contract.get(contract.CROP_SIZE, paper.CROP_SIZE))
    if scales is None:
        eval_resize = int(input_contract.get(contract.EVAL_RESIZE, paper.TEST_RESIZE))
        scales = protocols.default_scales(protocol, eval_resize)
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
        ds = views.make_view_dataset(
            source, split, protocol, scales, crop_size, batch_size, skipped
        )
    except (FileNotFoundError, ValueError) as error:
        message = str(error)
        if "No image files" in message or "no images" in message.lower():
            message = f"The data set is empty: {message}"
        raise EvaluationError(message) from None
    if max_images is not None:
        total = min(total, max_images)
    bar = ProgressBar(total, enabled=progress)
    per_member = [[] for _ in members]
    labels = []
    count = 0
    start = time.perf_counter()
    for batch, label in ds:
        label = np.atleast_1d(label.numpy())
        if max_images is not None and count + len(label) > max_images:
            # Only batched (center / ten_view) elements can overshoot; dense ones hold one image.
            label = label[: max_images - count]
            batch = batch[: len(label)]
        if len(label) == 0:
            break
        for scores, member in zip(per_member, members, strict=True):
            scores.append(_score(member, protocol, batch))
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
