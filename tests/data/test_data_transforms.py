"""The per-example transforms: crop windows, fused decode, flip, lighting, jitter, odd formats."""

import numpy as np
import pytest
import tensorflow as tf

from rectifier_zoo import data
from rectifier_zoo.data import testing

pytestmark = pytest.mark.tf_only

SMALL = data.TransformConfig(crop_size=32, min_scale=36, max_scale=64, eval_resize=40)


@pytest.fixture(scope="module")
def photo():
    image = testing.smooth_image(0, 75, 100)
    return image, testing.encode_jpeg(image, quality=95)


@pytest.mark.parametrize(
    "kwargs, argument",
    [
        ({"crop_size": 0}, "crop_size"),
        ({"crop_size": 64, "min_scale": 32, "max_scale": 96}, "min_scale"),
        ({"min_scale": 300, "max_scale": 256}, "max_scale"),
        ({"crop_size": 64, "min_scale": 64, "max_scale": 64, "eval_resize": 32}, "eval_resize"),
        ({"pca_lighting": -0.1}, "pca_lighting"),
        ({"color_jitter": 1.5}, "color_jitter"),
    ],
)
def test_config_rejects_bad_values(kwargs, argument):
    with pytest.raises(ValueError, match=f"Received: .*{argument}="):
        data.TransformConfig(**kwargs)


@pytest.mark.parametrize("shape", [(10, 500), (500, 10), (1, 1), (224, 224), (375, 500), (37, 9)])
def test_random_crop_windows_stay_inside_extreme_images(shape):
    height, width = shape
    for s in range(40):
        y, x, h, w = data.transforms.random_crop_window(
            tf.constant([height, width, 3]), tf.constant([7, s]), 224, 256, 512
        ).numpy()
        assert h == w >= 1
        assert 0 <= y and y + h <= height
        assert 0 <= x and x + w <= width
        # The window is what a 224 crop covers after resizing the shorter side to s in [256, 512].
        shorter = min(height, width)
        assert round(224 * shorter / 512) - 1 <= h <= max(1, round(224 * shorter / 256))


def test_random_crop_window_reaches_every_offset():
    # A fixed scale (s = 256) fixes the side at round(224 * 250 / 256) = 219 px: 32 column
    # offsets 0..31 and 82 row offsets 0..81, edges included.
    window = tf.function(
        lambda s: data.transforms.random_crop_window(
            tf.constant([300, 250, 3]), tf.stack([1, s]), 224, 256, 256
        )
    )
    windows = np.array([window(tf.constant(s)).numpy() for s in range(1000)])
    assert set(windows[:, 2]) == set(windows[:, 3]) == {219}
    assert set(windows[:, 1]) == set(range(32))
    assert set(windows[:, 0]) == set(range(82))


@pytest.mark.parametrize("shape", [(10, 500), (500, 10), (256, 341), (1, 1)])
def test_center_crop_window_is_centred_and_inside(shape):
    height, width = shape
    window = data.transforms.center_crop_window(tf.constant([height, width, 3]), 224, 256)
    y, x, h, w = window.numpy()
    assert h == w == max(1, round(224 * min(shape) / 256))
    assert y + h <= height and x + w <= width
    assert abs((height - h) - 2 * y) <= 1 and abs((width - w) - 2 * x) <= 1


def test_scale_jitter_covers_the_range():
    sides = [
        int(
            data.transforms.random_crop_window(
                tf.constant([512, 1024, 3]), tf.constant([0, s]), 224, 256, 512
            )[2]
        )
        for s in range(200)
    ]
    # min side 512: s = 256 gives 448 px, s = 512 gives 224 px.
    assert min(sides) <= 235 and max(sides) >= 435


def test_train_transform_output_and_determinism(photo):
    _, encoded = photo
    out = data.train_transform(tf.constant(encoded), tf.constant([1, 2]), SMALL)
    again = data.train_transform(tf.constant(encoded), tf.constant([1, 2]), SMALL)
    other = data.train_transform(tf.constant(encoded), tf.constant([1, 3]), SMALL)
    assert out.shape == (32, 32, 3) and out.dtype == tf.float32
    assert 0.0 <= float(tf.reduce_min(out)) and float(tf.reduce_max(out)) <= 255.0
    np.testing.assert_array_equal(out.numpy(), again.numpy())
    assert not np.array_equal(out.numpy(), other.numpy())


def test_transforms_inside_dataset_map(photo):
    _, encoded = photo
    ds = tf.data.Dataset.from_tensor_slices([encoded] * 4).enumerate()
    train = ds.map(
        lambda i, b: data.train_transform(b, tf.stack([tf.constant(0, tf.int64), i]), SMALL),
        num_parallel_calls=2,
    )
    evaluation = ds.map(lambda i, b: data.eval_transform(b, SMALL))
    assert [tuple(x.shape) for x in train] == [(32, 32, 3)] * 4
    views = [x.numpy() for x in evaluation]
    np.testing.assert_array_equal(views[0], views[3])


def test_fused_and_unfused_decode_the_same_window(photo):
    _, encoded = photo
    no_augment = data.TransformConfig(
        crop_size=32, min_scale=36, max_scale=64, flip=False, pca_lighting=0.0
    )
    for s in range(8):
        seed = tf.constant([3, s])
        fused = data.train_transform(tf.constant(encoded), seed, no_augment, decode="auto").numpy()
        unfused = data.train_transform(
            tf.constant(encoded), seed, no_augment, decode="full"
        ).numpy()
        # libjpeg's cropped decode can differ by chroma upsampling at the window edge only.
        assert np.mean(np.abs(fused - unfused)) < 1.0
        assert np.percentile(np.abs(fused - unfused), 99) < 12.0


def test_fused_crop_matches_resize_then_crop_of_the_paper(photo):
    """The window in original pixels is the paper's crop after resizing the shorter side to s."""
    image, encoded = photo
    config = data.TransformConfig(crop_size=40, min_scale=60, max_scale=60, eval_resize=60)
    out = data.eval_transform(tf.constant(encoded), config).numpy()
    decoded = tf.io.decode_jpeg(encoded).numpy().astype(np.float32)
    resized = tf.image.resize(decoded, [60, 80]).numpy()  # shorter side 75 -> 60
    errors = {
        (dy, dx): np.mean(np.abs(out - resized[10 + dy : 50 + dy, 20 + dx : 60 + dx]))
        for dy in (-3, 0, 3)
        for dx in (-3, 0, 3)
    }
    # Resampling grids differ by a fraction of a pixel; the right window still fits best.
    assert min(errors, key=errors.get) == (0, 0)
    assert errors[(0, 0)] < 6.0


def test_eval_transform_on_small_image_and_crop():
    image = testing.smooth_image(3, 20, 30)
    config = data.TransformConfig(crop_size=8, min_scale=8, max_scale=16, eval_resize=10)
    out = data.eval_transform(tf.constant(testing.encode_jpeg(image)), config)
    assert out.shape == (8, 8, 3)


def test_random_flip_mirrors_about_half_the_time():
    image = tf.reshape(tf.range(2 * 3 * 3, dtype=tf.float32), [2, 3, 3])
    flipped = 0
    for s in range(200):
        out = data.transforms.random_flip(image, tf.constant([0, s])).numpy()
        if np.array_equal(out, image.numpy()[:, ::-1]):
            flipped += 1
        else:
            np.testing.assert_array_equal(out, image.numpy())
    assert 70 <= flipped <= 130


def test_train_transform_flips_the_same_crop():
    # The flip comes after the resize: a flipped output is the mirror of the unflipped crop.
    encoded = tf.constant(testing.encode_jpeg(testing.smooth_image(3, 60, 80)))
    kept = data.TransformConfig(crop_size=32, min_scale=36, max_scale=64, flip=False)
    flipping = data.TransformConfig(crop_size=32, min_scale=36, max_scale=64, flip=True)
    mirrored = 0
    for s in range(16):
        seed = tf.constant([2, s])
        plain = data.train_transform(encoded, seed, kept).numpy()
        out = data.train_transform(encoded, seed, flipping).numpy()
        if np.allclose(out, plain[:, ::-1], atol=1e-3) and not np.allclose(out, plain):
            mirrored += 1
        else:
            np.testing.assert_allclose(out, plain, atol=1e-3)
    assert 3 <= mirrored <= 13


def test_pca_lighting_matches_numpy_formula():
    image = tf.fill([4, 4, 3], 128.0)
    seed = tf.constant([5, 6])
    out = data.transforms.pca_lighting(image, seed, stddev=0.1).numpy()
    alpha = tf.random.stateless_normal([3], tf.cast(seed, tf.int64), stddev=0.1).numpy()
    eigenvectors = np.array(data.transforms.IMAGENET_PCA_EIGENVECTORS)
    offset = eigenvectors @ (alpha * np.array(data.transforms.IMAGENET_PCA_EIGENVALUES)) * 255.0
    np.testing.assert_allclose(out, 128.0 + offset[None, None, :] * np.ones((4, 4, 1)), atol=1e-3)
    # Lighting noise is a colour shift of a few grey levels, not a wash-out.
    assert np.all(np.abs(offset) < 30)


def test_per_channel_add_equals_broadcasting():
    # Non-square, non-constant: a mix-up of rows, columns or channels would show.
    image = np.random.default_rng(0).uniform(0, 255, (5, 7, 3)).astype(np.float32)
    offset = np.array([-40.5, 3.25, 17.0], np.float32)
    out = data.transforms._add_per_channel(tf.constant(image), tf.constant(offset)).numpy()
    np.testing.assert_array_equal(out, image + offset)


def test_color_jitter_stays_in_range():
    image = tf.constant(testing.smooth_image(1, 16, 16), tf.float32)
    out = data.transforms.color_jitter(image, tf.constant([1, 1]), 0.4).numpy()
    assert out.shape == (16, 16, 3) and out.min() >= 0 and out.max() <= 255
    assert not np.allclose(out, image.numpy())
    config = data.TransformConfig(crop_size=8, min_scale=8, max_scale=8, color_jitter=0.3)
    encoded = tf.constant(testing.encode_jpeg(testing.smooth_image(1, 16, 16)))
    assert data.train_transform(encoded, tf.constant([0, 0]), config).shape == (8, 8, 3)


def _formats():
    rgb = testing.smooth_image(4, 24, 32)
    gray = rgb[..., :1]
    blocks = np.full((3, 4, 4), 255, np.uint8)
    blocks[1, 2] = [0, 255, 255, 255]  # inverted Adobe CMYK: full cyan
    return {
        "png": (tf.io.encode_png(rgb).numpy(), rgb),
        "grayscale_jpeg": (testing.encode_jpeg(gray, 95), np.repeat(gray, 3, axis=-1)),
        "cmyk_jpeg": (testing.cmyk_jpeg(blocks), None),
    }


@pytest.mark.parametrize("name", ["png", "grayscale_jpeg", "cmyk_jpeg"])
def test_png_grayscale_and_cmyk_decode_to_rgb(name):
    encoded, expected = _formats()[name]
    assert bool(data.looks_decodable(tf.constant(encoded)))
    full = lambda shape: tf.stack([0, 0, shape[0], shape[1]])  # noqa: E731
    image = data.transforms.decode_and_crop(tf.constant(encoded), full).numpy()
    assert image.shape[-1] == 3 and image.dtype == np.uint8
    if name == "cmyk_jpeg":
        np.testing.assert_array_equal(image[0, 0], [255, 255, 255])
        np.testing.assert_array_equal(image[8:16, 16:24], np.broadcast_to([0, 255, 255], (8, 8, 3)))
    else:
        assert np.mean(np.abs(image.astype(float) - expected)) < 3.0
    # A window through the fallback path equals the same slice of the full decode.
    window = lambda shape: tf.constant([2, 3, 6, 6])  # noqa: E731
    cropped = data.transforms.decode_and_crop(tf.constant(encoded), window).numpy()
    np.testing.assert_array_equal(cropped, image[2:8, 3:9])
    out = data.train_transform(
        tf.constant(encoded),
        tf.constant([0, 1]),
        data.TransformConfig(crop_size=8, min_scale=8, max_scale=16, eval_resize=8),
    )
    assert out.shape == (8, 8, 3)


def test_looks_decodable_rejects_truncated_and_garbage(photo):
    _, encoded = photo
    png = tf.io.encode_png(testing.smooth_image(0, 8, 8)).numpy()
    assert bool(data.looks_decodable(tf.constant(encoded)))
    assert bool(data.looks_decodable(tf.constant(encoded + b"\x00" * 10)))  # trailing padding
    assert not bool(data.looks_decodable(tf.constant(encoded[: len(encoded) // 2])))
    assert not bool(data.looks_decodable(tf.constant(png[:-20])))
    assert not bool(data.looks_decodable(tf.constant(b"")))
    assert not bool(data.looks_decodable(tf.constant(b"<html>not found</html>" * 4)))


def _encoded(image: np.ndarray, fmt: str, **options) -> bytes:
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, fmt, **options)
    return buffer.getvalue()


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "GIF", "BMP"])
def test_image_size_from_header(fmt):
    image = testing.smooth_image(1, 37, 53)
    size = data.transforms.image_size_from_header(tf.constant(_encoded(image, fmt)))
    assert size.numpy().tolist() == [37, 53]


def test_image_size_from_header_odd_bmps_and_non_images():
    import struct

    bmp = bytearray(_encoded(testing.smooth_image(1, 6, 9), "BMP"))
    bmp[22:26] = struct.pack("<i", -6)  # a top-down bitmap stores a negative height
    size = data.transforms.image_size_from_header
    assert size(tf.constant(bytes(bmp))).numpy().tolist() == [6, 9]
    # OS/2 1.x files: a 12-byte core header with 16-bit width and height.
    core = b"BM" + bytes(12) + struct.pack("<IHHHH", 12, 9, 6, 1, 24)
    assert size(tf.constant(core)).numpy().tolist() == [6, 9]
    for junk in [b"", b"BM", b"not an image at all", b"\x89PN"]:
        assert size(tf.constant(junk)).numpy().tolist() == [-1, -1]


@pytest.mark.parametrize(
    "shape, ratio", [((500, 700), 1), ((511, 900), 1), ((512, 900), 2), ((1100, 1024), 4),
                     ((3000, 4000), 8), ((30000, 40000), 8)],
)  # fmt: skip
def test_jpeg_scale_ratio_keeps_the_shorter_side(shape, ratio):
    index = data.transforms.jpeg_scale_ratio(tf.constant([*shape, 3]), 256)
    assert 2 ** int(index) == ratio
    assert -(-min(shape) // ratio) >= 256


def test_eval_view_of_a_large_jpeg_decoded_at_a_reduced_scale():
    """On a photo-like (smooth) image the 1/8-scale view matches the full decode's view."""
    small = testing.smooth_image(2, 44, 57).astype("float32")
    image = tf.cast(tf.image.resize(small, [700, 900]), tf.uint8).numpy()
    jpeg = tf.constant(testing.encode_jpeg(image, quality=95))
    config = data.TransformConfig(crop_size=64, min_scale=64, max_scale=64, eval_resize=80)
    full = data.transforms.eval_transform(jpeg, config, decode="full").numpy()
    reduced = data.transforms.eval_transform(jpeg, config).numpy()  # 1/8 scale: 88 x 113 px
    window = data.transforms.center_crop_window(tf.constant([88, 113, 3]), 64, 80).numpy()
    scaled = tf.io.decode_jpeg(jpeg, ratio=8)[window[0] :, window[1] :][: window[2], : window[3]]
    want = tf.image.resize(tf.cast(scaled, tf.float32), [64, 64]).numpy()
    np.testing.assert_allclose(reduced, np.clip(want, 0, 255), atol=1e-3)  # it took that path
    # Measured 4.3 of 255: the window's corner is rounded at 1/8 scale (up to 4 full-scale px)
    # and the DCT scaling filters where the bilinear resize of the full decode aliases.
    assert np.abs(reduced - full).mean() < 8.0
