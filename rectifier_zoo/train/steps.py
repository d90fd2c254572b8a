"""The per-replica training and evaluation steps, shared by the trainer and the studies.

Each factory returns a plain function of one replica's batch; callers wrap it in
`strategy.run` and `tf.function` (the trainer) or in `tf.function` alone (the studies).
"""

from __future__ import annotations

import keras
import tensorflow as tf

from rectifier_zoo.metrics import top_k_correct


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
