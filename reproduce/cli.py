r"""The command line of the studies: `rectifier-zoo-reproduce` or `python training/reproduce.py`.

    python training/reproduce.py --study all --quick     # init ~110, prelu ~21 min on 2 CPU cores
    python training/reproduce.py --study init --output_dir /tmp/reproduce
    python training/reproduce.py --study init --init_depths 22 --weight_decay 0 \
        --output_dir results/reproduce/ablations/no_decay   # Fig. 2 alone, decay off
    python training/reproduce.py --study init --init_depths 22 --init_learning_rate 0.00125 \
        --output_dir results/reproduce/ablations/lr_0.00125  # Fig. 2 alone, half the lr

Each study writes PNG figures, `summary.json` and `report.md` into `<output_dir>/<study>/`:
`init` (MSRA vs Xavier, Sec. 2.2), `prelu` (ReLU vs PReLU, Table 2), `slopes` (learned slopes,
Table 1: the `prelu` study's PReLU models trained longer, their slopes read during training).
The figures need matplotlib (`pip install -e .[reproduce]`). `--help` imports no TensorFlow.
"""

from __future__ import annotations

import os
import sys
import time

from absl import app, flags

from reproduce import STUDIES
from reproduce.output import DEFAULT_OUTPUT_DIR

_STUDY = flags.DEFINE_enum("study", "all", [*STUDIES, "all"], "Which study to run.")
_QUICK = flags.DEFINE_bool(
    "quick",
    False,
    "Fewer steps and narrower models: init ~110 min, prelu ~21 min on 2 CPU cores.",
)
_OUTPUT_DIR = flags.DEFINE_string(
    "output_dir", DEFAULT_OUTPUT_DIR, "Folder of the results (one subfolder per study)."
)
_DATA_DIR = flags.DEFINE_string(
    "data_dir",
    None,
    "Parent folder of the synthetic data sets; default: the package's cache.",
)

_WEIGHT_DECAY = flags.DEFINE_float(
    "weight_decay",
    None,
    "Replaces the paper's weight decay (5e-4) in every run: an ablation; default: the paper's.",
)
_INIT_DEPTHS = flags.DEFINE_list(
    "init_depths",
    None,
    "The init study's depths to train (22: Fig. 2's Model B, 30: Fig. 3); default: both.",
)
_INIT_LEARNING_RATE = flags.DEFINE_float(
    "init_learning_rate",
    None,
    "Replaces the init study's learning rate at every depth it trains: an ablation; default: "
    "the paper's 0.01 at batch 128 scaled to the batch (0.005 for the quick 30-layer runs).",
)


def main(argv) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {' '.join(argv[1:])}")
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        sys.exit("reproduce.py needs matplotlib for its figures: pip install matplotlib")
    from rectifier_zoo import console
    from reproduce.settings import settings_for, with_overrides

    depths = _INIT_DEPTHS.value
    if depths is not None and not all(depth.strip().isdigit() for depth in depths):
        raise app.UsageError(f"--init_depths takes depths such as 22,30. Received: {depths}")
    try:
        settings = with_overrides(
            settings_for(_QUICK.value),
            _WEIGHT_DECAY.value,
            None if depths is None else tuple(int(depth) for depth in depths),
            _INIT_LEARNING_RATE.value,
        )
    except ValueError as error:
        raise app.UsageError(str(error)) from error
    # Quiet unless --verbosity was given, as the other command lines; after the flags' checks.
    console.start_tensorflow(quiet=not flags.FLAGS["verbosity"].present)
    import reproduce

    start = time.perf_counter()
    summaries = reproduce.run_study(
        _STUDY.value,
        _OUTPUT_DIR.value,
        quick=_QUICK.value,
        settings=settings,
        data_dir=_DATA_DIR.value,
    )
    for name in summaries:
        print(f"{name}: {os.path.join(_OUTPUT_DIR.value, name, 'report.md')}")
    print(f"total {time.perf_counter() - start:.0f} s")


def run() -> None:
    """The entry point of the console script and of `training/reproduce.py`."""
    # --help lists the flags of the main module (named by sys.argv[0]); ours are defined here.
    for flag in (
        _STUDY,
        _QUICK,
        _OUTPUT_DIR,
        _DATA_DIR,
        _WEIGHT_DECAY,
        _INIT_DEPTHS,
        _INIT_LEARNING_RATE,
    ):
        flags.FLAGS.register_key_flag_for_module(sys.argv[0], flags.FLAGS[flag.name])
    app.run(main)
