"""SavedModel, TFLite and ONNX export (TensorFlow only).

    from rectifier_zoo.serving import export
    path = export.export_model(model, "exported_models/model_a", class_names=names,
                               metadata={"training_data": "imagenet2012", "steps": 450_000})
    export.export_tflite(model, "model_a.tflite", input_size=224)
    export.export_onnx(model, "model_a.onnx", input_size=224)

The SavedModel is written with `keras.export.ExportArchive`, which puts every variable the
endpoints capture into the saved object graph, so TF Serving's session-based loader, the TF1
`tf.compat.v1.saved_model.loader`, `saved_model_cli run`, `tf.saved_model.load`,
`keras.layers.TFSMLayer` and the TFLite converter all restore the same weights. It has three
endpoints, built from the model's own layers, traced without XLA and with unknown image sizes:

- `serving_default`: `images` tf.string [batch] (JPEG, PNG, GIF or BMP bytes) -> `probabilities`
  [batch, classes], `classes` (top-5 ids), `scores` (top-5 probabilities), `class_names` (top-5
  names). Width and height are read from each header first and an image above `max_pixels`
  is refused (INVALID_ARGUMENT naming the limit and the batch index) before anything is decoded;
  large JPEGs are decoded at 1/2, 1/4 or 1/8 scale in the DCT domain; then the evaluation view
  (shorter side `eval_resize`, centre `crop_size` crop).
- `predict_images`: `images` float32 RGB [batch, H, W, 3] in 0..255, any size (SPP makes the head
  size-free) -> the same outputs.
- `dense`: the paper's "multi-view testing on feature maps" (Sec. 2.3, "Testing"): `images`
  float32 [batch, H, W, 3] (one scale, images of one size) and `mirror` bool [] -> `probabilities`
  [batch, classes], the mean softmax of every `window_cells x window_cells` window (stride 1 cell)
  of the last conv map, with the conv layers run once per image (and once more on the mirrored
  image when `mirror`), and `num_windows`.

A model whose top gives logits (`classifier_activation=None`) gets the softmax in the graph, so
every endpoint serves probabilities. Files beside the graph, in `assets.extra/` (the SavedModel
folder for files the graph does not load): `class_names.txt` (one name a line, in class-index
order) and `metadata.json`. `read_class_names` and `read_metadata` read them.
"""

import datetime
import errno
import json
import os
import shutil
import socket
import tempfile
import time
import uuid
from collections.abc import Sequence

import keras
import tensorflow as tf

from rectifier_zoo.data import transforms
from rectifier_zoo.layers import PReLU, SpatialPyramidPooling, spp_bins

ASSETS_DIR = "assets.extra"
CLASS_NAMES_FILE = "class_names.txt"
METADATA_FILE = "metadata.json"
SPP_LAYER = "spp"
TOP_K = 5
ENDPOINTS = ("serving_default", "predict_images", "dense")
FORMATS = ("saved_model", "tflite", "onnx")
# The single-view test crop of the paper's Sec. 3 (Table 2): shorter side 256, centre 224.
DEFAULT_CROP_SIZE = 224
DEFAULT_EVAL_RESIZE = 256
# 50 megapixels: the largest phone-camera photos pass; a 20000 x 20000 image (400 MP) does not.
DEFAULT_MAX_PIXELS = 50_000_000
# Staging folders older than this whose writer cannot be checked (another host) are stale.
_STALE_STAGING_SECONDS = 24 * 3600
_STAGING_PREFIX = ".tmp-export-"


def _servable(model) -> tuple[keras.Model, bool]:
    """(the functional model, whether its output is logits) or a ValueError saying why not.

    The contract needs a functional graph (sub-models over the trunk and the head are cut from
    it), the `spp` layer followed by a classifier, channels_last, and scores that are softmax
    probabilities or logits (the softmax is then added in the graph).
    """
    if isinstance(model, keras.Sequential) and getattr(model, "outputs", None):
        model = keras.Model(model.inputs, model.outputs, name=model.name)
    if not isinstance(model, keras.Model) or not getattr(model, "outputs", None):
        raise ValueError(
            "Export needs a functional Keras model (rectifier_zoo's builders or "
            "keras.Model(inputs, outputs)); subclassed models have no graph to cut the dense "
            f"endpoint from. Received: {type(model).__name__}"
        )
    if len(model.outputs) != 1 or len(model.outputs[0].shape) != 2:
        raise ValueError(
            "Export needs a classifier with one output of shape [batch, classes] (build it with "
            f"include_top=True). Received: outputs {[tuple(o.shape) for o in model.outputs]}"
        )
    spp = _spp_layer(model)
    if spp.output is model.outputs[0]:
        raise ValueError(
            "Export needs the classifier after the SPP layer (build the model with "
            f"include_top=True). Received: model {model.name!r} ending at its SPP layer"
        )
    last = model.layers[-1]
    if isinstance(last, keras.layers.Softmax):
        activation = "softmax"
    else:
        # Dense and Activation layers say what they apply; any other last layer does not.
        function = getattr(last, "activation", "unknown")
        activation = getattr(function, "__name__", str(function))
    if activation not in ("softmax", "linear"):
        raise ValueError(
            "Export serves softmax probabilities; the model's output must be a softmax or logits "
            "(classifier_activation='softmax' or None, from a Dense, Activation or Softmax "
            f"layer). Received: {activation!r} on layer {last.name!r} ({type(last).__name__})"
        )
    return model, activation == "linear"


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


def _probabilities(scores, logits: bool) -> tf.Tensor:
    scores = tf.cast(scores[0] if isinstance(scores, list | tuple) else scores, tf.float32)
    return tf.nn.softmax(scores) if logits else scores


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
            (14 for Models A/B/C at 224).
        crop_size: used when `window_cells` is None.
    """

    def __init__(self, model: keras.Model, window_cells: int | None = None, crop_size: int = 224):
        model, self.logits = _servable(model)
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
        return _probabilities(self.head(features, training=False), self.logits)

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
            "serving_default expects encoded JPEG, PNG, GIF or BMP images; not images at batch "
            "indices:",
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


class ServingFunctions:
    """The endpoints' Python functions over one model (traced by `ExportArchive`)."""

    def __init__(
        self,
        model: keras.Model,
        class_names: Sequence[str],
        crop_size: int = DEFAULT_CROP_SIZE,
        eval_resize: int = DEFAULT_EVAL_RESIZE,
        window_cells: int | None = None,
        max_pixels: int = DEFAULT_MAX_PIXELS,
        jpeg_downscale: bool = True,
    ):
        self.model, self.logits = _servable(model)
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
        self.top_k = min(TOP_K, len(class_names))

    def probabilities(self, images):
        return _probabilities(self.model(images, training=False), self.logits)

    def _outputs(self, probabilities):
        scores, classes = tf.math.top_k(probabilities, k=self.top_k)
        names = tf.constant(self.class_names, tf.string)
        return {
            "probabilities": probabilities,
            "classes": classes,
            "scores": scores,
            "class_names": tf.gather(names, classes),
        }

    def serve_bytes(self, images):
        with tf.control_dependencies([check_encoded_images(images, self.max_pixels)]):
            decoded = tf.map_fn(
                lambda image: transforms.eval_transform(image, self.transform_config),
                images,
                fn_output_signature=tf.TensorSpec([self.crop_size, self.crop_size, 3], tf.float32),
            )
        return self._outputs(self.probabilities(decoded))

    def predict_images(self, images):
        return self._outputs(self.probabilities(check_image_tensor(images, self.max_pixels)))

    def dense(self, images, mirror):
        images = check_image_tensor(images, self.max_pixels)
        probabilities, num_windows = self.scorer.score(images, mirror)
        return {"probabilities": probabilities, "num_windows": num_windows}


_IMAGES = tf.TensorSpec([None, None, None, 3], tf.float32, name="images")


def _archive(functions: ServingFunctions) -> keras.export.ExportArchive:
    archive = keras.export.ExportArchive()
    archive.track(functions.model)
    archive.add_endpoint(
        "serving_default",
        functions.serve_bytes,
        input_signature=[tf.TensorSpec([None], tf.string, name="images")],
    )
    archive.add_endpoint("predict_images", functions.predict_images, input_signature=[_IMAGES])
    archive.add_endpoint(
        "dense",
        functions.dense,
        input_signature=[_IMAGES, tf.TensorSpec([], tf.bool, name="mirror")],
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
        "input_contract": {
            "serving_default": "tf.string [batch]: JPEG, PNG, GIF or BMP bytes; refused above "
            f"max_pixels; decoded (large JPEGs at a reduced DCT scale), shorter side resized to "
            f"{resize}, centre {crop}x{crop} crop, in the graph",
            "predict_images": "float32 [batch, height, width, 3], RGB in 0..255, any size >= "
            "the model's minimum; the model subtracts the ImageNet mean itself",
            "dense": "float32 [batch, height, width, 3] RGB in 0..255 (images of one size, one "
            "scale) and bool mirror; mean softmax of every window of "
            f"{window_cells}x{window_cells} conv-map cells, stride 1",
            "crop_size": crop,
            "eval_resize": resize,
            "window_cells": window_cells,
            "max_pixels": functions.max_pixels,
            "jpeg_downscale": config.jpeg_downscale,
            "pixel_range": [0, 255],
            "channel_order": "RGB",
        },
        "endpoints": list(ENDPOINTS),
        "top_k": functions.top_k,
        "class_names_file": f"{ASSETS_DIR}/{CLASS_NAMES_FILE}",
        "exported_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
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


def _staging_name() -> str:
    # Host and pid let a later export tell a crashed writer's folder from a live one.
    return f"{_STAGING_PREFIX}{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"


def remove_stale_staging(base: str) -> list[str]:
    """Removes staging folders left by killed exports in `base`; returns the removed paths.

    A folder is stale when its writer ran on this host and that process is gone, or, for another
    host's writer, when it is older than a day.
    """
    removed = []
    if not os.path.isdir(base):
        return removed
    host = socket.gethostname()
    for name in os.listdir(base):
        if not name.startswith(_STAGING_PREFIX):
            continue
        path = os.path.join(base, name)
        writer, _, _ = name[len(_STAGING_PREFIX) :].rpartition("-")
        writer_host, _, pid = writer.rpartition("-")
        if writer_host == host and pid.isdigit():
            stale = not _process_alive(int(pid))
        else:
            stale = time.time() - os.path.getmtime(path) > _STALE_STAGING_SECONDS
        if stale:
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    return removed


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, owned by another user
        pass
    return True


def _publish(staging: str, export_path: str) -> str:
    """Renames `staging` to the requested version, or to the next free one of the base folder.

    The rename is atomic on one file system, and TF Serving loads only integer folders, so it
    never sees a half-written version. When another export takes the version first, the rename
    fails (the folder is not empty) and the next number is tried.
    """
    export_path = os.path.abspath(export_path)
    if os.path.basename(export_path).isdigit():
        try:
            os.rename(staging, export_path)
        except OSError as error:
            if error.errno in (errno.EEXIST, errno.ENOTEMPTY):
                raise ValueError(
                    "The export version folder exists already; pass the model's base folder to "
                    f"get the next version. Received: export_path={export_path!r}"
                ) from None
            raise
        return export_path
    for _ in range(100):
        target = next_version_path(export_path)
        try:
            os.rename(staging, target)
            return target
        except OSError as error:
            if error.errno not in (errno.EEXIST, errno.ENOTEMPTY):
                raise
    raise RuntimeError(f"Could not find a free version folder in {export_path!r}")


def _base_folder(export_path: str) -> str:
    export_path = os.path.abspath(os.fspath(export_path))
    if os.path.basename(export_path).isdigit():
        if os.path.exists(export_path):
            raise ValueError(
                "The export version folder exists already; pass the model's base folder to get "
                f"the next version. Received: export_path={export_path!r}"
            )
        return os.path.dirname(export_path)
    return export_path


def _check_export_arguments(
    model, class_names: Sequence[str], crop_size, eval_resize, max_pixels
) -> list[str]:
    class_names = [str(name) for name in class_names]
    model, _ = _servable(model)
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
    if not isinstance(max_pixels, int) or max_pixels < eval_resize * eval_resize:
        raise ValueError(
            "`max_pixels` must be an integer of at least eval_resize**2 "
            f"({eval_resize * eval_resize}). Received: max_pixels={max_pixels!r}"
        )
    return class_names


def export_model(
    model: keras.Model,
    export_path: str | os.PathLike,
    *,
    class_names: Sequence[str],
    metadata: dict | None = None,
    crop_size: int = DEFAULT_CROP_SIZE,
    eval_resize: int = DEFAULT_EVAL_RESIZE,
    window_cells: int | None = None,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    jpeg_downscale: bool = True,
) -> str:
    """Exports `model` as a versioned SavedModel and returns the version folder.

    Everything is checked before anything is written; the SavedModel is written to a staging
    folder beside the versions and renamed into place, so concurrent exports to one base folder
    get distinct versions, and staging folders of killed exports are removed.

    Args:
        model: a functional model with the top (SPP and fc layers), e.g.
            `rectifier_zoo.model_a()`; softmax or logits output.
        export_path: the model's base folder (`exported_models/<name>`: the next integer version
            is created in it) or an explicit, not yet existing, integer version folder.
        class_names: one name per class, in class-index order.
        metadata: added to `metadata.json` (training data, steps, evaluation results, ...).
        crop_size: the test crop (paper: 224).
        eval_resize: shorter side before the centre crop of `serving_default` (paper: 256).
        window_cells: dense-window side in conv-map cells; None: the map side of a
            `crop_size` input (14 for Models A/B/C at 224).
        max_pixels: the largest image (width x height) the endpoints accept; larger requests
            fail with INVALID_ARGUMENT before decoding.
        jpeg_downscale: decode large JPEGs at a reduced DCT scale in `serving_default`.

    Returns:
        The absolute path of the version folder.
    """
    class_names = _check_export_arguments(model, class_names, crop_size, eval_resize, max_pixels)
    base = _base_folder(export_path)
    functions = ServingFunctions(
        model, class_names, crop_size, eval_resize, window_cells, max_pixels, jpeg_downscale
    )
    info = build_metadata(functions, metadata)
    archive = _archive(functions)
    os.makedirs(base, exist_ok=True)
    remove_stale_staging(base)
    staging = os.path.join(base, _staging_name())
    try:
        archive.write_out(staging, verbose=False)
        extra = os.path.join(staging, ASSETS_DIR)
        os.makedirs(extra, exist_ok=True)
        with open(os.path.join(extra, CLASS_NAMES_FILE), "w", encoding="utf-8") as f:
            f.write("\n".join(class_names) + "\n")
        with open(os.path.join(extra, METADATA_FILE), "w", encoding="utf-8") as f:
            json.dump(info, f, indent=2, sort_keys=True, default=str)
        return _publish(staging, export_path)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _fixed_size_archive(model: keras.Model, input_size: int | None):
    """An archive with one endpoint: float images [batch, N, N, 3] -> probabilities."""
    model, logits = _servable(model)
    archive = keras.export.ExportArchive()
    archive.track(model)
    spec = tf.TensorSpec([None, input_size, input_size, 3], tf.float32, name="images")
    endpoint = archive.add_endpoint(
        "serving_default",
        lambda images: {"probabilities": _probabilities(model(images, training=False), logits)},
        input_signature=[spec],
    )
    return archive, endpoint, spec


def _check_input_size(model, input_size, required: bool) -> None:
    if input_size is None and not required:
        return
    if not isinstance(input_size, int) or isinstance(input_size, bool) or input_size < 1:
        raise ValueError(
            "`input_size` must be a positive integer (the side of the square input). "
            f"Received: input_size={input_size!r}"
        )
    _servable(model)
    try:
        model.compute_output_shape((1, input_size, input_size, 3))
    except ValueError as error:
        raise ValueError(
            f"`input_size` is too small for {model.name}: {error}. Received: "
            f"input_size={input_size}"
        ) from None


def _write_atomically(path: str, write) -> str:
    path = os.path.abspath(os.fspath(path))
    folder = os.path.dirname(path)
    os.makedirs(folder, exist_ok=True)
    staging = os.path.join(folder, f".{os.path.basename(path)}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        write(staging)
        os.replace(staging, path)
    finally:
        if os.path.exists(staging):
            os.remove(staging)
    return path


def export_tflite(model: keras.Model, path: str | os.PathLike, *, input_size: int) -> str:
    """Writes the float-image endpoint as a `.tflite` file (TFLite builtin ops only).

    Input: float32 [batch, input_size, input_size, 3] RGB in 0..255 (batch 1 as written;
    `Interpreter.resize_tensor_input` changes it); output: probabilities [batch, classes].
    """
    _check_input_size(model, input_size, required=True)
    archive, _, _ = _fixed_size_archive(model, input_size)

    def write(target):
        with tempfile.TemporaryDirectory() as saved_model:
            archive.write_out(saved_model, verbose=False)
            converter = tf.lite.TFLiteConverter.from_saved_model(saved_model)
            # Builtin ops only: a file any TFLite / LiteRT runtime runs, without Flex delegates.
            converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
            flatbuffer = converter.convert()
        with open(target, "wb") as f:
            f.write(flatbuffer)

    return _write_atomically(path, write)


def export_onnx(
    model: keras.Model, path: str | os.PathLike, *, input_size: int | None = None, opset=None
) -> str:
    """Writes the float-image endpoint as an `.onnx` file (tf2onnx; `pip install ".[onnx]"`).

    Input `images`: float32 [batch, N, N, 3] RGB in 0..255 (N = `input_size`, or any height and
    width when None); output: probabilities [batch, classes].
    """
    _check_input_size(model, input_size, required=False)
    try:
        import tf2onnx
    except ImportError:
        raise ValueError('ONNX export needs tf2onnx: pip install "rectifier_zoo[onnx]"') from None
    from keras.src.export.tf2onnx_lib import patch_tf2onnx
    from tensorflow.python.framework.convert_to_constants import (
        convert_variables_to_constants_v2,
    )

    _, endpoint, spec = _fixed_size_archive(model, input_size)
    concrete = endpoint.get_concrete_function(spec)
    # Freeze first: tf2onnx's from_function lists every captured tensor as a graph input, so the
    # constants a model captures (the Normalization layer's mean and variance) would become
    # inputs the user has to feed. Freezing folds variables and captured constants alike.
    frozen = convert_variables_to_constants_v2(concrete)
    num_inputs = len(concrete.structured_input_signature[0])
    # tf2onnx still calls NumPy APIs that NumPy 2 removed; Keras's own ONNX export patches them.
    patch_tf2onnx()

    def write(target):
        tf2onnx.convert.from_graph_def(
            frozen.graph.as_graph_def(),
            input_names=[t.name for t in frozen.inputs[:num_inputs]],
            output_names=[t.name for t in frozen.outputs],
            opset=opset,
            output_path=target,
        )

    return _write_atomically(path, write)


def _assets_file(saved_model_dir: str, name: str) -> str:
    path = os.path.join(saved_model_dir, ASSETS_DIR, name)
    if not os.path.exists(path):
        raise FileNotFoundError(
            f"{saved_model_dir!r} has no {ASSETS_DIR}/{name}: not a rectifier_zoo export "
            "(re-export it with training/export.py)"
        )
    return path


def read_class_names(saved_model_dir: str) -> list[str]:
    """The class names of an exported SavedModel (`assets.extra/class_names.txt`)."""
    with open(_assets_file(saved_model_dir, CLASS_NAMES_FILE), encoding="utf-8") as f:
        return [line.rstrip("\n") for line in f if line.strip()]


def read_metadata(saved_model_dir: str) -> dict:
    """The `metadata.json` of an exported SavedModel."""
    with open(_assets_file(saved_model_dir, METADATA_FILE), encoding="utf-8") as f:
        return json.load(f)
