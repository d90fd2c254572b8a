"""ReLU vs PReLU (Sec. 3, Table 2): the 14-layer model with ReLU, channel-shared and
channel-wise PReLU, several seeds each; mean and spread of the top-1 / top-5 validation error.

Table 2's protocol at reduced size: training and validation images stored at one fixed shorter
side S (`common.stored_size`: `image_size * 9 // 8`; the paper: 256 for 224), training on
random `image_size` crops and flips of them, testing on 10 views (4 corners + centre and their
flips, softmax averaged) of the validation images (`common.evaluate_ten_view`).

Writes `prelu_errors.png`, `summary.json` and `report.md` into `<output_dir>/prelu/`; the
summary records each run's learned slopes (the `slopes` study trains the same models longer).
"""

from __future__ import annotations

import functools
import math
import os

import keras
import numpy as np

from rectifier_zoo import paper
from rectifier_zoo.architectures import ARCHITECTURES
from rectifier_zoo.models import build_model
from reproduce import common
from reproduce.output import (
    finish_runs,
    made_by,
    provenance,
    pyplot,
    resumable_run,
    smooth,
    study_folder,
    write_json,
    write_lines,
)
from reproduce.settings import StudySettings, scaled_architecture, settings_for

STUDY = "prelu"
VARIANTS = ("relu", "prelu_shared", "prelu_channelwise")
VARIANT_LABELS = {
    "relu": "ReLU",
    "prelu_shared": "PReLU channel-shared",
    "prelu_channelwise": "PReLU channel-wise",
}
# Table 2 (10-view, ImageNet val): top-1 / top-5 error in %, by our variant names.
PAPER_ERRORS = {
    "relu": paper.TABLE2_ERRORS["relu"],
    "prelu_shared": paper.TABLE2_ERRORS["prelu_channel_shared"],
    "prelu_channelwise": paper.TABLE2_ERRORS["prelu_channel_wise"],
}


def builder_call(variant: str, settings: StudySettings, seed: int) -> dict:
    """The `build_model` arguments of one run, as its `summary.json` records them."""
    return {
        "variant": variant,
        "architecture": ARCHITECTURES["model_small"].name,
        "width": settings.width,
        "input_size": settings.image_size,
        "activation": "relu" if variant == "relu" else "prelu",
        "channel_shared": variant == "prelu_shared",
        "dropout": settings.prelu_dropout,
        # The paper's rule (Eqn. 15 with a = 0.25 for PReLU); for the fc layers its forward
        # form (the inputs are standardized, so no need for the paper's fixed fc stds; the
        # fan-out form would give fc3 a std of sqrt(2/10) with 10 classes, see init.INIT_RUNS).
        "kernel_initializer": "msra_fan_out",
        "fc_initializer": "msra_fan_in",
        "seed": seed,
    }


def build(variant: str, settings: StudySettings, num_classes: int, seed: int = 0) -> keras.Model:
    """The study's 14-layer model for `variant`, drawn after `keras.utils.set_random_seed(seed)`."""
    call = builder_call(variant, settings, seed)
    keras.utils.set_random_seed(seed)
    return build_model(
        scaled_architecture(ARCHITECTURES[call["architecture"]], call["width"]),
        input_shape=(call["input_size"], call["input_size"], 3),
        classes=num_classes,
        activation=call["activation"],
        channel_shared=call["channel_shared"],
        dropout=call["dropout"],
        kernel_initializer=call["kernel_initializer"],
        fc_initializer=call["fc_initializer"],
        include_preprocessing=False,
    )


def load_data(settings: StudySettings, data_dir: str | None) -> common.InMemoryData:
    """The study's synthetic set (`prelu_difficulty`), stored at S for `image_size` crops."""
    return common.load_synthetic(
        settings.image_size,
        settings.prelu_difficulty,
        settings.train_images,
        settings.val_images,
        data_dir,
    )


def train(
    model: keras.Model,
    data: common.InMemoryData,
    settings: StudySettings,
    seed: int,
    steps: int,
    **kwargs,
) -> dict:
    """`steps` of the study's recipe (its learning rate, batch, decay and crops) on `model`.

    `kwargs` go to `common.train_classifier` (`test_views`, `trace`, ...).
    """
    return common.train_classifier(
        model,
        data,
        steps=steps,
        learning_rate=settings.prelu_learning_rate,
        batch_size=settings.batch_size,
        weight_decay=settings.weight_decay,
        image_size=settings.image_size,
        seed=seed,
        **kwargs,
    )


def run(
    output_dir: str,
    quick: bool = False,
    data_dir: str | None = None,
    settings: StudySettings | None = None,
) -> dict:
    """ReLU vs PReLU with several seeds; writes `<output_dir>/prelu/`, returns the summary.

    Args:
        output_dir: parent folder of the studies' folders.
        quick: the `quick` sizes (`settings.QUICK_SETTINGS`) rather than the full ones.
        data_dir: parent folder of the synthetic sets; `None`: the package's cache.
        settings: sizes that replace the `quick` or full ones (the tests' `SMOKE_SETTINGS`).
    """
    settings = settings_for(quick, settings)
    folder = study_folder(output_dir, STUDY)
    data = load_data(settings, data_dir)
    runs = {variant: [] for variant in VARIANTS}

    def one_run(variant: str, seed: int) -> dict:
        model = build(variant, settings, data.num_classes, seed)
        result = train(
            model, data, settings, seed, settings.prelu_steps, test_views=common.TEN_VIEW
        )
        result["slopes"] = common.prelu_slopes(model)
        # The single centre view as well, to show what the 10 views add.
        if result["diverged"]:
            result["center_top1_error"] = result["center_top5_error"] = math.nan
        else:
            result["center_top1_error"], result["center_top5_error"] = common.evaluate_classifier(
                model,
                common.center_crop(data.val_images, settings.image_size),
                data.val_labels,
            )
        del model
        keras.backend.clear_session()
        return result

    for seed in settings.seeds:
        for variant in VARIANTS:
            call = builder_call(variant, settings, seed)
            result = resumable_run(
                folder,
                f"{variant}_seed{seed}",
                functools.partial(one_run, variant, seed),
                settings=settings,
                quick=quick,
                builder_call=call,
            )
            result["seed"] = seed
            result["builder_call"] = call
            runs[variant].append(result)
            print(
                f"[prelu] {variant} seed {seed}: 10-view top-1 {result['top1_error']:.3f} "
                f"top-5 {result['top5_error']:.3f}, centre top-1 "
                f"{result['center_top1_error']:.3f} ({result['seconds']:.0f} s)",
                flush=True,
            )
    summary = {
        "errors_in_percent": True,
        "test_views": common.TEN_VIEW,
        "num_classes": data.num_classes,
        "results": {variant: _result(variant_runs) for variant, variant_runs in runs.items()},
        "paper_errors": {k: {"top1": v[0], "top5": v[1]} for k, v in PAPER_ERRORS.items()},
        "loss_curves": {v: [r["loss"] for r in rs] for v, rs in runs.items()},
        "runs": [r["builder_call"] for variant_runs in runs.values() for r in variant_runs],
        "data": {
            "root": data.root,
            "difficulty": settings.prelu_difficulty,
            "stored_size": common.stored_size(settings.image_size),
        },
        **provenance(settings, quick),
    }
    write_json(os.path.join(folder, "summary.json"), summary)
    finish_runs(folder)
    plot(summary, output_dir)
    report(summary, output_dir)
    return summary


def _result(variant_runs: list[dict]) -> dict:
    """One variant's errors (%) over the seeds, and what each run left."""
    top1 = np.array([r["top1_error"] for r in variant_runs]) * 100
    top5 = np.array([r["top5_error"] for r in variant_runs]) * 100
    return {
        "top1_error_mean": float(top1.mean()),
        "top1_error_std": float(top1.std(ddof=1)) if len(top1) > 1 else 0.0,
        "top5_error_mean": float(top5.mean()),
        "top5_error_std": float(top5.std(ddof=1)) if len(top5) > 1 else 0.0,
        "top1_error_per_seed": top1.tolist(),
        "top5_error_per_seed": top5.tolist(),
        "center_top1_error_per_seed": [100 * r["center_top1_error"] for r in variant_runs],
        "center_top5_error_per_seed": [100 * r["center_top5_error"] for r in variant_runs],
        "final_train_loss_per_seed": [
            float(np.mean(r["loss"][-common.FINAL_LOSS_WINDOW :])) for r in variant_runs
        ],
        "seeds": [r["seed"] for r in variant_runs],
        "slopes_per_seed": [r["slopes"] for r in variant_runs],
        "diverged": [r["diverged"] for r in variant_runs],
        "seconds": [r["seconds"] for r in variant_runs],
    }


def plot(summary: dict, output_dir: str) -> None:
    """`prelu_errors.png` into `<output_dir>/prelu/`: the errors by variant, the loss curves."""
    plt = pyplot()
    figure, axes = plt.subplots(1, 2, figsize=(12, 4.2), constrained_layout=True)
    results = summary["results"]
    positions = np.arange(len(VARIANTS))
    for offset, (metric, colour) in enumerate((("top1", "C0"), ("top5", "C1"))):
        means = [results[v][f"{metric}_error_mean"] for v in VARIANTS]
        stds = [results[v][f"{metric}_error_std"] for v in VARIANTS]
        x = positions + (offset - 0.5) * 0.35
        axes[0].bar(
            x,
            means,
            0.35,
            yerr=stds,
            capsize=4,
            color=colour,
            alpha=0.7,
            label=f"{metric[:3]}-{metric[3:]} error (mean +- std)",
        )
        for xi, variant in zip(x, VARIANTS, strict=True):
            per_seed = results[variant][f"{metric}_error_per_seed"]
            axes[0].plot([xi] * len(per_seed), per_seed, "k.", ms=5)
    axes[0].plot([], [], "k.", label="single seed")
    axes[0].set_xticks(positions, [VARIANT_LABELS[v] for v in VARIANTS])
    axes[0].set_ylabel("validation error (%), 10-view")
    axes[0].set_title("14-layer model (reduced), synthetic set")
    axes[0].legend(fontsize=8)
    axes[0].grid(True, axis="y", alpha=0.3)
    for index, variant in enumerate(VARIANTS):
        curves = summary["loss_curves"][variant]
        length = min(len(c) for c in curves)
        mean = np.mean([smooth(c[:length], 20) for c in curves], axis=0)
        axes[1].plot(
            np.arange(1, length + 1), mean, color=f"C{index}", label=VARIANT_LABELS[variant]
        )
    axes[1].set_xlabel("training step")
    axes[1].set_ylabel("training loss (mean over seeds, 20-step average)")
    axes[1].set_title("Training loss")
    axes[1].grid(True, alpha=0.3)
    axes[1].legend(fontsize=8)
    figure.savefig(os.path.join(study_folder(output_dir, STUDY), "prelu_errors.png"), dpi=110)
    plt.close(figure)


def report(summary: dict, output_dir: str) -> None:
    """`report.md` into `<output_dir>/prelu/`: the setup, the table and what reproduced."""
    settings = StudySettings.from_dict(summary["settings"])
    results = summary["results"]
    small = ARCHITECTURES["model_small"]
    scaled = scaled_architecture(small, settings.width)
    conv, conv_scaled = (
        "/".join(str(stage.filters) for stage in arch.stages) for arch in (small, scaled)
    )
    lines = [
        "# PReLU vs ReLU (Table 2)",
        "",
        made_by(STUDY, summary, output_dir)
        + f" on {summary['machine']['cpu_count']} CPU cores, {summary['date']}.",
        "",
        "## Setup",
        "",
        f"- The 14-layer model of Table 1 (`model_small`: 7x7/2 conv, 3x3/3 pool, 4 x 2x2 conv, "
        f"2x2/2 pool, 6 x 2x2 conv, SPP {{6,3,2,1}}, fc, fc, fc) with every width x"
        f"{settings.width:g} (conv {conv} -> {conv_scaled}, fc {small.fc_units[0]} -> "
        f"{scaled.fc_units[0]}), {settings.image_size} px inputs, dropout "
        f"{settings.prelu_dropout}.",
        f"- MSRA init with the PReLU factor for a = {paper.PRELU_INITIAL_SLOPE} (Eqn. 15): "
        "fan-out form for the conv "
        "layers (as for the paper's Models A/B/C), fan-in form for the fc layers (the paper used "
        "fixed fc stds for its +-128 inputs; ours are standardized). No dropout (the paper: "
        f"{paper.DROPOUT}; "
        "in a few hundred steps the nets underfit, and with dropout the ReLU net had not left "
        "ln(classes) after 600 steps in a trial).",
        f"- Synthetic set, difficulty {settings.prelu_difficulty}, {summary['num_classes']} "
        f"classes, {settings.train_images} training / {settings.val_images} validation images.",
        f"- Table 2's protocol at reduced size: training and validation images stored at one "
        f"fixed shorter side S = {summary['data']['stored_size']} (the paper: "
        f"{paper.TABLE2_SCALE}, no scale jitter); training on random {settings.image_size} px "
        f"crops + flips of them; testing on 10 views of each validation image (the 4 corner "
        f"and the centre {settings.image_size} px crops and their horizontal flips, softmax "
        f"averaged; the paper: 224 crops of 256), the evaluator's `ten_view` views. The "
        f"single centre crop is given too.",
        f"- SGD momentum {paper.MOMENTUM}, lr {settings.prelu_learning_rate}, batch "
        f"{settings.batch_size}, "
        f"weight decay {settings.weight_decay} (not on slopes), {settings.prelu_steps} steps; "
        f"seeds {list(settings.seeds)} (the same seeds and batches for each variant).",
        "- Top-5 error is over 10 classes, so it is much easier than ImageNet's.",
        "",
        "## Results (10-view validation error, %, mean +- std over seeds)",
        "",
        "| model | top-1 (10-view) | top-5 (10-view) | top-1 per seed | top-5 per seed | "
        "centre-crop top-1 | paper top-1 / top-5 (ImageNet, 10-view) |",
        "|---|---|---|---|---|---|---|",
    ]
    for variant in VARIANTS:
        r = results[variant]
        paper_errors = PAPER_ERRORS[variant]
        center = r.get("center_top1_error_per_seed")
        center_text = f"{np.mean(center):.2f}" if center else "-"
        lines.append(
            f"| {VARIANT_LABELS[variant]} | {r['top1_error_mean']:.2f} +- "
            f"{r['top1_error_std']:.2f} | {r['top5_error_mean']:.2f} +- "
            f"{r['top5_error_std']:.2f} | {', '.join(f'{e:.1f}' for e in r['top1_error_per_seed'])}"
            f" | {', '.join(f'{e:.1f}' for e in r['top5_error_per_seed'])} | {center_text} | "
            f"{paper_errors[0]} / {paper_errors[1]} |"
        )
    lines += ["", "![errors](prelu_errors.png)", "", "## What reproduced", ""]
    relu = results["relu"]
    for variant in ("prelu_shared", "prelu_channelwise"):
        r = results[variant]
        gain = relu["top1_error_mean"] - r["top1_error_mean"]
        spread = math.sqrt(
            (relu["top1_error_std"] ** 2 + r["top1_error_std"] ** 2) / max(len(settings.seeds), 1)
        )
        if len(settings.seeds) < 2 and gain > 0:
            # One seed has no spread: nothing can be told from noise.
            verdict = "same direction as the paper; one seed cannot tell it from noise"
        elif gain > 2 * spread and gain > 0:
            verdict = "reproduced (PReLU better by more than twice the standard error)"
        elif gain > 0:
            verdict = "same direction as the paper, but within the seed-to-seed noise"
        else:
            verdict = "NOT reproduced (PReLU not better than ReLU)"
        lines.append(
            f"- {VARIANT_LABELS[variant]} vs ReLU: top-1 error {r['top1_error_mean']:.2f}% vs "
            f"{relu['top1_error_mean']:.2f}% (difference {gain:+.2f} points, standard error of "
            f"the difference {spread:.2f}; the paper: "
            f"{PAPER_ERRORS['relu'][0] - PAPER_ERRORS[variant][0]:+.2f}): {verdict}."
        )
    shared, wise = results["prelu_shared"], results["prelu_channelwise"]
    lines.append(
        f"- Channel-wise vs channel-shared: {wise['top1_error_mean']:.2f}% vs "
        f"{shared['top1_error_mean']:.2f}% (the paper: {PAPER_ERRORS['prelu_channelwise'][0]} "
        f"vs {PAPER_ERRORS['prelu_shared'][0]}, nearly equal)."
    )
    lines.append(
        f"- The runs stop after {settings.prelu_steps} steps, far from convergence, so the "
        "gap measures how fast each net learns as much as where it ends; the paper's gap is "
        "after full training (its Figure 4 also shows PReLU converging faster). Top-5 error "
        "is near 0 for all: with 10 classes it says little."
    )
    write_lines(os.path.join(study_folder(output_dir, STUDY), "report.md"), lines)
