"""Weights that must fit: strict loading, fine-tuning with another class count, other input
channel counts, the entries' cards, `list_models(pretrained=...)` and the info section."""

import dataclasses
import functools
import hashlib
import json
import logging
import pathlib

import keras
import numpy as np
import pytest

import rectifier_zoo
from rectifier_zoo import ARCHITECTURES, info, paper, weights
from rectifier_zoo.preprocessing import channel_mean

MODEL = "model_tiny"
CLASSES = 6
SIZE = 40
TINY = ARCHITECTURES[MODEL]
_fetch = weights.fetch


def _tiny(**kwargs):
    kwargs.setdefault("input_shape", (SIZE, SIZE, 3))
    kwargs.setdefault("classes", CLASSES)
    return rectifier_zoo.model_tiny(**kwargs)


def _images(channels=3, seed=0):
    rng = np.random.default_rng(seed)
    return rng.uniform(0, 255, (2, SIZE, SIZE, channels)).astype("float32")


def _numpy(x):
    return keras.ops.convert_to_numpy(x)


def _sha256(path) -> str:
    return hashlib.sha256(pathlib.Path(path).read_bytes()).hexdigest()


def _randomize(model, seed):
    rng = np.random.default_rng(seed)
    model.set_weights([rng.normal(0, 0.1, w.shape).astype(w.dtype) for w in model.get_weights()])
    return model


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """Weights files of tiny models: PReLU, ReLU, channel-shared, another depth."""
    directory = tmp_path_factory.mktemp("zoo_weights")
    made = {}
    variants = {
        "prelu": {},
        "relu": {"activation": "relu"},
        "shared": {"channel_shared": True},
    }
    for key, kwargs in variants.items():
        model = _randomize(_tiny(seed=4, **kwargs), seed=len(made))
        path = directory / f"{key}.weights.h5"
        model.save_weights(path)
        made[key] = (model, str(path))
    deeper = dataclasses.replace(
        TINY, stages=(*TINY.stages[:2], dataclasses.replace(TINY.stages[2], num_layers=3))
    )
    model = rectifier_zoo.build_model(deeper, input_shape=(SIZE, SIZE, 3), classes=CLASSES)
    path = directory / "deeper.weights.h5"
    model.save_weights(path)
    made["deeper"] = (model, str(path))
    return made


@pytest.fixture(autouse=True)
def _clean_state(monkeypatch, tmp_path):
    monkeypatch.delenv(weights.ENV_MANIFEST, raising=False)
    saved = dict(weights._registered)
    weights._registered.clear()
    monkeypatch.setattr(
        weights, "fetch", functools.partial(_fetch, cache_dir=str(tmp_path / "cache"))
    )
    yield
    weights._registered.clear()
    weights._registered.update(saved)


def _assert_same(model, reference, names):
    for name in names:
        for got, want in zip(
            model.get_layer(name).get_weights(),
            reference.get_layer(name).get_weights(),
            strict=True,
        ):
            np.testing.assert_array_equal(got, want)


# --- strict loading -------------------------------------------------------------------------


def test_prelu_weights_into_relu_model_raise(files):
    _, path = files["prelu"]
    with pytest.raises(ValueError) as error:
        _tiny(activation="relu", weights=path)
    message = str(error.value)
    assert path in message and "holds PReLU slopes (prelu1, " in message
    assert "Build the model with activation='prelu'" in message


def test_relu_weights_into_prelu_model_raise(files):
    _, path = files["relu"]
    with pytest.raises(ValueError, match=r"holds no PReLU slopes.*activation='relu'"):
        _tiny(weights=path)


def test_channel_shared_must_match(files):
    with pytest.raises(ValueError, match=r"one PReLU slope per layer \(channel_shared=True\)"):
        _tiny(weights=files["shared"][1])
    with pytest.raises(ValueError, match=r"one PReLU slope per channel \(channel_shared=False\)"):
        _tiny(channel_shared=True, weights=files["prelu"][1])


def test_file_of_another_model_names_layers_not_values(files):
    _, path = files["deeper"]
    with pytest.raises(ValueError) as error:
        _tiny(weights=path)
    message = str(error.value)
    assert f"The weights file {path!r} does not fit the model 'model_tiny'" in message
    assert "layers only in the file: conv3_3, prelu3_3" in message
    assert "[[" not in message and "array(" not in message and len(message) < 1000


def test_file_of_a_wider_model_lists_shapes(files, tmp_path):
    wider = dataclasses.replace(
        TINY, stages=(dataclasses.replace(TINY.stages[0], filters=12), *TINY.stages[1:])
    )
    model = rectifier_zoo.build_model(wider, input_shape=(SIZE, SIZE, 3), classes=CLASSES)
    path = str(tmp_path / "wider.weights.h5")
    model.save_weights(path)
    with pytest.raises(ValueError) as error:
        _tiny(weights=path)
    message = str(error.value)
    assert (
        "conv1 kernel (7, 7, 3, 12), bias (12,) in the file, kernel (7, 7, 3, 8), bias (8,) in "
        "the model" in message
    )


def test_a_failed_load_changes_nothing(files):
    model = _tiny(seed=9)
    before = [w.copy() for w in model.get_weights()]
    with pytest.raises(ValueError):
        weights.load_weights(model, files["deeper"][1])
    for got, want in zip(model.get_weights(), before, strict=True):
        np.testing.assert_array_equal(got, want)


def test_truncated_file_in_manifest_is_one_clear_error(files, tmp_path):
    data = pathlib.Path(files["prelu"][1]).read_bytes()
    truncated = tmp_path / "truncated.weights.h5"
    truncated.write_bytes(data[: len(data) // 2])
    # Published with the sha256 of the truncated bytes: the download verifies, the file does not.
    rectifier_zoo.register_weights(MODEL, "imagenet", str(truncated), _sha256(truncated), CLASSES)
    with pytest.raises(ValueError) as error:
        _tiny(weights="imagenet")
    message = str(error.value)
    assert "(the 'imagenet' weights of model_tiny from " + str(truncated) in message
    assert "not a readable HDF5 file (truncated or damaged" in message


def test_not_a_weights_file(tmp_path):
    import h5py

    path = tmp_path / "other.weights.h5"
    with h5py.File(path, "w") as f:
        f["x"] = np.zeros(3)
    with pytest.raises(ValueError, match=r"Cannot read .*: it is not a Keras \.weights\.h5 file"):
        _tiny(weights=str(path))
    # A registered file skips that check; the loader makes the same one.
    rectifier_zoo.register_weights(MODEL, "imagenet", str(path), _sha256(path), CLASSES)
    with pytest.raises(ValueError, match=r"cannot be read: it is not a Keras \.weights\.h5 file"):
        _tiny(weights="imagenet")


@pytest.mark.parametrize(
    ("field", "value", "match"),
    [
        ("url", None, r"`url` must be a non-empty string\. Received: url=None"),
        ("classes", "three", r"`classes` must be a positive integer\. Received: classes='three'"),
        ("classes", True, r"`classes` must be a positive integer"),
        ("include_top", "yes", r"`include_top` must be true or false"),
        ("model", 3, r"`model` must be a non-empty string"),
        ("tag", "", r"`tag` must be a non-empty string"),
        ("notes", None, r"`notes` must be a string"),
        ("dataset", 5, r"`dataset` must be a non-empty string or null"),
        ("input_size", 0, r"`input_size` must be a positive integer"),
        ("crop_size", 300, r"`crop_size` must be at most input_size=256"),
        ("mean", [1, 2], r"`mean` must be 3 numbers"),
        ("input_std", 0, r"`input_std` must be a positive number"),
        ("results", [], r"`results` must be"),
        ("results", {"ten_crop": {"top1_error": 1.0}}, r"Unknown results protocol"),
        ("results", {"center": {"top1": 30.0}}, r"results\['center'\]` must be a non-empty"),
        ("results", {"dense": {"top5_error": 120}}, r"must be a percentage in \[0, 100\]"),
    ],
)
@pytest.mark.parametrize("origin", ["manifest", "register_weights"])
def test_entry_fields_are_type_checked(tmp_path, monkeypatch, origin, field, value, match):
    raw = {"model": MODEL, "tag": "imagenet", "url": "x.weights.h5", "sha256": "a" * 64}
    raw[field] = value
    if origin == "manifest":
        path = tmp_path / "manifest.json"
        path.write_text(json.dumps({"weights": [raw]}), encoding="utf-8")
        monkeypatch.setenv(weights.ENV_MANIFEST, str(path))
        with pytest.raises(ValueError, match=f"Bad weights entry in {path}: .*{match}"):
            _tiny(weights="imagenet")
    else:
        with pytest.raises(ValueError, match=f"Bad weights entry in register_weights: .*{match}"):
            rectifier_zoo.register_weights(**raw)
        assert weights._registered == {}


def test_manifest_entry_must_be_an_object(tmp_path, monkeypatch):
    path = tmp_path / "manifest.json"
    path.write_text(json.dumps({"weights": ["model_a"]}), encoding="utf-8")
    monkeypatch.setenv(weights.ENV_MANIFEST, str(path))
    with pytest.raises(ValueError, match="each entry must be a JSON object"):
        weights.manifest()


def test_card_with_another_input_contract_is_refused(files):
    _, path = files["prelu"]
    rectifier_zoo.register_weights(
        MODEL, "imagenet", path, _sha256(path), CLASSES, mean=(0.5, 0.5, 0.5)
    )
    with pytest.raises(ValueError, match=r"trained on inputs minus mean \[0\.5, 0\.5, 0\.5\]"):
        _tiny(weights="imagenet")


def test_classifier_activation_with_pretrained_weights(files):
    _, path = files["prelu"]
    with pytest.raises(ValueError, match="Only `None` and `softmax` activations are allowed"):
        _tiny(weights=path, classifier_activation="sigmoid")
    logits = _tiny(weights=path, classifier_activation=None)
    assert logits.get_layer("predictions").activation is keras.activations.linear
    _tiny(classifier_activation="sigmoid")  # no weights: any activation
    _tiny(weights=path, include_top=False, classifier_activation="sigmoid")


# --- fine-tuning with another class count ----------------------------------------------------


@pytest.mark.parametrize("fc_initializer", [None, "msra_fan_in"])
def test_other_classes_keep_all_but_a_freshly_initialized_classifier(files, caplog, fc_initializer):
    source, path = files["prelu"]
    with caplog.at_level(logging.WARNING, logger="rectifier_zoo"):
        model = _tiny(classes=3, weights=path, fc_initializer=fc_initializer, seed=11)
    _assert_same(model, source, ["conv1", "prelu1", "conv3_2", "fc1", "prelu_fc2", "fc2"])
    # The classifier is what the builder draws for it: the same seeded model without weights.
    fresh = _tiny(classes=3, fc_initializer=fc_initializer, seed=11)
    _assert_same(model, fresh, ["fc3"])
    if fc_initializer is None:
        kernel = model.get_layer("fc3").get_weights()[0]
        assert kernel.std() == pytest.approx(paper.FC_STDS[2], rel=0.3)
    [record] = [r for r in caplog.records if r.name == "rectifier_zoo"]
    assert record.levelno == logging.WARNING
    assert path in record.getMessage()
    assert "has a 6-class classifier, the model 3 classes" in record.getMessage()


def test_load_weights_into_a_built_model_for_the_trainer(files):
    source, path = files["prelu"]
    model = _tiny(classes=2, seed=0)
    result = rectifier_zoo.load_weights(model, path)
    assert result.path == path
    assert result.reinitialized == ("fc3",) and result.adapted == () and result.skipped == ()
    assert "fc2" in result.loaded and "prelu1" in result.loaded
    _assert_same(model, source, ["conv2_2", "fc2"])


def test_load_weights_by_tag_under_another_model_name(files):
    source, path = files["prelu"]
    rectifier_zoo.register_weights(MODEL, "imagenet", path, _sha256(path), CLASSES)
    model = _tiny(name="my_net")
    with pytest.raises(ValueError, match="No 'imagenet' weights are published for my_net"):
        rectifier_zoo.load_weights(model, "imagenet")
    rectifier_zoo.load_weights(model, "imagenet", architecture=MODEL)
    np.testing.assert_array_equal(_numpy(model(_images())), _numpy(source(_images())))


def test_exact_file_gives_identical_outputs(files):
    source, path = files["prelu"]
    model = _tiny(weights=path)
    np.testing.assert_array_equal(_numpy(model(_images())), _numpy(source(_images())))


# --- other input channel counts ---------------------------------------------------------------


def test_adapt_input_kernel():
    kernel = np.random.default_rng(0).normal(size=(2, 2, 3, 4)).astype("float32")
    np.testing.assert_allclose(weights.adapt_input_kernel(kernel, 1)[:, :, 0], kernel.sum(2))
    four = weights.adapt_input_kernel(kernel, 4)
    assert four.shape == (2, 2, 4, 4) and four.dtype == np.float32
    np.testing.assert_allclose(four, np.concatenate([kernel, kernel[:, :, :1]], 2) * 0.75)
    np.testing.assert_array_equal(weights.adapt_input_kernel(kernel, 3), kernel)
    with pytest.raises(ValueError, match=r"needs an RGB kernel"):
        weights.adapt_input_kernel(kernel[:, :, :1], 3)


def test_channel_mean_follows_the_adaptation():
    r, g, b = paper.IMAGENET_MEAN_RGB
    assert channel_mean(3) == (r, g, b)
    assert channel_mean(1) == pytest.approx(((r + g + b) / 3,))
    assert channel_mean(4) == (r, g, b, r)


def test_grayscale_model_from_rgb_weights(files, caplog):
    source, path = files["prelu"]
    with caplog.at_level(logging.INFO, logger="rectifier_zoo"):
        gray = _tiny(input_shape=(SIZE, SIZE, 1), weights=path)
    assert "conv1 adapted from 3 to 1 input channels (RGB kernels summed)" in caplog.text
    assert gray.get_layer("conv1").kernel.shape == (7, 7, 1, 8)
    image = _images(channels=1)
    # Without the mean subtraction, the gray image repeated in R, G and B through the RGB
    # weights gives exactly the adapted model's scores.
    rgb_raw = _tiny(include_preprocessing=False)
    rgb_raw.set_weights(source.get_weights())
    gray_raw = _tiny(input_shape=(SIZE, SIZE, 1), include_preprocessing=False, weights=path)
    np.testing.assert_allclose(
        _numpy(gray_raw(image)),
        _numpy(rgb_raw(np.repeat(image, 3, axis=-1))),
        rtol=1e-4,
        atol=1e-6,
    )
    # With it, the gray model subtracts the mean of the RGB means from its one channel.
    np.testing.assert_allclose(
        _numpy(gray(image)),
        _numpy(rgb_raw(np.repeat(image - channel_mean(1)[0], 3, axis=-1))),
        rtol=1e-4,
        atol=1e-6,
    )


def test_six_channel_model_from_rgb_weights_is_exact_on_repeated_rgb(files):
    source, path = files["prelu"]
    six = _tiny(input_shape=(SIZE, SIZE, 6), weights=path)
    image = _images()
    np.testing.assert_allclose(
        _numpy(six(np.concatenate([image, image], axis=-1))),
        _numpy(source(image)),
        rtol=1e-4,
        atol=1e-6,
    )
    four = _tiny(input_shape=(None, None, 4), weights=path)
    assert _numpy(four(_images(channels=4))).shape == (2, CLASSES)


# --- listing, cards, info -------------------------------------------------------------------


def test_list_models_pattern_and_pretrained(files):
    assert rectifier_zoo.list_models("model_[ab]") == ["model_a", "model_b"]
    assert rectifier_zoo.list_models("*small*") == ["model_small"]
    assert rectifier_zoo.list_models("resnet*") == []
    assert rectifier_zoo.list_models(pretrained=True) == []
    _, path = files["prelu"]
    rectifier_zoo.register_weights(MODEL, "imagenet", path, _sha256(path), CLASSES)
    assert rectifier_zoo.list_models(pretrained=True) == [MODEL]
    assert rectifier_zoo.list_models("model_a*", pretrained=True) == []
    with pytest.raises(ValueError, match="`pattern` must be a string"):
        rectifier_zoo.list_models(3)


def test_card_is_carried_and_shown(files, capsys):
    _, path = files["prelu"]
    entry = rectifier_zoo.register_weights(
        MODEL,
        "imagenet",
        path,
        _sha256(path),
        CLASSES,
        dataset="imagenet2012",
        recipe="paper_model_a",
        license="CC-BY-4.0",
        results={"ten_view": {"top1_error": 24.25, "top5_error": 7.5}},
    )
    card = entry.card
    assert card["input"] == {
        "size": paper.TEST_RESIZE,
        "crop": paper.CROP_SIZE,
        "mean": list(paper.IMAGENET_MEAN_RGB),
        "std": 1.0,
    }
    assert card["sha256"] == _sha256(path) and card["license"] == "CC-BY-4.0"
    info.main(["--weights"])
    shown = capsys.readouterr().out
    assert "| model_tiny | imagenet | 6 | yes | imagenet2012 | paper_model_a |" in shown
    assert "ten_view: top1_error 24.25%, top5_error 7.5%" in shown
    info.main(["--weights", "--json"])
    assert json.loads(capsys.readouterr().out) == [json.loads(json.dumps(card))]


def test_info_says_when_nothing_is_published(capsys):
    info.main(["--weights"])
    shown = capsys.readouterr().out
    assert "## Published weights" in shown and "None are published yet" in shown


def test_no_entry_message_names_real_recipes():
    from rectifier_zoo.train import recipes

    assert set(weights.RECIPES.values()) <= set(recipes.RECIPES)
    for model, recipe in weights.RECIPES.items():
        assert recipes.get_recipe(recipe).network.model == model
    message = weights._no_entry_message("model_a", "imagenet")
    assert (
        "python training/train.py --recipe=paper_model_a --dataset=imagenet2012 --data_dir=..."
        in message
    )
    assert "rectifier_zoo.register_weights('model_a', 'imagenet'" in message


def test_result_protocols_are_the_evaluators():
    from rectifier_zoo.serving import protocols

    assert weights.RESULT_PROTOCOLS == protocols.PROTOCOLS


def test_files_without_layer_names_load_by_keras_order(files, tmp_path):
    """Keras versions before 3.10-ish store no layer names: groups are matched in build order."""
    import h5py

    source, path = files["prelu"]
    stripped = tmp_path / "unnamed.weights.h5"
    stripped.write_bytes(pathlib.Path(path).read_bytes())
    with h5py.File(stripped, "r+") as f:
        for group in f["layers"].values():
            group["vars"].attrs.pop("name", None)
    model = _tiny(weights=str(stripped))
    np.testing.assert_array_equal(_numpy(model(_images())), _numpy(source(_images())))
    trunk = _tiny(include_top=False, weights=str(stripped))
    _assert_same(trunk, source, ["conv1", "prelu3_2"])
    deeper = tmp_path / "unnamed_deeper.weights.h5"
    deeper.write_bytes(pathlib.Path(files["deeper"][1]).read_bytes())
    with h5py.File(deeper, "r+") as f:
        for group in f["layers"].values():
            group["vars"].attrs.pop("name", None)
    with pytest.raises(ValueError, match="does not fit the model 'model_tiny'"):
        _tiny(weights=str(deeper))


def test_input_tensor_sets_the_channels(files):
    inputs = keras.Input((SIZE, SIZE, 1))
    model = rectifier_zoo.model_tiny(
        input_tensor=inputs, classes=CLASSES, weights=files["prelu"][1]
    )
    assert model.get_layer("conv1").kernel.shape == (7, 7, 1, 8)
