"""A training run's folder: `config.json`, `checkpoints/`, `logs/`, `summary.json` (TensorFlow).

    model, config, summary = model_from_checkpoint("runs/quickstart")

`config.json` holds the run's `Config` (`Config.to_dict`: nested by section), its class count
and class names, and a `history` list with one entry per start. Runs written before the
sections have a flat config.json (`Config.flat`); both are read.

Resume: a run with the same `model_dir` restores the latest checkpoint and trains up to the same
total number of steps. Before anything is written the new configuration is compared with the
stored one (`resume_changes`): a change of `RESUME_FIXED_FIELDS` or of the class list is refused
with a message naming each; other changes (more steps, a new learning rate) are taken and
recorded in `history`.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
import time
import uuid

import keras
import tensorflow as tf

from rectifier_zoo.train import config as config_lib
from rectifier_zoo.train.config import Config

CONFIG_FILE = "config.json"
SUMMARY_FILE = "summary.json"
# The config.json entries that are not `Config` fields.
RUN_KEYS = ("num_classes", "class_names", "history")
# Fields a resume must keep: they fix the shapes and meaning of the checkpointed weights (and
# which of them have optimizer slots: freeze), or what one step is (the schedule counts steps).
# Every other field may change and is recorded.
RESUME_FIXED_FIELDS = (
    "model",
    "architecture",
    "activation",
    "channel_shared",
    "kernel_initializer",
    "fc_initializer",
    "input_std",
    "init_weights",
    "freeze",
    "batch_size",
    "precision",
)


def check_writable(folder: str, what: str) -> None:
    """The folder, or the nearest existing folder above it, is writable; creates nothing."""
    existing = folder
    while not os.path.exists(existing):
        parent = os.path.dirname(existing)
        if parent == existing:
            break
        existing = parent
    problem = None
    if not os.path.isdir(existing):
        problem = f"{existing!r} is not a folder"
    elif not os.access(existing, os.W_OK | os.X_OK):
        problem = f"{existing!r} is not writable"
    if problem:
        raise ValueError(
            f"{what} must be a writable folder ({problem}). Received: {what}={folder!r}"
        )


@contextlib.contextmanager
def write_dir(model_dir: str, chief: bool, worker: str):
    """The folder this process writes to: `model_dir` (created) on the chief, else a temporary
    folder, removed on exit."""
    if chief:
        try:
            os.makedirs(model_dir, exist_ok=True)
        except OSError as error:
            raise ValueError(
                f"model_dir must be a writable folder ({error.strerror}). Received: "
                f"model_dir={model_dir!r}"
            ) from None
        yield model_dir
        return
    folder = tempfile.mkdtemp(prefix=f"rectifier_zoo-{worker}-")
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _atomic_write_json(path: str, payload: dict) -> None:
    tmp = f"{path}.tmp-{uuid.uuid4().hex}"
    with open(tmp, "w") as f:
        json.dump(payload, f, indent=2, sort_keys=True, default=str)
    os.replace(tmp, path)


def read_stored_run(model_dir: str) -> dict | None:
    """The stored config.json of a run with a checkpoint in `model_dir`; None for a fresh run."""
    path = os.path.join(model_dir, CONFIG_FILE)
    if not tf.train.latest_checkpoint(os.path.join(model_dir, "checkpoints")):
        return None
    if not os.path.exists(path):
        raise ValueError(
            f"model_dir holds checkpoints but no {CONFIG_FILE}, so a resume cannot be checked "
            f"against the run that wrote them. Use another model_dir. Received: model_dir="
            f"{model_dir!r}"
        )
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError) as error:
        raise ValueError(
            f"Cannot read {path!r} ({error}); use another model_dir. Received: model_dir="
            f"{model_dir!r}"
        ) from None


def _brief(value) -> str:
    if isinstance(value, dict) and "name" in value:  # an architecture: its name says enough
        return repr(value["name"])
    if isinstance(value, list) and len(value) > 4:
        return f"{len(value)} [{', '.join(map(repr, value[:3]))}, ...]"
    return repr(value)


def resume_changes(config: Config, class_names: list[str], stored: dict) -> dict:
    """The differences between a stored run and `config`; raises on those a resume cannot take.

    Args:
        config: the new configuration.
        class_names: the new data set's classes, in label order.
        stored: the run's config.json (nested, or flat from an older run).

    Returns:
        {flat field name: {"stored": old, "new": new}} for each compatible change.

    Raises:
        ValueError: naming every field of `RESUME_FIXED_FIELDS`, and the class list, that differ.
    """
    new = {**config.flat(), "class_names": list(class_names)}
    stored_payload, stored = stored, config_lib.flatten(stored)
    defaults = Config().flat()
    changes = {}
    for field, value in new.items():
        if field == "model_dir":  # the folder itself; relative or absolute spellings differ
            continue
        # Runs written before a field existed had its default.
        old = stored.get(field, defaults.get(field))
        if field == "class_names" and old is None:
            continue
        if old != value:
            changes[field] = {"stored": old, "new": value}
    if {"architecture", "input_std"} & changes.keys() and "model" not in changes:
        built = Config.from_stored(stored_payload).network.architecture()
        if built == config.network.architecture():
            # The same network: only its input scale moved between the architecture and the
            # recipe (runs written before `input_std` was a field kept it in the architecture).
            changes.pop("architecture", None)
            changes.pop("input_std", None)
    refused = [f for f in (*RESUME_FIXED_FIELDS, "class_names") if f in changes]
    if refused:
        details = ", ".join(
            f"{f} (stored {_brief(changes[f]['stored'])}, received {_brief(changes[f]['new'])})"
            for f in refused
        )
        raise ValueError(
            f"model_dir holds a run that this configuration cannot resume: {details}. Use another "
            f"model_dir, or the stored values. Received: model_dir={config.model_dir!r}"
        )
    return changes


def history_entry(from_step, total_steps, steps_per_epoch, counts, changes) -> dict:
    """One start of a run, as config.json's `history` records it."""
    return {
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "from_step": from_step,
        "total_steps": total_steps,
        "steps_per_epoch": steps_per_epoch,
        "train_examples": counts["train"],
        "validation_examples": counts["validation"],
        "changes": changes,
    }


def write_config(model_dir, config: Config, class_names, stored: dict | None, entry) -> None:
    """config.json: the configuration in use, the classes, and the history with `entry` added."""
    payload = {
        **config.to_dict(),
        "num_classes": len(class_names),
        "class_names": list(class_names),
        "history": [*(stored or {}).get("history", []), entry],
    }
    _atomic_write_json(os.path.join(model_dir, CONFIG_FILE), payload)


def write_summary(model_dir: str, summary: dict) -> None:
    _atomic_write_json(os.path.join(model_dir, SUMMARY_FILE), summary)


def model_from_checkpoint(model_dir: str) -> tuple[keras.Model, dict, dict]:
    """Rebuilds the model of a training run and restores its latest checkpoint.

    Reads what `rectifier_zoo.train.loop.train` writes: `<model_dir>/config.json`,
    `<model_dir>/checkpoints/` (`tf.train.Checkpoint(model=model, ...)`) and, if there,
    `<model_dir>/summary.json`. The number of classes is the one 2-D kernel width of the
    checkpoint whose model restores without a shape mismatch, unless config.json records it.

    Returns:
        (model, config dict, summary dict or {}). The config dict is flat, whichever form the
        file has: every field by name (`Config.flat`: `name`, `dataset`, `data_dir`,
        `crop_size`, `eval_resize`, `model`, `architecture`, ...) plus `num_classes`,
        `class_names` and `history` where the file has them.
    """
    from rectifier_zoo.train.state import build_model

    config_path = os.path.join(model_dir, CONFIG_FILE)
    if not os.path.exists(config_path):
        raise FileNotFoundError(f"No config.json in {model_dir!r}: not a training run folder")
    with open(config_path, encoding="utf-8") as f:
        stored = json.load(f)
    latest = tf.train.latest_checkpoint(os.path.join(model_dir, "checkpoints"))
    if latest is None:
        raise FileNotFoundError(f"No checkpoint in {os.path.join(model_dir, 'checkpoints')!r}")
    config = Config.from_stored(stored)
    if "num_classes" in stored:
        candidates = [int(stored["num_classes"])]
    else:
        # Runs from before config.json recorded the class count: Keras 3 variables sit in the
        # checkpoint under object-graph paths, not layer names, so the classifier's width is
        # found as the one 2-D kernel width whose model restores.
        candidates = sorted(
            {int(shape[1]) for _, shape in tf.train.list_variables(latest) if len(shape) == 2}
        )
    model = None
    for num_classes in candidates:
        candidate = build_model(config, num_classes)
        try:
            status = tf.train.Checkpoint(model=candidate).restore(latest).expect_partial()
            status.assert_existing_objects_matched()
        except (ValueError, AssertionError, tf.errors.OpError):
            continue
        model = candidate
        break
    if model is None:
        raise ValueError(
            f"Checkpoint {latest!r} does not match the model of {config_path!r} "
            f"(tried {len(candidates)} class counts)"
        )
    summary = {}
    summary_path = os.path.join(model_dir, SUMMARY_FILE)
    if os.path.exists(summary_path):
        with open(summary_path, encoding="utf-8") as f:
            summary = json.load(f)
    extras = {key: stored[key] for key in RUN_KEYS if key in stored}
    return model, {**config.flat(), **extras}, summary
