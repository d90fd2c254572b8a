"""The learned-slopes study (Table 1): its smoke run, and its checks of Table 1's pattern."""

import json

import numpy as np
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


def test_smoke_slopes_study_trains_its_own_runs_and_traces_the_slopes(smoke_results):
    out, _ = smoke_results
    summary = json.loads((out / "slopes" / "summary.json").read_text())
    steps = SMOKE_SETTINGS.slopes_steps
    for variant in slopes.VARIANTS:
        s = summary["slopes"][variant]
        assert s["trace_steps"] == list(range(steps + 1))
        # [seed, reading, layer]; the first reading is the initial slope, the last the result.
        trace = np.array(s["trace_per_seed"])
        assert trace.shape == (len(SMOKE_SETTINGS.slopes_seeds), steps + 1, 13)
        np.testing.assert_allclose(trace[:, 0], 0.25)
        np.testing.assert_allclose(trace[:, -1], s["per_seed"])
        assert len(s["top1_error_per_seed"]) == len(SMOKE_SETTINGS.slopes_seeds)
    # The builder call of every run, the prelu study's models.
    assert [r["variant"] for r in summary["runs"]] == ["prelu_shared", "prelu_channelwise"]
    assert summary["runs"][0] == prelu.builder_call("prelu_shared", SMOKE_SETTINGS, 0)
    assert summary["quick"] is True


LAYERS = [
    "prelu1", *(f"prelu2_{i}" for i in range(1, 5)), *(f"prelu3_{i}" for i in range(1, 7)),
    "prelu_fc1", "prelu_fc2",
]  # fmt: skip


def _pattern(values):
    rows = slopes._group_means(LAYERS, values)
    by_layer = dict(zip(LAYERS, values, strict=True))
    return {claim: bool(check(by_layer, rows)) for claim, check in slopes.PATTERN.items()}


def test_table1_pattern_checks():
    # Table 1's channel-shared column, conv2x / conv3x spread over their ranges: every check holds.
    table1 = [0.681, 0.103, 0.2, 0.3, 0.561, 0.126, 0.089, 0.124, 0.062, 0.008, 0.21, 0.063, 0.031]
    assert all(_pattern(table1).values())
    # Slopes that never moved hold none.
    assert not any(_pattern([0.25] * 13).values())
    # A pre-pooling conv above conv1 breaks only the first.
    higher = [*table1[:4], 0.7, *table1[5:]]
    assert list(_pattern(higher).values()) == [False, True, True]
