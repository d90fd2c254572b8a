"""The built-in synthetic data set: layout, determinism, cache completion marker, errors."""

import os

import numpy as np
import pytest
import tensorflow as tf

from rectifier_zoo import data
from rectifier_zoo.data import synthetic

pytestmark = pytest.mark.tf_only


def _files(root):
    out = {}
    for directory, _, names in os.walk(root):
        for name in names:
            path = os.path.join(directory, name)
            with open(path, "rb") as f:
                out[os.path.relpath(path, root)] = f.read()
    return out


def test_tiny_layout_and_real_jpegs(tmp_path):
    root = data.ensure_tiny_synthetic_dataset(tmp_path / "tiny")
    files = _files(root)
    assert "COMPLETE.json" in files
    images = {k: v for k, v in files.items() if k.endswith(".JPEG")}
    assert len(images) == data.TINY_CONFIG.train_images + data.TINY_CONFIG.val_images
    assert sorted(os.listdir(os.path.join(root, "train"))) == list(synthetic.CLASS_NAMES[:4])
    for name, encoded in images.items():
        image = tf.io.decode_jpeg(encoded).numpy()
        assert image.shape[2] == 3, name
        assert 24 <= min(image.shape[:2]) and max(image.shape[:2]) <= 48


def test_generation_is_deterministic(tmp_path):
    first = _files(data.ensure_tiny_synthetic_dataset(tmp_path / "a"))
    second = _files(data.ensure_tiny_synthetic_dataset(tmp_path / "b"))
    assert first == second
    other = _files(data.ensure_synthetic_dataset(tmp_path / "c", data.TINY_CONFIG, seed=2))
    assert {k: v for k, v in other.items() if k != "COMPLETE.json"} != {
        k: v for k, v in first.items() if k != "COMPLETE.json"
    }


def test_incomplete_cache_is_rebuilt(tmp_path):
    root = data.ensure_tiny_synthetic_dataset(tmp_path)
    reference = _files(root)
    # Interrupted generation: marker missing, a file lost, a stray partial file.
    os.remove(os.path.join(root, "COMPLETE.json"))
    victim = sorted(k for k in reference if k.endswith(".JPEG"))[0]
    os.remove(os.path.join(root, victim))
    with open(os.path.join(root, "train", "00_disc", "stray.JPEG"), "wb") as f:
        f.write(b"partial")
    assert data.ensure_tiny_synthetic_dataset(tmp_path) == root
    assert _files(root) == reference


def test_complete_cache_is_reused_and_other_params_rebuild(tmp_path):
    root = data.ensure_tiny_synthetic_dataset(tmp_path)
    marker = os.path.join(root, "COMPLETE.json")
    stamp = os.stat(marker).st_mtime_ns
    data.ensure_tiny_synthetic_dataset(tmp_path)
    assert os.stat(marker).st_mtime_ns == stamp
    data.ensure_synthetic_dataset(tmp_path, data.TINY_CONFIG, num_classes=3)
    assert sorted(os.listdir(os.path.join(root, "train"))) == list(synthetic.CLASS_NAMES[:3])


def test_default_cache_dir_follows_xdg(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert data.default_cache_dir() == os.path.join(str(tmp_path), "rectifier_zoo", "synthetic")
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert data.default_cache_dir().endswith(os.path.join(".cache", "rectifier_zoo", "synthetic"))
    # Non-default parameters go to their own folder next to it.
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    root = data.ensure_synthetic_dataset(None, data.TINY_CONFIG)
    assert os.path.basename(root).startswith("synthetic-")


@pytest.mark.parametrize(
    "kwargs, argument",
    [
        ({"num_classes": 11}, "num_classes"),
        ({"train_images": 2}, "train_images"),
        ({"min_side": 100, "max_side": 50}, "min_side"),
        ({"difficulty": 2.0}, "difficulty"),
    ],
)
def test_bad_parameters(kwargs, argument):
    with pytest.raises(ValueError, match=f"Received: .*{argument}="):
        data.SyntheticConfig(**kwargs)


def test_classes_differ_by_shape_not_colour():
    """Mean colour carries (almost) no class information; the shapes do."""
    config = data.SyntheticConfig()
    means = {label: [] for label in range(10)}
    for index in range(200):
        label = index % 10
        image = synthetic.render_image(np.random.default_rng([0, 0, index]), label, config)
        means[label].append(image.reshape(-1, 3).mean(axis=0))
    per_class = np.array([np.mean(v, axis=0) for v in means.values()])
    spread_between = per_class.std(axis=0).mean()
    spread_within = np.mean([np.std(v, axis=0).mean() for v in means.values()])
    assert spread_between < 0.5 * spread_within


@pytest.mark.slow
def test_default_set_generates_quickly(tmp_path):
    import time

    start = time.perf_counter()
    root = data.ensure_synthetic_dataset(tmp_path)
    assert time.perf_counter() - start < 60
    source = data.get_source("synthetic", root)
    assert source.num_classes == 10
    assert source.num_examples("train") == 2000 and source.num_examples("validation") == 500
