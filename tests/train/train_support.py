"""Shared by tests/train: the tiny run's config, and train.py run without TensorFlow."""

import os
import subprocess
import sys
import textwrap

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TRAIN_PY = os.path.join(REPO, "training", "train.py")


def tiny_config(data_dir, **overrides):
    """model_tiny on a folder set: 32 px crops, batch 4, a handful of steps; `overrides` must
    name the run's `model_dir` and `export_dir`."""
    from rectifier_zoo.train.config import Config

    fields = dict(
        name="tiny",
        model="model_tiny",
        dataset="folder",
        data_dir=str(data_dir),
        strategy="one_device",
        batch_size=4,
        train_steps=2,
        crop_size=32,
        min_scale=32,
        max_scale=40,
        eval_resize=32,
        seed=0,
        log_every_steps=1,
        verbose=0,
    )
    fields.update(overrides)
    return Config().override(**fields)


# Runs train.py's `__main__` in this interpreter, then says whether TensorFlow got imported.
_NO_TENSORFLOW = textwrap.dedent(
    """
    import runpy, sys
    path = sys.argv[1]
    sys.argv = [path, *sys.argv[2:]]
    try:
        runpy.run_path(path, run_name="__main__")
    except SystemExit as exit:
        print("EXIT", exit.code)
    print("IMPORTED", "tensorflow" in sys.modules, "keras" in sys.modules)
    """
)


def run_train_without_tensorflow(*args) -> subprocess.CompletedProcess:
    """`training/train.py *args` in a subprocess whose stdout ends with "IMPORTED <tf> <keras>"."""
    return subprocess.run(
        [sys.executable, "-c", _NO_TENSORFLOW, TRAIN_PY, *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"),
    )
