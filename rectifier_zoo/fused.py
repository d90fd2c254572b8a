"""PReLU's training pass as two fused kernels, for the TensorFlow backend only.

TensorFlow without XLA runs `relu(y) + a * min(y, 0)` and its gradient as separate
element-wise ops (Relu, Minimum, Mul, AddV2 forward; ReluGrad, Mul, Mul, Sum and an AddN of the
two branches backward), each one a full read and write of the feature map. On a 2-core Xeon
with AMX that cost a PReLU 5x a ReLU's forward and backward in bfloat16, and Model A's
bf16 step spent a fifth of its op time there. Here the forward, `where(y > 0, y, a * y)`, and
the backward, the input's gradient with the slope's in one pass (the slope's summed in
float32), are each compiled by XLA into one kernel and joined by `tf.custom_gradient`.

`layers.PReLU` uses this only for training calls on the TensorFlow backend: inference and
exported SavedModels keep the portable ops, so TF Serving, TFLite and ONNX never see XLA.
The values are those of the portable formula: the same products, the same subgradient at 0
(the slope's side). Import it only where TensorFlow is the backend.
"""

import tensorflow as tf


def _slope_axes(rank: int, slope_shape: tf.TensorShape) -> list[int]:
    """The input's axes the slope is broadcast over (numpy rules): its gradient sums them."""
    offset = rank - slope_shape.rank
    return [axis for axis in range(rank) if axis < offset or slope_shape[axis - offset] == 1]


@tf.function(jit_compile=True, autograph=False)
def _forward(inputs, slope):
    return tf.where(inputs > 0, inputs, slope * inputs)


@tf.function(jit_compile=True, autograph=False)
def _backward(upstream, inputs, slope):
    positive = inputs > 0
    grad_inputs = tf.where(positive, upstream, slope * upstream)
    terms = tf.where(positive, 0.0, tf.cast(upstream, tf.float32) * tf.cast(inputs, tf.float32))
    grad_slope = tf.reduce_sum(terms, axis=_slope_axes(inputs.shape.rank, slope.shape))
    return grad_inputs, tf.cast(tf.reshape(grad_slope, tf.shape(slope)), slope.dtype)


@tf.custom_gradient
def prelu(inputs, slope):
    """`max(0, y) + a * min(0, y)` for `inputs` y and a `slope` a that broadcasts against it
    (a scalar, `(C,)` for channels-last maps, `(C, 1, 1)` for channels-first); both of one
    dtype, the input's rank known."""

    def grad(upstream):
        return _backward(upstream, inputs, slope)

    return _forward(inputs, slope), grad
