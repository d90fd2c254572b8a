"""Exports a model as a versioned SavedModel: three endpoints and the files beside them.

    from rectifier_zoo.serving import export
    path = export.export_model(model, "exported_models/model_a", class_names=names,
                               metadata={"training_data": "imagenet2012", "steps": 450_000})

The SavedModel is written with `keras.export.ExportArchive`, which puts every variable the
endpoints capture into the saved object graph, so TF Serving's session-based loader, the TF1
`tf.compat.v1.saved_model.loader`, `saved_model_cli run`, `tf.saved_model.load`,
`keras.layers.TFSMLayer` and the TFLite converter all restore the same weights. What it holds
(endpoints, inputs, outputs, `assets.extra/`) is `contract`; how the endpoints are built,
`endpoints`; the size limits of a request, `limits`; the version folders, `publish`. TFLite and
ONNX files: `convert`.
"""

import os
import shutil
from collections.abc import Sequence

import keras

from rectifier_zoo import paper
from rectifier_zoo.serving import contract, publish
from rectifier_zoo.serving.dense import DenseScorer
from rectifier_zoo.serving.endpoints import ServingFunctions, build_archive, build_metadata
from rectifier_zoo.serving.servable import servable

# DenseScorer: `export.DenseScorer` is how benchmarks/evaluation.py reaches it.
__all__ = ["DenseScorer", "export_model"]


def _check_export_arguments(
    model, class_names: Sequence[str], crop_size, eval_resize, max_pixels
) -> list[str]:
    class_names = [str(name) for name in class_names]
    model, _ = servable(model)
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
    crop_size: int = paper.CROP_SIZE,
    eval_resize: int = paper.TEST_RESIZE,
    window_cells: int | None = None,
    max_pixels: int = contract.DEFAULT_MAX_PIXELS,
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
        crop_size: the test crop (paper: `paper.CROP_SIZE`).
        eval_resize: shorter side before the centre crop of `serving_default` (paper:
            `paper.TEST_RESIZE`).
        window_cells: dense-window side in conv-map cells; None: the map side of a
            `crop_size` input (`paper.DENSE_WINDOW_CELLS` for Models A/B/C).
        max_pixels: the largest image (width x height) the endpoints accept; larger requests
            fail with INVALID_ARGUMENT before decoding.
        jpeg_downscale: decode large JPEGs at a reduced DCT scale in `serving_default`.

    Returns:
        The absolute path of the version folder.
    """
    class_names = _check_export_arguments(model, class_names, crop_size, eval_resize, max_pixels)
    base = publish.base_folder(export_path)
    functions = ServingFunctions(
        model, class_names, crop_size, eval_resize, window_cells, max_pixels, jpeg_downscale
    )
    info = build_metadata(functions, metadata)
    archive = build_archive(functions)
    os.makedirs(base, exist_ok=True)
    publish.remove_stale_staging(base)
    staging = publish.staging_path(base)
    try:
        archive.write_out(staging, verbose=False)
        contract.write_assets(staging, class_names, info)
        return publish.publish(staging, export_path)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
