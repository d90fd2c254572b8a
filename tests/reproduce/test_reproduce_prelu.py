"""The ReLU vs PReLU study (Table 2): its smoke run and the paper's numbers it quotes."""

import json

import pytest

from rectifier_zoo import paper
from reproduce import prelu

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
    assert (out / "prelu" / "prelu_errors.png").stat().st_size > 0
    assert "| ReLU |" in (out / "prelu" / "report.md").read_text()
