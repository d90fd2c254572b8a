"""Pretrained-weights plumbing: the manifest, `weights=` resolution, download and verification.

Every download goes to `tmp_path`. `keras.utils.get_file(cache_dir=None)` takes its root from
Keras's private `keras.src.backend.config.keras_home()`, fixed from `$KERAS_HOME` when Keras is
imported (Keras 3 has no public `keras.config.keras_home` to patch). So the autouse `cache_dir`
fixture swaps `rectifier_zoo.weights.fetch` for a `functools.partial` with `cache_dir` bound:
`resolve` looks `fetch` up at call time, so every builder download lands in `tmp_path` without
touching Keras internals. The one test of the default (`cache_dir=None`) root runs in a
subprocess with `KERAS_HOME` set before Keras is imported.
"""

import functools
import hashlib
import http.server
import json
import os
import pathlib
import shutil
import socket
import subprocess
import sys
import textwrap
import threading

import numpy as np
import pytest

import rectifier_zoo
from rectifier_zoo import weights

MODEL = "model_tiny"
CLASSES = 10
INPUT_SHAPE = (32, 32, 3)
_fetch = weights.fetch


def _sha256(path) -> str:
    return hashlib.sha256(pathlib.Path(path).read_bytes()).hexdigest()


def _tiny(**kwargs):
    kwargs.setdefault("input_shape", INPUT_SHAPE)
    kwargs.setdefault("classes", CLASSES)
    return rectifier_zoo.model_tiny(**kwargs)


def _predict(model, images):
    return model.predict(images, verbose=0)


def _cached_files(cache_dir) -> list[str]:
    directory = os.path.join(cache_dir, "models", weights.CACHE_SUBDIR)
    return sorted(os.listdir(directory)) if os.path.isdir(directory) else []


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    """A trained-looking tiny model, its full and trunk-only weights files, and its outputs."""
    directory = tmp_path_factory.mktemp("source")
    model = _tiny(seed=7)
    # Non-default values everywhere, so that a layer left at its initial value shows up.
    rng = np.random.default_rng(0)
    model.set_weights([rng.normal(0.0, 0.1, w.shape).astype(w.dtype) for w in model.get_weights()])
    full = directory / "tiny_full.weights.h5"
    model.save_weights(full)
    trunk_model = _tiny(include_top=False, seed=3)
    trunk = directory / "tiny_trunk.weights.h5"
    trunk_model.save_weights(trunk)
    images = rng.uniform(0.0, 255.0, (2, *INPUT_SHAPE)).astype("float32")
    return {
        "dir": directory,
        "model": model,
        "full": full,
        "full_sha256": _sha256(full),
        "trunk": trunk,
        "trunk_sha256": _sha256(trunk),
        "trunk_model": trunk_model,
        "images": images,
        "expected": _predict(model, images),
    }


@pytest.fixture(autouse=True)
def _clean_state(monkeypatch):
    """No registrations or manifest variable leak into or out of a test."""
    monkeypatch.delenv(weights.ENV_MANIFEST, raising=False)
    saved = dict(weights._registered)
    weights._registered.clear()
    yield
    weights._registered.clear()
    weights._registered.update(saved)


@pytest.fixture(autouse=True)
def cache_dir(tmp_path, monkeypatch) -> str:
    """The Keras cache of this test (see the module docstring for why a partial)."""
    directory = str(tmp_path / "keras_cache")
    monkeypatch.setattr(weights, "fetch", functools.partial(_fetch, cache_dir=directory))
    return directory


@pytest.fixture
def server(source, tmp_path):
    """A local HTTP server on 127.0.0.1 serving `source` files and a few broken ones.

    `/truncated/<name>` sends the full Content-Length but only half of the bytes.
    """
    root = tmp_path / "www"
    root.mkdir()
    for key in ("full", "trunk"):
        shutil.copy(source[key], root / source[key].name)

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=str(root), **kwargs)

        def log_message(self, *args):
            pass

        def do_GET(self):
            if not self.path.startswith("/truncated/"):
                return super().do_GET()
            data = (root / self.path.removeprefix("/truncated/")).read_bytes()
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data[: len(data) // 2])

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield root, f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()


@pytest.fixture
def closed_port_url() -> str:
    """An http URL on 127.0.0.1 where nothing listens (the connection is refused at once)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/model_tiny.weights.h5"


def _write_manifest(path, entries) -> str:
    pathlib.Path(path).write_text(json.dumps({"weights": entries}), encoding="utf-8")
    return str(path)


def _entry_dict(url, sha256, **kwargs) -> dict:
    return {"model": MODEL, "tag": "imagenet", "url": url, "sha256": sha256, **kwargs}


# --- fetch: download, cache, verification -------------------------------------------------


@pytest.mark.parametrize("kind", ["http", "file_url", "path"])
def test_fetch_downloads_into_cache(source, server, cache_dir, kind):
    root, base_url = server
    url = {
        "http": f"{base_url}/{source['full'].name}",
        "file_url": source["full"].as_uri(),
        "path": str(source["full"]),
    }[kind]
    entry = rectifier_zoo.register_weights(MODEL, "imagenet", url, source["full_sha256"], CLASSES)
    path = _fetch(entry, cache_dir=cache_dir)
    expected_name = f"{MODEL}_imagenet_{source['full_sha256'][:12]}.weights.h5"
    assert path == os.path.join(cache_dir, "models", weights.CACHE_SUBDIR, expected_name)
    assert pathlib.Path(path).read_bytes() == source["full"].read_bytes()


def test_fetch_seeded_cache_works_offline(source, cache_dir, closed_port_url):
    entry = rectifier_zoo.register_weights(
        MODEL, "imagenet", closed_port_url, source["full_sha256"], CLASSES
    )
    seeded = pathlib.Path(
        cache_dir,
        "models",
        weights.CACHE_SUBDIR,
        f"{MODEL}_imagenet_{source['full_sha256'][:12]}.weights.h5",
    )
    seeded.parent.mkdir(parents=True)
    shutil.copy(source["full"], seeded)
    assert _fetch(entry, cache_dir=cache_dir) == str(seeded)
    model = _tiny(weights="imagenet")
    np.testing.assert_array_equal(_predict(model, source["images"]), source["expected"])


def test_fetch_unreachable_url_without_cache_fails(source, cache_dir, closed_port_url):
    entry = rectifier_zoo.register_weights(MODEL, "imagenet", closed_port_url, "0" * 64)
    with pytest.raises(ValueError, match=r"Cannot download the weights for \('model_tiny'"):
        _fetch(entry, cache_dir=cache_dir)
    assert _cached_files(cache_dir) == []


def test_fetch_hash_mismatch_leaves_no_file(source, server, cache_dir):
    root, base_url = server
    wrong_sha256 = hashlib.sha256(b"some other file").hexdigest()
    entry = rectifier_zoo.register_weights(
        MODEL, "imagenet", f"{base_url}/{source['full'].name}", wrong_sha256
    )
    with pytest.raises(ValueError, match="failed verification .*removed from the cache"):
        _fetch(entry, cache_dir=cache_dir)
    assert _cached_files(cache_dir) == []


@pytest.mark.parametrize("how", ["short_file", "short_response"])
def test_fetch_truncated_download_is_rejected(source, server, cache_dir, how):
    root, base_url = server
    data = source["full"].read_bytes()
    if how == "short_file":
        # The server is honest about the length; only the sha256 catches it.
        (root / "short.weights.h5").write_bytes(data[: len(data) // 2])
        url, message = f"{base_url}/short.weights.h5", "failed verification"
    else:
        # The connection ends before Content-Length bytes: urllib's ContentTooShortError.
        url, message = f"{base_url}/truncated/{source['full'].name}", "Cannot download"
    entry = rectifier_zoo.register_weights(MODEL, "imagenet", url, source["full_sha256"], CLASSES)
    with pytest.raises(ValueError, match=message):
        _fetch(entry, cache_dir=cache_dir)
    assert _cached_files(cache_dir) == []


def test_fetch_default_cache_is_keras_home(source, tmp_path):
    """`cache_dir=None` uses `$KERAS_HOME`, and a bad download is removed from there too."""
    keras_home = tmp_path / "keras_home"
    script = textwrap.dedent(
        f"""
        import hashlib, os
        from rectifier_zoo import weights
        good = weights.WeightsEntry("model_tiny", "good", {str(source["full"])!r},
                                    {source["full_sha256"]!r})
        path = weights.fetch(good)
        assert path == os.path.join({str(keras_home)!r}, "models", "rectifier_zoo",
                                    os.path.basename(path)), path
        bad = weights.WeightsEntry("model_tiny", "bad", {str(source["full"])!r},
                                   hashlib.sha256(b"x").hexdigest())
        try:
            weights.fetch(bad)
        except ValueError as error:
            assert "failed verification" in str(error), error
        else:
            raise AssertionError("no ValueError")
        print(sorted(os.listdir(os.path.dirname(path))))
        """
    )
    env = {**os.environ, "KERAS_HOME": str(keras_home), "TF_CPP_MIN_LOG_LEVEL": "3"}
    result = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr[-3000:]
    expected = [f"model_tiny_good_{source['full_sha256'][:12]}.weights.h5"]
    assert result.stdout.strip().splitlines()[-1] == repr(expected)


# --- the manifest -------------------------------------------------------------------------


def test_packaged_manifest_parses():
    assert isinstance(weights.manifest(), dict)


def test_manifest_precedence_env_then_register(source, tmp_path, monkeypatch):
    first = _write_manifest(
        tmp_path / "first.json", [_entry_dict("first.weights.h5", "a" * 64, notes="first")]
    )
    second = _write_manifest(
        tmp_path / "second.json", [_entry_dict("second.weights.h5", "b" * 64, notes="second")]
    )
    monkeypatch.setenv(weights.ENV_MANIFEST, os.pathsep.join([first, second]))
    entry = weights.manifest()[(MODEL, "imagenet")]
    assert entry.notes == "second"
    # A relative url is relative to the manifest, not to the working directory.
    assert entry.url == str(tmp_path / "second.weights.h5")
    rectifier_zoo.register_weights(MODEL, "imagenet", "/x.weights.h5", "c" * 64, notes="reg")
    assert weights.manifest()[(MODEL, "imagenet")].notes == "reg"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "Cannot read the weights manifest"),
        (None, "Cannot read the weights manifest"),
        ('{"weights": {}}', r'must be a JSON object \{"weights": \[...\]\}'),
        ('[{"model": "model_tiny"}]', r'must be a JSON object \{"weights": \[...\]\}'),
        ('{"weights": [{"model": "model_tiny", "tag": "imagenet"}]}', "Bad weights entry in"),
        ('{"weights": [{"modle": "model_tiny"}]}', "unexpected keyword argument 'modle'"),
    ],
    ids=["bad_json", "missing_file", "weights_not_list", "not_object", "missing_key", "typo"],
)
def test_bad_manifest_raises(tmp_path, monkeypatch, content, message):
    path = tmp_path / "manifest.json"
    if content is not None:
        path.write_text(content, encoding="utf-8")
    monkeypatch.setenv(weights.ENV_MANIFEST, str(path))
    with pytest.raises(ValueError, match=message):
        _tiny(weights="imagenet")


@pytest.mark.parametrize("sha256", ["A" * 64, "a" * 63, "g" * 64, 123])
def test_bad_sha256_in_manifest_raises(tmp_path, monkeypatch, sha256):
    path = _write_manifest(tmp_path / "manifest.json", [_entry_dict("x.weights.h5", sha256)])
    monkeypatch.setenv(weights.ENV_MANIFEST, path)
    with pytest.raises(ValueError, match="`sha256` must be 64 lowercase hex digits"):
        weights.manifest()


def test_bad_sha256_in_register_weights_raises():
    with pytest.raises(ValueError, match="Bad weights entry in register_weights: `sha256` must"):
        rectifier_zoo.register_weights(MODEL, "imagenet", "x.weights.h5", "not a hash")
    assert weights._registered == {}


# --- weights="imagenet" (or another tag) through the builder ------------------------------


def test_imagenet_without_entry_says_how_to_get_weights():
    with pytest.raises(ValueError) as info:
        _tiny(weights="imagenet")
    message = str(info.value)
    assert "No 'imagenet' weights are published for model_tiny" in message
    assert (
        "python training/train.py --recipe=paper_model_a --model=model_tiny "
        "--dataset=imagenet2012 --data_dir=..." in message
    )
    assert "model.save_weights('model_tiny.weights.h5')" in message
    assert "rectifier_zoo.register_weights('model_tiny', 'imagenet'" in message
    assert weights.ENV_MANIFEST in message


def test_unknown_tag_is_reported_with_its_name():
    with pytest.raises(ValueError, match="No 'places365' weights are published for model_tiny"):
        _tiny(weights="places365")


@pytest.mark.parametrize("kind", ["http", "file_url", "relative_path"])
def test_imagenet_from_env_manifest_end_to_end(source, server, tmp_path, monkeypatch, kind):
    root, base_url = server
    if kind == "relative_path":
        shutil.copy(source["full"], tmp_path / "local.weights.h5")
    url = {
        "http": f"{base_url}/{source['full'].name}",
        "file_url": source["full"].as_uri(),
        "relative_path": "local.weights.h5",
    }[kind]
    path = _write_manifest(
        tmp_path / "manifest.json", [_entry_dict(url, source["full_sha256"], classes=CLASSES)]
    )
    monkeypatch.setenv(weights.ENV_MANIFEST, path)
    model = _tiny(weights="imagenet")
    np.testing.assert_array_equal(_predict(model, source["images"]), source["expected"])


def test_imagenet_from_register_weights_end_to_end(source, server, cache_dir):
    root, base_url = server
    rectifier_zoo.register_weights(
        MODEL, "imagenet", f"{base_url}/{source['full'].name}", source["full_sha256"], CLASSES
    )
    model = _tiny(weights="imagenet")
    np.testing.assert_array_equal(_predict(model, source["images"]), source["expected"])
    assert len(_cached_files(cache_dir)) == 1


def test_imagenet_corrupted_download_is_rejected(source, server, cache_dir):
    root, base_url = server
    data = bytearray(source["full"].read_bytes())
    data[len(data) // 2] ^= 0xFF
    (root / "corrupt.weights.h5").write_bytes(bytes(data))
    rectifier_zoo.register_weights(
        MODEL, "imagenet", f"{base_url}/corrupt.weights.h5", source["full_sha256"], CLASSES
    )
    with pytest.raises(ValueError, match=r"\('model_tiny', 'imagenet'\) .* failed verification"):
        _tiny(weights="imagenet")
    assert _cached_files(cache_dir) == []


def test_imagenet_other_classes_loads_all_but_the_classifier(source, caplog):
    rectifier_zoo.register_weights(
        MODEL, "imagenet", str(source["full"]), source["full_sha256"], CLASSES
    )
    with caplog.at_level("WARNING", logger="rectifier_zoo"):
        model = _tiny(weights="imagenet", classes=4)
    assert model.output_shape == (None, 4)
    _assert_layers_equal(model, source["model"], ["conv1", "prelu3_2", "fc1", "prelu_fc2"])
    assert "has a 10-class classifier, the model 4 classes" in caplog.text


def test_imagenet_default_entry_classes_is_1000(source):
    entry = rectifier_zoo.register_weights(
        MODEL, "imagenet", str(source["full"]), source["full_sha256"]
    )
    assert entry.classes == 1000


def test_imagenet_include_top_false_loads_trunk(source, server):
    root, base_url = server
    rectifier_zoo.register_weights(
        MODEL, "imagenet", f"{base_url}/{source['full'].name}", source["full_sha256"], CLASSES
    )
    # classes is ignored without the top, as in keras.applications.
    model = _tiny(include_top=False, weights="imagenet", classes=1000, pooling="avg")
    _assert_trunk_equal(model, source["model"])


def test_imagenet_trunk_only_entry_needs_include_top_false(source):
    rectifier_zoo.register_weights(
        MODEL,
        "imagenet",
        str(source["trunk"]),
        source["trunk_sha256"],
        classes=CLASSES,
        include_top=False,
    )
    with pytest.raises(
        ValueError, match="weights of model_tiny have no top; use include_top=False"
    ):
        _tiny(weights="imagenet")
    model = _tiny(include_top=False, weights="imagenet")
    _assert_trunk_equal(model, source["trunk_model"])


def _assert_layers_equal(model, reference, names):
    for name in names:
        for got, want in zip(
            model.get_layer(name).get_weights(),
            reference.get_layer(name).get_weights(),
            strict=True,
        ):
            np.testing.assert_array_equal(got, want)


def _assert_trunk_equal(model, reference):
    trunk_layers = [layer for layer in model.layers if layer.weights]
    assert {layer.name for layer in trunk_layers} == {
        "conv1",
        "prelu1",
        "conv2_1",
        "prelu2_1",
        "conv2_2",
        "prelu2_2",
        "conv3_1",
        "prelu3_1",
        "conv3_2",
        "prelu3_2",
    }
    for layer in trunk_layers:
        for got, want in zip(
            layer.get_weights(), reference.get_layer(layer.name).get_weights(), strict=True
        ):
            np.testing.assert_array_equal(got, want)


# --- weights=<path to a .weights.h5 file> -------------------------------------------------


def test_path_include_top_true_gives_identical_outputs(source):
    model = _tiny(weights=str(source["full"]))
    np.testing.assert_array_equal(_predict(model, source["images"]), source["expected"])


def test_path_include_top_false_copies_trunk_of_full_file(source):
    model = _tiny(include_top=False, weights=str(source["full"]))
    _assert_trunk_equal(model, source["model"])


def test_path_trunk_file_into_trunk_model(source):
    model = _tiny(include_top=False, weights=str(source["trunk"]), pooling="max")
    _assert_trunk_equal(model, source["trunk_model"])


def test_path_classes_mismatch_keeps_all_but_the_classifier(source):
    model = _tiny(weights=str(source["full"]), classes=5)
    _assert_layers_equal(model, source["model"], ["conv2_1", "fc1", "prelu_fc1", "fc2"])
    assert model.get_layer("fc3").get_weights()[0].shape == (32, 5)


def test_path_trunk_file_with_include_top_raises(source):
    with pytest.raises(ValueError, match=r"has no top \(it was saved with include_top=False\)"):
        _tiny(weights=str(source["trunk"]))


def test_path_missing_file_raises(tmp_path):
    missing = str(tmp_path / "nope.weights.h5")
    with pytest.raises(ValueError, match="The weights file does not exist. Received: weights="):
        _tiny(weights=missing)


def test_path_unreadable_file_raises(tmp_path):
    garbage = tmp_path / "garbage.weights.h5"
    garbage.write_bytes(b"this is not HDF5")
    with pytest.raises(ValueError, match="Cannot read the weights file"):
        _tiny(weights=str(garbage))


@pytest.mark.parametrize("value", [1, ["imagenet"], True])
def test_non_string_weights_raises(value):
    with pytest.raises(
        ValueError, match="`weights` must be None, 'imagenet' .* Received: weights="
    ):
        _tiny(weights=value)


def test_inspect_file(source):
    assert weights.inspect_file(str(source["full"])) == (True, CLASSES)
    assert weights.inspect_file(str(source["trunk"])) == (False, None)
