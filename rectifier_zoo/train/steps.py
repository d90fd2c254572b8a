"""The per-replica training and evaluation steps, shared by the trainer and the studies.

Each factory returns a plain function of one replica's batch; callers wrap it in
`strategy.run` and `tf.function` (the trainer: `DistributedSteps`) or in `tf.function` alone
(the studies).
"""

from __future__ import annotations

import keras
import tensorflow as tf

from rectifier_zoo.metrics import top_k_correct
from rectifier_zoo.train import distribute


def _hits(labels, probabilities, k: int) -> tf.Tensor:
    return tf.reduce_sum(tf.cast(top_k_correct(labels, probabilities, k), tf.float32))


def make_train_step(model: keras.Model, optimizer, global_batch_size: int, top_k: int = 5):
    """`step(images, labels) -> (loss, top-1 hits, top-k hits)` for one replica's batch.

    The loss is the sum of per-example cross-entropies divided by the GLOBAL batch size, so the
    gradients the optimizer sums over replicas are the mean over the global batch. A
    `LossScaleOptimizer` (mixed float16) scales the loss before the gradient.
    """
    loss_scaled = isinstance(optimizer, keras.optimizers.LossScaleOptimizer)

    def step(images, labels):
        trainable = model.trainable_variables
        with tf.GradientTape() as tape:
            probabilities = model(images, training=True)
            per_example = keras.losses.sparse_categorical_crossentropy(labels, probabilities)
            loss = tf.reduce_sum(per_example) / global_batch_size
            scaled_loss = optimizer.scale_loss(loss) if loss_scaled else loss
        grads = tape.gradient(scaled_loss, trainable)
        optimizer.apply_gradients(zip(grads, trainable, strict=True))
        return loss, _hits(labels, probabilities, 1), _hits(labels, probabilities, top_k)

    return step


def make_eval_step(model: keras.Model, top_k: int = 5):
    """`step(images, labels) -> (examples, top-1 hits, top-k hits)` for one replica's batch.

    The last, partial global batch leaves some replicas an empty batch, which some ops (e.g.
    oneDNN's conv + PReLU) reject: those replicas skip the model and count nothing.
    """

    def step(images, labels):
        def score():
            probabilities = model(images, training=False)
            return _hits(labels, probabilities, 1), _hits(labels, probabilities, top_k)

        count = tf.shape(labels)[0]
        top1, topk = tf.cond(count > 0, score, lambda: (tf.constant(0.0), tf.constant(0.0)))
        return tf.cast(count, tf.float32), top1, topk

    return step


class DistributedSteps:
    """The two steps under `strategy.run` in `tf.function`s, each carrying the stop flag.

    The flag (`signals.StopSignals.requested`) is summed over the replicas with the step's own
    results, so it costs no extra collective; under multi-worker every worker then sees the same
    sum and stops at the same step. One process acts on its own signal at once.
    """

    def __init__(self, model, optimizer, strategy, stop, config, top_k: int = 5):
        """`config`: a `rectifier_zoo.train.config.Config` (its batch_size and xla)."""
        self._train = _distributed(
            strategy,
            make_train_step(model, optimizer, config.batch_size, top_k),
            jit_compile=config.xla or None,
        )
        self._evaluate = _distributed(strategy, make_eval_step(model, top_k), reduce_retracing=True)
        self._stop = stop
        self._one_process = distribute.num_workers(strategy) == 1

    def _stopping(self, flag_sum) -> bool:
        return float(flag_sum) > 0 or (self._one_process and self._stop.signum is not None)

    def train(self, images, labels) -> tuple[float, float, float, bool]:
        """(loss, top-1 hits, top-k hits, whether to stop) of one global batch; waits for it."""
        loss, top1, topk, flag = self._train(images, labels, tf.constant(self._stop.requested))
        return float(loss), float(top1), float(topk), self._stopping(flag)

    def evaluate(self, images, labels) -> tuple[float, float, float, bool]:
        """(examples, top-1 hits, top-k hits, whether to stop) of one global batch."""
        count, top1, topk, flag = self._evaluate(images, labels, tf.constant(self._stop.requested))
        return float(count), float(top1), float(topk), self._stopping(flag)


def _distributed(strategy, step, **options):
    @tf.function(**options)
    def run(images, labels, stop_flag):
        results = strategy.run(
            lambda x, y, flag: (*step(x, y), tf.identity(flag)), args=(images, labels, stop_flag)
        )
        return tuple(strategy.reduce(tf.distribute.ReduceOp.SUM, t, axis=None) for t in results)

    return run
