"""Per-example image transforms of the paper's recipe (Sec. 2.3, "Training" and "Testing"), in TF.

Training: the shorter side is resized to a random s in [min_scale, max_scale] and a random
crop_size x crop_size window is taken. Instead of decoding the whole JPEG and resizing it, the
window is mapped back into the original image's pixels (a square of side crop_size * min(H, W) / s)
and only that window is decoded with `tf.image.decode_and_crop_jpeg`, then resized to crop_size.
This is the same crop, much cheaper. Then a horizontal flip (p = 0.5) and AlexNet's PCA lighting
noise. Evaluation: the centre crop of the image resized to shorter side `eval_resize`, decoded the
same fused way.

Outputs are float32 RGB in [0, 255], not mean-subtracted (the model subtracts the ImageNet mean in
its graph), with shape [crop_size, crop_size, 3].

Random draws are stateless (`tf.random.stateless_*`) from a per-example seed of shape [2], so a
seeded pipeline gives the same images in the same order on every run.
"""

from __future__ import annotations

import tensorflow as tf

from rectifier_zoo import paper
from rectifier_zoo.checks import check_choice
from rectifier_zoo.data.config import TransformConfig

# AlexNet's PCA lighting noise, on [0, 1] pixels; ours are in [0, 255].
IMAGENET_PCA_EIGENVALUES = paper.PCA_EIGENVALUES
IMAGENET_PCA_EIGENVECTORS = paper.PCA_EIGENVECTORS
_PIXEL_SCALE = 255.0


def random_crop_window(
    image_shape: tf.Tensor, seed: tf.Tensor, crop_size: int, min_scale: int, max_scale: int
) -> tf.Tensor:
    """Draws the scale-jitter crop window in the original image's pixel coordinates.

    Equivalent to: resize the shorter side to s ~ U[min_scale, max_scale], take a uniformly placed
    crop_size x crop_size crop. In original pixels that crop is a square of side
    round(crop_size * min(H, W) / s), placed uniformly inside the image.

    Args:
        image_shape: int tensor [H, W, ...] of the original image.
        seed: int tensor of shape [2], the stateless seed.
        crop_size: output crop side.
        min_scale: smallest shorter side s.
        max_scale: largest shorter side s.

    Returns:
        int32 tensor [offset_y, offset_x, height, width], inside the image.
    """
    uniforms = tf.random.stateless_uniform([3], tf.cast(seed, tf.int64))
    return _crop_window(image_shape, uniforms, crop_size, min_scale, max_scale)


def _crop_window(
    image_shape: tf.Tensor, uniforms: tf.Tensor, crop_size: int, min_scale: int, max_scale: int
) -> tf.Tensor:
    """`random_crop_window` from three U[0, 1) draws: the scale, the row and the column.

    In float32 scalars, a dozen ops: in a tf.data map on one core each op costs about a
    microsecond and each stateless draw or split about six (AMD EPYC, 2026-12-07).
    """
    height_width = tf.cast(image_shape[:2], tf.float32)
    shorter = tf.reduce_min(height_width)
    scale = float(min_scale) + uniforms[0] * (float(max_scale - min_scale) + 1e-3)
    # Rounding can overshoot by one pixel on tiny images; a window of 0 pixels cannot be decoded.
    side = tf.clip_by_value(tf.round(crop_size * shorter / scale), 1.0, shorter)
    # floor(u * (n + 1)) is uniform on 0..n; the minimum guards float rounding at u near 1.
    offsets = tf.minimum(tf.floor(uniforms[1:3] * (height_width - side + 1.0)), height_width - side)
    return tf.cast(tf.concat([offsets, tf.stack([side, side])], axis=0), tf.int32)


def center_crop_window(image_shape: tf.Tensor, crop_size: int, resize: int) -> tf.Tensor:
    """The centre crop_size crop of the image resized to shorter side `resize`, in original pixels.

    Args:
        image_shape: int tensor [H, W, ...] of the original image.
        crop_size: output crop side.
        resize: shorter side the image is (virtually) resized to.

    Returns:
        int32 tensor [offset_y, offset_x, height, width], inside the image.
    """
    height = tf.cast(image_shape[0], tf.int32)
    width = tf.cast(image_shape[1], tf.int32)
    shorter = tf.cast(tf.minimum(height, width), tf.float32)
    side = tf.cast(tf.round(crop_size * shorter / float(resize)), tf.int32)
    side = tf.clip_by_value(side, 1, tf.minimum(height, width))
    offset_y = (height - side + 1) // 2
    offset_x = (width - side + 1) // 2
    return tf.stack([offset_y, offset_x, side, side])


# The scales libjpeg decodes at in the DCT domain (1/1, 1/2, 1/4, 1/8).
_JPEG_RATIOS = (1, 2, 4, 8)


def jpeg_scale_ratio(image_shape: tf.Tensor, min_shorter_side: int) -> tf.Tensor:
    """The DCT-domain downscaling ratio (1, 2, 4 or 8) for a JPEG of `image_shape`.

    The largest ratio r whose decoded image (ceil(H / r) x ceil(W / r), as libjpeg computes it)
    keeps a shorter side of at least `min_shorter_side` pixels.

    Args:
        image_shape: int tensor [H, W, ...] of the encoded image.
        min_shorter_side: the smallest shorter side the decoded image may have.

    Returns:
        int32 scalar i, the index of the ratio in (1, 2, 4, 8).
    """
    shorter = tf.minimum(tf.cast(image_shape[0], tf.int64), tf.cast(image_shape[1], tf.int64))
    # floor(shorter / r) >= m implies ceil(shorter / r) >= m; the conditions nest, so their
    # count is the exponent.
    fits = [shorter >= ratio * min_shorter_side for ratio in _JPEG_RATIOS[1:]]
    return tf.add_n([tf.cast(f, tf.int32) for f in fits])


def decode_and_crop_jpeg(
    image_bytes: tf.Tensor, window_fn, downscale_to: int | None = None
) -> tf.Tensor:
    """Decodes only a window of a JPEG (raises on other formats; no format check).

    Args:
        image_bytes: scalar tf.string, an encoded JPEG.
        window_fn: maps the image shape [H, W, C] to a window [offset_y, offset_x, height, width].
        downscale_to: None decodes at full scale. Otherwise the JPEG is decoded at the scale
            `jpeg_scale_ratio` picks for this shorter side, and `window_fn` receives (and its
            window is in) the downscaled image's shape.

    Returns:
        uint8 tensor [height, width, 3].
    """
    shape = tf.image.extract_jpeg_shape(image_bytes)
    if downscale_to is None:
        image = tf.image.decode_and_crop_jpeg(image_bytes, window_fn(shape), channels=3)
    else:

        def at_ratio(ratio):
            def decode():
                # libjpeg's scaled size; decode_and_crop_jpeg's window is in these pixels.
                scaled = (shape[:2] + ratio - 1) // ratio
                window = window_fn(tf.concat([scaled, shape[2:]], axis=0))
                return tf.image.decode_and_crop_jpeg(image_bytes, window, channels=3, ratio=ratio)

            return decode

        index = jpeg_scale_ratio(shape, downscale_to)
        image = tf.switch_case(index, [at_ratio(r) for r in _JPEG_RATIOS])
    image.set_shape([None, None, 3])
    return image


def decode_and_crop(image_bytes: tf.Tensor, window_fn, downscale_to: int | None = None):
    """Decodes only a window of an encoded image (fused for JPEG, decode-then-slice otherwise).

    JPEGs go through `tf.image.decode_and_crop_jpeg`, which skips the rows and blocks outside the
    window. PNG, GIF and BMP files (ImageNet has a PNG and CMYK JPEGs named .JPEG) are decoded whole
    by `tf.io.decode_image` and sliced with the same window. Grayscale and CMYK JPEGs come out RGB.

    Args:
        image_bytes: scalar tf.string, the encoded file.
        window_fn: maps the image shape [H, W, C] to a window [offset_y, offset_x, height, width].
        downscale_to: for JPEGs, as in `decode_and_crop_jpeg`.

    Returns:
        uint8 tensor [height, width, 3].
    """

    def fallback():
        image = tf.io.decode_image(image_bytes, channels=3, expand_animations=False)
        window = window_fn(tf.shape(image))
        return tf.slice(image, [window[0], window[1], 0], [window[2], window[3], 3])

    image = tf.cond(
        tf.io.is_jpeg(image_bytes),
        lambda: decode_and_crop_jpeg(image_bytes, window_fn, downscale_to),
        fallback,
    )
    image.set_shape([None, None, 3])
    return image


def decode_then_crop(image_bytes: tf.Tensor, window_fn) -> tf.Tensor:
    """Decodes the whole image, then slices the window: the unfused reference of decode_and_crop.

    Args:
        image_bytes: scalar tf.string, the encoded file.
        window_fn: maps the image shape [H, W, C] to a window [offset_y, offset_x, height, width].

    Returns:
        uint8 tensor [height, width, 3].
    """
    image = tf.io.decode_image(image_bytes, channels=3, expand_animations=False)
    window = window_fn(tf.shape(image))
    image = tf.slice(image, [window[0], window[1], 0], [window[2], window[3], 3])
    image.set_shape([None, None, 3])
    return image


def _resize(image: tf.Tensor, crop_size: int) -> tf.Tensor:
    # Bilinear interpolation stays inside the input range up to float rounding, which the
    # callers' final clip removes.
    return tf.image.resize(tf.cast(image, tf.float32), [crop_size, crop_size], method="bilinear")


def random_flip(image: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
    """Mirrors the image left-right with probability 0.5.

    Args:
        image: [H, W, C] tensor.
        seed: int tensor of shape [2].

    Returns:
        The image, mirrored or not.
    """
    return _mirror_if(image, tf.random.stateless_uniform([], tf.cast(seed, tf.int64)) < 0.5)


def _mirror_if(image: tf.Tensor, mirror: tf.Tensor) -> tf.Tensor:
    """The [H, W, C] image mirrored left-right where the scalar bool `mirror` is true.

    One `Reverse` op whose axes are flags, no branch functions to call: per image on one core,
    ~10 us less than `tf.cond` and ~25 us less than `tf.image.stateless_random_flip_left_right`
    (AMD EPYC, 2026-12-07).
    """
    return tf.raw_ops.Reverse(tensor=image, dims=tf.stack([False, mirror, False]))


def pca_lighting(image: tf.Tensor, seed: tf.Tensor, stddev: float = 0.1) -> tf.Tensor:
    """AlexNet's PCA lighting noise: adds sum_i alpha_i * lambda_i * p_i to every pixel.

    alpha_i ~ N(0, stddev), lambda_i and p_i the ImageNet RGB eigenvalues and eigenvectors. The
    eigenvalues belong to [0, 1] pixels, so the offset is scaled by 255 for our [0, 255] pixels.

    Args:
        image: float32 [H, W, 3] RGB in [0, 255].
        seed: int tensor of shape [2].
        stddev: standard deviation of alpha.

    Returns:
        float32 [H, W, 3], clipped to [0, 255].
    """
    return tf.clip_by_value(_add_per_channel(image, _lighting_offset(seed, stddev)), 0.0, 255.0)


def _add_per_channel(image: tf.Tensor, offset: tf.Tensor) -> tf.Tensor:
    """`image + offset` for an [H, W, C] image and a [C] offset, as rows of H x (W * C).

    TensorFlow's CPU kernel broadcasts a [C] vector over [H, W, C] element by element; added to
    the image seen as H rows of W * C values, the offset tiled to one row, it runs vectorised:
    ~0.3 ms less per 224x224 training crop on one core, about a tenth of the whole transform
    (`benchmarks/input_pipeline.py`). The sums are the same.
    """
    shape = tf.shape(image)
    rows = tf.reshape(image, [shape[0], shape[1] * shape[2]])
    return tf.reshape(rows + tf.tile(offset, [shape[1]]), shape)


def _lighting_offset(seed: tf.Tensor, stddev: float) -> tf.Tensor:
    """sum_i alpha_i * lambda_i * p_i in [0, 255] pixels: one matvec with `_LIGHTING_BASIS`."""
    alpha = tf.random.stateless_normal([3], tf.cast(seed, tf.int64), stddev=stddev)
    return tf.linalg.matvec(tf.constant(_LIGHTING_BASIS), alpha)


# The columns lambda_i * p_i, scaled to [0, 255] pixels, multiplied out once: every op less in
# the per-example transform counts (~0.1 ms per image on one core, of ~2.5).
_LIGHTING_BASIS = [
    [
        entry * value * _PIXEL_SCALE
        for entry, value in zip(row, IMAGENET_PCA_EIGENVALUES, strict=True)
    ]
    for row in IMAGENET_PCA_EIGENVECTORS
]


def color_jitter(image: tf.Tensor, seed: tf.Tensor, strength: float) -> tf.Tensor:
    """Random brightness, contrast and saturation factors, each uniform in [1 - s, 1 + s].

    Args:
        image: float32 [H, W, 3] RGB in [0, 255].
        seed: int tensor of shape [2].
        strength: s in [0, 1).

    Returns:
        float32 [H, W, 3], clipped to [0, 255].
    """
    factors = tf.random.stateless_uniform(
        [3], tf.cast(seed, tf.int64), minval=1.0 - strength, maxval=1.0 + strength
    )
    image = image * factors[0]
    mean = tf.reduce_mean(image, axis=[0, 1, 2], keepdims=True)
    image = mean + (image - mean) * factors[1]
    gray = tf.reduce_sum(image * tf.constant([0.299, 0.587, 0.114]), axis=-1, keepdims=True)
    image = gray + (image - gray) * factors[2]
    return tf.clip_by_value(image, 0.0, 255.0)


_DECODERS = ("auto", "jpeg", "full")


def _decoder(decode: str):
    check_choice("decode", decode, _DECODERS)
    return {"auto": decode_and_crop, "jpeg": decode_and_crop_jpeg, "full": decode_then_crop}[decode]


def train_transform(
    image_bytes: tf.Tensor, seed: tf.Tensor, config: TransformConfig, decode: str = "auto"
) -> tf.Tensor:
    """The paper's training augmentation of one encoded image.

    Args:
        image_bytes: scalar tf.string, an encoded JPEG (or PNG / GIF / BMP).
        seed: int tensor of shape [2]; the same seed gives the same crop, flip and colour.
        config: sizes and augmentation strengths.
        decode: "auto" decodes only the crop window of a JPEG and falls back to a full decode
            for other formats; "jpeg" is the fused decode without the format check (raises on
            non-JPEG; `make_dataset` catches that and retries with "full"); "full" decodes the
            whole image, then crops the same window (the unfused reference: same pixels).

    Returns:
        float32 [crop_size, crop_size, 3] RGB in [0, 255].
    """
    # Few random ops, since each costs microseconds per image: one split, then one uniform draw
    # for the crop's scale, row and column and the flip, one for the lighting, one for colour.
    seeds = tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), num=3)
    uniforms = tf.random.stateless_uniform([4], seeds[0])

    def window_fn(shape):
        return _crop_window(
            shape, uniforms[:3], config.crop_size, config.min_scale, config.max_scale
        )

    image = _decoder(decode)(image_bytes, window_fn)
    image = _resize(image, config.crop_size)
    if config.flip:
        # After the resize, which mirroring commutes with.
        image = _mirror_if(image, uniforms[3] < 0.5)
    if config.pca_lighting > 0:
        # One add and one clip at the end: the lighting offset is a constant per image.
        image = _add_per_channel(image, _lighting_offset(seeds[1], config.pca_lighting))
    if config.color_jitter > 0:
        image = color_jitter(image, seeds[2], config.color_jitter)
    image = tf.clip_by_value(image, 0.0, 255.0)
    image.set_shape([config.crop_size, config.crop_size, 3])
    return image


def eval_transform(
    image_bytes: tf.Tensor, config: TransformConfig, decode: str = "auto"
) -> tf.Tensor:
    """The evaluation view: shorter side eval_resize, centre crop_size crop (decoded fused).

    Large JPEGs are decoded at a reduced DCT scale first when `config.jpeg_downscale` (not with
    `decode="full"`, the unfused reference).

    Args:
        image_bytes: scalar tf.string, an encoded JPEG (or PNG / GIF / BMP).
        config: sizes.
        decode: "auto", "jpeg" or "full", as in `train_transform`.

    Returns:
        float32 [crop_size, crop_size, 3] RGB in [0, 255].
    """

    def window_fn(shape):
        return center_crop_window(shape, config.crop_size, config.eval_resize)

    if decode == "full":
        image = decode_then_crop(image_bytes, window_fn)
    else:
        downscale_to = config.eval_resize if config.jpeg_downscale else None
        image = _decoder(decode)(image_bytes, window_fn, downscale_to)
    image = tf.clip_by_value(_resize(image, config.crop_size), 0.0, 255.0)
    image.set_shape([config.crop_size, config.crop_size, 3])
    return image


# --- Image signatures and headers: what a file is and how large, before any decode --------------
# The formats the decoders above read, by the bytes every such file starts with.
IMAGE_SIGNATURES = {
    "JPEG": b"\xff\xd8\xff",
    "PNG": b"\x89PNG\r\n\x1a\n",
    "GIF": b"GIF8",
    "BMP": b"BM",
}
IMAGE_FORMATS = tuple(IMAGE_SIGNATURES)
# What a complete file has near its end (JPEG EOI, PNG IEND, GIF trailer); BMP has no marker.
_END_MARKERS = {"JPEG": b"\xff\xd9", "PNG": b"IEND", "GIF": b";"}
_TAIL = 32  # the end markers are looked for in the last _TAIL bytes


def _padded_slice(image_bytes: tf.Tensor, size: int, from_end: bool = False) -> tf.Tensor:
    """The first (or last) `size` bytes as uint8 [size]; short files are padded with zeros."""
    padding = tf.constant(b"\x00" * size)
    if from_end:
        padded = padding + image_bytes
        return tf.io.decode_raw(
            tf.strings.substr(padded, tf.strings.length(image_bytes), size), tf.uint8
        )
    return tf.io.decode_raw(tf.strings.substr(image_bytes + padding, 0, size), tf.uint8)


def _starts_with(head: tf.Tensor, signature: bytes) -> tf.Tensor:
    return tf.reduce_all(tf.equal(head[: len(signature)], tf.cast(list(signature), head.dtype)))


def looks_decodable(image_bytes: tf.Tensor) -> tf.Tensor:
    """Cheap in-graph check that a file is a complete JPEG, PNG, GIF or BMP.

    Decoding a truncated or non-image file raises inside tf.data and would end the input
    pipeline; this check runs first so such files are dropped and counted instead. It looks at
    the signature at the start and the end marker near the end (JPEG EOI, PNG IEND, GIF trailer),
    which is what a truncated download loses.

    Args:
        image_bytes: scalar tf.string.

    Returns:
        scalar bool.
    """
    length = tf.strings.length(image_bytes)
    # Fixed-size head and tail as uint8 vectors, so the checks are a handful of vector ops: this
    # runs on every example.
    head = _padded_slice(image_bytes, max(len(s) for s in IMAGE_SIGNATURES.values()))
    tail = _padded_slice(image_bytes, _TAIL, from_end=True)

    def tail_contains(marker: bytes) -> tf.Tensor:
        found = tf.ones([_TAIL - len(marker) + 1], tf.bool)
        for i, byte in enumerate(marker):
            found = tf.logical_and(found, tf.equal(tail[i : _TAIL - len(marker) + 1 + i], byte))
        return tf.reduce_any(found)

    complete = []
    for name, signature in IMAGE_SIGNATURES.items():
        # A BMP has no end marker; its 54-byte headers at least must be there.
        end = tail_contains(_END_MARKERS[name]) if name in _END_MARKERS else length > 54
        complete.append(tf.logical_and(_starts_with(head, signature), end))
    return tf.logical_and(tf.reduce_any(tf.stack(complete)), length > 16)


def image_size_from_header(image_bytes: tf.Tensor) -> tf.Tensor:
    """Height and width of an encoded JPEG, PNG, GIF or BMP, read from its header only.

    Nothing is decoded, so a server can refuse a 20000 x 20000 image before it costs gigabytes:
    JPEG from its SOF marker (`tf.image.extract_jpeg_shape`), PNG from IHDR (big-endian 32-bit),
    GIF from the logical screen descriptor (little-endian 16-bit), BMP from the DIB header
    (16-bit for the old 12-byte core header, else signed 32-bit; a negative height means a
    top-down bitmap).

    Args:
        image_bytes: scalar tf.string.

    Returns:
        int64 tensor [2]: (height, width); (-1, -1) when the bytes are none of these formats
        or the header is cut short or claims an empty image.
    """
    head = tf.cast(_padded_slice(image_bytes, 32), tf.int64)

    def number(offset: int, size: int, big_endian: bool) -> tf.Tensor:
        order = range(size) if big_endian else reversed(range(size))
        value = tf.constant(0, tf.int64)
        for i in order:
            value = value * 256 + head[offset + i]
        return value

    def signed32(value: tf.Tensor) -> tf.Tensor:
        return tf.where(value >= 2**31, value - 2**32, value)

    def jpeg():
        return tf.cast(tf.image.extract_jpeg_shape(image_bytes)[:2], tf.int64)

    def png():
        return tf.stack([number(20, 4, True), number(16, 4, True)])

    def gif():
        return tf.stack([number(8, 2, False), number(6, 2, False)])

    def bmp():
        core = tf.equal(number(14, 4, False), 12)
        width = tf.where(core, number(18, 2, False), signed32(number(18, 4, False)))
        height = tf.where(core, number(20, 2, False), signed32(number(22, 4, False)))
        return tf.abs(tf.stack([height, width]))

    # Each format needs its header up to the size fields (JPEG: extract_jpeg_shape finds them).
    readers = {"JPEG": (jpeg, 0), "PNG": (png, 24), "GIF": (gif, 10), "BMP": (bmp, 26)}
    length = tf.strings.length(image_bytes)
    branches = [
        (tf.logical_and(_starts_with(head, IMAGE_SIGNATURES[name]), length >= needed), read)
        for name, (read, needed) in readers.items()
    ]
    unknown = tf.constant([-1, -1], tf.int64)
    size = tf.case(branches, default=lambda: unknown, exclusive=False)
    return tf.where(tf.reduce_all(size > 0), size, unknown)
