"""The three endpoints of an export, traced into a `keras.export.ExportArchive`, and its metadata.

    functions = ServingFunctions(model, class_names, crop_size=64, eval_resize=72)
    archive = build_archive(functions)       # then archive.write_out(folder)
    info = build_metadata(functions, {"steps": 450_000})

The endpoints are built from the model's own layers, traced without XLA and with unknown image
sizes (the names are in `contract`):

- `serving_default`: encoded bytes -> the size checks of `limits` -> decoded (large JPEGs at a
  reduced DCT scale) -> the evaluation view (shorter side `eval_resize`, centre `crop_size` crop)
  -> probabilities and the top-k classes, scores and names.
- `predict_images`: float32 RGB images in 0..255, any size (SPP makes the head size-free) -> the
  same outputs.
- `dense`: the paper's "multi-view testing on feature maps" (`dense.DenseScorer`), images of one
  size and a `mirror` flag -> mean probabilities and the number of windows.

A model whose top gives logits gets the softmax in the graph, so every endpoint serves
probabilities.
"""

import datetime
from collections.abc import Sequence

import keras
import tensorflow as tf

from rectifier_zoo import paper
from rectifier_zoo.data import transforms
from rectifier_zoo.layers import PReLU
from rectifier_zoo.serving import contract, limits
from rectifier_zoo.serving.dense import DenseScorer
from rectifier_zoo.serving.servable import probabilities, servable

_IMAGES = tf.TensorSpec([None, None, None, 3], tf.float32, name=contract.IMAGES)


class ServingFunctions:
    """The endpoints' Python functions over one model (traced by `ExportArchive`)."""

    def __init__(
        self,
        model: keras.Model,
        class_names: Sequence[str],
        crop_size: int = paper.CROP_SIZE,
        eval_resize: int = paper.TEST_RESIZE,
        window_cells: int | None = None,
        max_pixels: int = contract.DEFAULT_MAX_PIXELS,
        jpeg_downscale: bool = True,
    ):
        self.model, self.logits = servable(model)
        self.scorer = DenseScorer(self.model, window_cells, crop_size)
        self.class_names = list(class_names)
        self.crop_size = crop_size
        self.max_pixels = max_pixels
        self.transform_config = transforms.TransformConfig(
            crop_size=crop_size,
            min_scale=crop_size,
            max_scale=crop_size,
            eval_resize=eval_resize,
            jpeg_downscale=jpeg_downscale,
        )
        self.top_k = min(contract.TOP_K, len(class_names))

    def probabilities(self, images):
        return probabilities(self.model(images, training=False), self.logits)

    def _outputs(self, probabilities):
        scores, classes = tf.math.top_k(probabilities, k=self.top_k)
        names = tf.constant(self.class_names, tf.string)
        return {
            contract.PROBABILITIES: probabilities,
            contract.CLASSES: classes,
            contract.SCORES: scores,
            contract.CLASS_NAMES: tf.gather(names, classes),
        }

    def serve_bytes(self, images):
        with tf.control_dependencies([limits.check_encoded_images(images, self.max_pixels)]):
            decoded = tf.map_fn(
                lambda image: transforms.eval_transform(image, self.transform_config),
                images,
                fn_output_signature=tf.TensorSpec([self.crop_size, self.crop_size, 3], tf.float32),
            )
        return self._outputs(self.probabilities(decoded))

    def predict_images(self, images):
        images = limits.check_image_tensor(images, self.max_pixels)
        return self._outputs(self.probabilities(images))

    def dense(self, images, mirror):
        images = limits.check_image_tensor(images, self.max_pixels)
        probabilities, num_windows = self.scorer.score(images, mirror)
        return {contract.PROBABILITIES: probabilities, contract.NUM_WINDOWS: num_windows}


def build_archive(functions: ServingFunctions) -> keras.export.ExportArchive:
    """The archive with the three endpoints, tracking every variable the model holds."""
    archive = keras.export.ExportArchive()
    archive.track(functions.model)
    archive.add_endpoint(
        contract.SERVING_DEFAULT,
        functions.serve_bytes,
        input_signature=[tf.TensorSpec([None], tf.string, name=contract.IMAGES)],
    )
    archive.add_endpoint(
        contract.PREDICT_IMAGES, functions.predict_images, input_signature=[_IMAGES]
    )
    archive.add_endpoint(
        contract.DENSE,
        functions.dense,
        input_signature=[_IMAGES, tf.TensorSpec([], tf.bool, name=contract.MIRROR)],
    )
    return archive


def _activation(model: keras.Model) -> dict:
    prelus = [layer for layer in model.layers if isinstance(layer, PReLU)]
    if not prelus:
        return {"activation": "relu"}
    return {"activation": "prelu", "channel_shared": bool(prelus[0].channel_shared)}


def build_metadata(functions: ServingFunctions, metadata: dict | None) -> dict:
    """The contents of `metadata.json`: what was exported, its input contract, and `metadata`."""
    from rectifier_zoo import __version__

    model = functions.model
    config = functions.transform_config
    crop, resize = config.crop_size, config.eval_resize
    window_cells = functions.scorer.window_cells
    info = {
        "architecture": model.name,
        **_activation(model),
        "num_classes": len(functions.class_names),
        "num_params": int(model.count_params()),
        "spp_levels": list(functions.scorer.spp.levels),
        "softmax_added_in_graph": functions.logits,
        contract.INPUT_CONTRACT: {
            contract.SERVING_DEFAULT: f"tf.string [batch]: {limits.ACCEPTED_FORMATS} bytes; "
            "refused above max_pixels; decoded (large JPEGs at a reduced DCT scale), shorter side "
            f"resized to {resize}, centre {crop}x{crop} crop, in the graph",
            contract.PREDICT_IMAGES: "float32 [batch, height, width, 3], RGB in 0..255, any "
            "size >= the model's minimum; the model subtracts the ImageNet mean itself",
            contract.DENSE: "float32 [batch, height, width, 3] RGB in 0..255 (images of one "
            "size, one scale) and bool mirror; mean softmax of every window of "
            f"{window_cells}x{window_cells} conv-map cells, stride 1",
            contract.CROP_SIZE: crop,
            contract.EVAL_RESIZE: resize,
            "window_cells": window_cells,
            "max_pixels": functions.max_pixels,
            "jpeg_downscale": config.jpeg_downscale,
            "pixel_range": [0, 255],
            "channel_order": "RGB",
        },
        "endpoints": list(contract.ENDPOINTS),
        "top_k": functions.top_k,
        "class_names_file": f"{contract.ASSETS_DIR}/{contract.CLASS_NAMES_FILE}",
        "exported_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "rectifier_zoo_version": __version__,
        "tensorflow_version": tf.__version__,
        "keras_version": keras.__version__,
    }
    info.update(metadata or {})
    return info
