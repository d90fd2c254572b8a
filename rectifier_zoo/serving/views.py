"""The test views of each protocol (`protocols`), decoded once per image (tf.data).

`center` and `ten_view` give fixed-size crops for `predict_images`; `dense` gives the whole image
at each scale for the `dense` endpoint. Truncated files and files that are not images are
dropped and named, as training does.
"""

from collections.abc import Sequence

import tensorflow as tf

from rectifier_zoo.data import sources as sources_lib
from rectifier_zoo.data import transforms
from rectifier_zoo.serving.protocols import CENTER, DENSE


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
    """The centre `crop_size` crop of an (already resized) image."""
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
        if protocol == CENTER and len(scales) == 1:
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
            if protocol == CENTER:
                views.append(center_crop(resized, crop_size)[None])
            else:
                views.append(ten_view_crops(resized, crop_size))
        views = tf.concat(views, axis=0)
        views.set_shape([None, crop_size, crop_size, 3])
        return views, label

    def pyramid(image_bytes, label, key):
        image = _decode(image_bytes)
        return tuple(resize_shorter_side(image, s)[None] for s in scales), label

    # A file that passes the cheap check and still fails to decode is dropped too; the evaluator
    # counts it from the difference between listed and scored images.
    ds = ds.map(
        pyramid if protocol == DENSE else crops,
        num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=True,
    ).ignore_errors()
    if protocol != DENSE:
        ds = ds.batch(batch_size)
    return ds.prefetch(tf.data.AUTOTUNE)
