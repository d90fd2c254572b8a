"""The ReLU vs PReLU study (Table 2): its smoke run and the paper's numbers it quotes."""

import json

import pytest

from rectifier_zoo import paper
from reproduce import prelu
from reproduce.settings import SMOKE_SETTINGS

pytestmark = pytest.mark.tf_only


def test_paper_errors_come_from_table2():
    assert prelu.PAPER_ERRORS["relu"] == paper.TABLE2_ERRORS["relu"]
    assert prelu.PAPER_ERRORS["prelu_shared"] == paper.TABLE2_ERRORS["prelu_channel_shared"]
    assert prelu.PAPER_ERRORS["prelu_channelwise"] == paper.TABLE2_ERRORS["prelu_channel_wise"]


def test_smoke_prelu_study(smoke_results):
    out, _ = smoke_results
    summary = json.loads((out / "prelu" / "summary.json").read_text())
    assert set(summary["results"]) == set(prelu.VARIANTS)
    for result in summary["results"].values():
        assert {"top1_error_mean", "top1_error_std", "top5_error_mean", "top5_error_std"} <= set(
            result
        )
    assert summary["paper_errors"]["relu"] == {"top1": 33.82, "top5": 13.34}
    assert summary["quick"] is True and summary["test_views"] == "ten_view"
    assert summary["data"]["stored_size"] == SMOKE_SETTINGS.image_size * 9 // 8
    calls = summary["runs"]
    assert len(calls) == len(prelu.VARIANTS) * len(SMOKE_SETTINGS.seeds)
    for call in calls:
        assert call["architecture"] == "model_small" and call["width"] == SMOKE_SETTINGS.width
        assert call["input_size"] == SMOKE_SETTINGS.image_size
        assert call["activation"] == ("relu" if call["variant"] == "relu" else "prelu")
        assert call["seed"] in SMOKE_SETTINGS.seeds and "kernel_initializer" in call
    assert len(summary["results"]["relu"]["center_top1_error_per_seed"]) == len(
        SMOKE_SETTINGS.seeds
    )
    assert (out / "prelu" / "prelu_errors.png").stat().st_size > 0
    report = (out / "prelu" / "report.md").read_text()
    assert "| ReLU |" in report and "10 views" in report


def test_one_seed_never_claims_reproduction(smoke_results, tmp_path):
    # One seed has a standard deviation of 0: a gain of any size would pass "more than twice
    # the standard error". The report must not call that reproduced.
    out, _ = smoke_results
    summary = json.loads((out / "prelu" / "summary.json").read_text())
    assert len(summary["settings"]["seeds"]) == 1
    for variant, top1 in (("relu", 50.0), ("prelu_shared", 40.0), ("prelu_channelwise", 45.0)):
        summary["results"][variant].update(top1_error_mean=top1, top1_error_std=0.0)
    prelu.report(summary, str(tmp_path))
    report = (tmp_path / "prelu" / "report.md").read_text()
    assert "one seed cannot tell it from noise" in report
    assert "reproduced (PReLU better" not in report
