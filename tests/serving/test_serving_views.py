"""The protocols' views: the ten crops in their documented order, the centre crop, the resize."""

import numpy as np
import pytest

pytestmark = pytest.mark.tf_only

tf = pytest.importorskip("tensorflow")

from rectifier_zoo import paper  # noqa: E402
from rectifier_zoo.serving import protocols, views  # noqa: E402


def _ramp(height, width):
    """An image whose every pixel says where it is: (row, column, 0)."""
    rows, cols = np.meshgrid(np.arange(height), np.arange(width), indexing="ij")
    return np.stack([rows, cols, np.zeros_like(rows)], axis=-1).astype("float32")


def test_ten_view_crops_order_and_mirrors():
    image = _ramp(9, 12)
    crops = views.ten_view_crops(tf.constant(image), 4).numpy()
    assert crops.shape == (10, 4, 4, 3)
    corners = [tuple(crop[0, 0, :2]) for crop in crops[:5]]
    assert corners == [(0, 0), (0, 8), (5, 0), (5, 8), (2, 4)]
    np.testing.assert_array_equal(crops[5:], crops[:5, :, ::-1])


def test_center_crop_and_resize_shorter_side():
    image = _ramp(9, 12)
    crop = views.center_crop(tf.constant(image), 4).numpy()
    assert tuple(crop[0, 0, :2]) == (2, 4)
    resized = views.resize_shorter_side(tf.constant(image * 10), 18)
    assert resized.shape == (18, 24, 3)
    assert float(tf.reduce_max(resized)) <= 255.0  # clipped


def test_default_scales_are_the_papers():
    assert protocols.default_scales(protocols.DENSE) == paper.DENSE_SCALES
    assert protocols.default_scales(protocols.CENTER) == (paper.TEST_RESIZE,)
    assert protocols.default_scales(protocols.TEN_VIEW, 72) == (72,)
    assert set(protocols.ENDPOINTS) == set(protocols.PROTOCOLS)
