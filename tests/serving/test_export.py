"""Export: endpoints, dense windows, the loaders and converters users run, bad requests, layout.

Every export is checked through the consumer a user runs, never only through our own loader:
TF Serving's session-based restore path (the TF1 loader), `saved_model_cli run`,
`keras.layers.TFSMLayer`, a fresh process without rectifier_zoo, the TFLite interpreter and
onnxruntime.
"""

import base64
import dataclasses
import importlib.util
import io
import json
import os
import socket
import struct
import subprocess
import sys

import numpy as np
import pytest

pytestmark = pytest.mark.tf_only

tf = pytest.importorskip("tensorflow")

import keras  # noqa: E402

import rectifier_zoo  # noqa: E402
from rectifier_zoo.data import testing  # noqa: E402
from rectifier_zoo.serving import export  # noqa: E402

CLASSES = ["cat", "dog", "fox", "owl"]
CROP, RESIZE = 64, 72


@pytest.fixture(scope="module")
def model():
    return rectifier_zoo.model_tiny(classes=len(CLASSES), seed=3)


@pytest.fixture(scope="module")
def exported(model, tmp_path_factory):
    base = tmp_path_factory.mktemp("exports") / "tiny"
    path = export.export_model(
        model,
        str(base),
        class_names=CLASSES,
        metadata={"training_data": "synthetic", "steps": 7, "eval": {"top1_error": 0.5}},
        crop_size=CROP,
        eval_resize=RESIZE,
    )
    return path


def _images(seed=0, shape=(2, 80, 104)):
    return np.random.default_rng(seed).uniform(0, 255, (*shape, 3)).astype("float32")


def _windows_one_by_one(model, scorer, images, mirror):
    """Reference: every window cut from the conv map, through the model's SPP and fc layers."""
    spp = model.get_layer("spp")
    views = [images, images[:, :, ::-1]] if mirror else [images]
    k = scorer.window_cells
    per_view = []
    for view in views:
        feature_map = scorer.trunk(view).numpy()
        scores = []
        for y in range(feature_map.shape[1] - k + 1):
            for x in range(feature_map.shape[2] - k + 1):
                window = feature_map[:, y : y + k, x : x + k]
                scores.append(scorer.head(spp(window)).numpy())
        per_view.append(np.mean(scores, axis=0))
    return np.mean(per_view, axis=0)


@pytest.mark.parametrize("mirror", [False, True])
def test_dense_equals_windows_one_by_one(model, mirror):
    scorer = export.DenseScorer(model, crop_size=CROP)
    assert scorer.window_cells == 8  # the tiny net's total stride is 8: 64 / 8
    assert scorer.trunk.get_layer("conv1") is model.get_layer("conv1")  # shared, not copied
    images = _images()
    dense = tf.function(
        lambda x, m: scorer(x, m),
        input_signature=[tf.TensorSpec([None, None, None, 3]), tf.TensorSpec([], tf.bool)],
        autograph=False,
    )
    got = dense(images, tf.constant(mirror)).numpy()
    want = _windows_one_by_one(model, scorer, images, mirror)
    np.testing.assert_allclose(got, want, atol=1e-5)


def test_dense_small_map_is_one_window(model):
    scorer = export.DenseScorer(model, window_cells=8)
    images = _images(shape=(1, 48, 96))  # 6 x 12 cells: shorter than a window
    got = scorer(images).numpy()
    np.testing.assert_allclose(got, model(images).numpy(), atol=1e-6)


def test_export_layout_and_metadata(exported, model):
    assert os.path.basename(exported) == "1"
    assert sorted(os.listdir(os.path.dirname(exported))) == ["1"]  # no staging folder left
    assert export.read_class_names(exported) == CLASSES
    meta = export.read_metadata(exported)
    assert meta["architecture"] == "model_tiny"
    assert meta["activation"] == "prelu"
    assert meta["steps"] == 7 and meta["training_data"] == "synthetic"
    assert meta["input_contract"]["window_cells"] == 8
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
    for endpoint in export.ENDPOINTS:
        assert f"signature_def['{endpoint}']" in out
    for output in ("probabilities", "classes", "scores", "class_names", "num_windows"):
        assert f"outputs['{output}']" in out


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
    images = _images(1)
    np.save(tmp_path / "images.npy", images)
    jpeg = testing.encode_jpeg(testing.smooth_image(5, 90, 120))
    # The REST body of exported_models/README.md: {"instances": [{"b64": ...}]}.
    body = {"signature_name": "serving_default", "instances": [
        {"b64": base64.b64encode(jpeg).decode("ascii")}
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
    np.testing.assert_allclose(out["images"], model(images).numpy(), atol=1e-5)
    # serving_default = the eval view (eval_transform) through the model.
    from rectifier_zoo.data import transforms

    config = transforms.TransformConfig(
        crop_size=CROP, min_scale=CROP, max_scale=CROP, eval_resize=RESIZE
    )
    view = transforms.eval_transform(tf.constant(jpeg), config)[None]
    want = model(view).numpy()
    np.testing.assert_allclose(out["bytes"], want, atol=1e-5)
    assert out["names"][0] == CLASSES[int(np.argmax(want[0]))]


def test_bad_requests_fail_and_model_keeps_serving(exported):
    loaded = tf.saved_model.load(exported)
    serve = loaded.signatures["serving_default"]
    png = tf.io.encode_png(testing.smooth_image(1, 50, 70)).numpy()
    good = serve(images=tf.constant([png]))["probabilities"].numpy()
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"expects encoded JPEG(.|\n)*\[1\]"):
        serve(images=tf.constant([png, b"this is not an image"]))
    jpeg = testing.encode_jpeg(testing.smooth_image(2, 50, 70))
    with pytest.raises(tf.errors.InvalidArgumentError):
        serve(images=tf.constant([jpeg[:100]]))  # truncated
    with pytest.raises((TypeError, ValueError, tf.errors.InvalidArgumentError)):
        serve(images=tf.constant([1.0, 2.0]))  # wrong dtype
    with pytest.raises((TypeError, ValueError, tf.errors.InvalidArgumentError)):
        serve(images=tf.constant([[png]]))  # wrong rank
    with pytest.raises((TypeError, ValueError, tf.errors.InvalidArgumentError)):
        loaded.signatures["predict_images"](images=tf.zeros([2, 64, 64]))
    np.testing.assert_allclose(serve(images=tf.constant([png]))["probabilities"].numpy(), good)


def test_dense_endpoint_after_reload(exported, model):
    loaded = tf.saved_model.load(exported)
    images = _images(2, shape=(1, 96, 80))
    out = loaded.signatures["dense"](images=images, mirror=tf.constant(True))
    scorer = export.DenseScorer(model, crop_size=CROP)
    np.testing.assert_allclose(out["probabilities"].numpy(), scorer(images, True), atol=1e-5)
    # 96 x 80 px -> 12 x 10 cells -> 5 x 3 windows of 8 cells, twice (mirror).
    assert int(out["num_windows"]) == 30


def _jpeg(seed=5, height=90, width=120):
    return testing.encode_jpeg(testing.smooth_image(seed, height, width))


def _keras_serving_default(model, jpeg):
    from rectifier_zoo.data import transforms

    config = transforms.TransformConfig(
        crop_size=CROP, min_scale=CROP, max_scale=CROP, eval_resize=RESIZE
    )
    return model(transforms.eval_transform(tf.constant(jpeg), config)[None]).numpy()


def test_tf1_session_loader_restores_every_variable(exported, model):
    """TF Serving's C++ loader restores through the SavedModel's saver, as this loader does."""
    images = _images(4)
    jpeg = _jpeg()
    scorer = export.DenseScorer(model, crop_size=CROP)
    cases = [  # endpoint, inputs, the Keras model's scores (computed eagerly, outside the graph)
        ("predict_images", {"images": images}, model(images).numpy()),
        ("serving_default", {"images": [jpeg]}, _keras_serving_default(model, jpeg)),
        ("dense", {"images": images, "mirror": True}, scorer(images, True).numpy()),
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
    images = _images(6, shape=(2, 72, 88))
    np.save(tmp_path / "images.npy", images)
    jpeg = _jpeg(7)
    np.save(tmp_path / "jpeg.npy", np.array([jpeg], dtype=object), allow_pickle=True)
    scorer = export.DenseScorer(model, crop_size=CROP)
    cases = {
        "predict_images": (["--inputs", f"images={tmp_path / 'images.npy'}"], model(images)),
        "serving_default": (
            ["--inputs", f"images={tmp_path / 'jpeg.npy'}"],
            _keras_serving_default(model, jpeg),
        ),
        "dense": (
            ["--inputs", f"images={tmp_path / 'images.npy'}", "--input_exprs", "mirror=True"],
            scorer(images, True),
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
    images = _images(8, shape=(1, 80, 96))
    layer = keras.layers.TFSMLayer(exported, call_endpoint="predict_images")
    np.testing.assert_allclose(
        layer(images)["probabilities"].numpy(), model(images).numpy(), atol=1e-6
    )
    jpeg = _jpeg(9)
    layer = keras.layers.TFSMLayer(exported, call_endpoint="serving_default")
    got = layer(tf.constant([jpeg]))["probabilities"].numpy()
    np.testing.assert_allclose(got, _keras_serving_default(model, jpeg), atol=1e-6)


# 72 and 80 px give the tiny net 9x9 and 10x10 maps: its 3x3 SPP level gets bins of unequal size.
UNEVEN_SIZES = (72, 80)


def _run_tflite(path, images: np.ndarray) -> np.ndarray:
    interpreter = tf.lite.Interpreter(model_path=str(path))
    ops = {op["op_name"] for op in interpreter._get_ops_details()}
    assert not any(name.startswith("Flex") for name in ops), ops  # builtin ops only
    interpreter.resize_tensor_input(interpreter.get_input_details()[0]["index"], images.shape)
    interpreter.allocate_tensors()
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], images)
    interpreter.invoke()
    return interpreter.get_tensor(interpreter.get_output_details()[0]["index"])


@pytest.mark.parametrize("size", UNEVEN_SIZES)
def test_tflite_matches_predict_images(exported, model, tmp_path, size):
    path = export.export_tflite(model, tmp_path / "tiny.tflite", input_size=size)
    shape = tf.lite.Interpreter(model_path=path).get_input_details()[0]["shape"]
    assert list(shape) == [1, size, size, 3]
    images = _images(10, shape=(2, size, size))
    want = tf.saved_model.load(exported).signatures["predict_images"](images=images)
    np.testing.assert_allclose(_run_tflite(path, images), want["probabilities"].numpy(), atol=1e-5)


def _onnx_session(path):
    onnxruntime = pytest.importorskip("onnxruntime")
    return onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def test_onnx_matches_predict_images(exported, model, tmp_path):
    pytest.importorskip("tf2onnx")
    predict = tf.saved_model.load(exported).signatures["predict_images"]
    session = _onnx_session(export.export_onnx(model, tmp_path / "any.onnx"))
    assert [i.name for i in session.get_inputs()] == ["images:0"]  # no captured constants
    for shape in [(1, 72, 72), (1, 80, 80), (2, 96, 120)]:
        images = _images(11, shape=shape)
        (got,) = session.run(None, {"images:0": images})
        want = predict(images=images)["probabilities"].numpy()
        np.testing.assert_allclose(got, want, atol=1e-5, err_msg=str(shape))
    fixed = _onnx_session(export.export_onnx(model, tmp_path / "80.onnx", input_size=80))
    assert fixed.get_inputs()[0].shape[1:] == [80, 80, 3]
    images = _images(12, shape=(1, 80, 80))
    (got,) = fixed.run(None, {"images:0": images})
    np.testing.assert_allclose(got, predict(images=images)["probabilities"].numpy(), atol=1e-5)


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
    session = _onnx_session(tmp_path / "spp.onnx")
    rng = np.random.default_rng(0)
    for height, width in [(4, 5), (7, 11), (10, 10)]:
        x = rng.normal(size=(1, height, width, 2)).astype("float32")
        (got,) = session.run(None, {"x": x})
        np.testing.assert_array_equal(got, spp(x).numpy(), err_msg=f"{height}x{width}")


def _with_size(data: bytes, height: int, width: int) -> bytes:
    """The same file with the header claiming another size (nothing else changes)."""
    data = bytearray(data)
    if data.startswith(b"\xff\xd8"):
        at = data.index(b"\xff\xc0") + 5
        data[at : at + 4] = struct.pack(">HH", height, width)
    elif data.startswith(b"\x89PNG"):
        data[16:24] = struct.pack(">II", width, height)
    elif data.startswith(b"GIF8"):
        data[6:10] = struct.pack("<HH", width, height)
    else:
        data[18:26] = struct.pack("<ii", width, height)
    return bytes(data)


def _encoded(image: np.ndarray, fmt: str) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, fmt)
    return buffer.getvalue()


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "GIF", "BMP"])
def test_huge_images_are_refused_before_decoding(exported, fmt):
    serve = tf.saved_model.load(exported).signatures["serving_default"]
    small = _encoded(testing.smooth_image(3, 40, 50), fmt)
    assert serve(images=tf.constant([small]))["probabilities"].shape == (1, len(CLASSES))
    huge = _with_size(small, 20000, 20000)
    with pytest.raises(
        tf.errors.InvalidArgumentError,
        match=r"max_pixels=50000000(.|\n)*batch indices:(.|\n)*\[1\](.|\n)*20000 20000",
    ):
        serve(images=tf.constant([small, huge]))


def test_max_pixels_is_settable_and_guards_every_endpoint(model, tmp_path):
    path = export.export_model(
        model, tmp_path / "m", class_names=CLASSES, crop_size=CROP, eval_resize=RESIZE,
        max_pixels=100 * 100,
    )  # fmt: skip
    assert export.read_metadata(path)["input_contract"]["max_pixels"] == 10000
    loaded = tf.saved_model.load(path)
    jpeg = _jpeg(1, 100, 100)
    loaded.signatures["serving_default"](images=tf.constant([jpeg]))
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"max_pixels=10000"):
        loaded.signatures["serving_default"](images=tf.constant([jpeg, _jpeg(1, 101, 100)]))
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"max_pixels=10000"):
        loaded.signatures["predict_images"](images=_images(1, shape=(1, 120, 100)))
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"max_pixels=10000"):
        loaded.signatures["dense"](images=_images(1, shape=(1, 120, 100)), mirror=False)
    with pytest.raises(ValueError, match="max_pixels"):
        export.export_model(model, tmp_path / "n", class_names=CLASSES, max_pixels=100)


def test_large_jpegs_decode_at_a_reduced_dct_scale(model, tmp_path):
    """A big JPEG served with and without DCT downscaling: the same view, up to resampling."""
    big = testing.encode_jpeg(testing.smooth_image(4, 600, 760))  # ratio 8 for eval_resize 72
    scores = {}
    for downscale in (True, False):
        path = export.export_model(
            model, tmp_path / str(downscale), class_names=CLASSES, crop_size=CROP,
            eval_resize=RESIZE, jpeg_downscale=downscale,
        )  # fmt: skip
        serve = tf.saved_model.load(path).signatures["serving_default"]
        scores[downscale] = serve(images=tf.constant([big]))["probabilities"].numpy()
    np.testing.assert_allclose(scores[True], scores[False], atol=2e-2)


def test_logits_models_serve_probabilities(tmp_path):
    logits_model = rectifier_zoo.model_tiny(classes=3, seed=4, classifier_activation=None)
    path = export.export_model(
        logits_model, tmp_path / "logits", class_names=["a", "b", "c"], crop_size=CROP,
        eval_resize=RESIZE,
    )  # fmt: skip
    assert export.read_metadata(path)["softmax_added_in_graph"] is True
    loaded = tf.saved_model.load(path)
    images = _images(2, shape=(1, 64, 64))
    want = tf.nn.softmax(logits_model(images)).numpy()
    got = loaded.signatures["predict_images"](images=images)["probabilities"].numpy()
    np.testing.assert_allclose(got, want, atol=1e-6)
    dense = loaded.signatures["dense"](images=images, mirror=False)["probabilities"].numpy()
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
        export.export_tflite(net, tmp_path / "x.tflite", input_size=64)
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
    images = _images(3, shape=(1, 40, 40))
    got = tf.saved_model.load(path).signatures["predict_images"](images=images)
    np.testing.assert_allclose(got["probabilities"].numpy(), net(images).numpy(), atol=1e-6)


def test_a_taken_version_is_skipped_not_overwritten(model, tmp_path, monkeypatch):
    """Two exports into one base: the one that renames second takes the next free version."""
    base = tmp_path / "base"
    first = export.export_model(
        model, base, class_names=CLASSES, crop_size=CROP, eval_resize=RESIZE
    )
    real_next = export.next_version_path
    calls = []

    def stale_listing(folder):
        # The first look happens as if the other export had not yet renamed its folder.
        calls.append(folder)
        return first if len(calls) == 1 else real_next(folder)

    monkeypatch.setattr(export, "next_version_path", stale_listing)
    second = export.export_model(
        model, base, class_names=CLASSES, crop_size=CROP, eval_resize=RESIZE
    )
    assert os.path.basename(second) == "2" and len(calls) == 2
    assert sorted(os.listdir(base)) == ["1", "2"]
    assert os.path.exists(os.path.join(first, "saved_model.pb"))
    with pytest.raises(ValueError, match="exists already"):
        export.export_model(model, first, class_names=CLASSES)


def test_stale_staging_folders_are_removed(model, tmp_path):
    base = tmp_path / "base"
    base.mkdir()
    host = socket.gethostname()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True).stdout.strip()  # fmt: skip
    crashed = base / f".tmp-export-{host}-{dead}-0123abcd"
    live = base / f".tmp-export-{host}-{os.getpid()}-4567abcd"
    crashed.mkdir()
    live.mkdir()
    export.export_model(model, base, class_names=CLASSES, crop_size=CROP, eval_resize=RESIZE)
    assert not crashed.exists()
    assert live.exists()  # a running export's folder is left alone


REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _export_cli(*flags):
    return subprocess.run(
        [sys.executable, os.path.join(REPO, "training", "export.py"), *flags],
        capture_output=True, text=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
    )  # fmt: skip


def test_export_cli_writes_tflite_and_onnx(model, tmp_path):
    weights = str(tmp_path / "tiny.weights.h5")
    model.save_weights(weights)
    source = [f"--weights={weights}", "--model=model_tiny", f"--classes={len(CLASSES)}"]
    images = _images(13, shape=(1, 72, 72))
    want = model(images).numpy()
    done = _export_cli(*source, "--format=tflite", "--input_size=72", f"--output={tmp_path}/t")
    assert done.returncode == 0, done.stderr[-2000:]
    np.testing.assert_allclose(_run_tflite(tmp_path / "t", images), want, atol=1e-5)
    if importlib.util.find_spec("tf2onnx") and importlib.util.find_spec("onnxruntime"):
        done = _export_cli(*source, "--format=onnx", f"--output={tmp_path}/o.onnx")
        assert done.returncode == 0, done.stderr[-2000:]
        (got,) = _onnx_session(tmp_path / "o.onnx").run(None, {"images:0": images})
        np.testing.assert_allclose(got, want, atol=1e-5)


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--format=tflite", "--output=x.tflite"], "--format=tflite needs --input_size"),
        (["--format=onnx"], "--format=onnx needs --output"),
        (["--input_size=64"], "--output and --input_size are for --format=tflite|onnx"),
        (["--format=tflite", "--input_size=4", "--output=x.tflite"], "too small"),
    ],
)
def test_export_cli_bad_flags_are_one_line(model, tmp_path, flags, message):
    weights = str(tmp_path / "tiny.weights.h5")
    model.save_weights(weights)
    done = _export_cli(f"--weights={weights}", "--model=model_tiny", "--classes=4", *flags)
    assert done.returncode == 1
    assert message in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "x.tflite").exists() and not os.path.exists("x.tflite")


@pytest.mark.slow
def test_model_a_at_224_in_tflite(tmp_path):
    """The paper's Model A (178M parameters) at 224: its 14x14 map takes the uneven 3x3 bins."""
    model_a = rectifier_zoo.model_a(seed=0)
    images = _images(14, shape=(1, 224, 224))
    path = export.export_tflite(model_a, tmp_path / "a.tflite", input_size=224)
    np.testing.assert_allclose(_run_tflite(path, images), model_a(images).numpy(), atol=1e-5)


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
    images = _images(15, shape=(1, 224, 224))
    session = _onnx_session(export.export_onnx(model, tmp_path / "a.onnx", input_size=224))
    (got,) = session.run(None, {"images:0": images})
    np.testing.assert_allclose(got, model(images).numpy(), atol=1e-5)
