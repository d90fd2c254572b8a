"""Dense multi-view testing on feature maps (Sec. 2.3, "Testing"), in one pass of the conv layers.

    from rectifier_zoo.serving.dense import DenseScorer
    scorer = DenseScorer(model)                    # windows of the crop's conv-map side
    probabilities = scorer(images, mirror=True)    # [batch, classes]

The paper applies the conv layers once to the whole image and the SPP layer and fc layers to
every window of the last conv map whose size is that of a test crop. `DenseScorer` does this
with the model's own layers; the export's `dense` endpoint and the evaluator's `dense` protocol
call it.
"""

import keras
import tensorflow as tf

from rectifier_zoo import paper
from rectifier_zoo.layers import spp_bins
from rectifier_zoo.serving.servable import probabilities, servable, spp_layer


class DenseScorer:
    """Scores every `window_cells x window_cells` window of the last conv map at once.

    The trunk (input -> the input of `spp`) runs once on the whole image. For a window of
    `k x k` cells, bin `(i, j)` of an SPP level covers rows `spp_bins(k, n)[i]` and columns
    `spp_bins(k, n)[j]` relative to the window's corner, so a stride-1 max-pool of the whole map
    with that bin's size, sliced at the bin's offset, is that bin for every window at once. Bins of
    one size share their pooled map. The bins are concatenated in the layer's documented order
    (levels, then (i, j) row-major, channels fastest) and the model's own fc layers score all
    windows as one batch. A map smaller than a window along either side is scored as one window
    (the whole map through the model's SPP layer). Logits are turned into softmax scores.

    Args:
        model: a functional model with the top (`spp`, then the fc layers), channels_last.
        window_cells: window side in cells; None: the conv-map side of a `crop_size` input
            (`paper.DENSE_WINDOW_CELLS` for Models A/B/C at `paper.CROP_SIZE`).
        crop_size: used when `window_cells` is None.
    """

    def __init__(
        self, model: keras.Model, window_cells: int | None = None, crop_size: int = paper.CROP_SIZE
    ):
        model, self.logits = servable(model)
        spp = spp_layer(model)
        self.spp = spp
        # Functional sub-models over the same layer objects: no weights are copied.
        self.trunk = keras.Model(model.input, spp.input, name=f"{model.name}_trunk")
        self.head = keras.Model(spp.output, model.output, name=f"{model.name}_head")
        if window_cells is None:
            window_cells = int(self.trunk.compute_output_shape((1, crop_size, crop_size, 3))[1])
        if not isinstance(window_cells, int) or isinstance(window_cells, bool) or window_cells < 1:
            raise ValueError(
                "`window_cells` must be a positive integer. "
                f"Received: window_cells={window_cells!r}"
            )
        self.window_cells = window_cells

    def window_features(self, feature_map: tf.Tensor) -> tf.Tensor:
        """SPP vectors of every window: [batch, rows, cols, channels * num_bins]."""
        k = self.window_cells
        shape = tf.shape(feature_map)
        rows, cols = shape[1] - k + 1, shape[2] - k + 1
        pooled = {}
        parts = []
        for n in self.spp.levels:
            edges = spp_bins(k, n)
            for top, bottom in edges:
                for left, right in edges:
                    size = (bottom - top, right - left)
                    if size not in pooled:
                        pooled[size] = tf.nn.max_pool2d(
                            feature_map, ksize=size, strides=1, padding="VALID"
                        )
                    parts.append(pooled[size][:, top : top + rows, left : left + cols, :])
        return tf.concat(parts, axis=-1)

    def window_probabilities(self, images: tf.Tensor) -> tf.Tensor:
        """Softmax scores of every window: [batch, num_windows, classes]."""
        feature_map = self.trunk(images, training=False)
        batch = tf.shape(feature_map)[0]
        k = self.window_cells
        fits = tf.logical_and(tf.shape(feature_map)[1] >= k, tf.shape(feature_map)[2] >= k)

        def all_windows():
            features = self.window_features(feature_map)
            flat = tf.reshape(features, [-1, features.shape[-1]])
            return self._scores(flat)

        def whole_map():
            return self._scores(self.spp(feature_map))

        scores = tf.cond(fits, all_windows, whole_map)
        return tf.reshape(scores, [batch, -1, scores.shape[-1]])

    def _scores(self, features):
        return probabilities(self.head(features, training=False), self.logits)

    def score(self, images: tf.Tensor, mirror: tf.Tensor | bool = False):
        """(mean window scores per image [batch, classes], windows averaged per image)."""
        images = tf.convert_to_tensor(images, tf.float32)
        mirror = tf.convert_to_tensor(mirror, tf.bool)
        views = tf.cond(
            mirror,
            lambda: tf.concat([images, tf.reverse(images, axis=[2])], axis=0),
            lambda: images,
        )
        scores = self.window_probabilities(views)
        num_images = tf.shape(images)[0]
        windows = tf.shape(scores)[1]
        scores = tf.reshape(scores, [-1, num_images, windows, scores.shape[-1]])
        return tf.reduce_mean(scores, axis=[0, 2]), windows * tf.shape(scores)[0]

    def __call__(self, images: tf.Tensor, mirror: tf.Tensor | bool = False) -> tf.Tensor:
        """Mean window scores per image: [batch, classes] (and the mirror's windows if `mirror`)."""
        return self.score(images, mirror)[0]
