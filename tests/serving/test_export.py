"""Export: layout, metadata, endpoints through the loaders users run, what is refused.

Every export is checked through the consumer a user runs, never only through our own loader:
TF Serving's session-based restore path (the TF1 loader), `saved_model_cli run`,
`keras.layers.TFSMLayer` and a fresh process without rectifier_zoo. (Limits: test_serving_limits;
TFLite and ONNX: test_serving_convert; versions: test_serving_publish.)
"""

import base64
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from serving_support import CLASSES, CROP, RESIZE, images, jpeg, keras_serving_default

pytestmark = pytest.mark.tf_only

tf = pytest.importorskip("tensorflow")

import keras  # noqa: E402

import rectifier_zoo  # noqa: E402
from rectifier_zoo.serving import contract, convert, export  # noqa: E402
from rectifier_zoo.serving.dense import DenseScorer  # noqa: E402


def test_export_layout_and_metadata(exported, model):
    assert os.path.basename(exported) == "1"
    assert sorted(os.listdir(os.path.dirname(exported))) == ["1"]  # no staging folder left
    assert sorted(os.listdir(os.path.join(exported, contract.ASSETS_DIR))) == sorted(
        [contract.CLASS_NAMES_FILE, contract.METADATA_FILE]
    )
    assert contract.read_class_names(exported) == CLASSES
    meta = contract.read_metadata(exported)
    assert set(contract.METADATA_KEYS) <= set(meta)
    assert sorted(meta[contract.INPUT_CONTRACT]) == sorted(contract.INPUT_CONTRACT_KEYS)
    assert meta["architecture"] == "model_tiny"
    assert meta["activation"] == "prelu"
    assert meta["endpoints"] == list(contract.ENDPOINTS)
    assert meta["steps"] == 7 and meta["training_data"] == "synthetic"
    assert meta[contract.INPUT_CONTRACT]["window_cells"] == 8
    assert meta[contract.INPUT_CONTRACT]["max_pixels"] == contract.DEFAULT_MAX_PIXELS
    assert "JPEG, PNG, GIF or BMP bytes" in meta[contract.INPUT_CONTRACT]["serving_default"]
    second = export.export_model(
        model, os.path.dirname(exported), class_names=CLASSES, crop_size=CROP, eval_resize=RESIZE
    )
    assert os.path.basename(second) == "2"


def test_export_rejects_wrong_class_names(model, tmp_path):
    with pytest.raises(ValueError, match="one name per class"):
        export.export_model(model, str(tmp_path / "m"), class_names=["a"])


def test_saved_model_cli_lists_endpoints(exported):
    cli = os.path.join(os.path.dirname(sys.executable), "saved_model_cli")
    out = subprocess.run(
        [cli, "show", "--all", "--dir", exported], capture_output=True, text=True, check=True
    ).stdout
    for endpoint in contract.ENDPOINTS:
        assert f"signature_def['{endpoint}']" in out
    for outputs in contract.OUTPUTS.values():
        for output in outputs:
            assert f"outputs['{output}']" in out


def test_signatures_have_the_contract_names(exported):
    loaded = tf.saved_model.load(exported)
    assert set(loaded.signatures) == set(contract.ENDPOINTS)
    for endpoint in contract.ENDPOINTS:
        signature = loaded.signatures[endpoint]
        assert sorted(signature.structured_input_signature[1]) == sorted(contract.INPUTS[endpoint])
        assert sorted(signature.structured_outputs) == sorted(contract.OUTPUTS[endpoint])


_FRESH_PROCESS = r"""
import base64, json, sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "rectifier_zoo":
            raise ImportError("rectifier_zoo must not be imported")
sys.meta_path.insert(0, Block())
import numpy as np, tensorflow as tf
args = json.load(open(sys.argv[1]))
loaded = tf.saved_model.load(args["path"])
images = np.load(args["images"])
scores = loaded.signatures["predict_images"](images=images)["probabilities"]
out = {"images": scores.numpy().tolist()}
body = json.load(open(args["request"]))
jpeg = [base64.b64decode(i["b64"]) for i in body["instances"]]
served = loaded.signatures["serving_default"](images=tf.constant(jpeg))
out["bytes"] = served["probabilities"].numpy().tolist()
out["names"] = [n.decode() for n in served["class_names"].numpy()[0]]
out["modules"] = sorted(m for m in sys.modules if m.startswith("rectifier_zoo"))
json.dump(out, open(args["out"], "w"))
"""


def test_fresh_process_without_rectifier_zoo(exported, model, tmp_path):
    batch = images(1)
    np.save(tmp_path / "images.npy", batch)
    image_bytes = jpeg()
    # The REST body of exported_models/README.md: {"instances": [{"b64": ...}]}.
    body = {"signature_name": "serving_default", "instances": [
        {"b64": base64.b64encode(image_bytes).decode("ascii")}
    ]}  # fmt: skip
    (tmp_path / "request.json").write_text(json.dumps(body))
    args = {
        "path": exported,
        "images": str(tmp_path / "images.npy"),
        "request": str(tmp_path / "request.json"),
        "out": str(tmp_path / "out.json"),
    }
    (tmp_path / "args.json").write_text(json.dumps(args))
    script = tmp_path / "fresh.py"
    script.write_text(_FRESH_PROCESS)
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    subprocess.run(
        [sys.executable, str(script), str(tmp_path / "args.json")],
        check=True,
        env=env,
        cwd=str(tmp_path),
    )
    out = json.loads((tmp_path / "out.json").read_text())
    assert out["modules"] == []
    np.testing.assert_allclose(out["images"], model(batch).numpy(), atol=1e-5)
    # serving_default = the eval view (eval_transform) through the model.
    want = keras_serving_default(model, image_bytes)
    np.testing.assert_allclose(out["bytes"], want, atol=1e-5)
    assert out["names"][0] == CLASSES[int(np.argmax(want[0]))]


def test_dense_endpoint_after_reload(exported, model):
    loaded = tf.saved_model.load(exported)
    batch = images(2, shape=(1, 96, 80))
    out = loaded.signatures["dense"](images=batch, mirror=tf.constant(True))
    scorer = DenseScorer(model, crop_size=CROP)
    np.testing.assert_allclose(out["probabilities"].numpy(), scorer(batch, True), atol=1e-5)
    # 96 x 80 px -> 12 x 10 cells -> 5 x 3 windows of 8 cells, twice (mirror).
    assert int(out["num_windows"]) == 30


def test_tf1_session_loader_restores_every_variable(exported, model):
    """TF Serving's C++ loader restores through the SavedModel's saver, as this loader does."""
    batch = images(4)
    image_bytes = jpeg()
    scorer = DenseScorer(model, crop_size=CROP)
    cases = [  # endpoint, inputs, the Keras model's scores (computed eagerly, outside the graph)
        ("predict_images", {"images": batch}, model(batch).numpy()),
        ("serving_default", {"images": [image_bytes]}, keras_serving_default(model, image_bytes)),
        ("dense", {"images": batch, "mirror": True}, scorer(batch, True).numpy()),
    ]
    with tf.compat.v1.Session(graph=tf.Graph()) as session:
        meta_graph = tf.compat.v1.saved_model.loader.load(session, ["serve"], exported)
        for name, feeds, want in cases:
            signature = meta_graph.signature_def[name]
            feed = {signature.inputs[key].name: value for key, value in feeds.items()}
            got = session.run(signature.outputs["probabilities"].name, feed)
            np.testing.assert_allclose(got, want, atol=1e-6, err_msg=name)


def test_saved_model_cli_runs_every_signature(exported, model, tmp_path):
    cli = os.path.join(os.path.dirname(sys.executable), "saved_model_cli")
    batch = images(6, shape=(2, 72, 88))
    np.save(tmp_path / "images.npy", batch)
    image_bytes = jpeg(7)
    np.save(tmp_path / "jpeg.npy", np.array([image_bytes], dtype=object), allow_pickle=True)
    scorer = DenseScorer(model, crop_size=CROP)
    cases = {
        "predict_images": (["--inputs", f"images={tmp_path / 'images.npy'}"], model(batch)),
        "serving_default": (
            ["--inputs", f"images={tmp_path / 'jpeg.npy'}"],
            keras_serving_default(model, image_bytes),
        ),
        "dense": (
            ["--inputs", f"images={tmp_path / 'images.npy'}", "--input_exprs", "mirror=True"],
            scorer(batch, True),
        ),
    }
    for signature, (inputs, want) in cases.items():
        out = tmp_path / signature
        subprocess.run(
            [cli, "run", "--dir", exported, "--tag_set", "serve", "--signature_def", signature,
             *inputs, "--outdir", str(out)],
            check=True, capture_output=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
        )  # fmt: skip
        got = np.load(out / "probabilities.npy")
        np.testing.assert_allclose(got, np.asarray(want), atol=1e-6, err_msg=signature)


def test_tfsm_layer_loads_each_endpoint(exported, model):
    batch = images(8, shape=(1, 80, 96))
    layer = keras.layers.TFSMLayer(exported, call_endpoint="predict_images")
    np.testing.assert_allclose(
        layer(batch)["probabilities"].numpy(), model(batch).numpy(), atol=1e-6
    )
    image_bytes = jpeg(9)
    layer = keras.layers.TFSMLayer(exported, call_endpoint="serving_default")
    got = layer(tf.constant([image_bytes]))["probabilities"].numpy()
    np.testing.assert_allclose(got, keras_serving_default(model, image_bytes), atol=1e-6)


def test_logits_models_serve_probabilities(tmp_path):
    logits_model = rectifier_zoo.model_tiny(classes=3, seed=4, classifier_activation=None)
    path = export.export_model(
        logits_model, tmp_path / "logits", class_names=["a", "b", "c"], crop_size=CROP,
        eval_resize=RESIZE,
    )  # fmt: skip
    assert contract.read_metadata(path)["softmax_added_in_graph"] is True
    loaded = tf.saved_model.load(path)
    batch = images(2, shape=(1, 64, 64))
    want = tf.nn.softmax(logits_model(batch)).numpy()
    got = loaded.signatures["predict_images"](images=batch)["probabilities"].numpy()
    np.testing.assert_allclose(got, want, atol=1e-6)
    dense = loaded.signatures["dense"](images=batch, mirror=False)["probabilities"].numpy()
    np.testing.assert_allclose(dense, want, atol=1e-6)  # a 64 px image is one 8x8 window


class _Subclassed(keras.Model):
    def __init__(self):
        super().__init__()
        self.dense = keras.layers.Dense(2, activation="softmax")

    def call(self, x):
        return self.dense(keras.ops.mean(x, axis=(1, 2)))


def _unservable_models():
    trunk = rectifier_zoo.model_tiny(include_top=False, pooling="spp")
    sigmoid = rectifier_zoo.model_tiny(classes=2, classifier_activation="sigmoid")
    subclassed = _Subclassed()
    subclassed(np.zeros((1, 8, 8, 3), "float32"))
    return [
        ("trunk", trunk, "include_top=True"),
        ("conv map", rectifier_zoo.model_tiny(include_top=False), "include_top=True"),
        ("sigmoid", sigmoid, "softmax or logits"),
        ("subclassed", subclassed, "functional Keras model"),
    ]


@pytest.mark.parametrize("case", range(4))
def test_unservable_models_are_refused_before_anything_is_written(tmp_path, case):
    name, net, message = _unservable_models()[case]
    base = tmp_path / "base"
    classes = ["x"] * int(net.outputs[0].shape[-1]) if hasattr(net, "outputs") else ["a", "b"]
    with pytest.raises(ValueError, match=message):
        export.export_model(net, base, class_names=classes)
    assert not base.exists(), name
    with pytest.raises(ValueError, match=message):
        convert.export_tflite(net, tmp_path / "x.tflite", input_size=64)
    assert not (tmp_path / "x.tflite").exists()


def test_sequential_models_export(tmp_path):
    net = keras.Sequential(
        [
            keras.Input((None, None, 3)),
            keras.layers.Conv2D(4, 3, activation="relu"),
            rectifier_zoo.SpatialPyramidPooling((2, 1), name="spp"),
            keras.layers.Dense(2),
            keras.layers.Softmax(),  # already probabilities: no second softmax
        ]
    )
    path = export.export_model(net, tmp_path / "seq", class_names=["a", "b"], crop_size=32,
                               eval_resize=32)  # fmt: skip
    batch = images(3, shape=(1, 40, 40))
    got = tf.saved_model.load(path).signatures["predict_images"](images=batch)
    np.testing.assert_allclose(got["probabilities"].numpy(), net(batch).numpy(), atol=1e-6)
