"""DenseScorer: every window of the conv map at once equals every window cut one by one."""

import numpy as np
import pytest
from serving_support import CROP, images

pytestmark = pytest.mark.tf_only

tf = pytest.importorskip("tensorflow")

from rectifier_zoo.serving.dense import DenseScorer  # noqa: E402


def _windows_one_by_one(model, scorer, batch, mirror):
    """Reference: every window cut from the conv map, through the model's SPP and fc layers."""
    spp = model.get_layer("spp")
    views = [batch, batch[:, :, ::-1]] if mirror else [batch]
    k = scorer.window_cells
    per_view = []
    for view in views:
        feature_map = scorer.trunk(view).numpy()
        scores = []
        for y in range(feature_map.shape[1] - k + 1):
            for x in range(feature_map.shape[2] - k + 1):
                window = feature_map[:, y : y + k, x : x + k]
                scores.append(scorer.head(spp(window)).numpy())
        per_view.append(np.mean(scores, axis=0))
    return np.mean(per_view, axis=0)


@pytest.mark.parametrize("mirror", [False, True])
def test_dense_equals_windows_one_by_one(model, mirror):
    scorer = DenseScorer(model, crop_size=CROP)
    assert scorer.window_cells == 8  # the tiny net's total stride is 8: 64 / 8
    assert scorer.trunk.get_layer("conv1") is model.get_layer("conv1")  # shared, not copied
    batch = images()
    dense = tf.function(
        lambda x, m: scorer(x, m),
        input_signature=[tf.TensorSpec([None, None, None, 3]), tf.TensorSpec([], tf.bool)],
        autograph=False,
    )
    got = dense(batch, tf.constant(mirror)).numpy()
    want = _windows_one_by_one(model, scorer, batch, mirror)
    np.testing.assert_allclose(got, want, atol=1e-5)


def test_dense_small_map_is_one_window(model):
    scorer = DenseScorer(model, window_cells=8)
    batch = images(shape=(1, 48, 96))  # 6 x 12 cells: shorter than a window
    got = scorer(batch).numpy()
    np.testing.assert_allclose(got, model(batch).numpy(), atol=1e-6)


@pytest.mark.parametrize("window_cells", [0, -1, 2.5, True])
def test_window_cells_must_be_a_positive_integer(model, window_cells):
    with pytest.raises(ValueError, match="window_cells"):
        DenseScorer(model, window_cells=window_cells)
