"""Where a run's progress goes: TensorBoard logs on every worker, the console on the chief only.

The console shows a progress bar (`verbose=1`) or one line per `log_every_steps` (`verbose=0`),
one line per validation pass and the run's few messages (resumed, plateau, checkpoint saved).
Every console line of the loop is printed here; a non-chief worker prints none, and its
TensorBoard logs go to its temporary folder.
"""

from __future__ import annotations

import os

import keras
import tensorflow as tf
from tensorflow.core.framework import summary_pb2

from rectifier_zoo.train import metrics

# TensorBoard's scalar plugin tag; written with `tf.summary.write`, which (unlike
# `tf.summary.scalar`) works without the tensorboard package installed.
_SCALAR_METADATA = summary_pb2.SummaryMetadata(
    plugin_data=summary_pb2.SummaryMetadata.PluginData(plugin_name="scalars")
)


def _scalar(name: str, value: float) -> None:
    tf.summary.write(name, tf.constant(value, tf.float32), metadata=_SCALAR_METADATA)


class Reporter:
    """TensorBoard scalars under `<write_dir>/logs/{train,validation}`, and the console.

    Args:
        write_dir: the run folder (the chief) or the worker's temporary folder.
        chief: whether this process prints.
        top_k: the k of the top-k error.
        steps_per_epoch: the run's epoch length.
    """

    def __init__(self, write_dir: str, chief: bool, top_k: int, steps_per_epoch: int):
        self.chief = chief
        self.top_k = top_k
        self.steps_per_epoch = steps_per_epoch
        self.total_steps = 0
        self._writers = {
            split: tf.summary.create_file_writer(os.path.join(write_dir, "logs", split))
            for split in ("train", "validation")
        }
        self._progbar = None

    def start(self, step: int, total_steps: int, progress_bar: bool) -> None:
        """Training goes from `step` to `total_steps`: a progress bar (`verbose=1`) or lines."""
        self.total_steps = total_steps
        if progress_bar and self.chief and step < total_steps:
            self._progbar = keras.utils.Progbar(
                total_steps, stateful_metrics=["loss", "top1_err", "lr", "img/s", "epoch"]
            )
            self._progbar.update(step)

    def resumed(self, checkpoint: str, step: int, changes: dict) -> None:
        changed = ", ".join(sorted(changes)) or "nothing"
        self.say(f"Resumed from {checkpoint} at step {step} (changed: {changed}).")

    def say(self, message: str) -> None:
        if self.chief:
            print(message, flush=True)

    def train(self, step: int, learning_rate: float, window: dict, model) -> None:
        """A training window (`metrics.Window.pop`) at `step`."""
        with self._writers["train"].as_default(step=step):
            _scalar("loss", window["loss"])
            _scalar("top1_error", window["top1_error"])
            _scalar(f"top{self.top_k}_error", window["topk_error"])
            _scalar("learning_rate", learning_rate)
            _scalar("images_per_sec", window["images_per_sec"])
            for name, value in metrics.mean_prelu_slopes(model).items():
                _scalar(f"prelu_mean_slope/{name}", value)
        if self._progbar is not None:
            self._progbar.update(
                step,
                [
                    ("epoch", step / self.steps_per_epoch),
                    ("loss", window["loss"]),
                    ("top1_err", window["top1_error"]),
                    ("lr", learning_rate),
                    ("img/s", window["images_per_sec"]),
                ],
            )
        else:
            self.say(
                f"step {step}/{self.total_steps} loss {window['loss']:.4f} "
                f"lr {learning_rate:.2e} {window['images_per_sec']:.1f} img/s"
            )

    def validation(self, step: int, result: metrics.Validation) -> None:
        with self._writers["validation"].as_default(step=step):
            _scalar("top1_error", result.top1_error)
            _scalar(f"top{self.top_k}_error", result.topk_error)
        self.say(
            f"\nvalidation (epoch {step // self.steps_per_epoch}, step {step}): top-1 error "
            f"{result.top1_error:.4f}, top-{self.top_k} error {result.topk_error:.4f} on "
            f"{result.examples} images"
        )

    def close(self) -> None:
        for writer in self._writers.values():
            writer.close()
