"""Faster training passes for the TensorFlow backend only: PReLU's, a Dense layer's under
mixed precision, and an optimizer's update of each variable.

TensorFlow without XLA runs `relu(y) + a * min(y, 0)` and its gradient as separate
element-wise ops (Relu, Minimum, Mul, AddV2 forward; ReluGrad, Mul, Mul, Sum and an AddN of the
two branches backward), each one a full read and write of the feature map. On a 2-core Xeon
with AMX that cost a PReLU 5x a ReLU's forward and backward in bfloat16, and Model A's
bf16 step spent a fifth of its op time there. Here the forward, `where(y > 0, y, a * y)`, and
the backward, the input's gradient with the slope's in one pass (the slope's summed in
float32), are each compiled by XLA into one kernel and joined by `tf.custom_gradient`.

A Dense layer's kernel gradient under bfloat16 compute is `x^T dy` in bfloat16, cast to the
float32 variable: a bf16 write, a read and a float32 write of the whole (in, out) kernel. At a
small batch that traffic, not the arithmetic, is the cost, and one float32 matmul writing the
float32 gradient directly is cheaper (see `dense`).

`CaffeSGD`'s update (coupled decay, then momentum) is about six element-wise ops per variable,
each a pass over it; `apply_step` compiles it into one XLA kernel that updates the variable
and its velocity in place.

`layers.PReLU` and `layers.Dense` use these only for training calls on the TensorFlow backend:
inference and exported SavedModels keep the portable ops, so TF Serving, TFLite and ONNX never
see XLA or a custom gradient. PReLU's values are those of the portable formula: the same
products, the same subgradient at 0 (the slope's side). Dense's output and input gradient are
Keras's to the bit; its small-batch kernel gradient is the same sum, left unrounded in float32.
Import this module only where TensorFlow is the backend.
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


# Batches up to this size take a Dense kernel's gradient in float32. Model A's fc1 (32256 x
# 4096), forward and backward in bf16 on a 2-core Xeon with AMX, ms: 133 as TensorFlow runs it
# against 90 with the float32 gradient at batch 8, 127 against 95 at 32, 133 against 170 at 64
# (the float32 matmul's arithmetic now counts; AMX's bf16 matmul wins from there on).
FLOAT32_KERNEL_GRAD_MAX_BATCH = 32


def dense(inputs, kernel):
    """`inputs @ kernel` in the inputs' (lower) precision for a float32 `kernel` (a variable,
    read here) and rank-2 `inputs`; the kernel's gradient in float32: computed so, from the
    same low-precision operands, at batches up to `FLOAT32_KERNEL_GRAD_MAX_BATCH`, else in the
    inputs' dtype and cast."""
    return _dense(inputs, tf.convert_to_tensor(kernel))


@tf.custom_gradient
def _dense(inputs, kernel):
    compute_kernel = tf.cast(kernel, inputs.dtype)

    def grad(upstream):
        def in_float32():
            return tf.matmul(
                tf.cast(inputs, kernel.dtype), tf.cast(upstream, kernel.dtype), transpose_a=True
            )

        def cast_from_compute():
            return tf.cast(tf.matmul(inputs, upstream, transpose_a=True), kernel.dtype)

        small = tf.shape(inputs)[0] <= FLOAT32_KERNEL_GRAD_MAX_BATCH
        grad_kernel = tf.cond(small, in_float32, cast_from_compute)
        return tf.matmul(upstream, compute_kernel, transpose_b=True), grad_kernel

    return tf.matmul(inputs, compute_kernel), grad


def apply_step(step, variable, slot, gradient, learning_rate, *options):
    """An optimizer's update of one variable, compiled by XLA into one kernel.

    `step(value, slot_value, gradient, learning_rate, *options)` returns the slot's new value
    (None without a slot) and the change to the variable; here they are assigned in place,
    so the variable, its slot and the gradient are each read once and the two variables
    written once. TensorFlow alone would run every op of `step` as its own pass over the
    variable: `CaffeSGD` on Model A's fc1 (32256 x 4096), 2-core AMD EPYC Zen 4, 75-83 ms as
    one kernel against 172-185 ms op by op.

    The kernel takes the variables' resource handles, not the variables: given variables
    built inside a `tf.function` (a custom loop's lazy build), the shared `tf.function` kept
    them in its trace, and a later model's variables of the same shape then failed on them.

    Args:
        step: the update formula, on values.
        variable: the model's `tf.Variable` (under `tf.distribute`, this device's copy).
        slot: the optimizer's Keras variable for it (e.g. the velocity), or None.
        gradient: the variable's gradient.
        learning_rate: a scalar tensor or variable.
        *options: hashable Python values `step` takes after the learning rate (each
            distinct tuple compiles its own kernel).
    """
    slot_handle = None if slot is None else _local_copy(slot, variable).handle
    _apply_step(
        step,
        variable.dtype,
        variable.handle,
        slot_handle,
        gradient,
        tf.convert_to_tensor(learning_rate),  # may be a Keras variable (the optimizer's)
        options,
    )


@tf.function(jit_compile=True, autograph=False)
def _apply_step(step, dtype, variable, slot, gradient, learning_rate, options):
    def read(handle):
        return tf.raw_ops.ReadVariableOp(resource=handle, dtype=dtype)

    new_slot, delta = step(
        read(variable), None if slot is None else read(slot), gradient, learning_rate, *options
    )
    if slot is not None:
        tf.raw_ops.AssignVariableOp(resource=slot, value=new_slot)
    tf.raw_ops.AssignAddVariableOp(resource=variable, value=delta)


def _local_copy(slot, variable):
    """The `tf.Variable` behind the Keras variable `slot` on the device of `variable`.

    Under `tf.distribute`, `update_step` runs once per device with that device's copy of the
    model's variable; the slot is a distributed variable whose copy on the same device is the
    one to update.
    """
    value = slot.value
    if not isinstance(value, tf.distribute.DistributedValues):
        return value
    for local in tf.distribute.get_strategy().experimental_local_results(value):
        if local.device == variable.device:
            return local
    raise ValueError(f"No copy of {slot.path} on {variable.device}.")
