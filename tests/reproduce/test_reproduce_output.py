"""A study's runs are kept as they finish: a killed study resumes where it stopped."""

import dataclasses
import json
import os

import pytest

from reproduce import common, output, prelu
from reproduce.settings import SMOKE_SETTINGS

CALL = {"variant": "relu", "seed": 0}


class Trainer:
    """A stand-in for a training run that counts its calls."""

    def __init__(self):
        self.calls = 0

    def __call__(self):
        self.calls += 1
        return {"loss": [2.3, 1.5], "top1_error": float("nan"), "calls": self.calls}


def _run(folder, trainer, settings=SMOKE_SETTINGS, quick=True, call=CALL):
    return output.resumable_run(
        str(folder), "relu_seed0", trainer, settings=settings, quick=quick, builder_call=call
    )


def test_a_finished_run_is_read_back_not_trained_again(tmp_path):
    trainer = Trainer()
    first = _run(tmp_path, trainer)
    again = _run(tmp_path, trainer)
    assert trainer.calls == 1 and again["calls"] == first["calls"] == 1
    assert again["loss"] == [2.3, 1.5] and again["top1_error"] != again["top1_error"]  # NaN
    record = json.loads((tmp_path / "runs" / "relu_seed0.json").read_text())
    assert record["identity"]["builder_call"] == CALL
    assert record["identity"]["settings"]["seeds"] == list(SMOKE_SETTINGS.seeds)


@pytest.mark.parametrize(
    "change",
    [
        {"settings": dataclasses.replace(SMOKE_SETTINGS, prelu_steps=3)},
        {"quick": False},
        {"call": {**CALL, "seed": 1}},
    ],
)
def test_a_run_of_other_settings_is_trained_over(tmp_path, change):
    trainer = Trainer()
    _run(tmp_path, trainer)
    assert _run(tmp_path, trainer, **change)["calls"] == 2
    # The file now holds the new identity.
    assert _run(tmp_path, trainer, **change)["calls"] == 2


def test_a_truncated_run_file_is_trained_over(tmp_path):
    trainer = Trainer()
    _run(tmp_path, trainer)
    path = tmp_path / "runs" / "relu_seed0.json"
    path.write_text(path.read_text()[:40])
    assert _run(tmp_path, trainer)["calls"] == 2
    path.write_text("[]")
    assert _run(tmp_path, trainer)["calls"] == 3


def test_write_json_replaces_the_file_whole(tmp_path, monkeypatch):
    path = str(tmp_path / "summary.json")
    output.write_json(path, {"a": 1})

    def killed(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(json, "dump", killed)
    with pytest.raises(KeyboardInterrupt):
        output.write_json(path, {"a": 2})
    monkeypatch.undo()
    assert json.loads(open(path).read()) == {"a": 1}


@pytest.mark.tf_only
def test_a_killed_study_resumes_with_the_runs_it_had_finished(tmp_path, monkeypatch):
    pytest.importorskip("matplotlib", reason="the figures need matplotlib (the `reproduce` extra)")
    train = common.train_classifier
    calls = []

    def killed_at_the_second_run(*args, **kwargs):
        calls.append(kwargs["seed"])
        if len(calls) == 2:
            raise KeyboardInterrupt
        return train(*args, **kwargs)

    monkeypatch.setattr(common, "train_classifier", killed_at_the_second_run)
    out, data = str(tmp_path / "out"), str(tmp_path / "data")
    with pytest.raises(KeyboardInterrupt):
        prelu.run(out, quick=True, data_dir=data, settings=SMOKE_SETTINGS)
    runs = os.path.join(out, "prelu", "runs")
    assert sorted(os.listdir(runs)) == ["relu_seed0.json"]

    calls.clear()
    monkeypatch.setattr(
        common, "train_classifier", lambda *a, **k: calls.append(1) or train(*a, **k)
    )
    summary = prelu.run(out, quick=True, data_dir=data, settings=SMOKE_SETTINGS)
    # ReLU was read back; the two PReLU runs trained; the kept runs are gone with the summary.
    assert len(calls) == 2
    assert [r["variant"] for r in summary["runs"]] == list(prelu.VARIANTS)
    assert not os.path.exists(runs)
    assert os.path.exists(os.path.join(out, "prelu", "summary.json"))


def test_made_by_names_the_command_with_its_overrides_and_folder():
    from reproduce.settings import FULL_SETTINGS, QUICK_SETTINGS, with_overrides

    def summary(settings, quick):
        return {"settings": json.loads(json.dumps(dataclasses.asdict(settings))), "quick": quick}

    assert (
        output.made_by("init", summary(FULL_SETTINGS, False), "results/reproduce/")
        == "Made by `python training/reproduce.py --study init`"
    )
    assert (
        output.made_by("prelu", summary(QUICK_SETTINGS, True), "results/reproduce")
        == "Made by `python training/reproduce.py --study prelu --quick`"
    )
    ablation = with_overrides(FULL_SETTINGS, 0.0, (22,))
    assert output.made_by("init", summary(ablation, False), "out/no_decay") == (
        "Made by `python training/reproduce.py --study init --init_depths 22 --weight_decay 0 "
        "--output_dir out/no_decay`"
    )
    assert output.made_by("init", summary(SMOKE_SETTINGS, True), "out").startswith(
        "Made by `reproduce.run_study('init', ...)` at sizes that no flags"
    )
