"""The studies' sizes: the scaled architectures and the settings a summary records."""

import dataclasses
import json

import pytest

from rectifier_zoo.architectures import ARCHITECTURES
from reproduce import settings


def test_scaled_architecture_keeps_depth():
    small = ARCHITECTURES["model_small"]
    scaled = settings.scaled_architecture(small, 0.25)
    assert scaled.depth == small.depth == 14
    assert [s.filters for s in scaled.stages] == [16, 32, 64]
    assert scaled.fc_units == (1024, 1024)
    assert settings.scaled_architecture(small, 1) is small


def test_settings_round_trip_through_json():
    recorded = json.loads(json.dumps(dataclasses.asdict(settings.SMOKE_SETTINGS)))
    assert settings.StudySettings.from_dict(recorded) == settings.SMOKE_SETTINGS


def test_settings_for_picks_quick_full_or_given():
    assert settings.settings_for(True) is settings.QUICK_SETTINGS
    assert settings.settings_for(False) is settings.FULL_SETTINGS
    assert settings.settings_for(False, settings.SMOKE_SETTINGS) is settings.SMOKE_SETTINGS


def test_init_steps_and_learning_rates_are_given_per_depth():
    quick = settings.QUICK_SETTINGS
    assert [quick.init_steps_at(d) for d in quick.init_depths] == list(quick.init_steps)
    assert quick.init_steps_at(22) > quick.init_steps_at(30)
    # Model B (Fig. 2) at the paper's lr linearly scaled to the batch, the 30-layer model higher.
    assert quick.init_learning_rate_at(22) == 0.01 * quick.batch_size / 128
    assert quick.init_learning_rate_at(30) == 0.005
    with pytest.raises(ValueError, match="`init_steps` needs one value per depth"):
        dataclasses.replace(quick, init_steps=(300,))
    with pytest.raises(ValueError, match="`init_learning_rates` needs one value per depth"):
        dataclasses.replace(quick, init_learning_rates=(0.005, 0.005, 0.005))


def test_settings_recorded_with_one_learning_rate_still_load():
    recorded = json.loads(json.dumps(dataclasses.asdict(settings.QUICK_SETTINGS)))
    del recorded["init_learning_rates"]
    recorded["init_learning_rate"] = 0.005
    loaded = settings.StudySettings.from_dict(recorded)
    assert loaded.init_learning_rates == (0.005, 0.005)
    assert loaded.init_steps == settings.QUICK_SETTINGS.init_steps


def test_overrides_replace_the_decay_and_pick_depths():
    full = settings.FULL_SETTINGS
    assert settings.with_overrides(full) is full
    no_decay = settings.with_overrides(full, weight_decay=0.0)
    assert no_decay.weight_decay == 0.0 and full.weight_decay == 5e-4
    fig2 = settings.with_overrides(full, init_depths=(22,))
    assert fig2.init_depths == (22,)
    assert fig2.init_steps == (full.init_steps_at(22),)
    assert fig2.init_learning_rates == (full.init_learning_rate_at(22),)
    assert (
        dataclasses.replace(
            fig2,
            init_depths=(30, 22),
            init_steps=full.init_steps,
            init_learning_rates=full.init_learning_rates,
        )
        == full
    )
    with pytest.raises(ValueError, match=r"`weight_decay` must be >= 0\. Received: weight_de"):
        settings.with_overrides(full, weight_decay=-1e-4)
    with pytest.raises(ValueError, match=r"non-empty subset of \(30, 22\)\. Received: init_dep"):
        settings.with_overrides(full, init_depths=(25,))
    with pytest.raises(ValueError, match="non-empty subset"):
        settings.with_overrides(full, init_depths=())


def test_override_of_the_init_learning_rate_applies_to_every_depth_run():
    full = settings.FULL_SETTINGS
    both = settings.with_overrides(full, init_learning_rate=0.001)
    assert both.init_learning_rates == (0.001, 0.001) and both.init_steps == full.init_steps
    # After the depths are picked: Fig. 2 alone at another rate, its steps kept.
    fig2 = settings.with_overrides(full, init_depths=(22,), init_learning_rate=0.00125)
    assert fig2.init_depths == (22,) and fig2.init_learning_rates == (0.00125,)
    assert fig2.init_steps == (full.init_steps_at(22),)
    assert dataclasses.replace(fig2, init_learning_rates=full.init_learning_rates[1:]) == (
        settings.with_overrides(full, init_depths=(22,))
    )
    for rate in (0.0, -0.01, float("nan")):
        with pytest.raises(ValueError, match=r"`init_learning_rate` must be > 0\. Received"):
            settings.with_overrides(full, init_learning_rate=rate)


@pytest.mark.parametrize(
    "quick, overrides, flags",
    [
        (False, {}, []),
        (True, {}, []),
        (
            False,
            {"weight_decay": 0.0, "init_depths": (22,)},
            ["--init_depths 22", "--weight_decay 0"],
        ),
        (
            False,
            {"init_depths": (22,), "init_learning_rate": 0.00125},
            ["--init_depths 22", "--init_learning_rate 0.00125"],
        ),
        (True, {"init_learning_rate": 0.001}, ["--init_learning_rate 0.001"]),
    ],
)
def test_override_flags_give_back_the_settings(quick, overrides, flags):
    made = settings.with_overrides(settings.settings_for(quick), **overrides)
    assert settings.override_flags(made, quick) == flags


def test_override_flags_are_none_where_no_flags_make_the_settings():
    assert settings.override_flags(settings.SMOKE_SETTINGS, True) is None
    full = settings.FULL_SETTINGS
    # Two learning rates, neither the full sizes' own: no single --init_learning_rate.
    assert (
        settings.override_flags(dataclasses.replace(full, init_learning_rates=(0.1, 0.2)), False)
        is None
    )
    # The full sizes with the quick study's slopes steps.
    assert settings.override_flags(dataclasses.replace(full, slopes_steps=4000), False) is None
