"""The training config: one declaration per field, checks, JSON round trips, recipes, schedule.

Pure Python, but for the comparison with the TensorFlow modules that use the same choices.
"""

import dataclasses
import json

import pytest

from rectifier_zoo import paper
from rectifier_zoo.architectures import ARCHITECTURES
from rectifier_zoo.train import recipes, schedule
from rectifier_zoo.train.config import (
    FIELD_NAMES,
    Activation,
    Config,
    Dataset,
    LrSchedule,
    ModelName,
    StrategyName,
    flatten,
    settings,
)


def _json(payload):
    return json.loads(json.dumps(payload))


@pytest.mark.parametrize("name", sorted(recipes.RECIPES))
def test_every_recipe_round_trips_through_config_json(name):
    config = recipes.RECIPES[name]
    assert Config.from_dict(_json(config.to_dict())) == config
    assert Config.from_flat(_json(config.flat())) == config
    assert Config.from_stored(_json(config.flat())) == config
    assert Config.from_stored(_json(config.to_dict())) == config


def test_the_quickstart_architecture_is_stored_whole():
    config = recipes.RECIPES["quickstart"]
    stored = _json(config.to_dict())
    assert stored["network"]["model"]["name"] == "quickstart_net"
    assert stored["network"]["input_std"] == recipes.QUICKSTART_INPUT_STD
    assert Config.from_dict(stored).network.model == recipes.QUICKSTART_ARCHITECTURE
    flat = flatten(stored)
    assert flat["model"] == "quickstart_net" and flat["architecture"]["fc_units"] == [256, 256]
    assert flat == _json(config.flat())


def test_the_defaults_are_the_papers_recipe():
    config = Config()
    assert config.network.model == ModelName.MODEL_A and config.dataset == Dataset.IMAGENET2012
    assert config.batch_size == paper.BATCH_SIZE
    assert config.network.dropout == paper.DROPOUT
    assert config.optimizer.learning_rate == paper.LEARNING_RATES[0]
    assert config.optimizer.momentum == paper.MOMENTUM
    assert config.optimizer.weight_decay == paper.WEIGHT_DECAY
    assert config.schedule.epochs == paper.EPOCHS
    assert config.schedule.lr_boundaries == paper.LR_SWITCH_EPOCHS
    assert config.schedule.max_lr_drops == len(paper.LEARNING_RATES) - 1
    assert (config.transform.min_scale, config.transform.max_scale) == paper.SCALE_JITTER
    assert config.transform.crop_size == paper.CROP_SIZE
    assert config.transform.eval_resize == paper.TEST_RESIZE
    assert config.transform.pca_lighting == paper.PCA_LIGHTING_STD
    assert recipes.PAPER == Config().override(name="paper_model_a", model_dir="runs/paper_model_a")


def test_recipes_keep_their_values():
    quickstart = recipes.RECIPES["quickstart"]
    assert quickstart.network.model == recipes.QUICKSTART_ARCHITECTURE
    assert (quickstart.dataset, quickstart.batch_size) == ("synthetic", 64)
    assert quickstart.schedule.lr_boundaries == (38.0, 52.0)
    assert quickstart.schedule.warmup_epochs == 1.0 and quickstart.schedule.epochs == 60.0
    assert (quickstart.network.fc_initializer, quickstart.network.dropout) == ("msra_fan_in", 0.0)
    assert dataclasses.astuple(quickstart.transform)[:4] == (64, 72, 96, 80)
    assert (quickstart.checkpoint_every_steps, quickstart.eval_every_epochs) == (500, 4)
    assert quickstart.log_every_steps == 10
    init_study = recipes.RECIPES["init_study"]
    assert init_study.network.model == "model_deep" and init_study.network.activation == "relu"
    assert init_study.schedule.epochs == 10.0 and init_study.schedule.lr_boundaries == ()
    for name, model in [("paper_model_b", "model_b"), ("paper_model_c", "model_c")]:
        recipe = recipes.RECIPES[name]
        assert recipe.network.model == model
        assert (
            recipe.override(name="paper_model_a", model_dir="runs/paper_model_a", model="model_a")
            == recipes.PAPER
        )


def test_paper_small_follows_table_2s_protocol():
    """Table 2: shorter side 256 in training and testing (no jitter), 224 crops, 75 epochs."""
    small = recipes.RECIPES["paper_small"]
    assert small.network.model == "model_small"
    assert dataclasses.astuple(small.transform)[:4] == (224, 256, 256, 256)
    assert small.schedule.epochs == 75.0
    assert small.schedule.lr_boundaries == (37.5, 60.9375)  # 40 and 65 of 80, scaled to 75


@pytest.mark.tf_only
def test_choices_match_the_modules_that_use_them():
    from rectifier_zoo import models
    from rectifier_zoo.data import sources
    from rectifier_zoo.train import distribute

    assert Activation.values() == models.ACTIVATIONS
    assert Dataset.values() == sources.SOURCES
    assert StrategyName.values() == distribute.STRATEGIES
    assert ModelName.values() == tuple(ARCHITECTURES) == tuple(models.list_models())


def test_field_names_are_unique_and_documented():
    names = [setting.name for setting in settings()]
    assert len(names) == len(set(names)) == len(FIELD_NAMES)
    for setting in settings():
        assert setting.help, setting.name
    assert {"model", "dropout", "crop_size", "learning_rate", "lr_boundaries"} <= set(names)


def test_choices_are_equal_to_their_strings():
    assert Activation.RELU == "relu" and {"relu": 1}[Activation.RELU] == 1
    assert str(LrSchedule.PLATEAU) == "plateau" and json.dumps(LrSchedule.PLATEAU) == '"plateau"'
    assert Config().override(activation="relu").network.activation is Activation.RELU


@pytest.mark.parametrize(
    "overrides, message",
    [
        (
            {"model": "nope"},
            r"Unknown model. Expected one of \(.*'model_c'.*Received: model='nope'",
        ),
        ({"activation": "nope"}, r"Expected one of \('prelu', 'relu'\)"),
        ({"strategy": "nope"}, "Unknown strategy"),
        ({"precision": "float8"}, "Unknown precision"),
        ({"dataset": "nope"}, "Unknown dataset"),
        ({"lr_schedule": "cosine"}, "Unknown lr_schedule"),
        ({"batch_size": 0}, "batch_size must be a positive integer"),
        ({"batch_size": True}, "batch_size must be a positive integer"),
        ({"train_steps": 0}, "train_steps must be >= 1 or None"),
        ({"learning_rate": float("inf")}, "learning_rate must be a finite number"),
        ({"learning_rate": 0.0}, r"learning_rate must be a finite number in \(0.0, inf\)"),
        ({"weight_decay": float("nan")}, "weight_decay must be a finite number"),
        ({"momentum": 1.0}, r"momentum must be a finite number in \[0.0, 1.0\)"),
        ({"dropout": 1.0}, "dropout must be a finite number"),
        ({"lr_boundaries": (1.0, float("inf"))}, r"lr_boundaries=\(1.0, inf\)"),
        ({"warmup_epochs": -1.0}, "warmup_epochs must be a finite number"),
        ({"eval_every_epochs": -1}, "eval_every_epochs must be an integer >= 0"),
        ({"plateau_patience": 0}, "plateau_patience must be a positive integer"),
        ({"epochs": 0.0}, "epochs must be a finite number"),
        ({"crop_size": 300}, "min_scale must be >= crop_size"),
        ({"nope": 1}, "Unknown field"),
    ],
)
def test_bad_values_name_the_field_and_the_value(overrides, message):
    with pytest.raises(ValueError, match=message) as error:
        Config().override(**overrides)
    assert "Received:" in str(error.value)


def test_epochs_are_not_checked_when_steps_count():
    assert Config().override(epochs=0.0, train_steps=5).schedule.train_steps == 5


def test_architecture_input_std_is_checked():
    bad = dataclasses.replace(ARCHITECTURES["model_tiny"], input_std=0.0)
    with pytest.raises(ValueError, match="architecture.input_std must be a finite number"):
        Config().override(model=bad)


def test_configs_are_frozen_and_override_copies():
    config = Config()
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.batch_size = 4
    changed = config.override(batch_size=4, dropout=0.0, crop_size=200)
    assert (changed.batch_size, changed.network.dropout, changed.transform.crop_size) == (4, 0, 200)
    assert config.batch_size == paper.BATCH_SIZE
    assert changed.get("dropout") == 0.0


def test_step_schedule_and_plateau_rule():
    config = Config().override(lr_schedule="plateau", plateau_patience=2, max_lr_drops=1)
    state = schedule.Plateau()
    state = schedule.after_validation(config.schedule, state, 0.5)
    assert state == schedule.Plateau(0.5, 0, 0)  # an improvement
    state = schedule.after_validation(config.schedule, state, 0.4995)  # < 0.1%: none
    assert state == schedule.Plateau(0.5, 1, 0)
    state = schedule.after_validation(config.schedule, state, 0.6)
    assert state == schedule.Plateau(0.5, 0, 1)  # two stale evaluations: one drop
    for _ in range(3):
        state = schedule.after_validation(config.schedule, state, 0.6)
    assert state.drops == 1  # at most max_lr_drops
    step_config = config.override(lr_schedule="step")
    assert schedule.after_validation(step_config.schedule, state, 0.1) == state
    assert schedule.learning_rate(config, 0, 10, plateau_drops=1) == pytest.approx(
        paper.LEARNING_RATES[1]
    )
