"""What a run measures: the training window between log lines, the speed, the validation pass.

Pure Python, except `weights_checksum` and `mean_prelu_slopes`, which read a Keras model.
"""

from __future__ import annotations

import dataclasses
import math
import time

# The summary names the top-k error `val_top5_error` whatever k is (k = min(5, classes)).
TOP_K = 5


class Window:
    """Sums of loss, top-1 / top-k hits and seconds over the steps since the last `pop`."""

    def __init__(self, batch_size: int):
        self.batch_size = batch_size
        self._reset()

    def _reset(self) -> None:
        self.steps = 0
        self.loss = self.top1_hits = self.topk_hits = self.seconds = 0.0

    def add(self, loss: float, top1_hits: float, topk_hits: float, seconds: float) -> None:
        self.steps += 1
        self.loss += loss
        self.top1_hits += top1_hits
        self.topk_hits += topk_hits
        self.seconds += seconds

    def pop(self) -> dict:
        """The window's means (loss, top-1 / top-k error, images/s); starts a new window."""
        images = self.steps * self.batch_size
        result = {
            "loss": self.loss / self.steps,
            "top1_error": 1 - self.top1_hits / images,
            "topk_error": 1 - self.topk_hits / images,
            "images_per_sec": images / max(self.seconds, 1e-9),
        }
        self._reset()
        return result


class Throughput:
    """Images per second over a run's steps; the first traces the graph and is left out."""

    def __init__(self, batch_size: int):
        self.batch_size = batch_size
        self.started = time.time()
        self._steps = 0
        self._images = 0
        self._seconds = 0.0

    def add(self, seconds: float) -> None:
        self._steps += 1
        if self._steps > 1:
            self._images += self.batch_size
            self._seconds += seconds

    @property
    def steps(self) -> int:
        """Steps trained in this run."""
        return self._steps

    @property
    def images_per_sec(self) -> float:
        return self._images / self._seconds if self._seconds else 0.0

    @property
    def wall_time_sec(self) -> float:
        return time.time() - self.started


@dataclasses.dataclass(frozen=True)
class Validation:
    """One pass over the whole validation split: each image counted once, by its real batch."""

    top1_error: float
    topk_error: float
    examples: int
    top_k: int

    @classmethod
    def from_counts(cls, count: float, top1_hits: float, topk_hits: float, top_k: int):
        count = max(count, 1.0)
        return cls(1.0 - top1_hits / count, 1.0 - topk_hits / count, int(count), top_k)

    def summary(self) -> dict:
        """The summary.json entries."""
        return {
            "val_top1_error": self.top1_error,
            "val_top5_error": self.topk_error,
            "val_top1_accuracy": 1.0 - self.top1_error,
            "val_examples": self.examples,
            "top_k": self.top_k,
        }


def check_finite(loss: float, step: int, loss_scaled: bool, last_checkpoint: str | None) -> None:
    """Raises FloatingPointError on a nan / inf loss (a loss-scaled step skips those itself)."""
    if not math.isfinite(loss) and not loss_scaled:
        raise FloatingPointError(
            f"The loss is {loss} at step {step}; the run diverged (last checkpoint: "
            f"{last_checkpoint or 'none'}). Lower learning_rate (the paper's 0.01 is for batch "
            "128), add warmup_epochs, or check input_std: at 1 the model sees raw pixels minus "
            "the mean, as the paper's 224 px recipes do; small models on small images train "
            "better at unit scale (input_std=58, the quickstart recipe's)."
        )


def weights_checksum(model) -> float:
    """Sum of squares of all weights: the workers of one run must report the same value."""
    import tensorflow as tf

    return float(
        sum(tf.reduce_sum(tf.cast(tf.convert_to_tensor(w), tf.float64) ** 2) for w in model.weights)
    )


def mean_prelu_slopes(model) -> dict[str, float]:
    """The mean learned slope of each PReLU layer (Table 1 reports them)."""
    import tensorflow as tf

    from rectifier_zoo.layers import PReLU

    return {
        layer.name: float(tf.reduce_mean(tf.convert_to_tensor(layer.weights[0])))
        for layer in model.layers
        if isinstance(layer, PReLU) and layer.weights
    }
