"""The float-image endpoint as one file: TFLite (builtin ops only) or ONNX (tf2onnx).

    from rectifier_zoo import paper
    from rectifier_zoo.serving import convert
    convert.export_tflite(model, "model_a.tflite", input_size=paper.CROP_SIZE)
    convert.export_onnx(model, "model_a.onnx")                 # any height and width
    convert.export_file(model, "model_a.onnx", "onnx", input_size=paper.CROP_SIZE)

Input `images`: float32 RGB in 0..255, NHWC; output `probabilities` [batch, classes] (the
softmax added in the graph for a logits model). Files are written beside their target and
replaced into place.
"""

import os
import tempfile

import keras
import tensorflow as tf

from rectifier_zoo.checks import check_choice
from rectifier_zoo.serving import contract
from rectifier_zoo.serving.publish import write_atomically
from rectifier_zoo.serving.servable import probabilities, servable


def _fixed_size_archive(model: keras.Model, input_size: int | None):
    """An archive with one endpoint: float images [batch, N, N, 3] -> probabilities."""
    model, logits = servable(model)
    archive = keras.export.ExportArchive()
    archive.track(model)
    spec = tf.TensorSpec([None, input_size, input_size, 3], tf.float32, name=contract.IMAGES)
    endpoint = archive.add_endpoint(
        contract.SERVING_DEFAULT,
        lambda images: {
            contract.PROBABILITIES: probabilities(model(images, training=False), logits)
        },
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
    servable(model)
    try:
        model.compute_output_shape((1, input_size, input_size, 3))
    except ValueError as error:
        raise ValueError(
            f"`input_size` is too small for {model.name}: {error}. Received: "
            f"input_size={input_size}"
        ) from None


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

    return write_atomically(path, write)


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

    return write_atomically(path, write)


def export_file(
    model: keras.Model, path: str | os.PathLike, file_format: str, *, input_size: int | None
) -> str:
    """`export_tflite` or `export_onnx`, by `file_format` (one of `contract.FILE_FORMATS`)."""
    check_choice("file_format", file_format, contract.FILE_FORMATS)
    if file_format == "tflite":
        return export_tflite(model, path, input_size=input_size)
    return export_onnx(model, path, input_size=input_size)
