"""What one request may cost: bad bytes and huge images are refused before decoding, the model
keeps serving, and large JPEGs are decoded at a reduced DCT scale."""

import struct

import numpy as np
import pytest
from serving_support import CLASSES, CROP, RESIZE, encoded, images, jpeg

pytestmark = pytest.mark.tf_only

tf = pytest.importorskip("tensorflow")

from rectifier_zoo.data import testing, transforms  # noqa: E402
from rectifier_zoo.serving import contract, export  # noqa: E402


def test_bad_requests_fail_and_model_keeps_serving(exported):
    loaded = tf.saved_model.load(exported)
    serve = loaded.signatures["serving_default"]
    png = tf.io.encode_png(testing.smooth_image(1, 50, 70)).numpy()
    good = serve(images=tf.constant([png]))["probabilities"].numpy()
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"expects encoded JPEG(.|\n)*\[1\]"):
        serve(images=tf.constant([png, b"this is not an image"]))
    with pytest.raises(tf.errors.InvalidArgumentError):
        serve(images=tf.constant([jpeg(2, 50, 70)[:100]]))  # truncated
    with pytest.raises((TypeError, ValueError, tf.errors.InvalidArgumentError)):
        serve(images=tf.constant([1.0, 2.0]))  # wrong dtype
    with pytest.raises((TypeError, ValueError, tf.errors.InvalidArgumentError)):
        serve(images=tf.constant([[png]]))  # wrong rank
    with pytest.raises((TypeError, ValueError, tf.errors.InvalidArgumentError)):
        loaded.signatures["predict_images"](images=tf.zeros([2, 64, 64]))
    np.testing.assert_allclose(serve(images=tf.constant([png]))["probabilities"].numpy(), good)


def _with_size(data: bytes, height: int, width: int) -> bytes:
    """The same file with the header claiming another size (nothing else changes)."""
    data = bytearray(data)
    if data.startswith(transforms.IMAGE_SIGNATURES["JPEG"]):
        at = data.index(b"\xff\xc0") + 5  # the SOF0 marker's height and width
        data[at : at + 4] = struct.pack(">HH", height, width)
    elif data.startswith(transforms.IMAGE_SIGNATURES["PNG"]):
        data[16:24] = struct.pack(">II", width, height)
    elif data.startswith(transforms.IMAGE_SIGNATURES["GIF"]):
        data[6:10] = struct.pack("<HH", width, height)
    else:
        assert data.startswith(transforms.IMAGE_SIGNATURES["BMP"])
        data[18:26] = struct.pack("<ii", width, height)
    return bytes(data)


@pytest.mark.parametrize("fmt", transforms.IMAGE_FORMATS)
def test_huge_images_are_refused_before_decoding(exported, fmt):
    serve = tf.saved_model.load(exported).signatures["serving_default"]
    small = encoded(testing.smooth_image(3, 40, 50), fmt)
    assert serve(images=tf.constant([small]))["probabilities"].shape == (1, len(CLASSES))
    huge = _with_size(small, 20000, 20000)
    with pytest.raises(
        tf.errors.InvalidArgumentError,
        match=rf"max_pixels={contract.DEFAULT_MAX_PIXELS}(.|\n)*batch indices:(.|\n)*\[1\]"
        r"(.|\n)*20000 20000",
    ):
        serve(images=tf.constant([small, huge]))


def test_max_pixels_is_settable_and_guards_every_endpoint(model, tmp_path):
    path = export.export_model(
        model, tmp_path / "m", class_names=CLASSES, crop_size=CROP, eval_resize=RESIZE,
        max_pixels=100 * 100,
    )  # fmt: skip
    assert contract.read_metadata(path)["input_contract"]["max_pixels"] == 10000
    loaded = tf.saved_model.load(path)
    loaded.signatures["serving_default"](images=tf.constant([jpeg(1, 100, 100)]))
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"max_pixels=10000"):
        loaded.signatures["serving_default"](
            images=tf.constant([jpeg(1, 100, 100), jpeg(1, 101, 100)])
        )
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"max_pixels=10000"):
        loaded.signatures["predict_images"](images=images(1, shape=(1, 120, 100)))
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"max_pixels=10000"):
        loaded.signatures["dense"](images=images(1, shape=(1, 120, 100)), mirror=False)
    with pytest.raises(ValueError, match="max_pixels"):
        export.export_model(model, tmp_path / "n", class_names=CLASSES, max_pixels=100)


def test_large_jpegs_decode_at_a_reduced_dct_scale(model, tmp_path):
    """A big JPEG served with and without DCT downscaling: the same view, up to resampling."""
    big = jpeg(4, 600, 760)  # ratio 8 for eval_resize 72
    scores = {}
    for downscale in (True, False):
        path = export.export_model(
            model, tmp_path / str(downscale), class_names=CLASSES, crop_size=CROP,
            eval_resize=RESIZE, jpeg_downscale=downscale,
        )  # fmt: skip
        serve = tf.saved_model.load(path).signatures["serving_default"]
        scores[downscale] = serve(images=tf.constant([big]))["probabilities"].numpy()
    np.testing.assert_allclose(scores[True], scores[False], atol=2e-2)
