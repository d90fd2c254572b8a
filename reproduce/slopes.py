"""The learned PReLU slopes (Sec. 2.1, Table 1): the 14-layer model with channel-shared and
channel-wise PReLU, trained longer than in the `prelu` study, its slopes against depth and over
the steps, next to the paper's values.

The models, data and learning rate are the `prelu` study's (`prelu.build`, its synthetic set);
the runs are `slopes_steps` long (the `prelu` study's are too short for the slopes to settle),
and the slopes are read every 1/40 of them. Slopes get the weights' learning rate and momentum
and no weight decay, as in the paper (`CaffeSGD` with the model's exclusions). Writes
`slopes.png`, `summary.json` and `report.md` into `<output_dir>/slopes/`.
"""

from __future__ import annotations

import functools
import os

import keras
import numpy as np

from rectifier_zoo import paper
from reproduce import common, prelu
from reproduce.output import (
    finish_runs,
    made_by,
    provenance,
    pyplot,
    resumable_run,
    study_folder,
    write_json,
    write_lines,
)
from reproduce.settings import StudySettings, settings_for

STUDY = "slopes"
VARIANTS = ("prelu_shared", "prelu_channelwise")
# Table 1 by variant: layer group -> slope, or (min, max) over the stage's layers for the
# stacked conv2x / conv3x layers.
PAPER_SLOPES = {
    variant: {group: values[column] for group, values in paper.TABLE1_SLOPES.items()}
    for column, variant in enumerate(VARIANTS)
}
# Readings of the slopes per run (plus the initial one).
TRACE_POINTS = 40


def layer_group(name: str) -> str:
    """The row of Table 1 a PReLU layer belongs to: prelu1 -> conv1, prelu2_3 -> conv2, ..."""
    suffix = name.removeprefix("prelu").lstrip("_")
    return suffix if suffix.startswith("fc") else f"conv{suffix.split('_')[0]}"


def run(
    output_dir: str,
    quick: bool = False,
    data_dir: str | None = None,
    settings: StudySettings | None = None,
) -> dict:
    """The slopes learned by channel-shared and channel-wise PReLU; writes `<output_dir>/slopes/`.

    Args:
        output_dir: parent folder of the studies' folders.
        quick: the `quick` sizes (`settings.QUICK_SETTINGS`) rather than the full ones.
        data_dir: parent folder of the synthetic sets; `None`: the package's cache.
        settings: sizes that replace the `quick` or full ones (the tests' `SMOKE_SETTINGS`).
    """
    settings = settings_for(quick, settings)
    folder = study_folder(output_dir, STUDY)
    data = prelu.load_data(settings, data_dir)
    trace_every = max(settings.slopes_steps // TRACE_POINTS, 1)

    def one_run(variant: str, seed: int) -> dict:
        model = prelu.build(variant, settings, data.num_classes, seed)
        result = prelu.train(
            model,
            data,
            settings,
            seed,
            settings.slopes_steps,
            trace=common.prelu_slopes,
            trace_every=trace_every,
        )
        del model
        keras.backend.clear_session()
        return result

    slopes, calls = {}, []
    for variant in VARIANTS:
        runs = []
        for seed in settings.slopes_seeds:
            call = prelu.builder_call(variant, settings, seed)
            result = resumable_run(
                folder,
                f"{variant}_seed{seed}",
                functools.partial(one_run, variant, seed),
                settings=settings,
                quick=quick,
                builder_call=call,
            )
            runs.append(result)
            calls.append(call)
            print(
                f"[slopes] {variant} seed {seed}: top-1 {result['top1_error']:.3f}, slopes "
                + " ".join(f"{v:.2f}" for v in result["trace"][-1].values())
                + f" ({result['seconds']:.0f} s)",
                flush=True,
            )
        slopes[variant] = _variant_slopes(runs)
    summary = {
        "slopes": slopes,
        "paper_table1": PAPER_SLOPES,
        "initial_slope": paper.PRELU_INITIAL_SLOPE,
        "runs": calls,
        "data": {"root": data.root, "difficulty": settings.prelu_difficulty},
        **provenance(settings, quick),
    }
    write_json(os.path.join(folder, "summary.json"), summary)
    finish_runs(folder)
    plot(summary, output_dir)
    report(summary, output_dir)
    return summary


def _variant_slopes(runs: list[dict]) -> dict:
    """One variant's slopes: the last reading's mean and std over the seeds, and every reading."""
    names = list(runs[0]["trace"][0])
    # [seed, reading, layer]
    traces = np.array([[[reading[n] for n in names] for reading in r["trace"]] for r in runs])
    final = traces[:, -1]
    return {
        "layers": names,
        "groups": [layer_group(n) for n in names],
        "mean": final.mean(axis=0).tolist(),
        "std": (final.std(axis=0, ddof=1) if len(final) > 1 else 0 * final[0]).tolist(),
        "per_seed": final.tolist(),
        "trace_steps": runs[0]["trace_steps"],
        "trace_per_seed": traces.tolist(),
        "top1_error_per_seed": [r["top1_error"] for r in runs],
        "final_train_loss_per_seed": [
            float(np.mean(r["loss"][-common.FINAL_LOSS_WINDOW :])) for r in runs
        ],
        "diverged": [r["diverged"] for r in runs],
        "seconds": [r["seconds"] for r in runs],
    }


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
    """`slopes.png` into `<output_dir>/slopes/`: the last slopes by layer, the paper's beside
    them (top), and each layer's slope over the steps, mean over the seeds (bottom)."""
    plt = pyplot()
    initial = summary["initial_slope"]
    figure, axes = plt.subplots(2, 2, figsize=(13, 9), constrained_layout=True)
    for column, variant in enumerate(VARIANTS):
        s = summary["slopes"][variant]
        short = [n.removeprefix("prelu").lstrip("_") for n in s["layers"]]
        axis = axes[0, column]
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
        axis.set_xticks(x, short, rotation=45)
        axis.set_xlabel("layer (depth order)")
        axis.set_ylabel("slope a" + (" (mean over channels)" if "channelwise" in variant else ""))
        axis.set_title(prelu.VARIANT_LABELS[variant])
        axis.grid(True, alpha=0.3)
        axis.legend(fontsize=8)

        axis = axes[1, column]
        mean_trace = np.mean(s["trace_per_seed"], axis=0)
        colours = plt.get_cmap("viridis")(np.linspace(0, 1, len(short)))
        for index, name in enumerate(short):
            axis.plot(s["trace_steps"], mean_trace[:, index], color=colours[index], label=name)
        axis.axhline(initial, color="gray", ls=":", lw=1)
        axis.set_xlabel("training step")
        axis.set_ylabel("slope a (mean over seeds)")
        axis.set_title(f"{prelu.VARIANT_LABELS[variant]}: slopes during training")
        axis.grid(True, alpha=0.3)
        axis.legend(fontsize=7, ncol=2, title="layer", title_fontsize=7)
    figure.savefig(os.path.join(study_folder(output_dir, STUDY), "slopes.png"), dpi=110)
    plt.close(figure)


def _group_means(layers: list[str], values) -> dict[str, float]:
    """The mean slope of each Table 1 row (conv1, conv2, conv3, fc1, fc2)."""
    groups = {}
    for name, value in zip(layers, values, strict=True):
        groups.setdefault(layer_group(name), []).append(value)
    return {group: float(np.mean(v)) for group, v in groups.items()}


# Table 1's pattern, as checks of one run's last slopes (by layer name) and its row means.
PATTERN = {
    "conv1 keeps the largest slope": lambda by_layer, rows: (
        rows["conv1"] > max(v for name, v in by_layer.items() if layer_group(name) != "conv1")
    ),
    "deeper stages smaller (conv1 > conv2x mean > conv3x mean)": (
        lambda by_layer, rows: rows["conv1"] > rows["conv2"] > rows["conv3"]
    ),
    "fc1 and fc2 below the conv stages' means": (
        lambda by_layer, rows: (
            max(rows["fc1"], rows["fc2"]) < min(rows["conv1"], rows["conv2"], rows["conv3"])
        )
    ),
}


def report(summary: dict, output_dir: str) -> None:
    """`report.md` into `<output_dir>/slopes/`: the slopes next to Table 1, what reproduced."""
    settings = StudySettings.from_dict(summary["settings"])
    initial = summary["initial_slope"]
    lines = [
        "# Learned PReLU slopes (Table 1)",
        "",
        made_by(STUDY, summary, output_dir) + f": the `prelu` study's 14-layer models (width x"
        f"{settings.width:g}, {settings.image_size} px crops, lr {settings.prelu_learning_rate}, "
        f"batch {settings.batch_size}) trained {settings.slopes_steps} steps, "
        f"{len(settings.slopes_seeds)} seeds; slopes start at {initial}, get the weights' "
        "learning rate and momentum and no weight decay.",
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
        rows = _group_means(s["layers"], s["mean"])
        per_seed = [
            (dict(zip(s["layers"], values, strict=True)), _group_means(s["layers"], values))
            for values in s["per_seed"]
        ]
        checks = "; ".join(
            f"{claim}: {sum(bool(check(*run)) for run in per_seed)} of {len(per_seed)} seeds"
            for claim, check in PATTERN.items()
        )
        trace = np.mean(s["trace_per_seed"], axis=0)
        last_quarter = trace[-1] - trace[-1 - len(trace) // 4]
        errors = ", ".join(f"{100 * e:.1f}%" for e in s["top1_error_per_seed"])
        lines.append(
            f"- {prelu.VARIANT_LABELS[variant]} (centre-crop top-1 error {errors}): row means "
            f"conv1 {rows['conv1']:.3f}, conv2x {rows['conv2']:.3f}, conv3x {rows['conv3']:.3f}, "
            f"fc1 {rows['fc1']:.3f}, fc2 {rows['fc2']:.3f}. Table 1's pattern, seed by seed: "
            f"{checks}. Moved from {initial} by at most "
            f"{np.max(np.abs(trace[-1] - initial)):.3f}, in the last quarter of the steps by at "
            f"most {np.max(np.abs(last_quarter)):.3f}."
        )
    lines.append(
        f"- The paper's slopes come from ~{paper.EPOCHS} ImageNet epochs (hundreds of thousands "
        f"of steps at batch {paper.BATCH_SIZE}); ours from {settings.slopes_steps} steps on a "
        "small synthetic set: compare the pattern, not the values."
    )
    write_lines(os.path.join(study_folder(output_dir, STUDY), "report.md"), lines)
