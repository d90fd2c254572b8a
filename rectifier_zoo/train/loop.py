"""The training loop of the paper's recipe (Sec. 5) under any `tf.distribute` strategy (TensorFlow).

    from rectifier_zoo.train import loop as trainer
    summary = trainer.train(trainer.TrainConfig(model="model_small", dataset="synthetic", ...))

One custom loop serves every strategy (one device, `MirroredStrategy`,
`MultiWorkerMirroredStrategy`, `TPUStrategy`): `distribute_datasets_from_function` feeds
per-replica batches, `strategy.run(step)` runs inside a `tf.function`. Keras 3 `model.fit` is not
used because it fails under `MultiWorkerMirroredStrategy`.

Choices, and why:

- Loss: the sum of per-example cross-entropies divided by the GLOBAL batch size, so the gradients
  summed over replicas by the optimizer are the mean over the global batch.
- Optimizer: `rectifier_zoo.CaffeSGD`, the paper's SGD: momentum, and Caffe's coupled L2 weight
  decay (`weight_decay * w` added to the gradient before the momentum update) on conv and fc
  kernels only; PReLU slopes and biases are never decayed (Sec. 2.1). It adds the decay to the
  gradient after Keras has summed it over the replicas and undone the loss scale, so the
  replica count and mixed float16 change nothing. Keras's `SGD(weight_decay=...)` is decoupled
  (it shrinks w by lr * wd outside the momentum) and is not the paper's.
- Learning rate: a value set on the optimizer before each step from the step-wise schedule
  (divided by 10 at each epoch of `lr_boundaries`), or, with `lr_schedule="plateau"`, divided by
  10 when the validation top-1 error has not improved for `plateau_patience` evaluations (Sec. 5:
  "when the error plateaus"), at most `max_lr_drops` times. Optional linear warm-up.
- Checkpoints (`tf.train.CheckpointManager`): model, optimizer, step, epoch and the plateau state,
  every `checkpoint_every_steps` steps and at each epoch end; the last `keep_checkpoints` kept.
  TensorFlow writes each checkpoint to temporary files and renames them, and the `checkpoint`
  index file last, so a crash never leaves a half checkpoint as the latest one. On
  multi-worker only the chief writes to `model_dir`; the other workers write to a temporary folder
  (every worker must save, since saving may run collectives). Workers resume from the chief's
  `model_dir/checkpoints`, so on several hosts `model_dir` must be on storage all of them read
  (GCS, NFS); a worker that cannot read it would start again at step 0.
- Resume: a run with the same `model_dir` restores the latest checkpoint and trains up to the same
  total number of steps. The input iterator is not checkpointed: the training data restart at the
  beginning of a freshly shuffled pass (seeded runs use `seed + epoch`), so a resumed run sees
  the same number of batches, but not exactly the same batches, as an uninterrupted one.
  Before anything is written the new configuration is compared with the stored `config.json`:
  a change of `RESUME_FIXED_FIELDS` (model, activation, batch size, precision, ...) or of the
  class list is refused with a message naming each; other changes (more steps, a new learning
  rate) are taken and recorded in the `history` list of `config.json`, one entry per start.
  `config.json` is rewritten only after the checkpoint restored.
- Stop signals: SIGTERM (preemption, schedulers) and SIGINT set a flag; the loop saves a
  checkpoint after the step in flight and raises `TrainingInterrupted` (exit code 128 + signal).
  Under multi-worker the flag is summed over the workers inside each step's all-reduce, so every
  worker stops and saves at the same step. A validation pass in flight is abandoned.
- Data: both splits are listed and counted before the run folder is created
  (`rectifier_zoo.data.check_splits`), so a bad data set fails before anything is written.
- Validation: the whole validation split (no `drop_remainder`); partial and empty batches are
  counted by their real size, so the error is over every image exactly once.
- Export: `rectifier_zoo.export.export_model` (the full SavedModel contract: JPEG/PNG bytes,
  float images and the dense endpoint) into the next integer version of `export_dir` (default
  `exported_models/<name>`), written to a temporary folder and renamed into place.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import shutil
import signal
import tempfile
import threading
import time
import uuid

import keras
import tensorflow as tf
from tensorflow.core.framework import summary_pb2

from rectifier_zoo import data as data_lib
from rectifier_zoo import initializers
from rectifier_zoo.architectures import Architecture
from rectifier_zoo.layers import PReLU
from rectifier_zoo.models import (
    ACTIVATIONS,
    build_model,
    get_model,
    list_models,
)
from rectifier_zoo.optimizers import CaffeSGD
from rectifier_zoo.serving import export as export_lib
from rectifier_zoo.train import distribute, steps

PRECISIONS = ("float32", "mixed_bfloat16", "mixed_float16")
LR_SCHEDULES = ("step", "plateau")
SUMMARY_FILE = "summary.json"
CONFIG_FILE = "config.json"


@dataclasses.dataclass
class TrainConfig:
    """Everything a training run needs; written as `config.json` into `model_dir`.

    Args:
        name: run name; the export goes to `exported_models/<name>/<version>/` by default.
        model: a registered model (`rectifier_zoo.list_models()`), used when `architecture` is
            None.
        architecture: an `Architecture` to build instead of a registered model (quickstart).
        activation: "prelu" or "relu".
        channel_shared: one PReLU slope per layer instead of one per channel.
        kernel_initializer: conv initializer ("msra_fan_out", "msra_fan_in", "xavier", ...).
        fc_initializer: fc initializer by name; None: the paper's fixed stds 0.01 / 0.01 / 0.001,
            which suit only the paper's raw (mean-subtracted 0..255) inputs.
        dropout: dropout after fc1 and fc2 (Sec. 5: 0.5).
        dataset: a source of `rectifier_zoo.data.SOURCES`.
        data_dir: where the data set lives (see `rectifier_zoo.data.get_source`).
        model_dir: checkpoints, TensorBoard logs, config.json and summary.json.
        export_dir: base folder of the SavedModel versions (TF Serving's model base path); each
            run exports into `<export_dir>/<next integer version>/`. None: `exported_models/<name>`.
        strategy: a name of `rectifier_zoo.distribute.STRATEGIES`.
        batch_size: the GLOBAL batch size (split over replicas; Sec. 5: 128).
        epochs: training length in passes over the training split (ignored if `train_steps`).
        train_steps: training length in steps (overrides `epochs`).
        steps_per_epoch: None: training examples // batch_size.
        learning_rate: initial learning rate (Sec. 5: 1e-2).
        lr_schedule: "step" (divide by 10 at each epoch of `lr_boundaries`) or "plateau".
        lr_boundaries: epochs at which the learning rate is divided by 10.
        plateau_patience: evaluations without improvement before a drop ("plateau").
        max_lr_drops: most drops of the "plateau" schedule (1e-2 -> 1e-4: 2).
        warmup_epochs: linear warm-up from 0 to `learning_rate` over this many epochs.
        momentum: SGD momentum (Sec. 5: 0.9).
        weight_decay: L2 coefficient on kernels, added to their gradients (Sec. 5: 5e-4).
        precision: "float32", "mixed_bfloat16" or "mixed_float16" (with loss scaling).
        xla: compile the train step with XLA.
        seed: makes initialization, data order and augmentation repeatable; None: random.
        checkpoint_every_steps: save every this many steps (and at each epoch end).
        keep_checkpoints: checkpoints kept.
        eval_every_epochs: validation every this many epochs (and at the end); 0: only at the end.
        log_every_steps: progress bar, TensorBoard and log interval.
        crop_size, min_scale, max_scale, eval_resize, flip, pca_lighting, color_jitter: the
            input transform (`rectifier_zoo.data.TransformConfig`).
        private_threadpool_size: threads of the input pipeline's own pool; None: shared.
        verbose: 1 shows a progress bar, 0 prints one line per `log_every_steps` instead.
    """

    name: str = "run"
    model: str = "model_small"
    architecture: Architecture | None = None
    activation: str = "prelu"
    channel_shared: bool = False
    kernel_initializer: str = "msra_fan_out"
    fc_initializer: str | None = None
    dropout: float = 0.5
    dataset: str = "synthetic"
    data_dir: str | None = None
    model_dir: str = "runs/run"
    export_dir: str | None = None
    strategy: str = "auto"
    batch_size: int = 128
    epochs: float = 80.0
    train_steps: int | None = None
    steps_per_epoch: int | None = None
    learning_rate: float = 1e-2
    lr_schedule: str = "step"
    lr_boundaries: tuple[float, ...] = ()
    plateau_patience: int = 2
    max_lr_drops: int = 2
    warmup_epochs: float = 0.0
    momentum: float = 0.9
    weight_decay: float = 5e-4
    precision: str = "float32"
    xla: bool = False
    seed: int | None = None
    checkpoint_every_steps: int = 1000
    keep_checkpoints: int = 3
    eval_every_epochs: int = 1
    log_every_steps: int = 10
    crop_size: int = 224
    min_scale: int = 256
    max_scale: int = 512
    eval_resize: int = 256
    flip: bool = True
    pca_lighting: float = 0.1
    color_jitter: float = 0.0
    private_threadpool_size: int | None = None
    verbose: int = 1

    def validate(self) -> None:
        """Raises ValueError naming the bad field, the choices and the received value."""
        _check_choice("activation", self.activation, ACTIVATIONS)
        _check_choice("dataset", self.dataset, data_lib.SOURCES)
        _check_choice("strategy", self.strategy, distribute.STRATEGIES)
        _check_choice("precision", self.precision, PRECISIONS)
        _check_choice("lr_schedule", self.lr_schedule, LR_SCHEDULES)
        if self.architecture is None:
            _check_choice("model", self.model, tuple(list_models()))
        for field in (
            "batch_size",
            "checkpoint_every_steps",
            "keep_checkpoints",
            "log_every_steps",
        ):
            value = getattr(self, field)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{field} must be a positive integer. Received: {field}={value!r}")
        for field in ("plateau_patience", "eval_every_epochs", "max_lr_drops"):
            value = getattr(self, field)
            minimum = 1 if field == "plateau_patience" else 0
            if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
                raise ValueError(
                    f"{field} must be an integer >= {minimum}. Received: {field}={value!r}"
                )
        for field in ("train_steps", "steps_per_epoch"):
            value = getattr(self, field)
            if value is not None and (
                not isinstance(value, int) or isinstance(value, bool) or value < 1
            ):
                raise ValueError(f"{field} must be >= 1 or None. Received: {field}={value!r}")
        # Finite numbers only: inf and nan pass `x > 0`-style checks and fail many steps later.
        if self.train_steps is None:
            _check_number("epochs", self.epochs, low=0.0, low_inclusive=False)
        _check_number("learning_rate", self.learning_rate, low=0.0, low_inclusive=False)
        _check_number("weight_decay", self.weight_decay, low=0.0)
        _check_number("momentum", self.momentum, low=0.0, high=1.0)
        _check_number("dropout", self.dropout, low=0.0, high=1.0)
        _check_number("warmup_epochs", self.warmup_epochs, low=0.0)
        for boundary in self.lr_boundaries:
            _check_number("lr_boundaries", boundary, low=0.0, shown=self.lr_boundaries)
        if self.architecture is not None:
            _check_number(
                "architecture.input_std", self.architecture.input_std, low=0.0, low_inclusive=False
            )
        initializers.get(self.kernel_initializer)
        if self.fc_initializer is not None:
            initializers.get(self.fc_initializer)
        self.transform_config()  # validates the sizes

    def transform_config(self) -> data_lib.TransformConfig:
        return data_lib.TransformConfig(
            crop_size=self.crop_size,
            min_scale=self.min_scale,
            max_scale=self.max_scale,
            eval_resize=self.eval_resize,
            flip=self.flip,
            pca_lighting=self.pca_lighting,
            color_jitter=self.color_jitter,
        )

    def to_dict(self) -> dict:
        result = dataclasses.asdict(self)
        result["lr_boundaries"] = list(self.lr_boundaries)
        return result


def _check_choice(field: str, value, choices) -> None:
    if value not in choices:
        raise ValueError(
            f"Unknown {field}. Expected one of {tuple(choices)}. Received: {field}={value!r}"
        )


def _check_number(field, value, low=None, high=None, low_inclusive=True, shown=None) -> None:
    """A finite real number in [low, high) (or (low, high) without `low_inclusive`)."""
    ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    if ok and low is not None:
        ok = value >= low if low_inclusive else value > low
    if ok and high is not None:
        ok = value < high
    if not ok:
        bounds = (
            f"{'[' if low_inclusive else '('}{'-inf' if low is None else low}, "
            f"{'inf' if high is None else high})"
        )
        raise ValueError(
            f"{field} must be a finite number in {bounds}. "
            f"Received: {field}={value if shown is None else shown!r}"
        )


def _check_writable(folder: str, what: str) -> None:
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


def _make_folder(folder: str, what: str) -> None:
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError as error:
        raise ValueError(
            f"{what} must be a writable folder ({error.strerror}). Received: {what}={folder!r}"
        ) from None


def _atomic_write_json(path: str, payload: dict) -> None:
    tmp = f"{path}.tmp-{uuid.uuid4().hex}"
    with open(tmp, "w") as f:
        json.dump(payload, f, indent=2, sort_keys=True, default=str)
    os.replace(tmp, path)


def _build_model(config: TrainConfig, num_classes: int) -> keras.Model:
    kwargs = dict(
        input_shape=(None, None, 3),
        classes=num_classes,
        activation=config.activation,
        channel_shared=config.channel_shared,
        kernel_initializer=config.kernel_initializer,
        fc_initializer=config.fc_initializer,
        dropout=config.dropout,
        seed=config.seed,
    )
    if config.architecture is not None:
        return build_model(config.architecture, **kwargs)
    return get_model(config.model, **kwargs)


class _LearningRate:
    """Step schedule with warm-up, times the plateau factor (a checkpointed variable)."""

    def __init__(self, config: TrainConfig, steps_per_epoch: int):
        self.config = config
        self.steps_per_epoch = steps_per_epoch

    def __call__(self, step: int, plateau_drops: int) -> float:
        config = self.config
        epoch = step / self.steps_per_epoch
        lr = config.learning_rate * 0.1 ** sum(epoch >= b for b in config.lr_boundaries)
        lr *= 0.1**plateau_drops
        if config.warmup_epochs > 0 and epoch < config.warmup_epochs:
            lr *= (step + 1) / (config.warmup_epochs * self.steps_per_epoch)
        return lr


# TensorBoard's scalar plugin tag; written with `tf.summary.write`, which (unlike
# `tf.summary.scalar`) works without the tensorboard package installed.
_SCALAR_METADATA = summary_pb2.SummaryMetadata(
    plugin_data=summary_pb2.SummaryMetadata.PluginData(plugin_name="scalars")
)


def _scalar(name: str, value: float) -> None:
    tf.summary.write(name, tf.constant(value, tf.float32), metadata=_SCALAR_METADATA)


def build_optimizer(config: TrainConfig, model: keras.Model) -> keras.optimizers.Optimizer:
    """The paper's SGD for `model` (built, in the strategy's scope), loss-scaled for float16."""
    optimizer = CaffeSGD(
        learning_rate=config.learning_rate,
        momentum=config.momentum,
        weight_decay=config.weight_decay,
        model=model,
    )
    if config.precision == "mixed_float16":
        optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
    optimizer.build(model.trainable_variables)
    return optimizer


def _weights_checksum(model: keras.Model) -> float:
    return float(
        sum(tf.reduce_sum(tf.cast(tf.convert_to_tensor(w), tf.float64) ** 2) for w in model.weights)
    )


def _mean_slopes(model: keras.Model) -> dict[str, float]:
    return {
        layer.name: float(tf.reduce_mean(tf.convert_to_tensor(layer.weights[0])))
        for layer in model.layers
        if isinstance(layer, PReLU) and layer.weights
    }


# Fields a resume must keep: they fix the shapes and meaning of the checkpointed weights, or what
# one step is (the schedule counts steps). Every other field may change and is recorded.
RESUME_FIXED_FIELDS = (
    "model",
    "architecture",
    "activation",
    "channel_shared",
    "kernel_initializer",
    "fc_initializer",
    "batch_size",
    "precision",
)
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class TrainingInterrupted(Exception):
    """Raised by `train` when a stop signal ended it; the checkpoint at `step` is saved.

    Attributes:
        signal_name: "SIGTERM", "SIGINT", or "a stop signal on another worker".
        step: the step of the saved checkpoint (the run resumes from it).
        total_steps: the run's total.
        checkpoint: the saved checkpoint's path.
        exit_code: 128 + the signal number, the shell's code for a process ended by it.
    """

    def __init__(self, signal_name, signum, step, total_steps, checkpoint):
        self.signal_name = signal_name
        self.step = step
        self.total_steps = total_steps
        self.checkpoint = checkpoint
        self.exit_code = 128 + signum
        super().__init__(
            f"Stopped by {signal_name} at step {step} of {total_steps}; checkpoint {checkpoint}. "
            "Run the same command again to resume."
        )


class _StopSignals:
    """SIGTERM / SIGINT become a request that the loop honours at the next step boundary.

    A preempted VM or a cluster scheduler sends SIGTERM and kills the process some seconds
    later; the default action would lose every step since the last checkpoint. The first signal
    only sets `signum` (the step in flight finishes, a checkpoint is saved); the handlers in place
    before are restored at once, so a second signal stops the process the usual way. Signal
    handlers can only be set from the main thread; elsewhere this does nothing.
    """

    def __init__(self):
        self.signum: int | None = None
        self._previous: dict = {}

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for sig in STOP_SIGNALS:
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame):
        self.signum = signum
        self._restore()
        # os.write: print() from a handler can hit a half-written stdout buffer.
        os.write(
            2,
            f"\n{signal.Signals(signum).name} received: saving a checkpoint after the current "
            "step, then stopping (send it again to stop at once).\n".encode(),
        )

    def _restore(self):
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous = {}

    def __exit__(self, *exc):
        self._restore()

    @property
    def requested(self) -> float:
        return 0.0 if self.signum is None else 1.0


def _normalized(value):
    return json.loads(json.dumps(value, default=str))


def _read_stored_run(model_dir: str) -> dict | None:
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


def resume_changes(config: TrainConfig, class_names: list[str], stored: dict) -> dict:
    """The differences between a stored run and `config`; raises on those a resume cannot take.

    Args:
        config: the new configuration.
        class_names: the new data set's classes, in label order.
        stored: the run's config.json.

    Returns:
        {field: {"stored": old, "new": new}} for each compatible change (recorded in the run).

    Raises:
        ValueError: naming every field of `RESUME_FIXED_FIELDS`, and the class list, that differ.
    """
    new = _normalized({**config.to_dict(), "class_names": list(class_names)})
    defaults = _normalized(TrainConfig().to_dict())
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


def train(config: TrainConfig, strategy: tf.distribute.Strategy | None = None) -> dict:
    """Trains, validates, checkpoints and exports; returns (and writes) the summary.

    Everything that can be checked is checked before anything is written: the configuration,
    both data splits (class lists, empty classes, image counts), the run folder, and on a resume
    the stored configuration (`resume_changes`) and the checkpoint itself.

    Args:
        config: the run.
        strategy: overrides `config.strategy` (tests pass their own).

    Returns:
        The summary dict, also written as `summary.json` into `model_dir`.

    Raises:
        ValueError: a bad configuration, data set or run folder (nothing written).
        TrainingInterrupted: SIGTERM or SIGINT stopped the run after saving a checkpoint.
        FloatingPointError: the loss became nan or inf.
    """
    config.validate()
    start_time = time.time()
    source = data_lib.get_source(config.dataset, config.data_dir)
    counts = data_lib.check_splits(source, config.batch_size)
    strategy = strategy or distribute.get_strategy(config.strategy)
    num_replicas = strategy.num_replicas_in_sync
    if config.batch_size % num_replicas:
        raise ValueError(
            f"batch_size (global) must be divisible by the {num_replicas} replicas of the "
            f"strategy. Received: batch_size={config.batch_size}"
        )
    chief = distribute.is_chief(strategy)
    model_dir = os.path.abspath(config.model_dir)
    if chief:
        _check_writable(model_dir, "model_dir")
    # Non-chief workers check the chief's folder too (shared storage), so all of them refuse.
    stored = _read_stored_run(model_dir)
    changes = resume_changes(config, source.class_names, stored) if stored else {}

    steps_per_epoch = config.steps_per_epoch or max(counts["train"] // config.batch_size, 1)
    total_steps = config.train_steps or math.ceil(config.epochs * steps_per_epoch)
    if chief:
        _make_folder(model_dir, "model_dir")
        write_dir = model_dir
    else:
        write_dir = tempfile.mkdtemp(prefix=f"rectifier_zoo-{distribute.worker_id(strategy)}-")
    run = {
        "stored": stored,
        "changes": changes,
        "counts": counts,
    }

    previous_policy = keras.mixed_precision.dtype_policy()
    keras.mixed_precision.set_dtype_policy(config.precision)
    try:
        with _StopSignals() as stop:
            return _train(
                config,
                strategy,
                chief,
                model_dir,
                write_dir,
                source,
                source.num_classes,
                config.transform_config(),
                steps_per_epoch,
                total_steps,
                start_time,
                run,
                stop,
            )
    finally:
        keras.mixed_precision.set_dtype_policy(previous_policy)
        if not chief:
            shutil.rmtree(write_dir, ignore_errors=True)


def _write_run_config(path, config, source, run, resumed_from, steps_per_epoch, total_steps):
    """config.json: the configuration in use, the classes, and one history entry per start."""
    stored = run["stored"] or {}
    history = list(stored.get("history", []))
    history.append(
        {
            "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "from_step": resumed_from,
            "total_steps": total_steps,
            "steps_per_epoch": steps_per_epoch,
            "train_examples": run["counts"]["train"],
            "validation_examples": run["counts"]["validation"],
            "changes": run["changes"],
        }
    )
    payload = {
        **config.to_dict(),
        "num_classes": source.num_classes,
        "class_names": list(source.class_names),
        "history": history,
    }
    _atomic_write_json(path, payload)


def _train(
    config,
    strategy,
    chief,
    model_dir,
    write_dir,
    source,
    num_classes,
    transform,
    steps_per_epoch,
    total_steps,
    start_time,
    run,
    stop,
) -> dict:
    num_replicas = strategy.num_replicas_in_sync
    # One process: act on a signal right after the step it arrived in. Several: only on the
    # all-reduced flag, so that every worker saves at the same step.
    multi_worker = distribute.num_workers(strategy) > 1
    global_batch = config.batch_size
    top_k = min(5, num_classes)
    if config.seed is not None:
        keras.utils.set_random_seed(config.seed)

    with strategy.scope():
        model = _build_model(config, num_classes)
        optimizer = build_optimizer(config, model)
        step_var = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
        epoch_var = tf.Variable(0, dtype=tf.int64, trainable=False, name="epoch")
        lr_drops = tf.Variable(0, dtype=tf.int64, trainable=False, name="lr_drops")
        best_error = tf.Variable(2.0, dtype=tf.float64, trainable=False, name="best_val_error")
        stale_evals = tf.Variable(0, dtype=tf.int64, trainable=False, name="stale_evals")
    checkpoint = tf.train.Checkpoint(
        model=model,
        optimizer=optimizer,
        step=step_var,
        epoch=epoch_var,
        lr_drops=lr_drops,
        best_val_error=best_error,
        stale_evals=stale_evals,
    )
    manager = tf.train.CheckpointManager(
        checkpoint, os.path.join(write_dir, "checkpoints"), max_to_keep=config.keep_checkpoints
    )
    # Non-chief workers restore from the chief's folder (shared storage) when it is readable.
    latest = tf.train.latest_checkpoint(os.path.join(model_dir, "checkpoints"))
    resumed_from = 0
    if latest:
        try:
            checkpoint.restore(latest).assert_existing_objects_matched()
        except (ValueError, AssertionError, tf.errors.OpError) as error:
            first_line = str(error).strip().splitlines()[0] if str(error).strip() else ""
            raise ValueError(
                f"The checkpoint {latest!r} does not fit this configuration ({first_line}). "
                f"Use another model_dir. Received: model_dir={config.model_dir!r}"
            ) from None
        resumed_from = int(step_var.numpy())
        if chief:
            changed = ", ".join(sorted(run["changes"])) or "nothing"
            print(f"Resumed from {latest} at step {resumed_from} (changed: {changed}).", flush=True)
    if chief:
        # Only now: a failed restore must leave the stored configuration as it was.
        _write_run_config(
            os.path.join(model_dir, CONFIG_FILE),
            config,
            source,
            run,
            resumed_from,
            steps_per_epoch,
            total_steps,
        )

    train_step = steps.make_train_step(model, optimizer, global_batch, top_k)
    eval_step = steps.make_eval_step(model, top_k)

    @tf.function(jit_compile=config.xla or None)
    def distributed_train_step(images, labels, stop_flag):
        # The stop flag rides along with the step's own all-reduce: no extra collective.
        results = strategy.run(
            lambda x, y, flag: (*train_step(x, y), tf.identity(flag)),
            args=(images, labels, stop_flag),
        )
        return tuple(strategy.reduce(tf.distribute.ReduceOp.SUM, t, axis=None) for t in results)

    @tf.function(reduce_retracing=True)
    def distributed_eval_step(images, labels, stop_flag):
        results = strategy.run(
            lambda x, y, flag: (*eval_step(x, y), tf.identity(flag)),
            args=(images, labels, stop_flag),
        )
        return tuple(strategy.reduce(tf.distribute.ReduceOp.SUM, t, axis=None) for t in results)

    def stop_agreed(flag_sum) -> bool:
        return float(flag_sum) > 0 or (not multi_worker and stop.signum is not None)

    def evaluate() -> dict | None:
        """The validation metrics; None when a stop signal cut the evaluation short."""
        dataset = strategy.distribute_datasets_from_function(
            lambda ctx: data_lib.make_dataset(
                source,
                "validation",
                is_training=False,
                global_batch_size=global_batch,
                input_context=ctx,
                config=transform,
                drop_remainder=False,
                private_threadpool_size=config.private_threadpool_size,
            )
        )
        count = top1 = top5 = 0.0
        for images, labels in dataset:
            n, c1, c5, flag = distributed_eval_step(images, labels, tf.constant(stop.requested))
            count, top1, top5 = count + float(n), top1 + float(c1), top5 + float(c5)
            if stop_agreed(flag):
                return None
        count = max(count, 1.0)
        return {
            "val_top1_error": 1.0 - top1 / count,
            "val_top5_error": 1.0 - top5 / count,
            "val_examples": int(count),
        }

    start_step = int(step_var.numpy())
    start_epoch = start_step // steps_per_epoch
    data_seed = None if config.seed is None else config.seed + start_epoch
    train_dataset = strategy.distribute_datasets_from_function(
        lambda ctx: data_lib.make_dataset(
            source,
            "train",
            is_training=True,
            global_batch_size=global_batch,
            input_context=ctx,
            config=transform,
            seed=data_seed,
            private_threadpool_size=config.private_threadpool_size,
        )
    )
    iterator = iter(train_dataset)
    schedule = _LearningRate(config, steps_per_epoch)
    writers = {
        split: tf.summary.create_file_writer(os.path.join(write_dir, "logs", split))
        for split in ("train", "validation")
    }
    progbar = None
    if config.verbose and chief and start_step < total_steps:
        progbar = keras.utils.Progbar(
            total_steps, stateful_metrics=["loss", "top1_err", "lr", "img/s", "epoch"]
        )
        progbar.update(start_step)

    val_metrics: dict = {}
    train_time = 0.0
    trained_images = 0
    window = {"loss": 0.0, "top1": 0.0, "top5": 0.0, "steps": 0, "time": 0.0}
    step = start_step
    last_saved = -1

    def interrupted() -> TrainingInterrupted:
        if last_saved != step:
            manager.save(checkpoint_number=step)
        for writer in writers.values():
            writer.close()
        name = (
            signal.Signals(stop.signum).name
            if stop.signum is not None
            else "a stop signal on another worker"
        )
        path = manager.latest_checkpoint if chief else os.path.join(model_dir, "checkpoints")
        if chief:
            print(f"\nCheckpoint saved at step {step}: {path}", flush=True)
        return TrainingInterrupted(name, stop.signum or signal.SIGTERM, step, total_steps, path)

    while step < total_steps:
        lr = schedule(step, int(lr_drops.numpy()))
        optimizer.learning_rate.assign(lr)
        tick = time.perf_counter()
        images, labels = next(iterator)
        loss, top1, top5, flag = distributed_train_step(images, labels, tf.constant(stop.requested))
        loss = float(loss)  # waits for the step
        elapsed = time.perf_counter() - tick
        loss_scaled = isinstance(optimizer, keras.optimizers.LossScaleOptimizer)
        if not math.isfinite(loss) and not loss_scaled:
            raise FloatingPointError(
                f"The loss is {loss} at step {step + 1}; the run diverged (last checkpoint: "
                f"{manager.latest_checkpoint or 'none'}). Lower learning_rate or add "
                "warmup_epochs."
            )
        stopping = stop_agreed(flag)
        step += 1
        step_var.assign(step)
        epoch_var.assign(step // steps_per_epoch)
        if step > start_step + 1:  # the first step traces the graph: not a speed sample
            train_time += elapsed
            trained_images += global_batch
        window["loss"] += loss
        window["top1"] += float(top1)
        window["top5"] += float(top5)
        window["steps"] += 1
        window["time"] += elapsed
        epoch_end = step % steps_per_epoch == 0
        if step % config.log_every_steps == 0 or epoch_end or step == total_steps:
            n = window["steps"]
            images_per_sec = n * global_batch / max(window["time"], 1e-9)
            with writers["train"].as_default(step=step):
                _scalar("loss", window["loss"] / n)
                _scalar("top1_error", 1 - window["top1"] / (n * global_batch))
                _scalar(f"top{top_k}_error", 1 - window["top5"] / (n * global_batch))
                _scalar("learning_rate", lr)
                _scalar("images_per_sec", images_per_sec)
                for name, value in _mean_slopes(model).items():
                    _scalar(f"prelu_mean_slope/{name}", value)
            if progbar is not None:
                progbar.update(
                    step,
                    [
                        ("epoch", step / steps_per_epoch),
                        ("loss", window["loss"] / n),
                        ("top1_err", 1 - window["top1"] / (n * global_batch)),
                        ("lr", lr),
                        ("img/s", images_per_sec),
                    ],
                )
            elif chief:
                print(
                    f"step {step}/{total_steps} loss {window['loss'] / n:.4f} lr {lr:.2e} "
                    f"{images_per_sec:.1f} img/s",
                    flush=True,
                )
            window = {"loss": 0.0, "top1": 0.0, "top5": 0.0, "steps": 0, "time": 0.0}
        epoch = step // steps_per_epoch
        if (
            epoch_end
            and config.eval_every_epochs
            and epoch % config.eval_every_epochs == 0
            and step < total_steps
            and not stopping
        ):
            val_metrics = evaluate()
            if val_metrics is None:
                stopping = True
            else:
                _log_validation(writers, step, val_metrics, top_k, chief, epoch)
                _update_plateau(config, val_metrics, best_error, stale_evals, lr_drops)
        if step % config.checkpoint_every_steps == 0 or epoch_end:
            manager.save(checkpoint_number=step)
            last_saved = step
        if stopping:
            raise interrupted()
    if last_saved != step and step > start_step:
        manager.save(checkpoint_number=step)
        last_saved = step

    # Stop the (endless) training input pipeline before the final evaluation and export.
    del iterator, train_dataset
    val_metrics = evaluate()
    if val_metrics is None:
        raise interrupted()
    _log_validation(writers, step, val_metrics, top_k, chief, step // steps_per_epoch)
    for writer in writers.values():
        writer.close()

    export_dir = config.export_dir
    if not chief:
        export_dir = os.path.join(write_dir, "export")
    export_path = export_lib.export_model(
        model,
        export_dir or os.path.join("exported_models", config.name),
        class_names=source.class_names,
        metadata={
            "run_name": config.name,
            "training_data": {"dataset": config.dataset, "data_dir": config.data_dir},
            "train_steps": step,
            "evaluation": {
                "protocol": "center",
                "split": "validation",
                "val_top1_error": val_metrics["val_top1_error"],
                "val_top5_error": val_metrics["val_top5_error"],
            },
        },
        crop_size=config.crop_size,
        eval_resize=config.eval_resize,
    )
    summary = {
        "run_name": config.name,
        "val_top1_error": val_metrics["val_top1_error"],
        "val_top5_error": val_metrics["val_top5_error"],
        "val_top1_accuracy": 1.0 - val_metrics["val_top1_error"],
        "val_examples": val_metrics["val_examples"],
        "top_k": top_k,
        "learning_rate": schedule(max(step - 1, 0), int(lr_drops.numpy())),
        "lr_drops": int(lr_drops.numpy()),
        "train_steps": step,
        "steps_this_run": step - start_step,
        "resumed_from_step": resumed_from,
        "epochs": step / steps_per_epoch,
        "steps_per_epoch": steps_per_epoch,
        "global_batch_size": global_batch,
        "num_replicas": num_replicas,
        "strategy": type(strategy).__name__,
        "images_per_sec": trained_images / train_time if train_time else 0.0,
        "wall_time_sec": time.time() - start_time,
        "export_path": export_path,
        "model_dir": model_dir,
        "checkpoint_dir": os.path.join(model_dir, "checkpoints"),
        "latest_checkpoint": manager.latest_checkpoint,
        "tensorboard_dir": os.path.join(model_dir, "logs"),
        "skipped_images": data_lib.num_skipped_images(),
        # Sum of squares of all weights: workers of one run must report the same value.
        "weights_checksum": _weights_checksum(model),
    }
    if chief:
        _atomic_write_json(os.path.join(model_dir, SUMMARY_FILE), summary)
    else:
        summary["export_path"] = None
    return summary


def _log_validation(writers, step, metrics, top_k, chief, epoch) -> None:
    with writers["validation"].as_default(step=step):
        _scalar("top1_error", metrics["val_top1_error"])
        _scalar(f"top{top_k}_error", metrics["val_top5_error"])
    message = (
        f"validation (epoch {epoch}, step {step}): top-1 error {metrics['val_top1_error']:.4f}, "
        f"top-{top_k} error {metrics['val_top5_error']:.4f} on {metrics['val_examples']} images"
    )
    if chief:
        print("\n" + message, flush=True)


def _update_plateau(config, metrics, best_error, stale_evals, lr_drops) -> None:
    if config.lr_schedule != "plateau":
        return
    error = metrics["val_top1_error"]
    # An improvement of less than 0.1% absolute counts as none.
    if error < float(best_error.numpy()) - 1e-3:
        best_error.assign(error)
        stale_evals.assign(0)
        return
    stale_evals.assign_add(1)
    if (
        int(stale_evals.numpy()) >= config.plateau_patience
        and int(lr_drops.numpy()) < config.max_lr_drops
    ):
        lr_drops.assign_add(1)
        stale_evals.assign(0)
        print("Validation error plateaued: learning rate divided by 10.", flush=True)
