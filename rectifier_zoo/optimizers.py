"""The paper's optimizer: Caffe's SGD with momentum and coupled L2 weight decay.

The update is written once in `keras.ops`, so the optimizer runs under every Keras backend; on
TensorFlow, `rectifier_zoo.fused` compiles it into one XLA kernel per variable.
"""

import math
import numbers

import keras
from keras import ops

from rectifier_zoo import paper
from rectifier_zoo.models import weight_decay_exclusions as _model_exclusions


def _check_real(argument: str, value, low: float, high: float | None = None) -> float:
    """A finite real number in [low, high) (or [low, inf) without `high`), as a float."""
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool)
    if ok:
        value = float(value)
        ok = math.isfinite(value) and value >= low and (high is None or value < high)
    if not ok:
        bounds = f"[{low}, {'inf' if high is None else high})"
        raise ValueError(
            f"`{argument}` must be a finite number in {bounds}. Received: {argument}={value!r}"
        )
    return value


@keras.saving.register_keras_serializable(package="rectifier_zoo")
class CaffeSGD(keras.optimizers.Optimizer):
    """SGD with momentum and coupled L2 weight decay, as Caffe (and the paper) trains.

    For each variable `w` with gradient `g`, velocity `v` (starting at 0) and learning rate `lr`:

    ```python
    g = g + weight_decay * w          # only where weight decay applies
    v = momentum * v - lr * g
    w = w + v                         # nesterov=True: w = w + momentum * v - lr * g
    ```

    The decay term is the gradient of `0.5 * weight_decay * |w|^2` added to the loss, so it
    goes through the momentum like the rest of the gradient. He et al. (2015) train with Caffe
    this way (training details: weight decay 0.0005, momentum 0.9), on the conv and fc kernels
    only: PReLU slopes (`negative_slope`) are never decayed (Sec. 2.1), nor are biases (the
    usual Caffe setting, and `rectifier_zoo.weight_decay_exclusions`).

    How this differs from `keras.optimizers.SGD(weight_decay=...)`: Keras's decay is decoupled.
    It shrinks `w` by `lr * weight_decay * w` once per step, outside the momentum, whereas here the
    same term enters the velocity and accumulates over about `1 / (1 - momentum)` steps. At
    momentum 0.9 Keras's decay is therefore about 10x weaker than the paper's with the same
    `weight_decay`. The decay is added after the gradients are unscaled by a
    `LossScaleOptimizer` and summed over replicas, so it is neither multiplied by the loss scale
    nor by the number of replicas.

    Which variables are decayed follows Keras's own `exclude_from_weight_decay(var_list=...,
    var_names=...)`: a variable is left out when it is in `var_list`, or when one of `var_names`
    (regular expressions, as in Keras) is found in its `name`, the short name such as `"kernel"`
    or `"negative_slope"` on every backend (leave out a whole layer's variables with
    `var_list`). With `model=`, the names of `rectifier_zoo.weight_decay_exclusions(model)`
    (PReLU slopes, biases) are excluded from the start; a later call to
    `exclude_from_weight_decay` (before the first step) replaces them, as in Keras. The names,
    not a `var_list`, are part of `get_config`, so a saved and reloaded optimizer keeps them.

    Args:
        learning_rate: a float >= 0, a `keras.optimizers.schedules.LearningRateSchedule`, or a
            callable that takes no arguments and returns the learning rate. Defaults to 0.01,
            the paper's starting value.
        momentum: a float in [0, 1). Defaults to 0.9, as in the paper.
        weight_decay: the L2 coefficient, a float >= 0 (`None` means 0). Defaults to 5e-4, as
            in the paper.
        nesterov: whether to use Nesterov momentum (Caffe's `Nesterov` solver); the paper does
            not. Defaults to False.
        model: a built `keras.Model`; when given, its `weight_decay_exclusions` are left out of
            weight decay. The model itself is not stored.
        weight_decay_exclusions: more variable-name patterns to leave out of weight decay (the
            form `get_config` stores them in).
        **kwargs: the other `keras.optimizers.Optimizer` arguments (`name`, `clipnorm`,
            `global_clipnorm`, `clipvalue`, `use_ema`, `loss_scale_factor`,
            `gradient_accumulation_steps`, ...).

    Example:

    ```python
    model = rectifier_zoo.model_small()
    model.compile(
        optimizer=rectifier_zoo.CaffeSGD(0.01, model=model),
        loss="sparse_categorical_crossentropy",
    )
    ```

    Reference: He et al., "Delving Deep into Rectifiers", ICCV 2015: Sec. 2.1 (no decay on the
    slopes) and Sec. 2.3, "Training" (momentum 0.9, weight decay 0.0005).
    """

    def __init__(
        self,
        learning_rate=paper.LEARNING_RATES[0],
        momentum: float = paper.MOMENTUM,
        weight_decay: float | None = paper.WEIGHT_DECAY,
        nesterov: bool = False,
        model: keras.Model | None = None,
        weight_decay_exclusions=None,
        **kwargs,
    ):
        if not isinstance(learning_rate, keras.optimizers.schedules.LearningRateSchedule) and (
            not callable(learning_rate)
        ):
            learning_rate = _check_real("learning_rate", learning_rate, low=0.0)
        momentum = _check_real("momentum", momentum, low=0.0, high=1.0)
        weight_decay = _check_real(
            "weight_decay", 0.0 if weight_decay is None else weight_decay, low=0.0
        )
        if not isinstance(nesterov, bool):
            raise ValueError(f"`nesterov` must be True or False. Received: nesterov={nesterov!r}")
        names = set(_check_names("weight_decay_exclusions", weight_decay_exclusions))
        if model is not None:
            if not isinstance(model, keras.Model) or not model.built or not model.trainable_weights:
                raise ValueError(
                    "`model` must be a built keras.Model with trainable weights, so that its "
                    "PReLU slopes and biases can be named. Build it first (call it on an input "
                    f"or give it an input shape). Received: model={model!r}"
                )
            names.update(_model_exclusions(model))
        # The base class keeps `weight_decay` (for `get_config` and anyone reading the
        # attribute); its decoupled decay is switched off in `_apply_weight_decay` below.
        super().__init__(learning_rate=learning_rate, weight_decay=weight_decay, **kwargs)
        self.momentum = momentum
        self.nesterov = nesterov
        self.exclude_from_weight_decay(var_names=sorted(names))

    def exclude_from_weight_decay(self, var_list=None, var_names=None):
        """Leaves variables out of weight decay, as `keras.optimizers.Optimizer` does.

        Call before the optimizer is built. Replaces the exclusions given before (including the
        defaults of `model=`), as in Keras.

        Args:
            var_list: variables to leave out (not saved by `get_config`).
            var_names: strings; a variable whose `name` contains one of them (searched as a
                regular expression) is left out.
        """
        # Keras means to refuse this once built but checks an attribute it never sets.
        if self.built:
            raise ValueError(
                "`exclude_from_weight_decay()` can only be called before the optimizer is "
                "built (before its first step)."
            )
        names = _check_names("var_names", var_names)
        super().exclude_from_weight_decay(var_list=var_list, var_names=list(names))
        # A tuple: the base class's attribute tracker would wrap a list.
        self._excluded_names = names

    def _apply_weight_decay(self, variables):
        # The base class (and its TensorFlow and PyTorch versions) would also shrink each
        # variable here, decoupled from the momentum. The decay is coupled in `update_step`.
        return

    def build(self, variables):
        if self.built:
            return
        super().build(variables)
        # Decided here, on the Keras variables, and not in `update_step`: there the TensorFlow
        # backend passes the underlying tf.Variable, whose name is the whole path
        # ("model/fc1/kernel:0"), so `var_names` would match differently than on JAX or PyTorch.
        self._decayed_keys = frozenset(
            self._var_key(v) for v in variables if self._use_weight_decay(v)
        )
        self.momentums = []
        if self.momentum != 0:
            self.momentums = self.add_optimizer_variables(variables, "momentum")

    def update_step(self, gradient, variable, learning_rate):
        """Caffe's update of one variable: coupled decay, then momentum (`_caffe_sgd_step`).

        On the TensorFlow backend the whole update is one XLA kernel (`fused.apply_step`):
        TensorFlow alone runs each of its element-wise ops as a pass over the variable.
        """
        decayed = self.weight_decay > 0 and self._var_key(variable) in self._decayed_keys
        velocity = None
        if self.momentum != 0:
            velocity = self.momentums[self._get_variable_index(variable)]
        step_args = (self.weight_decay if decayed else 0.0, self.momentum, self.nesterov)
        if keras.backend.backend() == "tensorflow":
            from rectifier_zoo import fused  # TensorFlow only

            fused.apply_step(
                _caffe_sgd_step, variable, velocity, gradient, learning_rate, *step_args
            )
            return
        new_velocity, delta = _caffe_sgd_step(
            variable, velocity, gradient, learning_rate, *step_args
        )
        if velocity is not None:
            self.assign(velocity, new_velocity)
        self.assign_add(variable, delta)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "momentum": self.momentum,
                "nesterov": self.nesterov,
                "weight_decay_exclusions": list(self._excluded_names),
            }
        )
        return config

    @classmethod
    def from_config(cls, config, custom_objects=None):
        # The base class writes the deserialized schedule back into the dict it is given; a
        # copy leaves the caller's config as `get_config` returned it.
        return super().from_config(dict(config), custom_objects=custom_objects)


def _caffe_sgd_step(
    variable,
    velocity,
    gradient,
    learning_rate,
    weight_decay: float,
    momentum: float,
    nesterov: bool,
):
    """One `CaffeSGD` step on values: `(new velocity, change to the variable)`.

    `velocity` is None when `momentum` is 0 (the new velocity is then None too); a
    `weight_decay` of 0 adds no decay term. Written in `keras.ops`, so every backend runs the
    same formula.
    """
    dtype = variable.dtype
    gradient = ops.cast(gradient, dtype)
    if weight_decay > 0:
        gradient = ops.add(gradient, ops.multiply(ops.cast(weight_decay, dtype), variable))
    step = ops.multiply(gradient, ops.cast(learning_rate, dtype))
    if velocity is None:
        return None, ops.negative(step)
    momentum = ops.cast(momentum, dtype)
    velocity = ops.subtract(ops.multiply(velocity, momentum), step)
    if nesterov:
        return velocity, ops.subtract(ops.multiply(velocity, momentum), step)
    return velocity, velocity


def _check_names(argument: str, names) -> tuple[str, ...]:
    """Variable-name patterns to leave out of weight decay, sorted and without repeats."""
    if names is None:
        return ()
    # A bare string would be split into its characters, each then matching almost any name.
    ok = not isinstance(names, str)
    if ok:
        try:
            names = list(names)
        except TypeError:
            ok = False
    if not ok or not all(isinstance(n, str) and n for n in names):
        raise ValueError(
            f"`{argument}` must be a list of non-empty strings. Received: {argument}={names!r}"
        )
    return tuple(sorted(set(names)))
