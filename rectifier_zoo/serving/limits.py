"""What one request may cost: the in-graph size checks of the endpoints (TensorFlow).

Every image's width and height are read from its header (`transforms.image_size_from_header`)
before anything is decoded, and a request with bytes that are no image or an image above
`max_pixels` (default `contract.DEFAULT_MAX_PIXELS`) fails with INVALID_ARGUMENT naming the
limit and the batch indices; the model keeps serving. The float-image endpoints apply the same
limit to their tensors. (Large JPEGs that pass are decoded at a reduced DCT scale:
`TransformConfig.jpeg_downscale`.)
"""

import tensorflow as tf

from rectifier_zoo.data import transforms
from rectifier_zoo.serving import contract

# "JPEG, PNG, GIF or BMP": what serving_default accepts, in its messages and the metadata.
ACCEPTED_FORMATS = f"{', '.join(transforms.IMAGE_FORMATS[:-1])} or {transforms.IMAGE_FORMATS[-1]}"


def _indices_where(bad: tf.Tensor) -> tf.Tensor:
    return tf.reshape(tf.where(bad), [-1])


def check_encoded_images(images: tf.Tensor, max_pixels: int) -> tf.Tensor:
    """An op that fails (INVALID_ARGUMENT) on bytes that are no image or an image too large.

    Only the headers are read. The messages name the batch indices, and the limit.

    Args:
        images: tf.string [batch].
        max_pixels: the largest width * height accepted.

    Returns:
        The [batch, 2] (height, width) sizes, to be used after the check.
    """
    sizes = tf.map_fn(
        transforms.image_size_from_header,
        images,
        fn_output_signature=tf.TensorSpec([2], tf.int64),
    )
    unknown = sizes[:, 0] < 0
    pixels = sizes[:, 0] * sizes[:, 1]
    known = tf.debugging.Assert(
        tf.logical_not(tf.reduce_any(unknown)),
        [
            f"{contract.SERVING_DEFAULT} expects encoded {ACCEPTED_FORMATS} images; not images at "
            "batch indices:",
            _indices_where(unknown),
        ],
        summarize=64,
    )
    with tf.control_dependencies([known]):
        too_large = pixels > max_pixels
        small = tf.debugging.Assert(
            tf.logical_not(tf.reduce_any(too_large)),
            [
                f"images larger than the export's max_pixels={max_pixels} (width x height) at "
                "batch indices:",
                _indices_where(too_large),
                "their (height, width):",
                tf.boolean_mask(sizes, too_large),
            ],
            summarize=64,
        )
    with tf.control_dependencies([small]):
        return tf.identity(sizes)


def check_image_tensor(images: tf.Tensor, max_pixels: int) -> tf.Tensor:
    """`images` after an INVALID_ARGUMENT check that height * width <= max_pixels."""
    shape = tf.shape(images, out_type=tf.int64)
    small = tf.debugging.Assert(
        shape[1] * shape[2] <= max_pixels,
        [
            f"images larger than the export's max_pixels={max_pixels} (width x height); "
            "received [batch, height, width, channels]:",
            shape,
        ],
    )
    with tf.control_dependencies([small]):
        return tf.identity(images)
