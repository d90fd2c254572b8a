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
from collections.abc import Callable

import keras
import numpy as np
import tensorflow as tf

from rectifier_zoo import data as data_lib
from rectifier_zoo import paper
from rectifier_zoo.layers import SLOPE_WEIGHT_NAME, PReLU
from rectifier_zoo.metrics import top_k_correct
from rectifier_zoo.optimizers import CaffeSGD
from rectifier_zoo.serving.views import ten_view_crops
from rectifier_zoo.train.steps import make_eval_step, make_train_step

# The final training loss of a run: the mean of its last steps (one batch's loss is noisy).
FINAL_LOSS_WINDOW = 20
# The test protocols of `train_classifier`: the centre crop (Figs. 2-3) or 10 views (Table 2).
CENTER, TEN_VIEW = "center", "ten_view"
TEST_VIEWS = (CENTER, TEN_VIEW)


@dataclasses.dataclass
class InMemoryData:
    """Standardized images (per-channel mean 0, std 1) and labels of a synthetic set."""

    train_images: np.ndarray
    train_labels: np.ndarray
    val_images: np.ndarray
    val_labels: np.ndarray
    num_classes: int
    root: str
    # The side the models see (training crops, test views); `None`: the validation images' own.
    image_size: int | None = None


def stored_size(image_size: int) -> int:
    """S, the fixed shorter side the images are stored at: `image_size * 9 // 8`.

    72 for 64 px crops (the paper: 256 for 224).

    Training takes random `image_size` crops of them, testing the centre crop or 10 views.
    """
    return image_size + image_size // 8


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
    # No copy beyond the concatenation: at 224 px a 6000-image split is 4.6 GB.
    images = np.concatenate(images).astype(np.float32, copy=False)
    return images, np.concatenate(labels).astype(np.int32)


def load_synthetic(
    image_size: int,
    difficulty: float,
    train_images: int,
    val_images: int,
    data_dir: str | None = None,
) -> InMemoryData:
    """The synthetic set at `difficulty`, both splits stored at S = `stored_size(image_size)`.

    Table 2's protocol at reduced size: training and validation images at one fixed shorter
    side S (the paper: 256), training on random `image_size` crops, testing on the centre crop
    (`center_crop`) or on 10 views (`evaluate_ten_view`) of the validation images.

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
    stored = stored_size(image_size)
    x_train, y_train = _read_split(source, "train", stored)
    x_val, y_val = _read_split(source, "validation", stored)
    mean = x_train.mean(axis=(0, 1, 2))
    std = x_train.std(axis=(0, 1, 2))
    for images in (x_train, x_val):  # in place: the same values as (x - mean) / std
        images -= mean
        images /= std
    return InMemoryData(
        x_train,
        y_train,
        x_val,
        y_val,
        source.num_classes,
        getattr(source, "root", str(data_dir)),
        image_size,
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
    epoch_eval: bool = False,
    test_views: str = CENTER,
    trace: Callable[[keras.Model], dict[str, float]] | None = None,
    trace_every: int = 0,
) -> dict:
    """SGD with momentum 0.9 on random crops and flips; the loss of every step, then the val error.

    Each step is the trainer's (`rectifier_zoo.train.steps.make_train_step`) after a random
    `image_size` crop and a random horizontal flip of the batch. The optimizer is `CaffeSGD`:
    coupled weight decay on the conv and fc kernels only, never on PReLU slopes or biases
    (Sec. 2.1). A run whose loss becomes NaN stops there; its errors are then NaN.

    An epoch is one pass over the training images in a fresh random order (`len(train) //
    batch_size` steps; the last, partial batch of a pass is dropped).

    Args:
        epoch_eval: also the validation top-1 error (centre crop, as Figs. 2-3) before the
            first step and after every epoch, and at the last step if that ends no epoch.
        test_views: the final validation error on the `"center"` crop or on `"ten_view"`
            (4 corners + centre and their flips, softmax averaged: Table 2's protocol).
        trace: a reading of the model (`prelu_slopes`, say) taken before the first step,
            every `trace_every` steps and after the last.

    Returns:
        `{"loss": [...], "top1_error", "top5_error", "test_views", "epochs": [...],
        "epoch_top1_error": [...], "trace_steps": [...], "trace": [...], "diverged",
        "seconds"}`; `epochs` counts the passes done at each entry of `epoch_top1_error` (both
        empty without `epoch_eval`), `trace_steps` the steps done at each reading of `trace`.
    """
    if test_views not in TEST_VIEWS:
        raise ValueError(f"`test_views` must be one of {TEST_VIEWS}. Received: {test_views!r}")
    if trace is not None and trace_every < 1:
        raise ValueError(f"`trace` needs `trace_every` >= 1. Received: trace_every={trace_every}")
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
    val_center = center_crop(data.val_images, image_size)
    epochs, epoch_errors = [], []
    num_train = len(data.train_labels)
    steps_per_epoch = max(num_train // batch_size, 1)
    if epoch_eval:

        def record(done: int) -> None:
            top1, _ = evaluate_classifier(model, val_center, data.val_labels)
            epochs.append(done / steps_per_epoch)
            epoch_errors.append(top1)

        record(0)
    trace_steps, readings = [], []
    if trace is not None:
        trace_steps.append(0)
        readings.append(trace(model))
    losses, diverged = [], False
    order = rng.permutation(num_train)
    position = 0
    for index_step in range(steps):
        if position + batch_size > num_train:
            order, position = rng.permutation(num_train), 0
        index = order[position : position + batch_size]
        position += batch_size
        loss = float(train_step(data.train_images[index], data.train_labels[index]))
        losses.append(loss)
        if not math.isfinite(loss):
            diverged = True
            break
        done = index_step + 1
        if epoch_eval and (done % steps_per_epoch == 0 or done == steps):
            record(done)
        if trace is not None and (done % trace_every == 0 or done == steps):
            trace_steps.append(done)
            readings.append(trace(model))
    if diverged:
        # NaN weights give NaN scores, which the tie rule would count as hits.
        top1, top5 = math.nan, math.nan
    elif test_views == TEN_VIEW:
        top1, top5 = evaluate_ten_view(model, data.val_images, data.val_labels, image_size)
    else:
        top1, top5 = evaluate_classifier(model, val_center, data.val_labels)
    return {
        "loss": losses,
        "top1_error": top1,
        "top5_error": top5,
        "test_views": test_views,
        "epochs": epochs,
        "epoch_top1_error": epoch_errors,
        "trace_steps": trace_steps,
        "trace": readings,
        "diverged": diverged,
        "seconds": time.perf_counter() - start,
    }


def center_crop(images: np.ndarray, size: int) -> np.ndarray:
    """The centre `size` crop of a batch `[n, h, w, c]` (offsets as `ten_view_crops`' centre)."""
    top, left = (images.shape[1] - size) // 2, (images.shape[2] - size) // 2
    return images[:, top : top + size, left : left + size]


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


def ten_view_probabilities(
    model: keras.Model, images, crop_size: int, batch_size: int = 50
) -> np.ndarray:
    """The model's softmax averaged over the 10 views of each image: `[n, classes]`.

    The views are `rectifier_zoo.serving.views.ten_view_crops` (the evaluator's `ten_view`
    protocol): the 4 corner and the centre `crop_size` crops of the stored image, and their
    horizontal flips. The model must end in the softmax.
    """
    averaged = []
    for begin in range(0, len(images), batch_size):
        batch = tf.convert_to_tensor(images[begin : begin + batch_size], tf.float32)
        views = tf.map_fn(
            lambda image: ten_view_crops(image, crop_size),
            batch,
            fn_output_signature=tf.TensorSpec([10, crop_size, crop_size, batch.shape[-1]]),
        )
        flat = tf.reshape(views, [-1, crop_size, crop_size, batch.shape[-1]])
        probabilities = np.asarray(model(flat, training=False), np.float64)
        averaged.append(probabilities.reshape(len(batch), 10, -1).mean(axis=1))
    return np.concatenate(averaged)


def evaluate_ten_view(
    model: keras.Model, images, labels, crop_size: int, batch_size: int = 50
) -> tuple[float, float]:
    """Top-1 and top-5 error (fractions) of the 10-view averaged softmax (Table 2's testing).

    The top-k rule of `rectifier_zoo.metrics.top_k_correct` (ties count in; a NaN row misses).
    """
    probabilities = ten_view_probabilities(model, images, crop_size, batch_size)
    k = top_k(probabilities.shape[-1])
    hits1 = np.asarray(top_k_correct(labels, probabilities, 1))
    hitsk = np.asarray(top_k_correct(labels, probabilities, k))
    return 1.0 - float(hits1.mean()), 1.0 - float(hitsk.mean())


def prelu_slopes(model: keras.Model) -> dict[str, float]:
    """The mean slope of every PReLU layer, by layer name, in depth order."""
    return {
        layer.name: float(np.mean(layer.get_weights()[0]))
        for layer in model.layers
        if isinstance(layer, PReLU) and any(w.name == SLOPE_WEIGHT_NAME for w in layer.weights)
    }
