"""The learned-slopes study (Table 1): its smoke run, and its reuse of the prelu study's files."""

import dataclasses
import json
import os

import pytest

from reproduce import prelu, slopes
from reproduce.settings import SMOKE_SETTINGS

pytestmark = pytest.mark.tf_only


def test_layer_group_names_table1_rows():
    assert [slopes.layer_group(n) for n in ("prelu1", "prelu2_3", "prelu3_6", "prelu_fc1")] == [
        "conv1",
        "conv2",
        "conv3",
        "fc1",
    ]


def test_paper_slopes_come_from_table1():
    assert slopes.PAPER_SLOPES["prelu_shared"]["conv1"] == 0.681
    assert slopes.PAPER_SLOPES["prelu_channelwise"]["conv3"] == (0.124, 0.198)


def test_smoke_slopes_study(smoke_results):
    out, _ = smoke_results
    summary = json.loads((out / "slopes" / "summary.json").read_text())
    shared = summary["slopes"]["prelu_shared"]
    # conv1 + 4 conv2 + 6 conv3 + fc1 + fc2, in depth order.
    assert len(shared["layers"]) == 13
    assert shared["groups"][0] == "conv1" and shared["groups"][-1] == "fc2"
    assert summary["initial_slope"] == 0.25
    assert (out / "slopes" / "slopes.png").stat().st_size > 0
    assert "paper" in (out / "slopes" / "report.md").read_text()


def test_slopes_study_reuses_prelu_results(smoke_results, monkeypatch):
    out, _ = smoke_results
    if not os.path.exists(out / "prelu" / "summary.json"):
        pytest.skip("needs the smoke run's files")

    def fail(*args, **kwargs):
        raise AssertionError("the prelu study should not run again")

    monkeypatch.setattr(prelu, "run", fail)
    monkeypatch.setattr(slopes, "plot", lambda *args: None)
    slopes.run(str(out), quick=True, settings=SMOKE_SETTINGS)
    # Another init study's settings do not touch the PReLU runs.
    other_init = dataclasses.replace(
        SMOKE_SETTINGS, init_steps=(7,), init_learning_rates=(0.001,), init_width=0.125
    )
    slopes.run(str(out), quick=True, settings=other_init)
    # Other PReLU-run settings do.
    with pytest.raises(AssertionError, match="should not run again"):
        slopes.run(str(out), quick=True, settings=dataclasses.replace(SMOKE_SETTINGS, width=0.5))
