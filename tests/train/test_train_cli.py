"""The training command line: flags generated from the config, parsed before TensorFlow."""

import subprocess
import sys

import pytest
import train_support
from absl import flags

from rectifier_zoo.train import cli, recipes
from rectifier_zoo.train.config import FIELD_NAMES, Config, settings

REPO, TRAIN_PY = train_support.REPO, train_support.TRAIN_PY


def _parse(*args) -> flags.FlagValues:
    flag_values = flags.FlagValues()
    cli.define_flags(flag_values)
    flag_values(["train.py", *args])
    return flag_values


def test_every_config_field_has_a_flag_of_its_type():
    flag_values = _parse()
    assert set(FIELD_NAMES) | {"recipe"} == set(flag_values)
    expected = {
        "activation": flags.EnumParser,
        "model": flags.EnumParser,
        "lr_schedule": flags.EnumParser,
        "strategy": flags.EnumParser,
        "batch_size": flags.IntegerParser,
        "seed": flags.IntegerParser,
        "learning_rate": flags.FloatParser,
        "xla": flags.BooleanParser,
        "flip": flags.BooleanParser,
        "data_dir": flags.ArgumentParser,
        "lr_boundaries": flags.ListParser,
    }
    for name, parser in expected.items():
        assert isinstance(flag_values[name].parser, parser), name
    for setting in settings():
        flag = flag_values[setting.name]
        assert flag.value is None and setting.help in flag.help  # unset until given
        if setting.choices is not None:
            assert all(choice in flag.help for choice in setting.choices.values())


def test_no_flags_gives_the_quickstart_recipe():
    assert cli.config_from_flags(_parse()) == recipes.RECIPES["quickstart"]


def test_only_the_flags_given_override_the_recipe():
    flag_values = _parse(
        "--recipe=paper_small",
        "--activation=relu",
        "--data_dir=/data",
        "--lr_boundaries=30,60",
        "--noflip",
        "--batch_size=256",
    )
    assert cli.config_from_flags(flag_values) == recipes.RECIPES["paper_small"].override(
        activation="relu", data_dir="/data", lr_boundaries=(30.0, 60.0), flip=False, batch_size=256
    )


def test_model_flag_replaces_the_network_and_keeps_the_recipes_input_scale():
    quickstart = recipes.RECIPES["quickstart"]
    config = cli.config_from_flags(_parse("--model=model_tiny"))
    assert config.network.model == "model_tiny"
    assert config.network.input_std == recipes.QUICKSTART_INPUT_STD
    assert config.network.fc_initializer == quickstart.network.fc_initializer == "msra_fan_in"
    assert config.network.architecture().input_std == recipes.QUICKSTART_INPUT_STD
    assert config.transform == quickstart.transform
    config = cli.config_from_flags(
        _parse("--model=model_tiny", "--fc_initializer=xavier", "--input_std=1")
    )
    assert (config.network.fc_initializer, config.network.input_std) == ("xavier", 1.0)
    # The paper's scale and fixed fc stds over the quickstart's choices.
    config = cli.config_from_flags(
        _parse("--model=model_tiny", "--fc_initializer=paper", "--input_std=1")
    )
    assert (config.network.fc_initializer, config.network.input_std) == ("paper", 1.0)
    # The paper recipes keep the registered models' own scale (raw pixels) and fixed fc stds.
    config = cli.config_from_flags(_parse("--recipe=paper_small"))
    assert (config.network.input_std, config.network.fc_initializer) == (None, None)
    assert config.network.architecture().input_std == 1.0


def test_input_std_flag_is_checked():
    with pytest.raises(ValueError, match=r"input_std must be a finite number in \(0.0, inf\)"):
        cli.config_from_flags(_parse("--input_std=0"))


@pytest.mark.parametrize(
    "flag, expected",
    [
        ("--activation=nope", "('prelu', 'relu')"),
        ("--recipe=nope", "quickstart"),
        ("--model=nope", "model_c"),
        ("--lr_boundaries=a", "comma-separated numbers"),
    ],
)
def test_bad_flag_values_fail_while_parsing(flag, expected):
    with pytest.raises(flags.IllegalFlagValueError) as error:
        _parse(flag)
    assert expected in str(error.value) and "\n" not in str(error.value)


def test_config_checks_apply_to_flags():
    with pytest.raises(ValueError, match="learning_rate must be a finite number"):
        cli.config_from_flags(_parse("--learning_rate=inf"))
    assert isinstance(cli.config_from_flags(_parse("--recipe=init_study")), Config)


def test_help_lists_the_flags_without_importing_tensorflow():
    result = train_support.run_train_without_tensorflow("--help")
    assert "IMPORTED False False" in result.stdout, result.stdout[-2000:] + result.stderr
    for name in ("--recipe", "--activation: <prelu|relu>", "--dropout", "--lr_boundaries"):
        assert name in result.stdout


@pytest.mark.parametrize(
    "flag, expected",
    [
        ("--activation=nope", "Expected one of ('prelu', 'relu'). Received: activation='nope'"),
        ("--learning_rate=inf", "learning_rate must be a finite number"),
    ],
)
def test_bad_values_fail_in_one_line_without_importing_tensorflow(flag, expected):
    result = train_support.run_train_without_tensorflow(flag)
    assert "IMPORTED False False" in result.stdout, result.stdout[-2000:] + result.stderr
    (exit_line,) = [line for line in result.stdout.splitlines() if line.startswith("EXIT")]
    assert exit_line.startswith("EXIT Error: ") and expected in exit_line


def test_the_console_script_entry_point_lists_the_flags():
    result = subprocess.run(
        [sys.executable, "-c", "from rectifier_zoo.train.cli import run; run()", "--help"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
    )
    assert "--activation: <prelu|relu>" in result.stdout and "--recipe" in result.stdout
