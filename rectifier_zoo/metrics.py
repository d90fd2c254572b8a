"""The one top-k rule of every error figure (training, evaluation, the studies), any backend."""

from keras import ops


def top_k_correct(labels, scores, k: int):
    """Whether each label is among the `k` highest scores of its row; ties count in its favour.

    A row is a hit when fewer than `k` classes score strictly higher than the label (the rule
    of `tf.math.in_top_k`), so a tie at the boundary never depends on a sort order. A row with a
    NaN or infinite score is a miss (as in `tf.math.in_top_k`): a diverged model scores nothing.

    Args:
        labels: integer class ids, shape `(batch,)`.
        scores: probabilities or logits, shape `(batch, classes)`.
        k: 1 for top-1, 5 for top-5.

    Returns:
        A boolean tensor of shape `(batch,)`.
    """
    scores = ops.cast(scores, "float32")
    label_scores = ops.take_along_axis(scores, ops.expand_dims(ops.cast(labels, "int32"), -1), -1)
    higher = ops.sum(ops.cast(scores > label_scores, "int32"), axis=-1)
    return ops.logical_and(higher < k, ops.all(ops.isfinite(scores), axis=-1))
