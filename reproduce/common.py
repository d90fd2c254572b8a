"""What the studies share (TensorFlow): the synthetic set in memory, a short training run built
from the trainer's own steps, and the PReLU slopes of a model.

The studies need the loss of every step and many short runs on data held in memory, so they do
not go through `rectifier_zoo.train.loop.train`; they call its per-replica steps
(`rectifier_zoo.train.steps`) in a plain Python loop instead. Hence one loss (the summed
cross-entropy over the batch size), one top-k rule (`rectifier_zoo.metrics.top_k_correct`,
ties count in) and one optimizer (`CaffeSGD`, the paper's coupled weight decay) for the trainer
and the studies. The models must end in the softmax (`classifier_activation="softmax"`).
"""

from __future__ import annotations

import dataclasses
import math
import time

import keras
import numpy as np
import tensorflow as tf

from rectifier_zoo import data as data_lib
from rectifier_zoo import paper
from rectifier_zoo.layers import SLOPE_WEIGHT_NAME, PReLU
from rectifier_zoo.optimizers import CaffeSGD
from rectifier_zoo.train.steps import make_eval_step, make_train_step

# The final training loss of a run: the mean of its last steps (one batch's loss is noisy).
FINAL_LOSS_WINDOW = 20


@dataclasses.dataclass
class InMemoryData:
    """Standardized images (per-channel mean 0, std 1) and labels of a synthetic set."""

    train_images: np.ndarray
    train_labels: np.ndarray
    val_images: np.ndarray
    val_labels: np.ndarray
    num_classes: int
    root: str


def _read_split(source, split: str, size: int) -> tuple[np.ndarray, np.ndarray]:
    # The evaluation transform: shorter side to `size`, centre crop; no augmentation here
    # (a random crop and flip are applied per batch in training).
    config = data_lib.TransformConfig(
        crop_size=size, min_scale=size, max_scale=size, eval_resize=size
    )
    dataset = data_lib.make_dataset(
        source, split, is_training=False, global_batch_size=256, config=config, repeat=False
    )
    images, labels = zip(*((x.numpy(), y.numpy()) for x, y in dataset), strict=True)
    return np.concatenate(images).astype(np.float32), np.concatenate(labels).astype(np.int32)


def load_synthetic(
    image_size: int,
    difficulty: float,
    train_images: int,
    val_images: int,
    data_dir: str | None = None,
) -> InMemoryData:
    """The synthetic set at `difficulty`, resized to `image_size * 9 // 8`, standardized.

    The inputs are standardized (not only mean-subtracted as in the paper) so that the MSRA rule
    can be used for the fc layers as well: the paper drew its fc layers with fixed stds
    (`paper.FC_STDS`) because its inputs span about +-128 (Sec. 2.2).
    """
    source = data_lib.get_source(
        "synthetic",
        data_dir,
        difficulty=difficulty,
        train_images=train_images,
        val_images=val_images,
    )
    stored = image_size + image_size // 8
    x_train, y_train = _read_split(source, "train", stored)
    x_val, y_val = _read_split(source, "validation", image_size)
    mean = x_train.mean(axis=(0, 1, 2))
    std = x_train.std(axis=(0, 1, 2))
    return InMemoryData(
        (x_train - mean) / std,
        y_train,
        (x_val - mean) / std,
        y_val,
        source.num_classes,
        getattr(source, "root", str(data_dir)),
    )


def top_k(num_classes: int) -> int:
    """The k of the top-k error: 5, or every class when there are fewer."""
    return min(5, num_classes)


def train_classifier(
    model: keras.Model,
    data: InMemoryData,
    *,
    steps: int,
    learning_rate: float,
    batch_size: int,
    weight_decay: float,
    image_size: int,
    seed: int,
) -> dict:
    """SGD with momentum 0.9 on random crops and flips; the loss of every step, then the val error.

    Each step is the trainer's (`rectifier_zoo.train.steps.make_train_step`) after a random
    `image_size` crop and a random horizontal flip of the batch. The optimizer is `CaffeSGD`:
    coupled weight decay on the conv and fc kernels only, never on PReLU slopes or biases
    (Sec. 2.1). A run whose loss becomes NaN stops there; its errors are then NaN.

    Returns:
        `{"loss": [...], "top1_error", "top5_error", "diverged", "seconds"}`.
    """
    rng = np.random.default_rng(seed)
    tf_seed = tf.random.Generator.from_seed(seed)
    optimizer = CaffeSGD(
        learning_rate, momentum=paper.MOMENTUM, weight_decay=weight_decay, model=model
    )
    step = make_train_step(model, optimizer, batch_size, top_k=top_k(data.num_classes))

    @tf.function
    def train_step(images, labels):
        crop = tf_seed.uniform_full_int([2], tf.int32) % (tf.shape(images)[1] - image_size + 1)
        images = images[:, crop[0] : crop[0] + image_size, crop[1] : crop[1] + image_size, :]
        flip = tf_seed.uniform([tf.shape(images)[0], 1, 1, 1]) < 0.5
        images = tf.where(flip, tf.reverse(images, axis=[2]), images)
        loss, _, _ = step(images, labels)
        return loss

    start = time.perf_counter()
    losses, diverged = [], False
    num_train = len(data.train_labels)
    order = rng.permutation(num_train)
    position = 0
    for _ in range(steps):
        if position + batch_size > num_train:
            order, position = rng.permutation(num_train), 0
        index = order[position : position + batch_size]
        position += batch_size
        loss = float(train_step(data.train_images[index], data.train_labels[index]))
        losses.append(loss)
        if not math.isfinite(loss):
            diverged = True
            break
    if diverged:
        # NaN weights give NaN scores, which the tie rule would count as hits.
        top1, top5 = math.nan, math.nan
    else:
        top1, top5 = evaluate_classifier(model, data.val_images, data.val_labels)
    return {
        "loss": losses,
        "top1_error": top1,
        "top5_error": top5,
        "diverged": diverged,
        "seconds": time.perf_counter() - start,
    }


def evaluate_classifier(
    model: keras.Model, images, labels, batch_size: int = 250
) -> tuple[float, float]:
    """Top-1 and top-5 error (fractions; top-min(5, classes)) over all `images`.

    The trainer's evaluation step (`make_eval_step`), so its top-k rule: ties count in.
    """
    # Called eagerly: a few batches do not repay tracing a graph per model.
    step = make_eval_step(model, top_k=top_k(model.output_shape[-1]))
    count = top1 = topk = 0.0
    for begin in range(0, len(labels), batch_size):
        batch = slice(begin, begin + batch_size)
        n, hits1, hitsk = step(images[batch], labels[batch])
        count, top1, topk = count + float(n), top1 + float(hits1), topk + float(hitsk)
    return 1.0 - top1 / count, 1.0 - topk / count


def prelu_slopes(model: keras.Model) -> dict[str, float]:
    """The mean slope of every PReLU layer, by layer name, in depth order."""
    return {
        layer.name: float(np.mean(layer.get_weights()[0]))
        for layer in model.layers
        if isinstance(layer, PReLU) and any(w.name == SLOPE_WEIGHT_NAME for w in layer.weights)
    }
