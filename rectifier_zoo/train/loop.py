"""The training loop of the paper's recipe (Sec. 2.3) under any `tf.distribute` strategy.

    from rectifier_zoo.train import loop, recipes
    summary = loop.train(recipes.get_recipe("paper_small").override(data_dir="..."))

One custom loop serves every strategy (one device, `MirroredStrategy`,
`MultiWorkerMirroredStrategy`, `TPUStrategy`): `distribute_datasets_from_function` feeds
per-replica batches, `strategy.run(step)` runs inside a `tf.function` (`steps.py`). Keras 3
`model.fit` is not used because it fails under `MultiWorkerMirroredStrategy`.

The pieces, in the order `train` uses them:

- `config.py`: the run's settings, checked when built; `run_dir.py`: the run folder, the resume
  check (`resume_changes`) and config.json's history.
- Data: both splits are listed and counted before the run folder is created
  (`rectifier_zoo.data.check_splits`), so a bad data set fails before anything is written. The
  input iterator is not checkpointed: a resumed run restarts the training data at a freshly
  shuffled pass (seeded runs use `seed + epoch`), so it sees the same number of batches as an
  uninterrupted one, not exactly the same batches.
- `state.py`: model, optimizer (`CaffeSGD`: the paper's coupled weight decay on kernels only),
  step, epoch and plateau counters, checkpointed together; the precision policy. Fine-tuning:
  a fresh run loads `init_weights` (`rectifier_zoo.load_weights`, by layer name; a classifier
  with another class count keeps its fresh values), `freeze=trunk` freezes the trunk, and the
  optimizer is built on the trainable variables only; the export is the whole model.
- `steps.py`: the loss is the sum of per-example cross-entropies divided by the GLOBAL batch
  size, so the gradients summed over replicas are the mean over the global batch.
- `schedule.py`: the learning rate of each step, set on the optimizer before the step.
- `signals.py`: SIGTERM / SIGINT save a checkpoint after the step in flight and raise
  `TrainingInterrupted`; a validation pass in flight is abandoned.
- `metrics.py`, `report.py`: the training window, the speed, the validation pass (the whole
  split, partial batches counted by their real size), TensorBoard and the console.
- Export: `rectifier_zoo.serving.export.export_model` (JPEG/PNG bytes, float images and the
  dense endpoint) into the next integer version of `export_dir` (default
  `exported_models/<name>`).
"""

from __future__ import annotations

import dataclasses
import math
import os
import time

import keras
import tensorflow as tf

from rectifier_zoo import data as data_lib
from rectifier_zoo import models
from rectifier_zoo.serving import export as export_lib
from rectifier_zoo.train import distribute, metrics, run_dir, schedule
from rectifier_zoo.train import report as report_lib
from rectifier_zoo.train import state as state_lib
from rectifier_zoo.train import steps as steps_lib
from rectifier_zoo.train.config import Config
from rectifier_zoo.train.signals import StopSignals, TrainingInterrupted

__all__ = ["Config", "TrainingInterrupted", "train"]


def train(config: Config, strategy: tf.distribute.Strategy | None = None) -> dict:
    """Trains, validates, checkpoints and exports; returns (and writes) the summary.

    Everything that can be checked is checked before anything is written: the configuration,
    both data splits (class lists, empty classes, image counts), the run folder, the
    `init_weights` file of a fresh run (loaded before the run folder is created), and on a
    resume the stored configuration (`run_dir.resume_changes`) and the checkpoint itself.

    Args:
        config: the run.
        strategy: overrides `config.strategy` (tests pass their own).

    Returns:
        The summary dict, also written as `summary.json` into `model_dir` (by the chief).

    Raises:
        ValueError: a bad configuration, data set or run folder (nothing written).
        TrainingInterrupted: SIGTERM or SIGINT stopped the run after saving a checkpoint.
        FloatingPointError: the loss became nan or inf.
    """
    progress = metrics.Throughput(config.batch_size)
    plan = _prepare(config, strategy)  # nothing is written before this returns
    with state_lib.precision_policy(config.precision), StopSignals() as stop:
        if config.seed is not None:
            keras.utils.set_random_seed(config.seed)
        # Before the run folder: a missing or mismatching init_weights file writes nothing.
        state, fine_tuning = state_lib.TrainState.create(
            config, plan.source.num_classes, plan.strategy, fresh=plan.stored is None
        )
        with run_dir.write_dir(plan.model_dir, plan.chief, plan.worker) as write_dir:
            summary = _run(plan, state, fine_tuning, stop, progress, write_dir)
    if not plan.chief:
        summary["export_path"] = None
    else:
        run_dir.write_summary(plan.model_dir, summary)
    return summary


def _run(plan: _Plan, state, fine_tuning, stop, progress, write_dir: str) -> dict:
    """`train` once the state is built: restore, train, validate, export, summarize."""
    config = plan.config
    checkpoints = state_lib.Checkpoints(state, write_dir, config.keep_checkpoints)
    restored = checkpoints.restore_latest(plan.model_dir, config.model_dir)
    start = state.global_step
    if plan.chief:  # only now: a failed restore leaves the stored configuration as it was
        entry = plan.history_entry(start)
        run_dir.write_config(plan.model_dir, config, plan.class_names, plan.stored, entry)
    report = report_lib.Reporter(write_dir, plan.chief, plan.top_k, plan.steps_per_epoch)
    started_from = fine_tuning.describe()
    if started_from:
        report.say(started_from)
    report.start(start, plan.total_steps, progress_bar=bool(config.verbose))
    if restored:
        report.resumed(restored, start, plan.changes)
    steps = steps_lib.DistributedSteps(
        state.model, state.optimizer, plan.strategy, stop, config, plan.top_k
    )
    seed = None if config.seed is None else config.seed + start // plan.steps_per_epoch
    batches = iter(_dataset(plan, "train", seed))
    window = metrics.Window(config.batch_size)

    step = start
    while step < plan.total_steps:
        rate = schedule.learning_rate(config, step, plan.steps_per_epoch, state.plateau.drops)
        state.set_learning_rate(rate)
        with _Timer() as timer:
            loss, top1, topk, stopping = steps.train(*next(batches))
        metrics.check_finite(loss, step + 1, state.loss_scaled, checkpoints.latest)
        step = state.advance(plan.steps_per_epoch)
        window.add(loss, top1, topk, timer.seconds)
        progress.add(timer.seconds)
        epoch_end = step % plan.steps_per_epoch == 0
        if step % config.log_every_steps == 0 or epoch_end or step == plan.total_steps:
            report.train(step, rate, window.pop(), state.model)
        if epoch_end and plan.validates_after(step) and not stopping:
            result = _validate(plan, steps)
            stopping = result is None
            if result is not None:
                report.validation(step, result)
                if state.record_validation(config, result.top1_error):
                    report.say("Validation error plateaued: learning rate divided by 10.")
        if step % config.checkpoint_every_steps == 0 or epoch_end:
            checkpoints.save(step)
        if stopping:
            raise _stopped(stop, step, checkpoints, report, plan)
    if step > start:
        checkpoints.save_unless_saved(step)

    del batches  # stops the endless training pipeline before the final pass and the export
    result = _validate(plan, steps)
    if result is None:
        raise _stopped(stop, step, checkpoints, report, plan)
    report.validation(step, result)
    report.close()
    return {
        "run_name": config.name,
        **result.summary(),
        **_run_summary(plan, state, progress, start),
        "latest_checkpoint": checkpoints.latest,
        "export_path": _export(plan, state, result, write_dir),
    }


@dataclasses.dataclass(frozen=True)
class _Plan:
    """What `train` settles before writing anything."""

    config: Config
    strategy: tf.distribute.Strategy
    chief: bool
    source: data_lib.Source
    counts: dict
    model_dir: str  # absolute
    stored: dict | None  # config.json of the run being resumed
    changes: dict  # its compatible changes
    steps_per_epoch: int
    total_steps: int

    @property
    def class_names(self) -> list[str]:
        return list(self.source.class_names)

    @property
    def top_k(self) -> int:
        return min(metrics.TOP_K, self.source.num_classes)

    @property
    def worker(self) -> str:
        return distribute.worker_id(self.strategy)

    def history_entry(self, from_step: int) -> dict:
        return run_dir.history_entry(
            from_step, self.total_steps, self.steps_per_epoch, self.counts, self.changes
        )

    def validates_after(self, step: int) -> bool:
        """Whether the epoch ending at `step` is followed by a validation pass (the last step is
        always followed by one)."""
        every = self.config.eval_every_epochs
        epoch = step // self.steps_per_epoch
        return bool(every) and epoch % every == 0 and step < self.total_steps


def _prepare(config: Config, strategy) -> _Plan:
    """Checks the configuration, the data, the strategy, the run folder and a resume."""
    if not isinstance(config, Config):
        raise TypeError(f"config must be a Config. Received: config={config!r}")
    models.check_initializers(config.network.kernel_initializer, config.network.fc_initializer)
    source = data_lib.get_source(str(config.dataset), config.data_dir)
    counts = data_lib.check_splits(source, config.batch_size)
    strategy = strategy or distribute.get_strategy(str(config.strategy))
    num_replicas = strategy.num_replicas_in_sync
    if config.batch_size % num_replicas:
        raise ValueError(
            f"batch_size (global) must be divisible by the {num_replicas} replicas of the "
            f"strategy. Received: batch_size={config.batch_size}"
        )
    chief = distribute.is_chief(strategy)
    model_dir = os.path.abspath(config.model_dir)
    if chief:
        run_dir.check_writable(model_dir, "model_dir")
    # Non-chief workers check the chief's folder too (shared storage), so all of them refuse.
    stored = run_dir.read_stored_run(model_dir)
    changes = run_dir.resume_changes(config, source.class_names, stored) if stored else {}
    length = config.schedule
    steps_per_epoch = length.steps_per_epoch or max(counts["train"] // config.batch_size, 1)
    total_steps = length.train_steps or math.ceil(length.epochs * steps_per_epoch)
    return _Plan(
        config=config,
        strategy=strategy,
        chief=chief,
        source=source,
        counts=counts,
        model_dir=model_dir,
        stored=stored,
        changes=changes,
        steps_per_epoch=steps_per_epoch,
        total_steps=total_steps,
    )


class _Timer:
    """Seconds spent inside the `with` block."""

    def __enter__(self):
        self._start = time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.seconds = time.perf_counter() - self._start


def _dataset(plan: _Plan, split: str, seed: int | None = None):
    """The distributed `split`: training batches forever, or one pass over every image."""
    config = plan.config
    training = split == "train"
    return plan.strategy.distribute_datasets_from_function(
        lambda context: data_lib.make_dataset(
            plan.source,
            split,
            is_training=training,
            global_batch_size=config.batch_size,
            input_context=context,
            config=config.transform,
            seed=seed,
            drop_remainder=None if training else False,
            private_threadpool_size=config.private_threadpool_size,
        )
    )


def _validate(plan: _Plan, steps) -> metrics.Validation | None:
    """A pass over the validation split; None when a stop signal cut it short."""
    count = top1 = topk = 0.0
    for images, labels in _dataset(plan, "validation"):
        n, c1, ck, stopping = steps.evaluate(images, labels)
        count, top1, topk = count + n, top1 + c1, topk + ck
        if stopping:
            return None
    return metrics.Validation.from_counts(count, top1, topk, plan.top_k)


def _stopped(stop, step, checkpoints, report, plan: _Plan) -> TrainingInterrupted:
    """Saves the checkpoint of `step` and returns the exception that ends the run."""
    checkpoints.save_unless_saved(step)
    report.close()
    path = checkpoints.latest if plan.chief else os.path.join(plan.model_dir, "checkpoints")
    report.say(f"\nCheckpoint saved at step {step}: {path}")
    return stop.interrupted(step, plan.total_steps, path)


def _export(plan: _Plan, state, result: metrics.Validation, write_dir: str) -> str:
    """The SavedModel of the trained model; non-chief workers write theirs to `write_dir`."""
    config = plan.config
    if plan.chief:
        export_dir = config.export_dir or os.path.join("exported_models", config.name)
    else:
        export_dir = os.path.join(write_dir, "export")
    return export_lib.export_model(
        state.model,
        export_dir,
        class_names=plan.class_names,
        metadata={
            "run_name": config.name,
            "training_data": {"dataset": str(config.dataset), "data_dir": config.data_dir},
            "train_steps": state.global_step,
            "evaluation": {
                "protocol": "center",
                "split": "validation",
                "val_top1_error": result.top1_error,
                "val_top5_error": result.topk_error,
            },
        },
        crop_size=config.transform.crop_size,
        eval_resize=config.transform.eval_resize,
        jpeg_downscale=config.transform.jpeg_downscale,
    )


def _run_summary(plan: _Plan, state, progress: metrics.Throughput, start: int) -> dict:
    """The summary.json entries of the run (the validation's come from `metrics.Validation`)."""
    config, step = plan.config, state.global_step
    return {
        "learning_rate": schedule.learning_rate(
            config, max(step - 1, 0), plan.steps_per_epoch, state.plateau.drops
        ),
        "lr_drops": state.plateau.drops,
        "train_steps": step,
        "steps_this_run": step - start,
        "resumed_from_step": start,
        "epochs": step / plan.steps_per_epoch,
        "steps_per_epoch": plan.steps_per_epoch,
        "global_batch_size": config.batch_size,
        "num_replicas": plan.strategy.num_replicas_in_sync,
        "strategy": type(plan.strategy).__name__,
        "images_per_sec": progress.images_per_sec,
        "wall_time_sec": progress.wall_time_sec,
        "model_dir": plan.model_dir,
        "checkpoint_dir": os.path.join(plan.model_dir, "checkpoints"),
        "tensorboard_dir": os.path.join(plan.model_dir, "logs"),
        "skipped_images": data_lib.num_skipped_images(),
        # Sum of squares of all weights: workers of one run must report the same value.
        "weights_checksum": metrics.weights_checksum(state.model),
    }
