"""Fine-tuning in the trainer: `init_weights` (a weights file of another class count) and
`freeze` (the trunk), their flags, resume and the errors that come before the run folder."""

import os
import subprocess
import sys

import numpy as np
import pytest
import train_support
from absl import flags

from rectifier_zoo.train import cli
from rectifier_zoo.train.config import Config

REPO, TRAIN_PY = train_support.REPO, train_support.TRAIN_PY
CLASSES = ["ant", "bee", "cat"]  # another class count than the tiny synthetic set's 4


def _config(data_dir, model_dir, **overrides):
    return train_support.tiny_config(
        data_dir, model_dir=str(model_dir), export_dir=f"{model_dir}_export", **overrides
    )


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    """A trained tiny run (4 classes), its weights file, and a folder set of 3 classes."""
    from rectifier_zoo import data
    from rectifier_zoo.data import testing
    from rectifier_zoo.train import loop, run_dir

    root = tmp_path_factory.mktemp("finetune")
    tiny = data.ensure_tiny_synthetic_dataset(str(root / "tiny"))
    other = testing.write_image_folder(root / "other", CLASSES, {"train": 4, "val": 2})
    loop.train(_config(tiny, root / "source_run", train_steps=3))
    model, _, _ = run_dir.model_from_checkpoint(str(root / "source_run"))
    path = str(root / "tiny.weights.h5")
    model.save_weights(path)
    weights = {layer.name: layer.get_weights() for layer in model.layers if layer.weights}
    return {"root": root, "tiny": tiny, "other": str(other), "path": path, "weights": weights}


def _trunk_and_top(model):
    import rectifier_zoo

    trunk = {layer.name for layer in rectifier_zoo.trunk_layers(model) if layer.weights}
    top = {layer.name for layer in model.layers if layer.weights} - trunk
    return trunk, top


def _same(a, b) -> bool:
    return len(a) == len(b) and all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))


@pytest.mark.tf_only
@pytest.mark.parametrize("freeze", ["trunk", "none"])
def test_fine_tuning_starts_from_the_file_with_a_new_classifier(source, tmp_path, freeze):
    import tensorflow as tf

    from rectifier_zoo.train import run_dir
    from rectifier_zoo.train import state as state_lib

    config = _config(
        source["other"], tmp_path / "run", init_weights=source["path"], freeze=freeze, seed=1
    )
    # Step 0: every layer as in the file but the classifier, drawn anew for 3 classes.
    state, fine_tuning = state_lib.TrainState.create(
        config, len(CLASSES), tf.distribute.get_strategy()
    )
    model = state.model
    trunk, top = _trunk_and_top(model)
    kept = trunk | (top - {"fc3"})
    assert fine_tuning.loaded.reinitialized == ("fc3",)
    assert model.get_layer("fc3").kernel.shape[-1] == len(CLASSES)
    assert set(fine_tuning.loaded.loaded) == kept
    for name in kept:
        assert _same(model.get_layer(name).get_weights(), source["weights"][name]), name
    # The optimizer sees the trainable variables only: with a frozen trunk, the top's.
    assert len(state.optimizer.momentums) == len(model.trainable_variables)
    training = {layer.name for layer in model.layers if layer.trainable_weights}
    if freeze == "trunk":
        assert set(fine_tuning.frozen) == trunk and training == top
    else:
        assert fine_tuning.frozen == () and top < training and "conv1" in training

    from rectifier_zoo.train import loop

    summary = loop.train(config.override(train_steps=3))
    trained, stored, _ = run_dir.model_from_checkpoint(str(tmp_path / "run"))
    assert stored["init_weights"] == source["path"] and stored["freeze"] == freeze
    changed = {
        name
        for name in trunk | top
        if not _same(trained.get_layer(name).get_weights(), source["weights"].get(name, []))
    }
    # freeze=trunk: the top trained, the trunk kept the file's values; none: everything trained.
    assert changed == (top if freeze == "trunk" else training)
    # The export is the whole model, with the run's 3 classes.
    assert os.path.isdir(summary["export_path"]) and summary["train_steps"] == 3


@pytest.mark.tf_only
def test_one_line_on_the_console_says_what_was_loaded_and_frozen(source, tmp_path, capsys):
    from rectifier_zoo.train import loop

    config = _config(source["other"], tmp_path / "run", init_weights=source["path"], freeze="trunk")
    loop.train(config.override(train_steps=1))
    lines = [line for line in capsys.readouterr().out.splitlines() if "Initial weights" in line]
    assert len(lines) == 1
    assert "loaded" in lines[0] and "fc3 re-initialized" in lines[0]
    assert "trunk frozen" in lines[0]


@pytest.mark.tf_only
def test_a_resume_keeps_the_checkpoint_and_fixes_freeze(source, tmp_path, capsys):
    import shutil

    from rectifier_zoo.train import loop

    path = str(tmp_path / "copy.weights.h5")
    shutil.copy(source["path"], path)
    config = _config(source["other"], tmp_path / "run", init_weights=path, freeze="trunk")
    loop.train(config.override(train_steps=1))
    with pytest.raises(ValueError, match=r"freeze \(stored 'trunk', received 'none'\)"):
        loop.train(config.override(train_steps=2, freeze="none"))
    with pytest.raises(ValueError, match=r"init_weights \(stored"):
        loop.train(config.override(train_steps=2, init_weights=None))
    # The checkpoint wins: the file is not read again (here, it is gone).
    os.remove(path)
    capsys.readouterr()
    summary = loop.train(config.override(train_steps=2))
    assert summary["resumed_from_step"] == 1 and summary["train_steps"] == 2
    out = capsys.readouterr().out
    assert "Initial weights" not in out and "Trunk frozen" in out


@pytest.mark.tf_only
def test_a_file_of_another_architecture_fails_before_the_run_folder(source, tmp_path):
    from rectifier_zoo.train import loop, recipes
    from rectifier_zoo.train import state as state_lib

    quickstart = recipes.get_recipe("quickstart")
    path = str(tmp_path / "quickstart.weights.h5")
    state_lib.build_model(quickstart, 4).save_weights(path)
    run = tmp_path / "run"
    with pytest.raises(ValueError, match=r"does not fit the model 'model_tiny'.*shapes differ"):
        loop.train(_config(source["other"], run, init_weights=path))
    assert not run.exists()
    relu = tmp_path / "relu_run"
    with pytest.raises(ValueError, match="activation='prelu'"):
        loop.train(_config(source["other"], relu, init_weights=source["path"], activation="relu"))
    assert not relu.exists()


def _run(args, timeout=180):
    return subprocess.run(
        [sys.executable, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=REPO,
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"),
    )


@pytest.mark.tf_only
def test_cli_missing_file_is_one_line_before_the_run_folder(source, tmp_path):
    missing = tmp_path / "missing.weights.h5"
    result = _run(
        [
            TRAIN_PY,
            "--model=model_tiny",
            "--dataset=folder",
            f"--data_dir={source['other']}",
            f"--model_dir={tmp_path / 'run'}",
            "--batch_size=4",
            f"--init_weights={missing}",
            "--freeze=trunk",
        ]
    )
    assert result.returncode == 1 and "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: The weights file does not exist")
    assert str(missing) in lines[0]
    assert not (tmp_path / "run").exists()


def test_flags_parse_into_the_config():
    flag_values = flags.FlagValues()
    cli.define_flags(flag_values)
    flag_values(["train.py", "--init_weights=runs/quickstart.weights.h5", "--freeze=trunk"])
    config = cli.config_from_flags(flag_values)
    assert config.init_weights == "runs/quickstart.weights.h5" and config.freeze == "trunk"
    assert isinstance(flag_values["freeze"].parser, flags.EnumParser)
    assert "the checkpoint wins" in flag_values["init_weights"].help
    default = cli.config_from_flags(_parsed())
    assert default.init_weights is None and default.freeze == "none"
    with pytest.raises(ValueError, match="init_weights must be a non-empty string or None"):
        Config().override(init_weights="")


def _parsed(*args):
    flag_values = flags.FlagValues()
    cli.define_flags(flag_values)
    flag_values(["train.py", *args])
    return flag_values


def test_bad_freeze_fails_in_one_line_without_importing_tensorflow():
    result = train_support.run_train_without_tensorflow("--freeze=all")
    assert "IMPORTED False False" in result.stdout, result.stdout[-2000:] + result.stderr
    (exit_line,) = [line for line in result.stdout.splitlines() if line.startswith("EXIT")]
    assert exit_line.startswith("EXIT Error: ")
    assert "Expected one of ('none', 'trunk'). Received: freeze='all'" in exit_line
