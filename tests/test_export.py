"""SavedModel export: endpoints, dense windows, fresh-process reload, bad requests, layout."""

import base64
import json
import os
import subprocess
import sys

import numpy as np
import pytest

pytestmark = pytest.mark.tf_only

tf = pytest.importorskip("tensorflow")

import rectifier_zoo  # noqa: E402
from rectifier_zoo import export  # noqa: E402
from rectifier_zoo.data import testing  # noqa: E402

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
    with pytest.raises(tf.errors.InvalidArgumentError, match="expects encoded JPEG or PNG"):
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
