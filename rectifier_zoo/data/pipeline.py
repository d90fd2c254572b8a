"""`make_dataset`: source -> per-replica batches of augmented images, for `tf.distribute`.

Order of the stages and why:

1. the source lists its files, shards them by `input_context.input_pipeline_id` (disjoint data
   per pipeline), shuffles the file order (training) and repeats before reading, so epochs run
   into each other without a pipeline restart;
2. optional example shuffle buffer (record files; folders are already shuffled per file);
3. `enumerate`, so every example gets its own stateless random seed (seed, pipeline, index):
   a seeded pipeline then produces the same images in the same order on every run;
4. a parallel decode (AUTOTUNE) that checks the file looks complete, decodes only the crop
   window and augments; truncated files and files whose decode fails are dropped, logged and
   counted (`num_skipped_images()`), while reader errors still stop the pipeline;
5. batch to the per-replica batch size, prefetch.
"""

from __future__ import annotations

import collections
import os
import random
import threading

import tensorflow as tf
from absl import logging

from rectifier_zoo.checks import check_choice
from rectifier_zoo.data import sources as sources_lib
from rectifier_zoo.data import transforms

# Example shuffle buffer for record-based sources (TFRecords, tfds); TF Model Garden's ImageNet
# reader uses the same size. Folder sources shuffle the complete file list instead.
DEFAULT_SHUFFLE_BUFFER_SIZE = 10_000
_SEED_RANGE = 2**31 - 1


class _SkipCounter:
    """Process-wide count of undecodable images, updated from inside tf.data."""

    def __init__(self, keep: int = 100):
        self._lock = threading.Lock()
        self._count = 0
        self._recent: collections.deque[str] = collections.deque(maxlen=keep)

    def record(self, key: tf.Tensor) -> int:
        name = key.numpy().decode("utf-8", "replace") if hasattr(key, "numpy") else str(key)
        with self._lock:
            self._count += 1
            self._recent.append(name)
            count = self._count
        # Log the first few in full, then sparsely, so a bad shard does not flood the log.
        if count <= 20 or count % 1000 == 0:
            logging.warning("Skipped undecodable or truncated image #%d: %s", count, name or "?")
        return count

    @property
    def count(self) -> int:
        with self._lock:
            return self._count

    @property
    def recent(self) -> list[str]:
        with self._lock:
            return list(self._recent)

    def reset(self) -> None:
        with self._lock:
            self._count = 0
            self._recent.clear()


_SKIPPED = _SkipCounter()


def num_skipped_images() -> int:
    """Images skipped so far in this process because they were truncated or not images."""
    return _SKIPPED.count


def skipped_image_names() -> list[str]:
    """Paths / file names of the last (up to 100) skipped images."""
    return _SKIPPED.recent


def reset_skipped_images() -> None:
    """Sets the skipped-image count back to zero (e.g. at the start of an epoch)."""
    _SKIPPED.reset()


def _record_skip(key: tf.Tensor) -> tf.Tensor:
    return tf.constant(_SKIPPED.record(key), tf.int64)


def _validate(split: str, global_batch_size: int, config, shuffle_buffer_size) -> None:
    check_choice("split", split, sources_lib.SPLITS)
    if not isinstance(global_batch_size, int) or global_batch_size < 1:
        raise ValueError(
            "global_batch_size must be a positive int. "
            f"Received: global_batch_size={global_batch_size!r}"
        )
    if not isinstance(config, transforms.TransformConfig):
        raise ValueError(f"config must be a data.TransformConfig. Received: config={config!r}")
    if shuffle_buffer_size is not None and shuffle_buffer_size < 0:
        raise ValueError(
            f"shuffle_buffer_size must be >= 0. Received: shuffle_buffer_size={shuffle_buffer_size}"
        )


def make_dataset(
    source: sources_lib.Source | str,
    split: str = "train",
    is_training: bool | None = None,
    global_batch_size: int = 128,
    input_context: tf.distribute.InputContext | None = None,
    config: transforms.TransformConfig | None = None,
    seed: int | None = None,
    drop_remainder: bool | None = None,
    repeat: bool | None = None,
    shuffle_buffer_size: int | None = None,
    private_threadpool_size: int | None = None,
    fused: bool = True,
    data_dir: str | os.PathLike | None = None,
) -> tf.data.Dataset:
    """Batches of `(images, labels)` for one input pipeline.

    Use it as the function of `strategy.distribute_datasets_from_function`:
    `lambda ctx: make_dataset(source, "train", True, 256, input_context=ctx)`; each pipeline then
    reads its own files and batches `ctx.get_per_replica_batch_size(global_batch_size)` examples.

    Args:
        source: a `Source` from `get_source`, or a source name (then read from `data_dir`).
        split: "train" or "validation".
        is_training: training augmentation (scale jitter, flip, lighting), file and example
            shuffling, repeat; default: split == "train". Otherwise the evaluation centre crop,
            file order, one pass.
        global_batch_size: batch size summed over all replicas.
        input_context: the `tf.distribute.InputContext` of this pipeline, or None (one pipeline).
        config: sizes and augmentation strengths; default `TransformConfig()` (the paper's).
        seed: makes training deterministic (file order, example order, augmentation); None
            draws a random seed and lets parallel stages return elements out of order (faster).
            Evaluation always keeps the file order.
        drop_remainder: drop the last partial batch; default: is_training. Evaluation keeps it so
            every image is counted.
        repeat: repeat forever; default: is_training.
        shuffle_buffer_size: example shuffle buffer in training; default 10,000 for record-based
            sources and 0 for folders (their whole file list is shuffled).
        private_threadpool_size: if set, the pipeline runs on its own pool of this many threads
            (keeps input work off the threads that run the model's ops).
        fused: decode only the crop window of JPEGs (True) or the whole image (benchmarks).
        data_dir: used only when `source` is a name.

    Returns:
        A `tf.data.Dataset` of (float32 [batch, crop, crop, 3] RGB in [0, 255], int32 [batch]).
    """
    if isinstance(source, str):
        source = sources_lib.get_source(source, data_dir)
    if is_training is None:
        is_training = split == "train"
    config = transforms.TransformConfig() if config is None else config
    _validate(split, global_batch_size, config, shuffle_buffer_size)
    drop_remainder = is_training if drop_remainder is None else drop_remainder
    repeat = is_training if repeat is None else repeat
    # Evaluation keeps file order (results line up with file lists); training is ordered only
    # when seeded, since out-of-order parallel stages are faster.
    deterministic = seed is not None or not is_training
    if seed is None:
        seed = random.SystemRandom().randrange(_SEED_RANGE)
    pipeline_id = 0
    batch_size = global_batch_size
    if input_context is not None:
        pipeline_id = input_context.input_pipeline_id
        batch_size = input_context.get_per_replica_batch_size(global_batch_size)
    if shuffle_buffer_size is None:
        is_folder = isinstance(source, sources_lib.FolderSource)
        shuffle_buffer_size = 0 if is_folder else DEFAULT_SHUFFLE_BUFFER_SIZE

    ds = source.read(
        split,
        input_context=input_context,
        shuffle_files=is_training,
        seed=seed,
        repeat=repeat,
        deterministic=deterministic,
    )
    if is_training and shuffle_buffer_size > 1:
        ds = ds.shuffle(shuffle_buffer_size, seed=seed, reshuffle_each_iteration=True)

    # Distinct seeds per pipeline: the high bits of the per-example counter hold the pipeline id.
    seed_base = tf.constant(seed, tf.int64)
    pipeline_offset = tf.constant(pipeline_id, tf.int64) * (2**40)

    crop_shape = [config.crop_size, config.crop_size, 3]

    def decoder(decode: str, check: bool):
        def fn(index, element):
            image_bytes, label, key = element
            checks = []
            if check:
                # Truncated files can still decode (libjpeg fills the missing rows with grey);
                # failing here sends them to ignore_errors like any undecodable file.
                checks.append(tf.debugging.Assert(transforms.looks_decodable(image_bytes), [key]))
            with tf.control_dependencies(checks):
                if is_training:
                    example_seed = tf.stack([seed_base, pipeline_offset + index])
                    image = transforms.train_transform(image_bytes, example_seed, config, decode)
                else:
                    image = transforms.eval_transform(image_bytes, config, decode)
            return image, label, tf.constant(True), key

        return fn

    def guarded_decode(index, element):
        # ignore_errors on one-element datasets catches only this example's decode error (on
        # the main stream it would also swallow reader errors such as a bad label_offset, and
        # spin forever on an empty repeated stream). concatenate is lazy: the full decode runs
        # only when the fused JPEG decode failed (a PNG, say), and the fallback element only
        # when both failed; it is what lets the skip be counted.
        _, label, key = element
        single = tf.data.Dataset.from_tensors((index, element))
        attempts = []
        if fused:
            attempts.append(single.map(decoder("jpeg", check=True)).ignore_errors())
        attempts.append(single.map(decoder("full", check=True)).ignore_errors(True))
        fallback = tf.data.Dataset.from_tensors(
            (tf.zeros(crop_shape, tf.float32), label, tf.constant(False), key)
        )
        ds = attempts[0]
        for attempt in attempts[1:] + [fallback]:
            ds = ds.concatenate(attempt)
        return ds.take(1)

    def count_skipped(image, label, ok, key):
        def record():
            with tf.control_dependencies([tf.py_function(_record_skip, [key], tf.int64)]):
                return tf.identity(ok)

        return image, label, tf.cond(ok, lambda: ok, record)

    ds = ds.enumerate()
    ds = ds.interleave(
        guarded_decode,
        cycle_length=max(4, 2 * (os.cpu_count() or 1)),
        block_length=1,
        num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=deterministic,
    )
    ds = ds.map(count_skipped)
    ds = ds.filter(lambda image, label, ok: ok)
    ds = ds.map(lambda image, label, ok: (image, label))
    ds = ds.batch(
        batch_size,
        drop_remainder=drop_remainder,
        num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=deterministic,
    )
    ds = ds.prefetch(tf.data.AUTOTUNE)

    options = tf.data.Options()
    options.deterministic = deterministic
    options.autotune.enabled = True
    if private_threadpool_size:
        options.threading.private_threadpool_size = private_threadpool_size
    return ds.with_options(options)
