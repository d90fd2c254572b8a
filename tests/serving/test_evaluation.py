"""The evaluator: metrics, views, ensembles, dense protocol, clear errors, end to end.

(Its command: test_serving_cli; its table and files: test_serving_report.)
"""

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

pytestmark = pytest.mark.tf_only

tf = pytest.importorskip("tensorflow")

import rectifier_zoo  # noqa: E402
from rectifier_zoo import data  # noqa: E402
from rectifier_zoo.data import testing  # noqa: E402
from rectifier_zoo.serving import contract, evaluation, export, report  # noqa: E402
from rectifier_zoo.serving.dense import DenseScorer  # noqa: E402

CLASSES = ["ant", "bee", "cow"]
CROP, RESIZE = 64, 72
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


# A model and an export of their own (3 classes), in place of conftest.py's.
@pytest.fixture(scope="module")
def model():
    return rectifier_zoo.model_tiny(classes=len(CLASSES), seed=7)


@pytest.fixture(scope="module")
def exported(model, tmp_path_factory):
    base = tmp_path_factory.mktemp("exports") / "tiny"
    return export.export_model(
        model, str(base), class_names=CLASSES, crop_size=CROP, eval_resize=RESIZE
    )


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    root = tmp_path_factory.mktemp("folder")
    testing.write_image_folder(root, CLASSES, {"train": 1, "val": 2}, size=(70, 90))
    return data.get_source("folder", str(root))


def test_metrics_against_numpy():
    rng = np.random.default_rng(0)
    probabilities = rng.dirichlet(np.ones(10), size=50)
    labels = rng.integers(0, 10, size=50)
    order = np.argsort(-probabilities, axis=1)
    want1 = 1 - np.mean(order[:, 0] == labels)
    want5 = 1 - np.mean([label in row[:5] for row, label in zip(order, labels, strict=True)])
    got = evaluation.error_rates(probabilities, labels)
    assert got["top1_error"] == pytest.approx(want1)
    assert got["top5_error"] == pytest.approx(want5)
    hand = np.array([[0.1, 0.7, 0.2], [0.5, 0.3, 0.2]])
    assert evaluation.error_rates(hand, np.array([1, 2])) == {
        "top1_error": 0.5,
        "top5_error": 0.0,
    }
    # Ties count in the label's favour: a label tied with the best is a top-1 hit.
    tied = np.array([[0.4, 0.4, 0.2]])
    assert evaluation.error_rates(tied, np.array([1]))["top1_error"] == 0.0


def _decoded(source):
    paths, labels = source.files("validation")
    return [tf.io.decode_jpeg(tf.io.read_file(p)).numpy() for p in paths], np.array(labels)


def _resize(image, size):
    height, width = image.shape[:2]
    ratio = size / min(height, width)
    shape = [max(round(height * ratio), size), max(round(width * ratio), size)]
    resized = tf.image.resize(image.astype("float32"), shape, method="bilinear").numpy()
    return np.clip(resized, 0, 255)


def test_ten_view_equals_ten_explicit_crops(model, exported, source):
    result = evaluation.evaluate(
        [exported], source, protocol="ten_view", batch_size=4, progress=False
    )
    images, labels = _decoded(source)
    want = []
    for image in images:
        resized = _resize(image, RESIZE)
        height, width = resized.shape[:2]
        crops = []
        for y in (0, height - CROP):
            for x in (0, width - CROP):
                crops.append(resized[y : y + CROP, x : x + CROP])
        y, x = (height - CROP) // 2, (width - CROP) // 2
        crops.append(resized[y : y + CROP, x : x + CROP])
        crops += [crop[:, ::-1] for crop in crops]
        want.append(model(np.stack(crops)).numpy().mean(axis=0))
    np.testing.assert_allclose(result["probabilities"], np.stack(want), atol=1e-5)
    np.testing.assert_array_equal(result["labels"], labels)
    assert result["rows"][0]["images"] == len(labels)


def test_ensemble_of_two_copies_equals_the_model(exported, source, tmp_path):
    single = evaluation.evaluate([exported], source, protocol="center", progress=False)
    pair = evaluation.evaluate(
        [exported, exported], source, protocol="center", weights=[1, 3], progress=False
    )
    np.testing.assert_allclose(pair["probabilities"], single["probabilities"], atol=1e-6)
    assert [row["role"] for row in pair["rows"]] == ["member", "member", "ensemble"]
    for row in pair["rows"]:
        assert row["top1_error"] == single["rows"][-1]["top1_error"]
        assert row["top5_error"] == single["rows"][-1]["top5_error"]
    json_path, csv_path = report.write_results(pair, str(tmp_path / "out.json"))
    rows = json.loads(open(json_path).read())["rows"]
    assert len(rows) == 3 and rows[-1]["protocol"] == "center"
    assert open(csv_path).read().startswith("model,role,weight,protocol,scales")


def test_center_equals_serving_default(exported, source):
    result = evaluation.evaluate([exported], source, protocol="center", progress=False)
    loaded = tf.saved_model.load(exported)
    paths, _ = source.files("validation")
    encoded = tf.constant([open(p, "rb").read() for p in paths])
    served = loaded.signatures["serving_default"](images=encoded)["probabilities"].numpy()
    np.testing.assert_allclose(result["probabilities"], served, atol=1e-6)


def test_dense_protocol_averages_scales_and_mirrors(model, exported, source):
    scales = (64, 96)
    result = evaluation.evaluate(
        [exported], source, protocol="dense", scales=scales, max_images=2, progress=False
    )
    scorer = DenseScorer(model, crop_size=CROP)
    images, _ = _decoded(source)
    want = [
        np.mean([scorer(_resize(image, s)[None], True).numpy()[0] for s in scales], axis=0)
        for image in images[:2]
    ]
    np.testing.assert_allclose(result["probabilities"], np.stack(want), atol=1e-5)


def test_clear_errors(exported, source, tmp_path, model):
    with pytest.raises(evaluation.EvaluationError, match="Model folder not found"):
        evaluation.evaluate([str(tmp_path / "nope")], source, progress=False)

    class Plain(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
        def serve(self, images):
            return {"n": tf.shape(images)}

    plain = Plain()
    tf.saved_model.save(plain, str(tmp_path / "plain"), signatures={"serving_default": plain.serve})
    with pytest.raises(evaluation.EvaluationError, match="no 'dense' endpoint"):
        evaluation.evaluate([str(tmp_path / "plain")], source, protocol="dense", progress=False)

    root = tmp_path / "empty"
    for split in ("train", "val"):
        for name in CLASSES:
            (root / split / name).mkdir(parents=True)
    empty = data.FolderSource(str(root))
    with pytest.raises(evaluation.EvaluationError, match="empty"):
        evaluation.evaluate([exported], empty, progress=False)

    other = export.export_model(
        model, str(tmp_path / "other"), class_names=["x", "y", "z"], crop_size=CROP,
        eval_resize=RESIZE,
    )  # fmt: skip
    with pytest.raises(evaluation.EvaluationError, match="disagree on the class list"):
        evaluation.evaluate([exported, other], source, progress=False)

    with pytest.raises(evaluation.EvaluationError, match=r"Unknown protocol.*'ten_view'"):
        evaluation.evaluate([exported], source, protocol="twelve_view", progress=False)

    damaged = tmp_path / "damaged"
    shutil.copytree(exported, damaged)
    (damaged / contract.ASSETS_DIR / contract.METADATA_FILE).write_text("{not json")
    with pytest.raises(evaluation.EvaluationError, match="metadata.json is not valid JSON"):
        evaluation.evaluate([str(damaged)], source, progress=False)


def test_trained_on_synthetic_then_exported_scores_what_training_reported(tmp_path):
    from rectifier_zoo.train import loop as trainer
    from rectifier_zoo.train import recipes

    data_dir = data.ensure_tiny_synthetic_dataset(str(tmp_path / "data"))
    config = recipes.get_recipe("paper_model_a").override(
        name="tiny", model="model_tiny", dataset="folder", data_dir=data_dir,
        model_dir=str(tmp_path / "run"), export_dir=str(tmp_path / "plain_export"),
        strategy="one_device", batch_size=4, train_steps=2, crop_size=32, min_scale=32,
        max_scale=40, eval_resize=32, seed=0, log_every_steps=1, verbose=0,
    )  # fmt: skip
    summary = trainer.train(config)
    # The export CLI rebuilds the model from the run's config.json and latest checkpoint.
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    done = subprocess.run(
        [
            sys.executable,
            os.path.join(REPO, "training", "export.py"),
            f"--checkpoint_dir={tmp_path / 'run'}",
            f"--export_base={tmp_path / 'exports' / 'tiny'}",
        ],
        capture_output=True,
        text=True,
        env=env,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    path = done.stdout.strip().splitlines()[-1]
    assert path.endswith(os.path.join("tiny", "1"))
    meta = contract.read_metadata(path)
    assert meta["steps"] == 2 and meta["training_data"] == "folder"
    assert meta["evaluation"]["top1_error"] == summary["val_top1_error"]
    source = data.get_source("folder", data_dir)
    assert contract.read_class_names(path) == list(source.class_names)
    result = evaluation.evaluate([path], source, protocol="center", progress=False)
    row = result["rows"][-1]
    assert row["images"] == summary["val_examples"]
    assert row["top1_error"] == pytest.approx(summary["val_top1_error"])
    assert row["top5_error"] == pytest.approx(summary["val_top5_error"])


@pytest.mark.parametrize("protocol", ["center", "dense"])
def test_truncated_and_non_image_files_are_skipped_and_counted(exported, tmp_path, protocol):
    root = tmp_path / "folder"
    testing.write_image_folder(root, CLASSES, {"train": 1, "val": 3}, size=(70, 90))
    files = sorted(str(p) for p in (root / "val").rglob("*") if p.is_file())
    with open(files[0], "rb") as f:
        head = f.read()[:300]
    with open(files[0], "wb") as f:
        f.write(head)  # a download cut short
    with open(files[4], "wb") as f:
        f.write(b"<html>404 Not Found</html>")  # saved with an image's name
    source = data.get_source("folder", str(root))
    result = evaluation.evaluate([exported], source, protocol=protocol, progress=False)
    row = result["rows"][-1]
    assert row["images"] == len(files) - 2
    assert row["skipped_images"] == 2
    assert sorted(result["skipped_names"]) == sorted([files[0], files[4]])
    assert "skipped 2 undecodable images" in report.format_table(result)
