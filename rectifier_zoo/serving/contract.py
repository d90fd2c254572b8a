"""The SavedModel contract: the names an export is written with and read back by (pure Python).

An export is a SavedModel version folder with three endpoints (signatures) and two files beside
the graph, in `assets.extra/` (the SavedModel folder for files the graph does not load):

- `serving_default`: `images` tf.string [batch] (encoded image bytes) -> `probabilities`
  [batch, classes], `classes` (top-k ids), `scores` (top-k probabilities), `class_names`
  (top-k names).
- `predict_images`: `images` float32 [batch, H, W, 3], RGB in 0..255 -> the same four outputs.
- `dense`: `images` float32 [batch, H, W, 3] and `mirror` bool [] -> `probabilities`,
  `num_windows`.
- `assets.extra/class_names.txt`: one name a line, in class-index order.
- `assets.extra/metadata.json`: `METADATA_KEYS` (what was exported, with `input_contract`: the
  views and limits of the endpoints), then whatever the exporter added (training data, steps,
  evaluation results).

The writer (`rectifier_zoo.serving.export`), the single-file converters and the evaluator take
their names from here; importing this module loads neither Keras nor TensorFlow.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence

# --- Endpoints -------------------------------------------------------------------------------
SERVING_DEFAULT = "serving_default"
PREDICT_IMAGES = "predict_images"
DENSE = "dense"
ENDPOINTS = (SERVING_DEFAULT, PREDICT_IMAGES, DENSE)

# --- Signature inputs and outputs -------------------------------------------------------------
IMAGES = "images"
MIRROR = "mirror"
PROBABILITIES = "probabilities"
CLASSES = "classes"
SCORES = "scores"
CLASS_NAMES = "class_names"
NUM_WINDOWS = "num_windows"
INPUTS = {SERVING_DEFAULT: (IMAGES,), PREDICT_IMAGES: (IMAGES,), DENSE: (IMAGES, MIRROR)}
_TOP_K_OUTPUTS = (PROBABILITIES, CLASSES, SCORES, CLASS_NAMES)
OUTPUTS = {
    SERVING_DEFAULT: _TOP_K_OUTPUTS,
    PREDICT_IMAGES: _TOP_K_OUTPUTS,
    DENSE: (PROBABILITIES, NUM_WINDOWS),
}
# `classes`, `scores` and `class_names` hold the best TOP_K (fewer when there are fewer classes).
TOP_K = 5

# What an export can be written as: the SavedModel, or its float-image endpoint as one file
# (`images` in, `probabilities` out).
SAVED_MODEL = "saved_model"
FILE_FORMATS = ("tflite", "onnx")
FORMATS = (SAVED_MODEL, *FILE_FORMATS)

# --- Files beside the graph -------------------------------------------------------------------
ASSETS_DIR = "assets.extra"
CLASS_NAMES_FILE = "class_names.txt"
METADATA_FILE = "metadata.json"

# --- metadata.json ----------------------------------------------------------------------------
INPUT_CONTRACT = "input_contract"
# Written by every export (PReLU models add `channel_shared`).
METADATA_KEYS = (
    "architecture",
    "activation",
    "num_classes",
    "num_params",
    "spp_levels",
    "softmax_added_in_graph",
    INPUT_CONTRACT,
    "endpoints",
    "top_k",
    "class_names_file",
    "exported_at",
    "rectifier_zoo_version",
    "tensorflow_version",
    "keras_version",
)
# The largest image (width x height) the endpoints accept unless the export sets another:
# 50 megapixels, so the largest phone-camera photos pass and a 20000 x 20000 image does not.
DEFAULT_MAX_PIXELS = 50_000_000
# The keys of `metadata[INPUT_CONTRACT]`: one description per endpoint, then the numbers.
CROP_SIZE = "crop_size"
EVAL_RESIZE = "eval_resize"
INPUT_CONTRACT_KEYS = (
    *ENDPOINTS,
    CROP_SIZE,
    EVAL_RESIZE,
    "window_cells",
    "max_pixels",
    "jpeg_downscale",
    "pixel_range",
    "channel_order",
)


def assets_path(saved_model_dir: str | os.PathLike, name: str) -> str:
    """The path of an `assets.extra` file of an export (whether it exists or not)."""
    return os.path.join(os.fspath(saved_model_dir), ASSETS_DIR, name)


def write_assets(saved_model_dir: str | os.PathLike, class_names: Sequence[str], metadata: dict):
    """Writes `class_names.txt` and `metadata.json` into the export's `assets.extra/`."""
    os.makedirs(assets_path(saved_model_dir, ""), exist_ok=True)
    with open(assets_path(saved_model_dir, CLASS_NAMES_FILE), "w", encoding="utf-8") as f:
        f.write("\n".join(class_names) + "\n")
    with open(assets_path(saved_model_dir, METADATA_FILE), "w", encoding="utf-8") as f:
        json.dump(metadata, f, indent=2, sort_keys=True, default=str)


def _read_text(saved_model_dir, name: str) -> tuple[str, str]:
    path = assets_path(saved_model_dir, name)
    if not os.path.exists(path):
        raise FileNotFoundError(
            f"{os.fspath(saved_model_dir)!r} has no {ASSETS_DIR}/{name}: not a rectifier_zoo "
            "export (re-export it with training/export.py)"
        )
    try:
        with open(path, encoding="utf-8") as f:  # universal newlines, as the file was written
            return path, f.read()
    except UnicodeDecodeError:
        raise ValueError(f"{path} is not UTF-8 text: a damaged export, re-export it") from None


def read_class_names(saved_model_dir: str | os.PathLike) -> list[str]:
    """The class names of an export (`assets.extra/class_names.txt`), in class-index order.

    Raises:
        FileNotFoundError: the file is missing (not a rectifier_zoo export).
        ValueError: the file is not UTF-8 text or holds no name.
    """
    path, text = _read_text(saved_model_dir, CLASS_NAMES_FILE)
    names = [line for line in text.split("\n") if line.strip()]
    if not names:
        raise ValueError(f"{path} holds no class names: a damaged export, re-export it")
    return names


def read_metadata(saved_model_dir: str | os.PathLike) -> dict:
    """The `assets.extra/metadata.json` of an export.

    Raises:
        FileNotFoundError: the file is missing (not a rectifier_zoo export).
        ValueError: the file is not a JSON object.
    """
    path, text = _read_text(saved_model_dir, METADATA_FILE)
    try:
        metadata = json.loads(text)
    except json.JSONDecodeError as error:
        raise ValueError(f"{path} is not valid JSON ({error}): a damaged export") from None
    if not isinstance(metadata, dict):
        raise ValueError(
            f"{path} must hold a JSON object. Received: {type(metadata).__name__}: a damaged export"
        )
    return metadata
