"""SavedModel export for TensorFlow Serving (TensorFlow only).

    from rectifier_zoo import export
    path = export.export_model(model, "exported_models/model_a", class_names=names,
                               metadata={"training_data": "imagenet2012", "steps": 450_000})

The SavedModel (DESIGN.md, "SavedModel contract") has three endpoints, all built from the
model's own layers (no weight copies), traced without XLA and with unknown image sizes:

- `serving_default`: `images` tf.string [batch] (JPEG or PNG bytes) -> `probabilities`
  [batch, classes], `classes` (top-5 ids), `scores` (top-5 probabilities), `class_names` (top-5
  names). Decoding and the evaluation view (shorter side `eval_resize`, centre `crop_size`
  crop) run inside the graph.
- `predict_images`: `images` float32 RGB [batch, H, W, 3] in 0..255, any size (SPP makes the head
  size-free) -> the same outputs.
- `dense`: the paper's "multi-view testing on feature maps" (Sec. 3.3 / PAPER.md Sec. 6):
  `images` float32 [batch, H, W, 3] (one scale, images of one size) and `mirror` bool [] ->
  `probabilities` [batch, classes], the mean softmax of every `window_cells x window_cells`
  window (stride 1 cell) of the last conv map, with the conv layers run once per image (and
  once more on the mirrored image when `mirror`), and `num_windows`.

Assets: `class_names.txt` (one name a line, in class-index order) and `metadata.json`.
"""

import datetime
import json
import os
import shutil
import tempfile
import uuid
from collections.abc import Sequence

import keras
import tensorflow as tf

from rectifier_zoo.data import transforms
from rectifier_zoo.layers import PReLU, SpatialPyramidPooling, spp_bins

CLASS_NAMES_FILE = "class_names.txt"
METADATA_FILE = "metadata.json"
SPP_LAYER = "spp"
TOP_K = 5
ENDPOINTS = ("serving_default", "predict_images", "dense")
# The paper's test view (Sec. 3.3 / PAPER.md Sec. 6): shorter side 256, centre 224.
DEFAULT_CROP_SIZE = 224
DEFAULT_EVAL_RESIZE = 256
_IMAGE_SIGNATURES = (b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"GIF8", b"BM")


def _spp_layer(model: keras.Model) -> SpatialPyramidPooling:
    try:
        layer = model.get_layer(SPP_LAYER)
    except ValueError:
        layer = None
    if not isinstance(layer, SpatialPyramidPooling):
        raise ValueError(
            "The model needs its SpatialPyramidPooling layer named 'spp' and the top (build it "
            f"with include_top=True). Received: model {model.name!r} without it"
        )
    if layer.data_format != "channels_last":
        raise ValueError(
            "Export supports channels_last models only. "
            f"Received: data_format={layer.data_format!r}"
        )
    return layer


class DenseScorer:
    """Scores every `window_cells x window_cells` window of the last conv map at once.

    The trunk (input -> the input of `spp`) runs once on the whole image. For a window of
    `k x k` cells, bin `(i, j)` of an SPP level covers rows `spp_bins(k, n)[i]` and columns
    `spp_bins(k, n)[j]` relative to the window's corner, so a stride-1 max-pool of the whole map
    with that bin's size, sliced at the bin's offset, is that bin for every window at once. Bins of
    one size share their pooled map. The bins are concatenated in the layer's documented order
    (levels, then (i, j) row-major, channels fastest) and the model's own fc layers score all
    windows as one batch. A map smaller than a window along either side is scored as one window
    (the whole map through the model's SPP layer).

    Args:
        model: a model with the top (`spp`, then the fc layers), channels_last.
        window_cells: window side in cells; None: the conv-map side of a `crop_size` input
            (14 for Models A/B/C at 224).
        crop_size: used when `window_cells` is None.
    """

    def __init__(self, model: keras.Model, window_cells: int | None = None, crop_size: int = 224):
        spp = _spp_layer(model)
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
        scores = self.head(features, training=False)
        return tf.cast(scores[0] if isinstance(scores, list | tuple) else scores, tf.float32)

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


def _check_image_bytes(images: tf.Tensor) -> tf.Tensor:
    head = tf.strings.substr(images, 0, 8)
    known = tf.zeros_like(images, dtype=tf.bool)
    for signature in _IMAGE_SIGNATURES:
        known = tf.logical_or(
            known, tf.equal(tf.strings.substr(head, 0, len(signature)), signature)
        )
    return tf.debugging.Assert(
        tf.reduce_all(known),
        [
            "serving_default expects encoded JPEG or PNG images (GIF and BMP also decode); "
            "these request elements are not images (False):",
            known,
        ],
        summarize=64,
    )


class ServingModule(tf.Module):
    """The exported object: the model, its dense scorer, class names and the endpoints."""

    def __init__(
        self,
        model: keras.Model,
        class_names: Sequence[str],
        crop_size: int = DEFAULT_CROP_SIZE,
        eval_resize: int = DEFAULT_EVAL_RESIZE,
        window_cells: int | None = None,
    ):
        super().__init__(name="rectifier_zoo_serving")
        self.model = model
        self.scorer = DenseScorer(model, window_cells, crop_size)
        self.class_name_table = tf.constant(list(class_names), tf.string)
        self.crop_size = crop_size
        self.eval_resize = eval_resize
        self.transform_config = transforms.TransformConfig(
            crop_size=crop_size, min_scale=crop_size, max_scale=crop_size, eval_resize=eval_resize
        )
        self.top_k = min(TOP_K, len(class_names))
        self.serve_bytes = tf.function(
            self._serve_bytes,
            input_signature=[tf.TensorSpec([None], tf.string, name="images")],
            autograph=False,
        )
        self.predict_images = tf.function(
            self._predict_images,
            input_signature=[tf.TensorSpec([None, None, None, 3], tf.float32, name="images")],
            autograph=False,
        )
        self.dense = tf.function(
            self._dense,
            input_signature=[
                tf.TensorSpec([None, None, None, 3], tf.float32, name="images"),
                tf.TensorSpec([], tf.bool, name="mirror"),
            ],
            autograph=False,
        )

    def _outputs(self, probabilities):
        probabilities = tf.cast(probabilities, tf.float32)
        scores, classes = tf.math.top_k(probabilities, k=self.top_k)
        return {
            "probabilities": probabilities,
            "classes": classes,
            "scores": scores,
            "class_names": tf.gather(self.class_name_table, classes),
        }

    def _serve_bytes(self, images):
        with tf.control_dependencies([_check_image_bytes(images)]):
            decoded = tf.map_fn(
                lambda image: transforms.eval_transform(image, self.transform_config),
                images,
                fn_output_signature=tf.TensorSpec([self.crop_size, self.crop_size, 3], tf.float32),
            )
        return self._outputs(self.model(decoded, training=False))

    def _predict_images(self, images):
        return self._outputs(self.model(images, training=False))

    def _dense(self, images, mirror):
        probabilities, num_windows = self.scorer.score(images, mirror)
        return {"probabilities": probabilities, "num_windows": num_windows}


def _activation(model: keras.Model) -> dict:
    prelus = [layer for layer in model.layers if isinstance(layer, PReLU)]
    if not prelus:
        return {"activation": "relu"}
    return {"activation": "prelu", "channel_shared": bool(prelus[0].channel_shared)}


def build_metadata(
    model: keras.Model,
    class_names: Sequence[str],
    metadata: dict | None,
    crop_size: int,
    eval_resize: int,
    window_cells: int,
) -> dict:
    """The contents of `metadata.json`: what was exported, its input contract, and `metadata`."""
    from rectifier_zoo import __version__

    info = {
        "architecture": model.name,
        **_activation(model),
        "num_classes": len(class_names),
        "num_params": int(model.count_params()),
        "spp_levels": list(_spp_layer(model).levels),
        "input_contract": {
            "serving_default": "tf.string [batch]: JPEG or PNG bytes; decoded, shorter side "
            f"resized to {eval_resize}, centre {crop_size}x{crop_size} crop, in the graph",
            "predict_images": "float32 [batch, height, width, 3], RGB in 0..255, any size >= "
            "the model's minimum; the model subtracts the ImageNet mean itself",
            "dense": "float32 [batch, height, width, 3] RGB in 0..255 (images of one size, one "
            "scale) and bool mirror; mean softmax of every window of "
            f"{window_cells}x{window_cells} conv-map cells, stride 1",
            "crop_size": crop_size,
            "eval_resize": eval_resize,
            "window_cells": window_cells,
            "pixel_range": [0, 255],
            "channel_order": "RGB",
        },
        "endpoints": list(ENDPOINTS),
        "top_k": min(TOP_K, len(class_names)),
        "class_names_file": f"assets/{CLASS_NAMES_FILE}",
        "exported_at": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "rectifier_zoo_version": __version__,
        "tensorflow_version": tf.__version__,
        "keras_version": keras.__version__,
    }
    info.update(metadata or {})
    return info


def next_version_path(base: str) -> str:
    """`<base>/<1 + the largest integer version in base>` (TensorFlow Serving's layout)."""
    versions = [int(n) for n in os.listdir(base) if n.isdigit()] if os.path.isdir(base) else []
    return os.path.join(base, str(max(versions, default=0) + 1))


def _resolve_target(export_path: str) -> str:
    export_path = os.path.abspath(os.fspath(export_path))
    if os.path.basename(export_path).isdigit():
        if os.path.exists(export_path):
            raise ValueError(
                "The export version folder exists already; pass the model's base folder to get "
                f"the next version. Received: export_path={export_path!r}"
            )
        return export_path
    return next_version_path(export_path)


def export_model(
    model: keras.Model,
    export_path: str | os.PathLike,
    *,
    class_names: Sequence[str],
    metadata: dict | None = None,
    crop_size: int = DEFAULT_CROP_SIZE,
    eval_resize: int = DEFAULT_EVAL_RESIZE,
    window_cells: int | None = None,
) -> str:
    """Exports `model` as a versioned SavedModel and returns the version folder.

    Args:
        model: a model with the top (SPP and fc layers), e.g. `rectifier_zoo.model_a()`.
        export_path: the model's base folder (`exported_models/<name>`: the next integer version
            is created in it) or an explicit, not yet existing, integer version folder.
        class_names: one name per class, in class-index order.
        metadata: added to `metadata.json` (training data, steps, evaluation results, ...).
        crop_size: the test crop (paper: 224).
        eval_resize: shorter side before the centre crop of `serving_default` (paper: 256).
        window_cells: dense-window side in conv-map cells; None: the map side of a
            `crop_size` input (14 for Models A/B/C at 224).

    Returns:
        The absolute path of the version folder.
    """
    class_names = [str(name) for name in class_names]
    num_classes = int(model.outputs[0].shape[-1])
    if len(class_names) != num_classes:
        raise ValueError(
            f"`class_names` must have one name per class of the model ({num_classes}). "
            f"Received: {len(class_names)} names"
        )
    if any("\n" in name for name in class_names):
        raise ValueError("`class_names` must not contain newlines.")
    if not isinstance(crop_size, int) or crop_size < 1 or eval_resize < crop_size:
        raise ValueError(
            "`crop_size` must be a positive integer and `eval_resize` >= crop_size. "
            f"Received: crop_size={crop_size!r}, eval_resize={eval_resize!r}"
        )
    target = _resolve_target(export_path)
    parent = os.path.dirname(target)
    os.makedirs(parent, exist_ok=True)
    module = ServingModule(model, class_names, crop_size, eval_resize, window_cells)
    info = build_metadata(
        model, class_names, metadata, crop_size, eval_resize, module.scorer.window_cells
    )
    # TF Serving loads only integer folders, so the staging folder next to the target is
    # invisible to it; the rename is atomic on one file system.
    staging = os.path.join(parent, f".tmp-export-{uuid.uuid4().hex}")
    with tempfile.TemporaryDirectory() as asset_dir:
        names_path = os.path.join(asset_dir, CLASS_NAMES_FILE)
        with open(names_path, "w", encoding="utf-8") as f:
            f.write("\n".join(class_names) + "\n")
        metadata_path = os.path.join(asset_dir, METADATA_FILE)
        with open(metadata_path, "w", encoding="utf-8") as f:
            json.dump(info, f, indent=2, sort_keys=True, default=str)
        module.class_names_asset = tf.saved_model.Asset(names_path)
        module.metadata_asset = tf.saved_model.Asset(metadata_path)
        try:
            tf.saved_model.save(
                module,
                staging,
                signatures={
                    "serving_default": module.serve_bytes,
                    "predict_images": module.predict_images,
                    "dense": module.dense,
                },
                options=tf.saved_model.SaveOptions(experimental_custom_gradients=False),
            )
            os.rename(staging, target)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return target


def read_class_names(saved_model_dir: str) -> list[str]:
    """The class names of an exported SavedModel (its `assets/class_names.txt`)."""
    with open(os.path.join(saved_model_dir, "assets", CLASS_NAMES_FILE), encoding="utf-8") as f:
        return [line.rstrip("\n") for line in f if line.strip()]


def read_metadata(saved_model_dir: str) -> dict:
    """The `metadata.json` of an exported SavedModel."""
    with open(os.path.join(saved_model_dir, "assets", METADATA_FILE), encoding="utf-8") as f:
        return json.load(f)


def model_from_checkpoint(model_dir: str) -> tuple[keras.Model, dict, dict]:
    """Rebuilds the model of a training run and restores its latest checkpoint.

    Reads what `rectifier_zoo.trainer` writes: `<model_dir>/config.json` (the run's config),
    `<model_dir>/checkpoints/` (`tf.train.Checkpoint(model=model, ...)`) and, if there,
    `<model_dir>/summary.json`. The number of classes is the one 2-D kernel width of the
    checkpoint whose model restores without a shape mismatch.

    Returns:
        (model, config dict, summary dict or {}).
    """
    from rectifier_zoo.architectures import Architecture, ConvStage
    from rectifier_zoo.models import build_model, get_model

    config_path = os.path.join(model_dir, "config.json")
    if not os.path.exists(config_path):
        raise FileNotFoundError(f"No config.json in {model_dir!r}: not a training run folder")
    with open(config_path, encoding="utf-8") as f:
        config = json.load(f)
    latest = tf.train.latest_checkpoint(os.path.join(model_dir, "checkpoints"))
    if latest is None:
        raise FileNotFoundError(f"No checkpoint in {os.path.join(model_dir, 'checkpoints')!r}")
    # Keras 3 variables sit in the checkpoint under object-graph paths (often the optimizer's),
    # not layer names; the classifier's width is one of the 2-D kernels' output widths.
    candidates = sorted(
        {int(shape[1]) for _, shape in tf.train.list_variables(latest) if len(shape) == 2}
    )
    kwargs = dict(
        input_shape=(None, None, 3),
        activation=config.get("activation", "prelu"),
        channel_shared=config.get("channel_shared", False),
        kernel_initializer=config.get("kernel_initializer", "msra_fan_out"),
        dropout=config.get("dropout", 0.5),
    )
    architecture = config.get("architecture")
    if architecture:
        architecture = Architecture(
            **{
                **architecture,
                "stages": tuple(ConvStage(**stage) for stage in architecture["stages"]),
                "spp_levels": tuple(architecture["spp_levels"]),
                "fc_units": tuple(architecture["fc_units"]),
            }
        )

        def make(classes):
            return build_model(architecture, classes=classes, **kwargs)
    else:

        def make(classes):
            return get_model(config["model"], classes=classes, **kwargs)

    model = None
    for num_classes in candidates:
        candidate = make(num_classes)
        try:
            status = tf.train.Checkpoint(model=candidate).restore(latest).expect_partial()
            status.assert_existing_objects_matched()
        except (ValueError, AssertionError, tf.errors.OpError):
            continue
        model = candidate
        break
    if model is None:
        raise ValueError(
            f"Checkpoint {latest!r} does not match the model of {config_path!r} "
            f"(tried {len(candidates)} class counts)"
        )
    summary = {}
    summary_path = os.path.join(model_dir, "summary.json")
    if os.path.exists(summary_path):
        with open(summary_path, encoding="utf-8") as f:
            summary = json.load(f)
    return model, config, summary
