"""The initialization study (Sec. 2.2, Figs. 2-3): MSRA vs Xavier on deep ReLU models.

First the standard deviation of the forward responses (Eqn. 10) and of the backward gradients
(Eqn. 14) layer by layer at initialization, for the 30-layer model (Fig. 3) and a 22-layer one
under MSRA fan-in, MSRA fan-out and Xavier (std sqrt(1/n)); then the training loss of each init
from scratch with the same data, learning rate and steps. Fig. 2 compares the inits on the
22-layer Model B; here the 22-layer model is the 30-layer one with 8 fewer 2x2 convs, so both
depths come from one family.

Writes `init_statistics.png`, `init_training_loss.png`, `summary.json` and `report.md` into
`<output_dir>/init/`.
"""

from __future__ import annotations

import math
import os

import keras
import numpy as np
import tensorflow as tf

from rectifier_zoo import paper
from rectifier_zoo.architectures import ARCHITECTURES, deep_architecture
from rectifier_zoo.models import build_model
from reproduce import common
from reproduce.output import (
    made_by,
    provenance,
    pyplot,
    smooth,
    study_folder,
    write_json,
    write_lines,
)
from reproduce.settings import StudySettings, scaled_architecture, settings_for

STUDY = "init"
INITS = ("msra_fan_in", "msra_fan_out", "xavier")
# Init study runs: name -> (conv initializer, fc initializer). The fc layers use the forward
# (fan-in) form of the rule under test: the paper never drew its fc layers with the fan-out
# form (fixed stds instead), and with 10 classes the fan-out form gives fc3 a std of
# sqrt(2/10), ~5x the fan-in one, which in our trials killed training. That run is kept as
# `msra_fan_out_fc_too` to show it.
INIT_RUNS = {
    "msra_fan_in": ("msra_fan_in", "msra_fan_in"),
    "msra_fan_out": ("msra_fan_out", "msra_fan_in"),
    "xavier": ("xavier", "xavier"),
    "msra_fan_out_fc_too": ("msra_fan_out", "msra_fan_out"),
}
# Build seed of every model (keras.utils.set_random_seed): the same draws for every init.
MODEL_SEED = 1


# Statistics at initialization.


def _is_weight_layer(layer) -> bool:
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
            if _is_weight_layer(layer):
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
    data = common.load_synthetic(
        settings.init_image_size,
        settings.init_difficulty,
        settings.train_images,
        settings.val_images,
        data_dir,
    )
    size = settings.init_image_size
    rng = np.random.default_rng(0)
    # Standardized images at the statistics' size (the same standardization as `data`).
    stats_data = common.load_synthetic(
        settings.stats_image_size,
        settings.init_difficulty,
        settings.train_images,
        settings.val_images,
        data_dir,
    )
    stats_images = stats_data.val_images[: settings.stats_batch]
    stats_labels = rng.integers(0, data.num_classes, len(stats_images))
    del stats_data
    statistics, training = {}, {}
    for depth in settings.init_depths:
        statistics[str(depth)], training[str(depth)] = {}, {}
        for init, (conv_initializer, fc_initializer) in INIT_RUNS.items():
            # The global seed (keras.utils.set_random_seed) makes the runs reproducible; every
            # layer must get its own draw, or the variance argument's independence breaks.
            kwargs = dict(
                classes=data.num_classes,
                activation="relu",
                kernel_initializer=conv_initializer,
                fc_initializer=fc_initializer,
                include_preprocessing=False,
            )
            keras.utils.set_random_seed(MODEL_SEED)
            # Measured on logits; `layer_statistics` takes the cross-entropy from them.
            model = build_model(
                scaled_architecture(deep_architecture(depth), settings.stats_width),
                input_shape=(settings.stats_image_size, settings.stats_image_size, 3),
                dropout=0.5,
                classifier_activation=None,
                **kwargs,
            )
            statistics[str(depth)][init] = layer_statistics(model, stats_images, stats_labels)
            del model
            keras.utils.set_random_seed(MODEL_SEED)
            # Dropout off: the study is about the start of training, and dropout only slows
            # the few hundred steps we can afford. Softmax output, as the trainer's step needs.
            model = build_model(
                scaled_architecture(deep_architecture(depth), settings.width),
                input_shape=(size, size, 3),
                dropout=0.0,
                **kwargs,
            )
            result = common.train_classifier(
                model,
                data,
                steps=settings.init_steps,
                learning_rate=settings.init_learning_rate,
                batch_size=settings.batch_size,
                weight_decay=settings.weight_decay,
                image_size=size,
                seed=MODEL_SEED,
            )
            training[str(depth)][init] = result
            print(
                f"[init] depth {depth} {init}: final loss "
                f"{np.mean(result['loss'][-common.FINAL_LOSS_WINDOW :]):.4f} "
                f"top-1 error {result['top1_error']:.3f} ({result['seconds']:.0f} s)",
                flush=True,
            )
            del model
            keras.backend.clear_session()
    summary = _summary(statistics, training, data, settings, quick)
    write_json(os.path.join(folder, "summary.json"), summary)
    plot(summary, output_dir)
    report(summary, output_dir)
    return summary


def _summary(statistics, training, data, settings: StudySettings, quick: bool) -> dict:
    def final_loss(result):
        if result["diverged"]:
            return float("nan")
        return float(np.mean(result["loss"][-common.FINAL_LOSS_WINDOW :]))

    def by_depth(field):
        return {
            depth: {init: field(result) for init, result in runs.items()}
            for depth, runs in training.items()
        }

    summary = {
        "ln_classes": math.log(data.num_classes),
        "num_classes": data.num_classes,
        "final_loss_window": common.FINAL_LOSS_WINDOW,
        "final_loss_by_depth": by_depth(final_loss),
        "top1_error_by_depth": by_depth(lambda result: result["top1_error"]),
        "diverged_by_depth": by_depth(lambda result: result["diverged"]),
        "statistics": statistics,
        "loss_curves": by_depth(lambda result: result["loss"]),
        "seconds": by_depth(lambda result: result["seconds"]),
        "data": {"root": data.root, "difficulty": settings.init_difficulty},
        **provenance(settings, quick),
    }
    main_depth = str(max(settings.init_depths))
    summary["final_loss"] = {
        init: summary["final_loss_by_depth"][main_depth][init] for init in INITS
    }
    summary["initializers"] = {
        name: {"conv": conv, "fc": fc} for name, (conv, fc) in INIT_RUNS.items()
    }
    summary["final_loss_depth"] = int(main_depth)
    for depth in settings.init_depths:
        if str(depth) != main_depth:
            summary[f"final_loss_{depth}_layer"] = {
                init: summary["final_loss_by_depth"][str(depth)][init] for init in INITS
            }
    return summary


# Figures.


def plot(summary: dict, output_dir: str) -> None:
    """`init_statistics.png` and `init_training_loss.png` into `<output_dir>/init/`."""
    folder = study_folder(output_dir, STUDY)
    _plot_statistics(summary["statistics"], os.path.join(folder, "init_statistics.png"))
    _plot_loss_curves(
        summary["loss_curves"],
        summary["ln_classes"],
        os.path.join(folder, "init_training_loss.png"),
    )


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


def _plot_loss_curves(loss_curves: dict, ln_classes: float, path: str) -> None:
    plt = pyplot()
    depths = list(loss_curves)
    figure, axes = plt.subplots(
        1, len(depths), figsize=(5.5 * len(depths), 4), squeeze=False, constrained_layout=True
    )
    for column, depth in enumerate(depths):
        axis = axes[0][column]
        for init, loss in loss_curves[depth].items():
            steps = np.arange(1, len(loss) + 1)
            axis.plot(steps, smooth(loss), label=init)
        axis.axhline(ln_classes, color="k", ls="--", lw=1, label=f"ln(classes) = {ln_classes:.3f}")
        axis.set_xlabel("training step")
        axis.set_ylabel("training loss (moving average of 10 steps)")
        axis.set_title(f"{depth}-layer ReLU model, trained from scratch")
        axis.set_ylim(0, max(2 * ln_classes, 1))
        axis.grid(True, alpha=0.3)
        axis.legend(fontsize=8)
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
    fc_units = ARCHITECTURES["model_deep"].fc_units[0]
    lines = [
        "# Initialization study (Sec. 2.2, Figures 2-3)",
        "",
        made_by(STUDY, summary)
        + f" on {summary['machine']['cpu_count']} CPU cores, {summary['date']}.",
        "",
        "## Setup",
        "",
        "- Models: the `model_deep(depth=...)` architectures (depths "
        f"{', '.join(map(str, settings.init_depths))}, all weight layers kept), ReLU, biases 0. "
        "Conv layers drawn with the init under test; fc layers with the forward form of the "
        "same rule: `xavier` for Xavier, `msra_fan_in` for both MSRA runs (the paper drew its "
        "fc layers with fixed stds, never with the fan-out form). `msra_fan_out_fc_too` also "
        "draws the fc layers with the fan-out form: with 10 classes that gives fc3 a std of "
        "sqrt(2/10), and the run shows what that does. Seeded with "
        f"`keras.utils.set_random_seed({MODEL_SEED})`, every layer drawn independently.",
        f"- Statistics: widths x{settings.stats_width:g} of the paper's, "
        f"{settings.stats_image_size}x{settings.stats_image_size} inputs, one batch of "
        f"{settings.stats_batch} standardized synthetic images with random labels, dropout off. "
        "Forward: std of each conv/fc output y_l before the ReLU; backward: std of dL/dx_l, "
        "the softmax cross-entropy gradient at the layer's input.",
        f"- Training: widths x{settings.width:g} (fc {round(fc_units * settings.width)}), "
        f"{settings.init_image_size} px random crops + flips of the synthetic set "
        f"(difficulty {settings.init_difficulty}, {summary['num_classes']} classes, "
        f"{settings.train_images} training images), SGD momentum {paper.MOMENTUM}, lr "
        f"{settings.init_learning_rate}, batch {settings.batch_size}, weight decay "
        f"{settings.weight_decay}, {settings.init_steps} steps, no dropout, the same seed for "
        "every init.",
        "- Inputs are standardized, not only mean-subtracted, so the MSRA rule fits the fc layers "
        "too (the paper used fixed fc stds because of its +-128 inputs).",
        '- Input size matters here, depth aside: the 2x2 convs use "same" padding (one zero '
        "row/column at the bottom/right), and on a small last-stage map the zeros drain the "
        "signal layer after layer, whatever the init (at 64 px, a 5x5 map, MSRA fan-in's "
        "response std fell ~500x over the 30-layer model in our trials; at 224 px, 18x18, it "
        "stays within a small factor). Hence 224 px for the statistics and 96 px (8x8) for "
        "training, which is what 2 CPU cores allow.",
        "",
        "## Statistics at initialization",
        "",
        "max/min over layers of the std (a constant curve gives 1; Xavier's theory: 2^((L-1)/2)):",
        "",
        "| depth | init | forward max/min | backward max/min | forward last/first | "
        "backward first/last |",
        "|---|---|---|---|---|---|",
    ]
    for depth, by_init in summary["statistics"].items():
        for init, stats in by_init.items():
            forward, backward = stats["forward_std"], stats["backward_std"]
            lines.append(
                f"| {depth} | {init} | {_ratio(forward):.3g} | {_ratio(backward):.3g} | "
                f"{forward[-1] / forward[0]:.3g} | {backward[0] / backward[-1]:.3g} |"
            )
    lines += [
        "",
        "![statistics](init_statistics.png)",
        "",
        "## Training from scratch",
        "",
        f"ln(classes) = {ln_classes:.4f}. Final loss = mean of the last "
        f"{summary['final_loss_window']} steps.",
        "",
        "| depth | init | final loss | val top-1 error | seconds |",
        "|---|---|---|---|---|",
    ]
    for depth, by_init in summary["final_loss_by_depth"].items():
        for init, loss in by_init.items():
            lines.append(
                f"| {depth} | {init} | {loss:.4f} | "
                f"{100 * summary['top1_error_by_depth'][depth][init]:.1f}% | "
                f"{summary['seconds'][depth][init]:.0f} |"
            )
    lines += ["", "![loss](init_training_loss.png)", "", "## What reproduced", ""]
    lines += _verdicts(summary)
    write_lines(os.path.join(study_folder(output_dir, STUDY), "report.md"), lines)


def _verdicts(summary: dict) -> list[str]:
    ln_classes = summary["ln_classes"]
    verdicts = []
    for depth, by_init in summary["statistics"].items():
        xavier = by_init["xavier"]["forward_std"]
        msra = by_init["msra_fan_in"]["forward_std"]
        fan_out = by_init["msra_fan_out"]["backward_std"]
        xavier_back = by_init["xavier"]["backward_std"]
        expected = 2 ** ((len(xavier) - 1) / 2)
        verdicts.append(
            f"- {depth} layers at init: Xavier's response std falls by "
            f"{xavier[0] / xavier[-1]:.3g}x from the first to the last layer (theory "
            f"2^({len(xavier) - 1}/2) = {expected:.3g}); its gradient std falls by "
            f"{xavier_back[-1] / xavier_back[0]:.3g}x from the last layer back to the first. "
            f"MSRA fan-in's responses stay within a factor {_ratio(msra):.3g} (max/min over "
            f"layers), MSRA fan-out's gradients within {_ratio(fan_out):.3g}."
        )
        # Within the last conv stage (all layers alike: 2x2, same width, no pooling) the rules
        # apply exactly; across the max-pools the gradient reaches 1 of 9 (3x3/3) or 1 of 4
        # (2x2/2) positions, and SPP and the fc layers change the fan, which no init corrects.
        stage = [i for i, n in enumerate(by_init["xavier"]["layers"]) if n.startswith("conv3_")]
        if len(stage) > 1:

            def within(init, key, by_init=by_init, stage=stage):
                return _ratio([by_init[init][key][i] for i in stage])

            per_layer = (xavier[stage[-1]] / xavier[stage[0]]) ** (1 / (len(stage) - 1))
            verdicts.append(
                f"  Within the last conv stage ({len(stage)} layers, conv3_*): forward max/min "
                f"{within('msra_fan_in', 'forward_std'):.3g} (fan-in), backward max/min "
                f"{within('msra_fan_out', 'backward_std'):.3g} (fan-out), "
                f"{within('msra_fan_out', 'forward_std'):.3g} / "
                f"{within('msra_fan_in', 'backward_std'):.3g} for the other direction; "
                f"Xavier's response std shrinks by {per_layer:.3f} per layer (theory "
                f"{2**-0.5:.3f}). The larger factors over the whole net come from the max-pools "
                "(the gradient reaches only 1 of 9 or 1 of 4 positions), SPP and the fc layers."
            )
    for depth, by_init in summary["final_loss_by_depth"].items():
        parts = []
        for init, loss in by_init.items():
            if not math.isfinite(loss):
                state = "diverged (NaN)"
            elif loss < ln_classes - 0.3:
                state = "learns"
            elif abs(loss - ln_classes) < 0.05:
                state = "stalls at ln(classes)"
            else:
                state = "barely moves"
            parts.append(f"{init} {loss:.3f} ({state})")
        verdicts.append(f"- {depth} layers, training: " + "; ".join(parts) + ".")
    deep = summary["final_loss_by_depth"][str(summary["final_loss_depth"])]
    msra_learns = all(
        math.isfinite(deep[i]) and deep[i] < ln_classes - 0.3 for i in INITS if i != "xavier"
    )
    xavier_stalls = abs(deep["xavier"] - ln_classes) < 0.05
    verdicts.append(
        f"- Paper's claim for the {summary['final_loss_depth']}-layer model (MSRA converges, "
        f"Xavier stalls): {'reproduced' if msra_learns and xavier_stalls else 'NOT reproduced'} "
        f"(MSRA learns: {msra_learns}; Xavier stalls: {xavier_stalls})."
    )
    for depth, by_init in summary["final_loss_by_depth"].items():
        if depth == str(summary["final_loss_depth"]):
            continue
        both = all(math.isfinite(by_init[i]) and by_init[i] < ln_classes - 0.3 for i in INITS)
        verdicts.append(
            f"- Paper's claim for the {depth}-layer model (converges with both inits): "
            f"{'reproduced' if both else 'NOT reproduced in this number of steps'}."
        )
    return verdicts
