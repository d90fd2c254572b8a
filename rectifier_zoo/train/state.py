"""The training state, one checkpointable object, and the precision policy (TensorFlow).

`TrainState` holds what a resumed run needs: the model, the optimizer (with its momentum
slots), the step, the epoch and the plateau rule's counters. Fine-tuning (`init_weights`,
`freeze`) happens in `TrainState.create`, between the model and the optimizer: a fresh run
loads the file into the model, then the trunk is frozen, then the optimizer is built on the
trainable variables only. `Checkpoints` saves it every
`checkpoint_every_steps` steps and at each epoch end, keeping the last `keep_checkpoints`.
TensorFlow writes each checkpoint to temporary files and renames them, and the `checkpoint`
index file last, so a crash never leaves a half checkpoint as the latest one. On multi-worker
only the chief writes to `model_dir`; the other workers write to a temporary folder (every
worker must save, since saving may run collectives) and restore from the chief's
`model_dir/checkpoints`, so on several hosts `model_dir` must be on storage all of them read
(GCS, NFS); a worker that cannot read it would start again at step 0.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os

import keras
import tensorflow as tf

import rectifier_zoo
from rectifier_zoo.models import build_model as build_architecture
from rectifier_zoo.optimizers import CaffeSGD
from rectifier_zoo.train import schedule
from rectifier_zoo.train.config import Config, Freeze, Precision


@contextlib.contextmanager
def precision_policy(precision: str):
    """Keras's global dtype policy set to `precision` inside, the previous one restored after."""
    previous = keras.mixed_precision.dtype_policy()
    keras.mixed_precision.set_dtype_policy(str(precision))
    try:
        yield
    finally:
        keras.mixed_precision.set_dtype_policy(previous)


def build_model(config: Config, num_classes: int) -> keras.Model:
    """The network of `config.network` with `num_classes` outputs, on inputs of any size.

    Its architecture with the network's `input_std` (the recipe's input scale) applied.
    """
    network = config.network
    kwargs = dict(
        input_shape=(None, None, 3),
        classes=num_classes,
        activation=str(network.activation),
        channel_shared=network.channel_shared,
        kernel_initializer=network.kernel_initializer,
        fc_initializer=network.fc_initializer,
        dropout=network.dropout,
        seed=config.seed,
    )
    return build_architecture(network.architecture(), **kwargs)


@dataclasses.dataclass(frozen=True)
class FineTuning:
    """What `start_from` did: the file loaded (None: none) and the layers frozen."""

    loaded: rectifier_zoo.weights.LoadedWeights | None = None
    frozen: tuple[str, ...] = ()
    trainable_variables: int = 0

    def describe(self) -> str | None:
        """One console line; None when the run neither loaded weights nor froze layers."""
        parts = []
        if self.loaded is not None:
            loaded = self.loaded
            parts.append(f"Initial weights {loaded.path}: {len(loaded.loaded)} layers loaded")
            if loaded.reinitialized:
                parts.append(
                    f"{', '.join(loaded.reinitialized)} re-initialized (another class count)"
                )
            if loaded.adapted:
                parts.append(f"{', '.join(loaded.adapted)} adapted to the input channels")
        if self.frozen:
            parts.append(
                f"trunk frozen ({len(self.frozen)} layers; "
                f"{self.trainable_variables} variables train)"
            )
        if not parts:
            return None
        line = "; ".join(parts)
        return line[0].upper() + line[1:] + "."


def start_from(config: Config, model: keras.Model, fresh: bool) -> FineTuning:
    """Loads `config.init_weights` into `model` (a fresh run only) and applies `config.freeze`.

    The file is matched layer by layer by name (`rectifier_zoo.load_weights`): anything that
    does not fit raises ValueError and nothing is loaded. A classifier with another class count
    than the file's keeps the values the model was built with: under a strategy those were
    drawn once and copied to every replica and worker, whereas a draw after the build would
    differ from worker to worker in an unseeded run.

    Args:
        config: the run.
        model: the model just built (in the strategy's scope).
        fresh: False when a checkpoint is restored next: the checkpoint wins and the file is not
            read. The trunk is frozen either way, so the optimizer has the same variables.
    """
    loaded = None
    if fresh and config.init_weights is not None:
        dense = [layer for layer in model.layers if isinstance(layer, keras.layers.Dense)]
        drawn = {layer.name: layer.get_weights() for layer in dense[-1:]}
        loaded = rectifier_zoo.load_weights(
            model, config.init_weights, architecture=config.network.model_name
        )
        for name in loaded.reinitialized:
            if name in drawn:
                model.get_layer(name).set_weights(drawn[name])
    frozen = ()
    if config.freeze == Freeze.TRUNK:
        frozen = tuple(rectifier_zoo.set_trunk_trainable(model, False))
    return FineTuning(loaded, frozen, len(model.trainable_variables))


def build_optimizer(config: Config, model: keras.Model) -> keras.optimizers.Optimizer:
    """The paper's SGD for `model` (built, in the strategy's scope), loss-scaled for float16.

    `rectifier_zoo.CaffeSGD`: momentum, and Caffe's coupled L2 weight decay (`weight_decay * w`
    added to the gradient before the momentum update) on conv and fc kernels only; PReLU slopes
    and biases are never decayed (Sec. 2.1). It adds the decay after Keras has summed the
    gradient over the replicas and undone the loss scale, so neither the replica count nor
    mixed float16 changes it. Keras's `SGD(weight_decay=...)` is decoupled and not the paper's.
    """
    optimizer = CaffeSGD(
        learning_rate=config.optimizer.learning_rate,
        momentum=config.optimizer.momentum,
        weight_decay=config.optimizer.weight_decay,
        model=model,
    )
    if config.precision == Precision.MIXED_FLOAT16:
        optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
    optimizer.build(model.trainable_variables)
    return optimizer


def _counter(name: str, value=0, dtype=tf.int64) -> tf.Variable:
    return tf.Variable(value, dtype=dtype, trainable=False, name=name)


class TrainState:
    """Model, optimizer, step, epoch and the plateau counters of a run."""

    def __init__(self, model: keras.Model, optimizer: keras.optimizers.Optimizer):
        self.model = model
        self.optimizer = optimizer
        self.step = _counter("step")
        self.epoch = _counter("epoch")
        self.lr_drops = _counter("lr_drops")
        self.best_val_error = _counter("best_val_error", schedule.Plateau().best_error, tf.float64)
        self.stale_evals = _counter("stale_evals")

    @classmethod
    def create(
        cls, config: Config, num_classes: int, strategy, fresh: bool = True
    ) -> tuple[TrainState, FineTuning]:
        """A new state, its variables placed by `strategy`, and what `start_from` did.

        `fresh`: no checkpoint will be restored, so `config.init_weights` is loaded.
        """
        with strategy.scope():
            model = build_model(config, num_classes)
            fine_tuning = start_from(config, model, fresh)
            return cls(model, build_optimizer(config, model)), fine_tuning

    def checkpoint(self) -> tf.train.Checkpoint:
        """Everything above under fixed names (the checkpoints' layout)."""
        return tf.train.Checkpoint(
            model=self.model,
            optimizer=self.optimizer,
            step=self.step,
            epoch=self.epoch,
            lr_drops=self.lr_drops,
            best_val_error=self.best_val_error,
            stale_evals=self.stale_evals,
        )

    @property
    def global_step(self) -> int:
        return int(self.step.numpy())

    @property
    def plateau(self) -> schedule.Plateau:
        return schedule.Plateau(
            float(self.best_val_error.numpy()),
            int(self.stale_evals.numpy()),
            int(self.lr_drops.numpy()),
        )

    @property
    def loss_scaled(self) -> bool:
        return isinstance(self.optimizer, keras.optimizers.LossScaleOptimizer)

    def set_learning_rate(self, rate: float) -> None:
        self.optimizer.learning_rate.assign(rate)

    def advance(self, steps_per_epoch: int) -> int:
        """Counts one step done; returns the new step."""
        step = self.global_step + 1
        self.step.assign(step)
        self.epoch.assign(step // steps_per_epoch)
        return step

    def record_validation(self, config: Config, error: float) -> bool:
        """Feeds a validation error to the plateau rule; True when the rate was divided."""
        before = self.plateau
        after = schedule.after_validation(config.schedule, before, error)
        self.best_val_error.assign(after.best_error)
        self.stale_evals.assign(after.stale_evals)
        self.lr_drops.assign(after.drops)
        return after.drops > before.drops


class Checkpoints:
    """Saves a `TrainState` under `<write_dir>/checkpoints` and restores the latest one."""

    def __init__(self, state: TrainState, write_dir: str, keep: int):
        self._checkpoint = state.checkpoint()
        self._manager = tf.train.CheckpointManager(
            self._checkpoint, os.path.join(write_dir, "checkpoints"), max_to_keep=keep
        )
        self.saved_step: int | None = None

    @property
    def latest(self) -> str | None:
        return self._manager.latest_checkpoint

    def save(self, step: int) -> None:
        self._manager.save(checkpoint_number=step)
        self.saved_step = step

    def save_unless_saved(self, step: int) -> None:
        if self.saved_step != step:
            self.save(step)

    def restore_latest(self, model_dir: str, shown_model_dir: str) -> str | None:
        """Restores the latest checkpoint of `<model_dir>/checkpoints`; returns it (None: none).

        Non-chief workers read the chief's folder (shared storage) when it is readable.

        Raises:
            ValueError: the checkpoint does not fit the state (another model, optimizer, ...).
        """
        latest = tf.train.latest_checkpoint(os.path.join(model_dir, "checkpoints"))
        if not latest:
            return None
        try:
            self._checkpoint.restore(latest).assert_existing_objects_matched()
        except (ValueError, AssertionError, tf.errors.OpError) as error:
            first_line = str(error).strip().splitlines()[0] if str(error).strip() else ""
            raise ValueError(
                f"The checkpoint {latest!r} does not fit this configuration ({first_line}). "
                f"Use another model_dir. Received: model_dir={shown_model_dir!r}"
            ) from None
        return latest
