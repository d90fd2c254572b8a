"""The learned PReLU slopes (Sec. 2.1, Table 1): the slopes of the `prelu` study's models against
depth, next to the paper's values.

Reads `<output_dir>/prelu/summary.json`, running the `prelu` study first when it is missing or
was made with other settings; writes `slopes.png`, `summary.json` and `report.md` into
`<output_dir>/slopes/`.
"""

from __future__ import annotations

import json
import os

import numpy as np

from rectifier_zoo import paper
from reproduce import prelu
from reproduce.output import made_by, provenance, pyplot, study_folder, write_json, write_lines
from reproduce.settings import StudySettings, settings_for

STUDY = "slopes"
VARIANTS = ("prelu_shared", "prelu_channelwise")
# Table 1 by variant: layer group -> slope, or (min, max) over the stage's layers for the
# stacked conv2x / conv3x layers.
PAPER_SLOPES = {
    variant: {group: values[column] for group, values in paper.TABLE1_SLOPES.items()}
    for column, variant in enumerate(VARIANTS)
}


def layer_group(name: str) -> str:
    """The row of Table 1 a PReLU layer belongs to: prelu1 -> conv1, prelu2_3 -> conv2, ..."""
    suffix = name.removeprefix("prelu").lstrip("_")
    return suffix if suffix.startswith("fc") else f"conv{suffix.split('_')[0]}"


def _prelu_summary(output_dir: str, quick: bool, data_dir, settings: StudySettings) -> dict:
    """The `prelu` study's summary with these settings: read back, or made now."""
    path = os.path.join(output_dir, prelu.STUDY, "summary.json")
    if os.path.exists(path):
        with open(path) as f:
            summary = json.load(f)
        # Reused when its PReLU runs had these sizes, whatever the init study's settings.
        recorded = StudySettings.from_dict(summary["settings"])
        if recorded.prelu_fields() == settings.prelu_fields():
            return summary
    return prelu.run(output_dir, quick, data_dir, settings)


def run(
    output_dir: str,
    quick: bool = False,
    data_dir: str | None = None,
    settings: StudySettings | None = None,
) -> dict:
    """Learned slopes of the `prelu` study's models; writes `<output_dir>/slopes/`.

    Args:
        output_dir: parent folder of the studies' folders.
        quick: the `quick` sizes (`settings.QUICK_SETTINGS`) rather than the full ones.
        data_dir: parent folder of the synthetic sets (for the `prelu` study, if it runs).
        settings: sizes that replace the `quick` or full ones (the tests' `SMOKE_SETTINGS`).
    """
    settings = settings_for(quick, settings)
    folder = study_folder(output_dir, STUDY)
    prelu_summary = _prelu_summary(output_dir, quick, data_dir, settings)
    slopes = {}
    for variant in VARIANTS:
        per_seed = prelu_summary["results"][variant]["slopes_per_seed"]
        names = list(per_seed[0])
        values = np.array([[run[name] for name in names] for run in per_seed])
        slopes[variant] = {
            "layers": names,
            "groups": [layer_group(n) for n in names],
            "mean": values.mean(axis=0).tolist(),
            "std": (values.std(axis=0, ddof=1) if len(values) > 1 else 0 * values[0]).tolist(),
            "per_seed": values.tolist(),
        }
    summary = {
        "slopes": slopes,
        "paper_table1": PAPER_SLOPES,
        "initial_slope": paper.PRELU_INITIAL_SLOPE,
        "source": "prelu/summary.json (the prelu study's trained models)",
        **provenance(settings, quick),
    }
    write_json(os.path.join(folder, "summary.json"), summary)
    plot(summary, output_dir)
    report(summary, output_dir)
    return summary


def _paper_band(variant: str, groups: list[str]):
    low, high = [], []
    for group in groups:
        value = PAPER_SLOPES[variant].get(group)
        if value is None:
            low.append(np.nan)
            high.append(np.nan)
        elif isinstance(value, tuple | list):
            low.append(value[0])
            high.append(value[1])
        else:
            low.append(value)
            high.append(value)
    return np.array(low), np.array(high)


def plot(summary: dict, output_dir: str) -> None:
    """`slopes.png` into `<output_dir>/slopes/`: the slopes by layer, the paper's beside them."""
    plt = pyplot()
    initial = summary["initial_slope"]
    figure, axes = plt.subplots(1, 2, figsize=(13, 4.5), constrained_layout=True)
    for axis, variant in zip(axes, VARIANTS, strict=True):
        s = summary["slopes"][variant]
        x = np.arange(1, len(s["layers"]) + 1)
        axis.errorbar(
            x,
            s["mean"],
            yerr=s["std"],
            marker="o",
            capsize=3,
            label="learned here (mean +- std over seeds)",
        )
        low, high = _paper_band(variant, s["groups"])
        axis.vlines(x, low, high, colors="C3", lw=6, alpha=0.35)
        axis.plot(
            x,
            (low + high) / 2,
            "s",
            color="C3",
            ms=4,
            label="paper Table 1 (bar: range over the stage)",
        )
        axis.axhline(initial, color="gray", ls=":", lw=1, label=f"initial slope {initial}")
        axis.set_xticks(x, [n.removeprefix("prelu").lstrip("_") for n in s["layers"]], rotation=45)
        axis.set_xlabel("layer (depth order)")
        axis.set_ylabel("slope a" + (" (mean over channels)" if "channelwise" in variant else ""))
        axis.set_title(prelu.VARIANT_LABELS[variant])
        axis.grid(True, alpha=0.3)
        axis.legend(fontsize=8)
    figure.savefig(os.path.join(study_folder(output_dir, STUDY), "slopes.png"), dpi=110)
    plt.close(figure)


def report(summary: dict, output_dir: str) -> None:
    """`report.md` into `<output_dir>/slopes/`: the slopes next to Table 1, what reproduced."""
    settings = StudySettings.from_dict(summary["settings"])
    initial = summary["initial_slope"]
    lines = [
        "# Learned PReLU slopes (Table 1)",
        "",
        made_by(STUDY, summary) + f", from the `prelu` study's models ({len(settings.seeds)} "
        f"seeds, {settings.prelu_steps} steps each; slopes start at {initial}).",
        "",
        "| layer | shared: here | shared: paper | channel-wise mean: here | channel-wise: paper |",
        "|---|---|---|---|---|",
    ]
    shared, wise = summary["slopes"]["prelu_shared"], summary["slopes"]["prelu_channelwise"]

    def paper_value(variant, group):
        value = PAPER_SLOPES[variant].get(group)
        if isinstance(value, tuple | list):
            return f"{value[0]}-{value[1]} ({group}x)"
        return "" if value is None else f"{value}"

    for index, name in enumerate(shared["layers"]):
        group = shared["groups"][index]
        lines.append(
            f"| {name.removeprefix('prelu').lstrip('_')} | {shared['mean'][index]:.3f} +- "
            f"{shared['std'][index]:.3f} | {paper_value('prelu_shared', group)} | "
            f"{wise['mean'][index]:.3f} +- {wise['std'][index]:.3f} | "
            f"{paper_value('prelu_channelwise', group)} |"
        )
    lines += ["", "![slopes](slopes.png)", "", "## What reproduced", ""]
    for variant, s in (("prelu_shared", shared), ("prelu_channelwise", wise)):
        mean = dict(zip(s["layers"], s["mean"], strict=True))
        groups = dict(zip(s["layers"], s["groups"], strict=True))
        by_group = {}
        for name, value in mean.items():
            by_group.setdefault(groups[name], []).append(value)
        conv1 = np.mean(by_group.get("conv1", [np.nan]))
        conv_deep = np.mean(by_group.get("conv3", [np.nan]))
        fc = np.mean(by_group.get("fc1", []) + by_group.get("fc2", []))
        lines.append(
            f"- {prelu.VARIANT_LABELS[variant]}: conv1 {conv1:.3f}, conv3x mean {conv_deep:.3f}, "
            f"fc1/fc2 mean {fc:.3f}. First layer keeps the largest slope: "
            f"{'yes' if conv1 >= max(v for g, vs in by_group.items() for v in vs) else 'no'} "
            f"(paper: yes). Deeper layers smaller than conv1: "
            f"{'yes' if conv_deep < conv1 else 'no'}. fc slopes below conv1: "
            f"{'yes' if fc < conv1 else 'no'}. Moved from {initial} by at most "
            f"{max(abs(v - initial) for v in s['mean']):.3f}."
        )
    lines.append(
        f"- The paper's slopes come from ~{paper.EPOCHS} ImageNet epochs; ours from a few hundred "
        f"steps, so they have moved only part of the way from {initial}: compare the directions, "
        "not the values."
    )
    write_lines(os.path.join(study_folder(output_dir, STUDY), "report.md"), lines)
