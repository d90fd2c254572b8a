"""What the serving tests share: the tiny export's settings, inputs, and the runners of the
files and commands they check (imported by conftest.py and the test modules)."""

import io
import os
import subprocess
import sys

import numpy as np

CLASSES = ["cat", "dog", "fox", "owl"]
CROP, RESIZE = 64, 72
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# 72 and 80 px give the tiny net 9x9 and 10x10 maps: its 3x3 SPP level gets bins of unequal size.
UNEVEN_SIZES = (72, 80)


def images(seed=0, shape=(2, 80, 104)) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0, 255, (*shape, 3)).astype("float32")


def jpeg(seed=5, height=90, width=120) -> bytes:
    from rectifier_zoo.data import testing

    return testing.encode_jpeg(testing.smooth_image(seed, height, width))


def encoded(image: np.ndarray, fmt: str) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, fmt)
    return buffer.getvalue()


def keras_serving_default(model, image_bytes: bytes) -> np.ndarray:
    """What `serving_default` should give: the evaluation view through the Keras model."""
    import tensorflow as tf

    from rectifier_zoo.data import transforms

    config = transforms.TransformConfig(
        crop_size=CROP, min_scale=CROP, max_scale=CROP, eval_resize=RESIZE
    )
    return model(transforms.eval_transform(tf.constant(image_bytes), config)[None]).numpy()


def run_tflite(path, batch: np.ndarray) -> np.ndarray:
    import tensorflow as tf

    interpreter = tf.lite.Interpreter(model_path=str(path))
    ops = {op["op_name"] for op in interpreter._get_ops_details()}
    assert not any(name.startswith("Flex") for name in ops), ops  # builtin ops only
    interpreter.resize_tensor_input(interpreter.get_input_details()[0]["index"], batch.shape)
    interpreter.allocate_tensors()
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], batch)
    interpreter.invoke()
    return interpreter.get_tensor(interpreter.get_output_details()[0]["index"])


def onnx_session(path):
    import pytest

    onnxruntime = pytest.importorskip("onnxruntime")
    return onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def run_command(script: str, *flags) -> subprocess.CompletedProcess:
    """`python training/<script> flags...`, as a user runs it: without TF_CPP_MIN_LOG_LEVEL."""
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    return subprocess.run(
        [sys.executable, os.path.join(REPO, "training", script), *flags],
        capture_output=True, text=True, env=env,
    )  # fmt: skip
