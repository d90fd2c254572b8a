"""Fine-tuning with the trainer: from scratch against `--init_weights`, with and without
`--freeze=trunk`, on a real data set of another class count.

1. The quickstart recipe (`rectifier_zoo.train.recipes`) trains on the built-in synthetic set
   (10 shape / texture classes, 2,000 training images) for `--pretrain_epochs`; its weights are
   saved as a `.weights.h5` file.
2. On scikit-learn's handwritten digits restricted to the digits 0..`--classes - 1` (6 classes:
   about 860 training and 216 validation 96x96 grayscale scans), the same recipe trains for
   `--epochs` (the same number of steps for each variant), per seed:
   (a) from scratch, (b) from the synthetic weights (`init_weights`, every layer trained,
   the classifier drawn anew for 6 classes), (c) the same with `freeze=trunk` (only SPP's fc
   layers and the classifier train).
   The learning-rate schedule is the recipe's, shortened: one warm-up epoch at 1e-2, then
   divided by 10 for the last quarter of the run; no variant gets its own rate.

Reported: validation top-1 error (the whole validation split, centre view) of each variant and
seed, and wall time (the whole `loop.train` call: data check, build, steps, validation, export).

    python benchmarks/fine_tuning.py [--pretrain_epochs 10] [--epochs 6] [--seeds 0 1 2]
        [--output benchmarks/results/<date>-fine_tuning.json]
"""

import argparse
import os
import shutil
import statistics
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from common import cpu_info, cpu_label, emit_json, machine_info  # noqa: E402

from rectifier_zoo.data import testing  # noqa: E402
from rectifier_zoo.train import loop, recipes, run_dir  # noqa: E402

VARIANTS = {
    "scratch": {},
    "finetune_all": {"freeze": "none"},  # + init_weights
    "finetune_top": {"freeze": "trunk"},  # + init_weights
}


def digits_subset(root: str, classes: int) -> str:
    """scikit-learn's digits as a folder set, keeping the digits 0..classes-1."""
    testing.write_digits_folder(root)
    for split in ("train", "val"):
        for name in os.listdir(os.path.join(root, split)):
            if int(name) >= classes:
                shutil.rmtree(os.path.join(root, split, name))
    return root


def schedule(epochs: float) -> dict:
    """The quickstart schedule shortened to `epochs`: warm-up 1 epoch, /10 for the last quarter."""
    return dict(epochs=float(epochs), warmup_epochs=1.0, lr_boundaries=(0.75 * epochs,))


def run(config) -> tuple[dict, float]:
    start = time.perf_counter()
    summary = loop.train(config)
    return summary, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pretrain_epochs", type=float, default=10.0)
    parser.add_argument("--epochs", type=float, default=6.0)
    parser.add_argument("--classes", type=int, default=6)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--output", default=None)
    args = parser.parse_args()
    base = recipes.get_recipe("quickstart").override(
        verbose=0, log_every_steps=10_000, eval_every_epochs=0, checkpoint_every_steps=10_000
    )
    work = tempfile.mkdtemp(prefix="fine_tuning-")
    started = time.perf_counter()
    try:
        # 1. The source weights: the quickstart net on the synthetic set.
        pretrain = base.override(
            name="synthetic",
            dataset="synthetic",
            model_dir=os.path.join(work, "synthetic"),
            export_dir=os.path.join(work, "export", "synthetic"),
            seed=0,
            **schedule(args.pretrain_epochs),
        )
        summary, seconds = run(pretrain)
        source = {
            "dataset": "synthetic (10 classes, 2,000 / 500 images)",
            "epochs": args.pretrain_epochs,
            "steps": summary["train_steps"],
            "val_top1_error": summary["val_top1_error"],
            "seconds": round(seconds, 1),
        }
        print(
            f"source: synthetic, {summary['train_steps']} steps, val top-1 error "
            f"{summary['val_top1_error']:.4f}, {seconds:.0f} s",
            flush=True,
        )
        model, _, _ = run_dir.model_from_checkpoint(pretrain.model_dir)
        weights = os.path.join(work, "synthetic.weights.h5")
        model.save_weights(weights)

        # 2. The digits subset, three ways, per seed.
        digits = digits_subset(os.path.join(work, "digits"), args.classes)
        results = {name: {} for name in VARIANTS}
        for seed in args.seeds:
            for name, fields in VARIANTS.items():
                init = {"init_weights": weights} if fields else {}
                config = base.override(
                    name=f"{name}_{seed}",
                    dataset="folder",
                    data_dir=digits,
                    model_dir=os.path.join(work, "runs", f"{name}_{seed}"),
                    export_dir=os.path.join(work, "export", f"{name}_{seed}"),
                    seed=seed,
                    **schedule(args.epochs),
                    **fields,
                    **init,
                )
                summary, seconds = run(config)
                results[name][str(seed)] = {
                    "val_top1_error": summary["val_top1_error"],
                    "seconds": round(seconds, 1),
                    "steps": summary["train_steps"],
                }
                print(
                    f"seed {seed} {name:13s} val top-1 error {summary['val_top1_error']:.4f} "
                    f"({summary['val_examples']} images, {summary['train_steps']} steps), "
                    f"{seconds:.0f} s",
                    flush=True,
                )
    finally:
        shutil.rmtree(work, ignore_errors=True)

    means = {
        name: {
            "mean_val_top1_error": statistics.mean(r["val_top1_error"] for r in rows.values()),
            "mean_seconds": statistics.mean(r["seconds"] for r in rows.values()),
        }
        for name, rows in results.items()
    }
    print(f"\nCPU: {cpu_label(cpu_info())} ({os.cpu_count()} cores)")
    for name, mean in means.items():
        print(
            f"{name:13s} mean val top-1 error {mean['mean_val_top1_error']:.4f} over seeds "
            f"{args.seeds}, {mean['mean_seconds']:.0f} s per run"
        )
    emit_json(
        {
            "benchmark": "fine_tuning",
            "recipe": "quickstart",
            "source": source,
            "target": {
                "dataset": f"scikit-learn digits 0-{args.classes - 1} ({args.classes} classes)",
                "epochs": args.epochs,
                "schedule": "lr 1e-2, 1 warm-up epoch, /10 for the last quarter (all variants)",
            },
            "variants": {
                "scratch": "the recipe's initialization (MSRA, Sec. 2.2)",
                "finetune_all": "init_weights=synthetic, freeze=none (classifier drawn anew)",
                "finetune_top": "init_weights=synthetic, freeze=trunk (only the fc layers train)",
            },
            "seeds": results,
            "means": means,
            "total_seconds": round(time.perf_counter() - started, 1),
            "cpu": cpu_label(cpu_info()),
            "machine": machine_info(),
            "command": "python benchmarks/fine_tuning.py "
            + " ".join(
                [
                    f"--pretrain_epochs {args.pretrain_epochs:g}",
                    f"--epochs {args.epochs:g}",
                    f"--classes {args.classes}",
                    "--seeds",
                    *map(str, args.seeds),
                ]
            ),
        },
        args.output,
    )


if __name__ == "__main__":
    main()
