"""The initialization study (Sec. 2.2, Figs. 2-3): MSRA vs Xavier on deep ReLU models.

First the standard deviation of the forward responses (Eqn. 10) and of the backward gradients
(Eqn. 14) layer by layer at initialization under MSRA fan-in, MSRA fan-out and Xavier (std
sqrt(1/n)); then each init trained from scratch with the same data, learning rate and steps,
for every seed: the training loss of every step and the validation top-1 error (centre crop)
of every epoch, as the paper's figures plot. The models are the paper's: Fig. 2's 22-layer
Model B (Table 3) and Fig. 3's 30-layer model (`deep_architecture(30)`), both at the study's
width and input size. The paper's claims are judged for each seed (`claims`).

Writes `init_statistics.png`, `init_training.png`, `summary.json` and `report.md` into
`<output_dir>/init/`.
"""

from __future__ import annotations

import functools
import math
import os
from collections.abc import Callable

import keras
import numpy as np
import tensorflow as tf

from rectifier_zoo import paper
from rectifier_zoo.architectures import ARCHITECTURES, Architecture, deep_architecture
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

STUDY = "init"
# The inits trained (for every seed); `INIT_RUNS` adds one more to the statistics.
INITS = ("msra_fan_in", "msra_fan_out", "xavier")
# The model of a depth: Fig. 2's 22-layer Model B (Table 3); any other depth is the init-study
# family `deep_architecture(depth)` (the 14-layer model plus 2x2 convs; 30: Fig. 3's model).
FIGURE_ARCHITECTURES = {22: "model_b"}
# A run converges when its final loss is this far below ln(classes), stalls within this of it.
LEARN_MARGIN = 0.3
STALL_MARGIN = 0.05
# A run has left the plateau at ln(classes) once its loss, averaged over PLATEAU_WINDOW steps,
# is STALL_MARGIN below it, and is back on it when that average returns within PLATEAU_MARGIN.
PLATEAU_WINDOW = 50
PLATEAU_MARGIN = 0.01
# Init study runs: name -> (conv initializer, fc initializer). The fc layers use the forward
# (fan-in) form of the rule under test: the paper never drew its fc layers with the fan-out
# form (fixed stds instead), and with 10 classes the fan-out form gives fc3 a std of
# sqrt(2/10), ~5x the fan-in one, which in our trials killed training (loss stuck at ln(10) at
# both depths in the single-seed quick run before the seeds). `msra_fan_out_fc_too` keeps that
# form in the statistics; it is not trained.
INIT_RUNS = {
    "msra_fan_in": ("msra_fan_in", "msra_fan_in"),
    "msra_fan_out": ("msra_fan_out", "msra_fan_in"),
    "xavier": ("xavier", "xavier"),
    "msra_fan_out_fc_too": ("msra_fan_out", "msra_fan_out"),
}
# Build seed of the models measured at initialization (keras.utils.set_random_seed).
MODEL_SEED = 1


# Statistics at initialization.


def is_weight_layer(layer) -> bool:
    return isinstance(layer, keras.layers.Conv2D | keras.layers.Dense)


def layer_statistics(model: keras.Model, images, labels) -> dict[str, list]:
    """Std of each weight layer's response and of the loss gradient at its input.

    The model must be a chain of layers (every layer feeds the next), as all the paper's models
    are. The forward statistic is the std of `y_l`, the output of the l-th conv or Dense layer
    before its rectifier (Eqn. 10); the backward one is the std of `dL/dx_l`, the gradient of
    the mean softmax cross-entropy at the layer's input (Eqn. 14). Dropout is off.

    Args:
        model: a chain model whose last layer gives logits or probabilities.
        images: a batch of inputs.
        labels: integer labels of the batch (random labels do, as at initialization).

    Returns:
        `{"layers": names, "forward_std": [...], "backward_std": [...]}`, one entry per weight
        layer in order.
    """
    layers = [layer for layer in model.layers if not isinstance(layer, keras.layers.InputLayer)]
    names, inputs, outputs = [], [], []
    with tf.GradientTape() as tape:
        x = tf.convert_to_tensor(images, tf.float32)
        for layer in layers:
            if is_weight_layer(layer):
                tape.watch(x)
                inputs.append(x)
                x = layer(x, training=False)
                names.append(layer.name)
                outputs.append(x)
            else:
                x = layer(x, training=False)
        from_logits = getattr(layers[-1], "activation", None) is not keras.activations.softmax
        loss = tf.reduce_mean(
            keras.losses.sparse_categorical_crossentropy(labels, x, from_logits=from_logits)
        )
    gradients = tape.gradient(loss, inputs)
    return {
        "layers": names,
        "forward_std": [float(tf.math.reduce_std(y)) for y in outputs],
        "backward_std": [float(tf.math.reduce_std(g)) for g in gradients],
    }


# The study.


def architecture(depth: int) -> Architecture:
    """The trained model of `depth`: Fig. 2's Model B at 22, else `deep_architecture(depth)`."""
    name = FIGURE_ARCHITECTURES.get(depth)
    return ARCHITECTURES[name] if name else deep_architecture(depth)


def figure(depth: int) -> str:
    """The paper's figure of the `depth`-layer run ("Fig. 2", "Fig. 3"; "" for other depths)."""
    return {22: "Fig. 2", 30: "Fig. 3"}.get(depth, "")


def builder_call(depth: int, init: str, width: float, input_size: int, seed: int) -> dict:
    """The `build_model` arguments of one run, as its `summary.json` records them."""
    conv_initializer, fc_initializer = INIT_RUNS[init]
    return {
        "depth": depth,
        "architecture": architecture(depth).name,
        "width": width,
        "input_size": input_size,
        "init": init,
        "kernel_initializer": conv_initializer,
        "fc_initializer": fc_initializer,
        "activation": "relu",
        "seed": seed,
    }


def build(call: dict, num_classes: int, **kwargs) -> keras.Model:
    """The model of a `builder_call` record, drawn after `keras.utils.set_random_seed(seed)`.

    The global seed makes the runs reproducible; every layer gets its own draw (the variance
    argument needs independent layers).
    """
    keras.utils.set_random_seed(call["seed"])
    return build_model(
        scaled_architecture(architecture(call["depth"]), call["width"]),
        input_shape=(call["input_size"], call["input_size"], 3),
        classes=num_classes,
        activation=call["activation"],
        kernel_initializer=call["kernel_initializer"],
        fc_initializer=call["fc_initializer"],
        include_preprocessing=False,
        **kwargs,
    )


def run(
    output_dir: str,
    quick: bool = False,
    data_dir: str | None = None,
    settings: StudySettings | None = None,
) -> dict:
    """Init statistics and training from scratch; writes `<output_dir>/init/`, returns the summary.

    Args:
        output_dir: parent folder of the studies' folders.
        quick: the `quick` sizes (`settings.QUICK_SETTINGS`) rather than the full ones.
        data_dir: parent folder of the synthetic sets; `None`: the package's cache.
        settings: sizes that replace the `quick` or full ones (the tests' `SMOKE_SETTINGS`).
    """
    settings = settings_for(quick, settings)
    folder = study_folder(output_dir, STUDY)
    size = settings.init_image_size
    data = common.load_synthetic(
        size, settings.init_difficulty, settings.init_train_images, settings.val_images, data_dir
    )
    rng = np.random.default_rng(0)
    # Standardized images at the statistics' size (the same standardization as `data`).
    stats_data = common.load_synthetic(
        settings.stats_image_size,
        settings.init_difficulty,
        settings.init_train_images,
        settings.val_images,
        data_dir,
    )
    stats_images = common.center_crop(
        stats_data.val_images[: settings.stats_batch], settings.stats_image_size
    )
    stats_labels = rng.integers(0, data.num_classes, len(stats_images))
    del stats_data

    def one_run(call: dict, depth: int, seed: int) -> dict:
        # Dropout off: the study is about the start of training, and dropout only slows the
        # few hundred steps we can afford. Softmax output, as the trainer's step needs.
        model = build(call, data.num_classes, dropout=0.0)
        result = common.train_classifier(
            model,
            data,
            steps=settings.init_steps_at(depth),
            learning_rate=settings.init_learning_rate_at(depth),
            batch_size=settings.batch_size,
            weight_decay=settings.weight_decay,
            image_size=size,
            seed=seed,
            epoch_eval=True,
        )
        del model
        keras.backend.clear_session()
        return result

    statistics, statistics_builds, runs = {}, {}, []
    for depth in settings.init_depths:
        statistics[str(depth)], statistics_builds[str(depth)] = {}, {}
        for init in INIT_RUNS:
            call = builder_call(
                depth, init, settings.stats_width, settings.stats_image_size, MODEL_SEED
            )
            # Measured on logits; `layer_statistics` takes the cross-entropy from them.
            model = build(call, data.num_classes, dropout=0.5, classifier_activation=None)
            statistics[str(depth)][init] = layer_statistics(model, stats_images, stats_labels)
            statistics_builds[str(depth)][init] = call
            del model
            keras.backend.clear_session()
        for seed in settings.seeds:
            for init in INITS:
                call = builder_call(depth, init, settings.init_width, size, seed)
                result = resumable_run(
                    folder,
                    f"depth{depth}_{init}_seed{seed}",
                    functools.partial(one_run, call, depth, seed),
                    settings=settings,
                    quick=quick,
                    builder_call=call,
                )
                record = {**call, **result, "final_loss": _final_loss(result)}
                runs.append(record)
                print(
                    f"[init] depth {depth} ({call['architecture']}) {init} seed {seed}: final "
                    f"loss {record['final_loss']:.4f} top-1 error {result['top1_error']:.3f} "
                    f"({result['seconds']:.0f} s)",
                    flush=True,
                )
    summary = _summary(statistics, statistics_builds, runs, data, settings, quick)
    write_json(os.path.join(folder, "summary.json"), summary)
    finish_runs(folder)
    plot(summary, output_dir)
    report(summary, output_dir)
    return summary


def _steps_text(settings: StudySettings) -> str:
    """The report's steps and lr per depth: "lr 0.005 for 300 steps (9.7 epochs) at depth 30"."""
    steps_per_epoch = max(settings.init_train_images // settings.batch_size, 1)
    return ", ".join(
        f"lr {rate} for {steps} steps ({steps / steps_per_epoch:.1f} epochs) at depth {depth}"
        for depth, steps, rate in zip(
            settings.init_depths, settings.init_steps, settings.init_learning_rates, strict=True
        )
    )


def _final_loss(result: dict) -> float:
    if result["diverged"]:
        return float("nan")
    return float(np.mean(result["loss"][-common.FINAL_LOSS_WINDOW :]))


def _by_depth(runs: list[dict], value: str | Callable[[dict], object]) -> dict:
    """`{depth: {init: [value per seed]}}` of the runs, in seed order: a field of each run or
    a function of it."""
    table: dict = {}
    for r in runs:
        entry = r[value] if isinstance(value, str) else value(r)
        table.setdefault(str(r["depth"]), {}).setdefault(r["init"], []).append(entry)
    return table


def _summary(statistics, statistics_builds, runs, data, settings, quick: bool) -> dict:
    summary = {
        "ln_classes": math.log(data.num_classes),
        "num_classes": data.num_classes,
        "final_loss_window": common.FINAL_LOSS_WINDOW,
        "depths": {
            str(depth): {"architecture": architecture(depth).name, "figure": figure(depth)}
            for depth in settings.init_depths
        },
        "initializers": {name: {"conv": conv, "fc": fc} for name, (conv, fc) in INIT_RUNS.items()},
        "runs": runs,
        "final_loss": _by_depth(runs, "final_loss"),
        "top1_error": _by_depth(runs, "top1_error"),
        "statistics": statistics,
        "statistics_builds": statistics_builds,
        "data": {
            "root": data.root,
            "difficulty": settings.init_difficulty,
            "stored_size": common.stored_size(settings.init_image_size),
        },
        **provenance(settings, quick),
    }
    summary["claims"] = claims(summary)
    summary["plateau"] = plateau_departures(summary)
    return summary


# Verdicts, per seed.


def learns(loss: float, ln_classes: float) -> bool:
    """Converging: the final loss at least 0.3 below ln(classes), the loss of a uniform guess."""
    return math.isfinite(loss) and loss < ln_classes - LEARN_MARGIN


def stalls(loss: float, ln_classes: float) -> bool:
    """Stalled: the final loss within 0.05 of ln(classes)."""
    return math.isfinite(loss) and abs(loss - ln_classes) < STALL_MARGIN


def plateau_departure(loss, ln_classes: float) -> dict:
    """When a run first left the plateau at ln(classes) and when it first came back to it.

    A stalled run may never have left (gradients too small to start: Fig. 3's Xavier) or have
    left and fallen back, which the final loss alone does not tell apart.

    Returns:
        `{"left_at", "back_at", "ends_on_plateau"}`: steps done when the `PLATEAU_WINDOW`-step
        mean loss first fell `STALL_MARGIN` below ln(classes), and (after that) first came
        back within `PLATEAU_MARGIN` of it (`None`: never), and whether the last mean is within
        `PLATEAU_MARGIN` of it.
    """
    # Full windows only (a shorter run: one window of all its steps); mean[i] is the mean loss
    # of steps i + 1 ... i + window.
    window = max(1, min(PLATEAU_WINDOW, len(loss)))
    mean = np.convolve(np.asarray(loss, dtype=np.float64), np.ones(window) / window, "valid")
    on_plateau = np.abs(mean - ln_classes) < PLATEAU_MARGIN
    below = np.flatnonzero(mean < ln_classes - STALL_MARGIN)
    left_at = back_at = None
    if below.size:
        back = np.flatnonzero(on_plateau[below[0] :])
        left_at = int(below[0]) + window
        back_at = left_at + int(back[0]) if back.size else None
    return {
        "left_at": left_at,
        "back_at": back_at,
        "ends_on_plateau": bool(on_plateau.size and on_plateau[-1]),
    }


def plateau_departures(summary: dict) -> dict:
    """`{depth: {init: [plateau_departure per seed]}}` of the summary's runs."""
    ln_classes = summary["ln_classes"]
    return _by_depth(summary["runs"], lambda r: plateau_departure(r["loss"], ln_classes))


def mean_epoch_error(run: dict) -> float:
    """The mean of the per-epoch top-1 errors: the area under the error curve (lower: faster)."""
    return float(np.mean(run["epoch_top1_error"])) if run["epoch_top1_error"] else math.nan


def claims(summary: dict) -> dict:
    """The paper's claims, judged for each seed of each depth.

    Fig. 3 (the 30-layer model, and any other `deep_architecture` depth): MSRA fan-in and
    fan-out converge, Xavier stalls. Fig. 2 (Model B): all three converge, and each MSRA init
    reduces the error faster than Xavier (a lower mean top-1 error over the epochs).

    Returns:
        `{depth: {"figure", "claim", "checks": {name: [bool per seed]}, "holds": [bool per
        seed], "seeds_holding", "seeds"}}`.
    """
    ln_classes = summary["ln_classes"]
    result = {}
    for depth, info in summary["depths"].items():
        runs = [r for r in summary["runs"] if str(r["depth"]) == depth]
        seeds = sorted({r["seed"] for r in runs})
        by = {(r["init"], r["seed"]): r for r in runs}
        checks: dict[str, list[bool]] = {}
        if info["architecture"] in FIGURE_ARCHITECTURES.values():
            claim = "all three inits converge, MSRA reduces the error faster than Xavier"
            for init in INITS:
                checks[f"{init} converges"] = [
                    learns(by[init, s]["final_loss"], ln_classes) for s in seeds
                ]
            for init in INITS[:2]:
                checks[f"{init} faster than xavier"] = [
                    mean_epoch_error(by[init, s]) < mean_epoch_error(by["xavier", s]) for s in seeds
                ]
        else:
            claim = "MSRA (fan-in and fan-out) converges, Xavier stalls"
            for init in INITS[:2]:
                checks[f"{init} converges"] = [
                    learns(by[init, s]["final_loss"], ln_classes) for s in seeds
                ]
            checks["xavier stalls"] = [
                stalls(by["xavier", s]["final_loss"], ln_classes) for s in seeds
            ]
        holds = [all(values[i] for values in checks.values()) for i in range(len(seeds))]
        result[depth] = {
            "figure": info["figure"],
            "architecture": info["architecture"],
            "claim": claim,
            "seeds": seeds,
            "checks": checks,
            "holds": holds,
            "seeds_holding": sum(holds),
        }
    return result


# Figures.


def plot(summary: dict, output_dir: str) -> None:
    """`init_statistics.png` and `init_training.png` into `<output_dir>/init/`."""
    folder = study_folder(output_dir, STUDY)
    _plot_statistics(summary["statistics"], os.path.join(folder, "init_statistics.png"))
    _plot_training(summary, os.path.join(folder, "init_training.png"))


def _plot_statistics(statistics: dict, path: str) -> None:
    plt = pyplot()
    depths = list(statistics)
    figure, axes = plt.subplots(
        len(depths), 2, figsize=(11, 3.8 * len(depths)), squeeze=False, constrained_layout=True
    )
    for row, depth in enumerate(depths):
        for column, (key, title) in enumerate(
            (
                ("forward_std", "forward: std of response y_l"),
                ("backward_std", "backward: std of gradient dL/dx_l"),
            )
        ):
            axis = axes[row][column]
            for init, stats in statistics[depth].items():
                values = np.asarray(stats[key])
                axis.semilogy(np.arange(1, len(values) + 1), values, marker="o", ms=3, label=init)
            reference = np.asarray(statistics[depth]["msra_fan_in"][key])
            layers = np.arange(1, len(reference) + 1)
            # Xavier's expected decay: a factor 1/sqrt(2) per ReLU (Sec. 2.2).
            anchor = statistics[depth]["xavier"][key][0 if key == "forward_std" else -1]
            exponent = (layers - 1) if key == "forward_std" else (len(layers) - layers)
            axis.semilogy(
                layers, anchor * 2.0 ** (-exponent / 2), "k--", lw=1, label="2^(-L/2) (theory)"
            )
            axis.set_xlabel("layer (conv, then fc)")
            axis.set_ylabel("standard deviation (log scale)")
            axis.set_title(f"{depth}-layer ReLU model, {title}")
            axis.grid(True, which="both", alpha=0.3)
            axis.legend(fontsize=8)
    figure.suptitle("At initialization (one batch, random labels): MSRA vs Xavier")
    figure.savefig(path, dpi=110)
    plt.close(figure)


def _depth_title(summary: dict, depth: str) -> str:
    info = summary["depths"][depth]
    figure_name = f"{info['figure']}: " if info["figure"] else ""
    return f"{figure_name}{depth}-layer {info['architecture']}"


def _plot_training(summary: dict, path: str) -> None:
    """Per depth: training loss vs step and validation top-1 error vs epoch, every init and seed."""
    plt = pyplot()
    ln_classes = summary["ln_classes"]
    chance = 100 * (1 - 1 / summary["num_classes"])
    depths = list(summary["depths"])
    figure, axes = plt.subplots(
        len(depths), 2, figsize=(12, 4.2 * len(depths)), squeeze=False, constrained_layout=True
    )
    styles = ("-", "--", ":", "-.")
    for row, depth in enumerate(depths):
        loss_axis, error_axis = axes[row]
        runs = [r for r in summary["runs"] if str(r["depth"]) == depth]
        seeds = sorted({r["seed"] for r in runs})
        for r in runs:
            colour = f"C{INITS.index(r['init'])}"
            style = styles[seeds.index(r["seed"]) % len(styles)]
            label = f"{r['init']} seed {r['seed']}"
            loss_axis.plot(
                np.arange(1, len(r["loss"]) + 1), smooth(r["loss"]), color=colour, ls=style,
                lw=1.2, label=label,
            )  # fmt: skip
            error_axis.plot(
                r["epochs"], 100 * np.asarray(r["epoch_top1_error"]), color=colour, ls=style,
                marker="o", ms=3, lw=1.2, label=label,
            )  # fmt: skip
        loss_axis.axhline(
            ln_classes, color="k", ls="--", lw=1, label=f"ln(classes) = {ln_classes:.3f}"
        )
        loss_axis.set_xlabel("training step")
        loss_axis.set_ylabel("training loss (moving average of 10 steps)")
        loss_axis.set_ylim(0, max(2 * ln_classes, 1))
        loss_axis.legend(fontsize=7, ncol=2)
        error_axis.axhline(chance, color="k", ls="--", lw=1, label=f"chance = {chance:.0f}%")
        error_axis.set_xlabel("epoch (passes over the training images)")
        error_axis.set_ylabel("validation top-1 error (%), centre crop")
        error_axis.set_ylim(0, 100)
        for axis, what in ((loss_axis, "training loss"), (error_axis, "top-1 error")):
            axis.set_title(f"{_depth_title(summary, depth)}, ReLU: {what}")
            axis.grid(True, alpha=0.3)
        error_axis.legend(fontsize=7, ncol=2)
    figure.suptitle("Trained from scratch: MSRA fan-in, MSRA fan-out, Xavier (line style: seed)")
    figure.savefig(path, dpi=110)
    plt.close(figure)


# Report.


def _ratio(values) -> float:
    values = np.asarray(values)
    return float(values.max() / values.min())


def report(summary: dict, output_dir: str) -> None:
    """`report.md` into `<output_dir>/init/`: the setup, the tables and what reproduced."""
    settings = StudySettings.from_dict(summary["settings"])
    ln_classes = summary["ln_classes"]
    models = []
    for depth, info in summary["depths"].items():
        scaled = scaled_architecture(architecture(int(depth)), settings.init_width)
        convs = "/".join(str(stage.filters) for stage in scaled.stages)
        kernels = "/".join(f"{stage.kernel_size}x{stage.kernel_size}" for stage in scaled.stages)
        models.append(
            f"{info['figure'] or 'extra'}: `{info['architecture']}` ({depth} layers; conv "
            f"widths {convs}, kernels {kernels}, fc {scaled.fc_units[0]})"
        )
    lines = [
        "# Initialization study (Sec. 2.2, Figures 2-3)",
        "",
        made_by(STUDY, summary, output_dir)
        + f" on {summary['machine']['cpu_count']} CPU cores, {summary['date']}.",
        "",
        "## Setup",
        "",
        "- Models, as the paper's figures: " + "; ".join(models) + ". Fig. 2's model is Model B "
        "of Table 3, Fig. 3's the 14-layer model plus 16 2x2 convs; both at width "
        f"x{settings.init_width:g} of the paper's and {settings.init_image_size} px inputs. "
        "ReLU, biases 0, no dropout. Conv layers drawn with the init under test; fc layers "
        "with the forward form of the same rule: `xavier` for Xavier, `msra_fan_in` for both "
        "MSRA runs (the paper drew its fc layers with fixed stds, never with the fan-out form). "
        "`msra_fan_out_fc_too` (statistics only) also draws the fc layers with the fan-out "
        "form: with 10 classes that gives fc3 a std of sqrt(2/10).",
        f"- Statistics: widths x{settings.stats_width:g} of the paper's, "
        f"{settings.stats_image_size}x{settings.stats_image_size} inputs, one batch of "
        f"{settings.stats_batch} standardized synthetic images with random labels, dropout off, "
        f"`keras.utils.set_random_seed({MODEL_SEED})`. "
        "Forward: std of each conv/fc output y_l before the ReLU; backward: std of dL/dx_l, "
        "the softmax cross-entropy gradient at the layer's input.",
        f"- Training: {settings.init_image_size} px random crops + flips of images stored at "
        f"{summary['data']['stored_size']} px (synthetic set, difficulty "
        f"{settings.init_difficulty}, {summary['num_classes']} classes, "
        f"{settings.init_train_images} training images), SGD momentum {paper.MOMENTUM}, "
        f"batch {settings.batch_size}, weight decay "
        f"{settings.weight_decay}, {_steps_text(settings)}, seeds {list(settings.seeds)}: the "
        "seed draws the model "
        "(`keras.utils.set_random_seed`) and the batches, the same for every init. The "
        f"validation top-1 error of the centre {settings.init_image_size} px crop of "
        f"{settings.val_images} validation images is measured before training and after every "
        "epoch (one pass over the training images), as the paper's figures plot it.",
        "- Inputs are standardized, not only mean-subtracted, so the MSRA rule fits the fc layers "
        "too (the paper used fixed fc stds because of its +-128 inputs). In a 300-step trial "
        "with mean-subtracted inputs and the paper's fixed fc stds (seed 0; the 30-layer model "
        "still with one-sided padding), MSRA fan-in ended at a loss of 2.21 (Model B) and 2.25 "
        "(30 layers), Xavier at 2.30 on both: the fixed stds set the fc layers' gains for "
        "4096-wide layers, not for scaled-down ones.",
        "- The 30-layer model's stacked 2x2 convs pad 1 pixel per side and none in turn "
        '(centred receptive fields, docs/choices.md); with Keras\'s one-sided "same" padding '
        "the border zeros drained its small last-stage map and MSRA converged in 1 of 3 seeds "
        "of our earlier quick run. Model B's 3x3 convs pad both sides.",
        f"- Verdicts per seed: a run converges when its final loss (mean of the last "
        f"{summary['final_loss_window']} steps) is more than {LEARN_MARGIN} below ln(classes) = "
        f"{ln_classes:.4f}, stalls when it is within {STALL_MARGIN} of it; one init reduces the "
        "error faster than another when its mean top-1 error over the epochs (the area under "
        "the error curve) is lower.",
        "",
        "## Statistics at initialization",
        "",
        "max/min over layers of the std (a constant curve gives 1; Xavier's theory: 2^((L-1)/2)):",
        "",
        "| depth | model | init | forward max/min | backward max/min | forward last/first | "
        "backward first/last |",
        "|---|---|---|---|---|---|---|",
    ]
    for depth, by_init in summary["statistics"].items():
        for init, stats in by_init.items():
            forward, backward = stats["forward_std"], stats["backward_std"]
            lines.append(
                f"| {depth} | {summary['depths'][depth]['architecture']} | {init} | "
                f"{_ratio(forward):.3g} | {_ratio(backward):.3g} | "
                f"{forward[-1] / forward[0]:.3g} | {backward[0] / backward[-1]:.3g} |"
            )
    lines += [
        "",
        "![statistics](init_statistics.png)",
        "",
        "## Training from scratch, every seed",
        "",
        "| depth | model | init | seed | final loss | val top-1 error (final) | "
        "mean top-1 error over epochs | seconds |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in summary["runs"]:
        lines.append(
            f"| {r['depth']} | {r['architecture']} | {r['init']} | {r['seed']} | "
            f"{r['final_loss']:.4f} | {100 * r['top1_error']:.1f}% | "
            f"{100 * mean_epoch_error(r):.1f}% | {r['seconds']:.0f} |"
        )
    lines += [
        "",
        "Top-1 error (%) per epoch, centre crop (epoch 0: before training):",
        "",
        "| depth | init | seed | " + "errors by epoch |",
        "|---|---|---|---|",
    ]
    for r in summary["runs"]:
        points = ", ".join(
            f"{epoch:.3g}: {100 * error:.1f}"
            for epoch, error in zip(r["epochs"], r["epoch_top1_error"], strict=True)
        )
        lines.append(f"| {r['depth']} | {r['init']} | {r['seed']} | {points} |")
    lines += ["", "![training](init_training.png)", "", "## What reproduced", ""]
    lines += _verdicts(summary)
    write_lines(os.path.join(study_folder(output_dir, STUDY), "report.md"), lines)


def _last_stage(layers: list[str]) -> list[int]:
    """Indices of the layers of the last conv stage (`conv{s}_*`, the highest `s`)."""
    convs = [name for name in layers if name.startswith("conv") and "_" in name]
    if not convs:
        return []
    prefix = convs[-1].split("_")[0] + "_"
    return [i for i, name in enumerate(layers) if name.startswith(prefix)]


def _verdicts(summary: dict) -> list[str]:
    verdicts = []
    for depth, by_init in summary["statistics"].items():
        xavier = by_init["xavier"]["forward_std"]
        msra = by_init["msra_fan_in"]["forward_std"]
        fan_out = by_init["msra_fan_out"]["backward_std"]
        xavier_back = by_init["xavier"]["backward_std"]
        expected = 2 ** ((len(xavier) - 1) / 2)
        verdicts.append(
            f"- {depth} layers ({summary['depths'][depth]['architecture']}) at init: Xavier's "
            f"response std falls by {xavier[0] / xavier[-1]:.3g}x from the first to the last "
            f"layer (theory 2^({len(xavier) - 1}/2) = {expected:.3g}); its gradient std falls by "
            f"{xavier_back[-1] / xavier_back[0]:.3g}x from the last layer back to the first. "
            f"MSRA fan-in's responses stay within a factor {_ratio(msra):.3g} (max/min over "
            f"layers), MSRA fan-out's gradients within {_ratio(fan_out):.3g}."
        )
        # Within the last conv stage (all layers alike: same kernel and width, no pooling) the
        # rules apply exactly; across the max-pools the gradient reaches 1 of 9 (3x3/3) or 1 of
        # 4 (2x2/2) positions, and SPP and the fc layers change the fan, which no init corrects.
        stage = _last_stage(by_init["xavier"]["layers"])
        if len(stage) > 1:

            def within(init, key, by_init=by_init, stage=stage):
                return _ratio([by_init[init][key][i] for i in stage])

            name = by_init["xavier"]["layers"][stage[0]].split("_")[0]
            per_layer = (xavier[stage[-1]] / xavier[stage[0]]) ** (1 / (len(stage) - 1))
            verdicts.append(
                f"  Within the last conv stage ({len(stage)} layers, {name}_*): forward max/min "
                f"{within('msra_fan_in', 'forward_std'):.3g} (fan-in), backward max/min "
                f"{within('msra_fan_out', 'backward_std'):.3g} (fan-out), "
                f"{within('msra_fan_out', 'forward_std'):.3g} / "
                f"{within('msra_fan_in', 'backward_std'):.3g} for the other direction; "
                f"Xavier's response std shrinks by {per_layer:.3f} per layer (theory "
                f"{2**-0.5:.3f}). The larger factors over the whole net come from the max-pools "
                "(the gradient reaches only 1 of 9 or 1 of 4 positions), SPP and the fc layers."
            )
    ln_classes = summary["ln_classes"]
    # Summaries written before the plateau steps were recorded get them from their losses.
    plateau = summary.get("plateau") or plateau_departures(summary)
    for depth, claim in summary["claims"].items():
        final = summary["final_loss"][depth]
        errors = summary["top1_error"][depth]
        parts = []
        for init in INITS:
            values = ", ".join(
                f"{loss:.3f} ({100 * error:.1f}%)"
                for loss, error in zip(final[init], errors[init], strict=True)
            )
            parts.append(f"{init} {values}")
        seeds = len(claim["seeds"])
        checks = "; ".join(
            f"{name}: {sum(values)}/{seeds}" for name, values in claim["checks"].items()
        )
        title = f"{claim['figure']}, " if claim["figure"] else ""
        verdicts.append(
            f"- {title}{depth}-layer {claim['architecture']}, final loss (top-1 error) per seed "
            f"{claim['seeds']}, ln(classes) = {ln_classes:.3f}: " + "; ".join(parts) + "."
        )
        verdicts.append(
            f"  Paper's claim ({claim['claim']}): holds for {claim['seeds_holding']} of {seeds} "
            f"seeds ({checks})."
        )
        verdicts.append("  " + _plateau_text(plateau[depth], claim["seeds"]))
    return verdicts


def _plateau_text(by_init: dict, seeds: list) -> str:
    """Per init: the step at which each seed left ln(classes), and which seeds fell back."""
    parts = []
    for init in INITS:
        departures = by_init[init]
        steps = ", ".join(str(d["left_at"]) if d["left_at"] else "never" for d in departures)
        fell = [
            f"seed {seed} at step {d['back_at']}"
            + (", for good" if d["ends_on_plateau"] else ", left again")
            for seed, d in zip(seeds, departures, strict=True)
            if d["back_at"]
        ]
        parts.append(f"{init} {steps}" + (f" (back on it: {'; '.join(fell)})" if fell else ""))
    return (
        f"Step at which the loss left ln(classes) ({PLATEAU_WINDOW}-step mean {STALL_MARGIN} "
        f"below it; back on it: within {PLATEAU_MARGIN} again), per seed: " + "; ".join(parts) + "."
    )
