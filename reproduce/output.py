"""The studies' files: `summary.json`, the figures' matplotlib, the reports' common lines.

Importing this module imports neither TensorFlow nor matplotlib.
"""

from __future__ import annotations

import dataclasses
import json
import os
import platform
import shutil
import time
from collections.abc import Callable

import numpy as np

from reproduce.settings import StudySettings, override_flags

# Where the committed results live and the command line writes by default.
DEFAULT_OUTPUT_DIR = "results/reproduce"


def study_folder(output_dir: str, study: str) -> str:
    """`<output_dir>/<study>`, created if missing: where a study writes its files."""
    folder = os.path.join(output_dir, study)
    os.makedirs(folder, exist_ok=True)
    return folder


def provenance(settings, quick: bool) -> dict:
    """The fields every summary carries: the settings, the machine (the CPU by `cpu_info`), the
    versions, the date."""
    import keras
    import tensorflow as tf

    from rectifier_zoo.machine import cpu_info

    return {
        "quick": quick,
        "settings": dataclasses.asdict(settings),
        "machine": {
            **cpu_info(),
            "platform": platform.platform(),
            "processor": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(),
            "tensorflow": tf.__version__,
            "keras": keras.__version__,
        },
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
    }


def write_json(path: str, payload: dict) -> None:
    """`payload` as JSON at `path`, whole or not at all (a killed write leaves the old file)."""
    partial = f"{path}.partial"
    with open(partial, "w") as f:
        json.dump(payload, f, indent=2, sort_keys=True)
        f.write("\n")
    os.replace(partial, path)


RUNS_FOLDER = "runs"


def resumable_run(
    folder: str,
    name: str,
    train: Callable[[], dict],
    *,
    settings,
    quick: bool,
    builder_call: dict,
) -> dict:
    """One training run of a study, kept until the study ends: a killed study loses only the
    run it was in.

    `train()`'s result is written to `<folder>/runs/<name>.json` with the run's identity (the
    study's `settings`, `quick` and the run's `builder_call`); a later call with the same
    identity reads it back instead of training. A file of another identity, or one that does
    not parse, is trained over. `finish_runs` removes the folder once the study has written
    its summary.
    """
    path = os.path.join(folder, RUNS_FOLDER, f"{name}.json")
    identity = {
        "quick": quick,
        "settings": dataclasses.asdict(settings),
        "builder_call": builder_call,
    }
    # Compared as JSON holds them (tuples come back as lists).
    identity = json.loads(json.dumps(identity))
    try:
        with open(path) as f:
            record = json.load(f)
        if record.get("identity") == identity:
            print(f"[{os.path.basename(folder)}] {name}: finished before, read back", flush=True)
            return record["result"]
    except (OSError, ValueError, AttributeError):
        pass
    result = train()
    os.makedirs(os.path.dirname(path), exist_ok=True)
    write_json(path, {"identity": identity, "result": result})
    return result


def finish_runs(folder: str) -> None:
    """Removes the runs `resumable_run` kept in `folder`: the summary holds them now."""
    shutil.rmtree(os.path.join(folder, RUNS_FOLDER), ignore_errors=True)


def write_lines(path: str, lines: list[str]) -> None:
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")


def made_by(study: str, summary: dict, output_dir: str) -> str:
    """The command that made a study's results (the first words of the report's second line):
    `--quick`, the override flags its settings need and `--output_dir` unless the default."""
    flags = override_flags(StudySettings.from_dict(summary["settings"]), summary["quick"])
    if flags is None:
        return (
            f"Made by `reproduce.run_study({study!r}, ...)` at sizes that no flags of the command "
            "line give (`settings` in summary.json)"
        )
    words = ["python training/reproduce.py", f"--study {study}"]
    words += ["--quick"] if summary["quick"] else []
    words += flags
    if os.path.normpath(output_dir) != DEFAULT_OUTPUT_DIR:
        words.append(f"--output_dir {output_dir}")
    return f"Made by `{' '.join(words)}`"


def pyplot():
    """matplotlib's pyplot on the Agg backend, imported on first use (the `reproduce` extra)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def smooth(values, window: int = 10) -> np.ndarray:
    """Moving average over `window` steps (over the steps so far for the first ones)."""
    values = np.asarray(values, dtype=np.float64)
    if len(values) < window:
        return values
    kernel = np.ones(window) / window
    head = np.cumsum(values[: window - 1]) / np.arange(1, window)
    return np.concatenate([head, np.convolve(values, kernel, mode="valid")])
