"""ImageNet helpers: the per-channel mean, the 1000 classes (shipped with the package), and
`decode_predictions`. No download happens at run time."""

import functools
import numbers
import os

import numpy as np

from rectifier_zoo import paper

# Mean RGB of the ImageNet 2012 training set, on the 0..255 scale (the Caffe / VGG figures).
IMAGENET_MEAN_RGB = paper.IMAGENET_MEAN_RGB
NUM_CLASSES = 1000
_CLASSES_FILE = os.path.join(os.path.dirname(__file__), "imagenet_classes.tsv")


@functools.cache
def _classes() -> tuple[tuple[str, ...], tuple[str, ...]]:
    with open(_CLASSES_FILE, encoding="utf-8") as f:
        rows = [line.rstrip("\n").split("\t") for line in f if line.strip()]
    return tuple(wnid for wnid, _ in rows), tuple(names for _, names in rows)


def class_ids() -> list[str]:
    """The 1000 WordNet ids (`n01440764`, ...) in class-index order (sorted, as in tfds)."""
    return list(_classes()[0])


def class_names() -> list[str]:
    """Short human-readable names (the first WordNet lemma), in class-index order."""
    return [names.split(",")[0] for names in _classes()[1]]


def decode_predictions(preds, top: int = 5) -> list[list[tuple[str, str, float]]]:
    """The `top` classes of each row of ImageNet scores, as `(class_id, name, score)`.

    Args:
        preds: scores of shape `(batch, 1000)` (NumPy or any backend tensor).
        top: how many classes per row, 1..1000.

    Returns:
        One list per row of `(wnid, name, score)` tuples, best first.
    """
    preds = np.asarray(preds)
    if preds.ndim != 2 or preds.shape[1] != NUM_CLASSES:
        raise ValueError(
            "`decode_predictions` expects a batch of ImageNet scores, shape (batch, 1000). "
            f"Received: preds.shape={preds.shape}"
        )
    if (
        not isinstance(top, numbers.Integral)
        or isinstance(top, bool)
        or not 1 <= top <= NUM_CLASSES
    ):
        raise ValueError(f"`top` must be an integer in [1, {NUM_CLASSES}]. Received: top={top!r}")
    ids, names = class_ids(), class_names()
    indices = np.argsort(-preds, axis=1, kind="stable")[:, : int(top)]
    return [
        [(ids[i], names[i], float(row[i])) for i in order]
        for row, order in zip(preds, indices, strict=True)
    ]
