"""TFLite and ONNX files of the float-image endpoint, run in their own runtimes."""

import dataclasses

import numpy as np
import pytest
from serving_support import UNEVEN_SIZES, images, onnx_session, run_tflite

pytestmark = pytest.mark.tf_only

tf = pytest.importorskip("tensorflow")

import keras  # noqa: E402

import rectifier_zoo  # noqa: E402
from rectifier_zoo import paper  # noqa: E402
from rectifier_zoo.serving import convert  # noqa: E402


@pytest.mark.parametrize("size", UNEVEN_SIZES)
def test_tflite_matches_predict_images(exported, model, tmp_path, size):
    path = convert.export_tflite(model, tmp_path / "tiny.tflite", input_size=size)
    shape = tf.lite.Interpreter(model_path=path).get_input_details()[0]["shape"]
    assert list(shape) == [1, size, size, 3]
    batch = images(10, shape=(2, size, size))
    want = tf.saved_model.load(exported).signatures["predict_images"](images=batch)
    np.testing.assert_allclose(run_tflite(path, batch), want["probabilities"].numpy(), atol=1e-5)


def test_onnx_matches_predict_images(exported, model, tmp_path):
    pytest.importorskip("tf2onnx")
    predict = tf.saved_model.load(exported).signatures["predict_images"]
    session = onnx_session(convert.export_onnx(model, tmp_path / "any.onnx"))
    assert [i.name for i in session.get_inputs()] == ["images:0"]  # no captured constants
    for shape in [(1, 72, 72), (1, 80, 80), (2, 96, 120)]:
        batch = images(11, shape=shape)
        (got,) = session.run(None, {"images:0": batch})
        want = predict(images=batch)["probabilities"].numpy()
        np.testing.assert_allclose(got, want, atol=1e-5, err_msg=str(shape))
    fixed = onnx_session(convert.export_onnx(model, tmp_path / "80.onnx", input_size=80))
    assert fixed.get_inputs()[0].shape[1:] == [80, 80, 3]
    batch = images(12, shape=(1, 80, 80))
    (got,) = fixed.run(None, {"images:0": batch})
    np.testing.assert_allclose(got, predict(images=batch)["probabilities"].numpy(), atol=1e-5)


def test_onnx_keeps_the_spp_bins_of_uneven_maps(tmp_path):
    """SPP alone through tf2onnx: bins of unequal size must stay where Keras puts them."""
    pytest.importorskip("tf2onnx")
    import tf2onnx
    from keras.src.export.tf2onnx_lib import patch_tf2onnx

    inputs = keras.Input((None, None, 2))
    spp = keras.Model(inputs, rectifier_zoo.SpatialPyramidPooling((3, 2, 1))(inputs))
    spec = tf.TensorSpec([None, None, None, 2], name="x")
    patch_tf2onnx()
    tf2onnx.convert.from_function(
        tf.function(spp, input_signature=[spec]), input_signature=[spec],
        output_path=str(tmp_path / "spp.onnx"),
    )  # fmt: skip
    session = onnx_session(tmp_path / "spp.onnx")
    rng = np.random.default_rng(0)
    for height, width in [(4, 5), (7, 11), (10, 10)]:
        x = rng.normal(size=(1, height, width, 2)).astype("float32")
        (got,) = session.run(None, {"x": x})
        np.testing.assert_array_equal(got, spp(x).numpy(), err_msg=f"{height}x{width}")


def test_export_file_refuses_unknown_formats_and_bad_sizes(model, tmp_path):
    with pytest.raises(ValueError, match=r"Unknown file_format.*'tflite', 'onnx'"):
        convert.export_file(model, tmp_path / "m.pb", "coreml", input_size=64)
    with pytest.raises(ValueError, match="input_size"):
        convert.export_file(model, tmp_path / "m.tflite", "tflite", input_size=None)
    with pytest.raises(ValueError, match="too small"):
        convert.export_file(model, tmp_path / "m.onnx", "onnx", input_size=4)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_model_a_at_224_in_tflite(tmp_path):
    """The paper's Model A (178M parameters) at 224: its 14x14 map takes the uneven 3x3 bins."""
    model_a = rectifier_zoo.model_a(seed=0)
    size = paper.CROP_SIZE
    batch = images(14, shape=(1, size, size))
    path = convert.export_tflite(model_a, tmp_path / "a.tflite", input_size=size)
    np.testing.assert_allclose(run_tflite(path, batch), model_a(batch).numpy(), atol=1e-5)


@pytest.mark.slow
def test_model_a_layout_at_224_in_onnx(tmp_path):
    """Model A's 22-layer layout at 1/8 width in ONNX at 224 (the full width needs more than the
    24 GB of RAM this machine has inside tf2onnx; see exported_models/README.md)."""
    pytest.importorskip("tf2onnx")
    base = rectifier_zoo.ARCHITECTURES["model_a"]
    narrow = dataclasses.replace(
        base,
        name="model_a_narrow",
        stages=tuple(dataclasses.replace(s, filters=s.filters // 8) for s in base.stages),
        fc_units=tuple(units // 8 for units in base.fc_units),
    )
    model = rectifier_zoo.build_model(narrow, classes=1000, seed=0)
    size = paper.CROP_SIZE
    batch = images(15, shape=(1, size, size))
    session = onnx_session(convert.export_onnx(model, tmp_path / "a.onnx", input_size=size))
    (got,) = session.run(None, {"images:0": batch})
    np.testing.assert_allclose(got, model(batch).numpy(), atol=1e-5)
