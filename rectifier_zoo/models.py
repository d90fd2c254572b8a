"""One builder for every architecture of the paper, and the public constructors.

The constructors speak `keras.applications`: `include_top`, `weights`, `input_tensor`,
`input_shape`, `pooling`, `classes`, `classifier_activation`, `name`, plus the paper's knobs and
`features_only` (the stage outputs as a feature pyramid, as keras-hub's `pyramid_outputs`).
Layer names are fixed (`conv1`, `conv2_3`, `prelu2_3`, `spp`, `fc1`, `prelu_fc1`, `fc3`,
`predictions`) because weight files and the dense-testing export depend on them.
"""

import fnmatch
import itertools
import re

import keras

from rectifier_zoo import initializers, paper, preprocessing
from rectifier_zoo import weights as weights_lib
from rectifier_zoo.architectures import (
    ARCHITECTURES,
    SAME,
    Architecture,
    deep_architecture,
    get_architecture,
)
from rectifier_zoo.checks import check_choice
from rectifier_zoo.layers import Dense, PReLU, SpatialPyramidPooling

ACTIVATIONS = ("prelu", "relu")
POOLINGS = (None, "avg", "max", "spp")
# Sec. 2.2: the fc layers were drawn with fixed stds (fc1, fc2: 0.01; fc3: 0.001), the input
# being only mean-subtracted (range about +-128).
FC_HIDDEN_STDDEV, FC_CLASSIFIER_STDDEV = paper.FC_STDS[0], paper.FC_STDS[-1]
# The `fc_initializer` name of those fixed stds (the same as `None`, the default), so that a
# flag or a config can ask for them over a recipe's other choice.
PAPER_FC_INITIALIZER = "paper"
# Sec. 2.1: PReLU slopes start at 0.25.
INITIAL_SLOPE = paper.PRELU_INITIAL_SLOPE


# The builder's names of the layers after the trunk (see trunk_layers).
_HEAD_LAYER = re.compile(r"spp|avg_pool|max_pool|predictions|(?:prelu_|relu_|dropout_)?fc\d+")


def _resolve_input_shape(architecture: Architecture, input_shape, data_format: str) -> tuple:
    if input_shape is None:
        return (None, None, 3) if data_format == "channels_last" else (3, None, None)
    input_shape = tuple(input_shape)
    channels = input_shape[-1] if data_format == "channels_last" else input_shape[0]
    spatial = input_shape[:2] if data_format == "channels_last" else input_shape[1:]
    if (
        len(input_shape) != 3
        or not isinstance(channels, int)
        or isinstance(channels, bool)
        or channels < 1
    ):
        raise ValueError(
            f"`input_shape` must be (height, width, channels) for {data_format} images (3 "
            "channels for RGB, 1 for grayscale); height and width may be None. "
            f"Received: input_shape={input_shape}"
        )
    minimum = architecture.min_input_size
    if any(side is not None and side < minimum for side in spatial):
        raise ValueError(
            f"`input_shape` is too small for {architecture.name}: height and width must be at "
            f"least {minimum}. Received: input_shape={input_shape}"
        )
    return input_shape


def build_model(
    architecture: Architecture,
    *,
    include_top: bool = True,
    weights: str | None = None,
    input_tensor=None,
    input_shape: tuple | None = None,
    pooling: str | None = None,
    classes: int = 1000,
    classifier_activation: str | None = "softmax",
    name: str | None = None,
    activation: str = "prelu",
    channel_shared: bool = False,
    kernel_initializer="msra_fan_out",
    fc_initializer=None,
    dropout: float = paper.DROPOUT,
    include_preprocessing: bool = True,
    seed: int | None = None,
    features_only: bool = False,
    feature_levels=None,
) -> keras.Model:
    """Builds a `keras.Model` for `architecture` (see the public constructors for the arguments)."""
    check_choice("activation", activation, ACTIVATIONS)
    check_choice("pooling", pooling, POOLINGS)
    if not isinstance(include_top, bool):
        raise ValueError(
            f"`include_top` must be True or False. Received: include_top={include_top!r}"
        )
    levels = _feature_levels(architecture, features_only, feature_levels, pooling)
    if features_only:
        include_top = False
    if not isinstance(classes, int) or isinstance(classes, bool) or classes < 1:
        raise ValueError(f"`classes` must be a positive integer. Received: classes={classes!r}")
    if not isinstance(dropout, int | float) or not 0 <= dropout < 1:
        raise ValueError(f"`dropout` must be a number in [0, 1). Received: dropout={dropout!r}")
    if include_top and pooling is not None:
        raise ValueError(
            "`pooling` applies only with include_top=False (the top always uses SPP). "
            f"Received: pooling={pooling!r} with include_top=True"
        )
    if include_top and weights is not None:
        # As keras.applications: pretrained scores are probabilities or logits.
        activation_fn = keras.activations.get(classifier_activation)
        if activation_fn not in {keras.activations.get("softmax"), keras.activations.get(None)}:
            raise ValueError(
                "Only `None` and `softmax` activations are allowed for the "
                "`classifier_activation` argument when using pretrained weights, with "
                f"`include_top=True`; Received: classifier_activation={classifier_activation!r}"
            )
    data_format = keras.config.image_data_format()
    if input_shape is None and input_tensor is not None and len(input_tensor.shape) == 4:
        input_shape = tuple(input_tensor.shape[1:])
    input_shape = _resolve_input_shape(architecture, input_shape, data_format)
    channels = input_shape[-1] if data_format == "channels_last" else input_shape[0]
    slope = INITIAL_SLOPE if activation == "prelu" else 0.0
    # Keras initializers with an integer seed draw the same values at every call, so each layer
    # gets its own seed (seed, seed + 1, ...): same-shaped layers must not share kernels, nor
    # the two dropout layers their masks.
    layer_seeds = itertools.count(seed) if seed is not None else itertools.repeat(None)

    def conv_init():
        return initializers.get(kernel_initializer, negative_slope=slope, seed=next(layer_seeds))

    def fc_init(paper_stddev):
        if fc_initializer in (None, PAPER_FC_INITIALIZER):
            return keras.initializers.RandomNormal(stddev=paper_stddev, seed=next(layer_seeds))
        return initializers.get(fc_initializer, negative_slope=slope, seed=next(layer_seeds))

    check_initializers(kernel_initializer, fc_initializer)
    # Last of the checks, since it may download.
    weights_file = weights_lib.resolve(
        architecture.name, weights, include_top, input_std=float(architecture.input_std)
    )

    def rectifier(suffix):
        if activation == "prelu":
            return PReLU(channel_shared=channel_shared, initial_slope=slope, name=f"prelu{suffix}")
        return keras.layers.ReLU(name=f"relu{suffix}")

    if input_tensor is None:
        inputs = keras.Input(shape=input_shape, name="images")
        x = inputs
    else:
        if not keras.backend.is_keras_tensor(input_tensor):
            input_tensor = keras.Input(tensor=input_tensor, shape=input_shape, name="images")
        inputs = keras.utils.get_source_inputs(input_tensor)
        x = input_tensor
    if include_preprocessing:
        # Sec. 2.3 "Training" subtracts the mean; we subtract the per-channel ImageNet mean from
        # raw RGB in 0..255 inside the graph (docs/choices.md), in float32 also under mixed
        # precision; 1 or 4+ channels get the matching mean (preprocessing.channel_mean).
        x = preprocessing.preprocessing_layer(
            channels, input_std=float(architecture.input_std), data_format=data_format
        )(x)
    pyramid = {}
    for s, stage in enumerate(architecture.stages, start=1):
        for i in range(1, stage.num_layers + 1):
            suffix = f"{s}" if stage.num_layers == 1 else f"{s}_{i}"
            padding = stage.layer_padding(i - 1)
            if padding != SAME:
                if padding:
                    x = keras.layers.ZeroPadding2D(padding, name=f"conv{suffix}_pad")(x)
                padding = "valid"
            x = keras.layers.Conv2D(
                stage.filters,
                stage.kernel_size,
                strides=stage.strides if i == 1 else 1,
                padding=padding,
                kernel_initializer=conv_init(),
                bias_initializer="zeros",
                name=f"conv{suffix}",
            )(x)
            x = rectifier(suffix)(x)
        pyramid[f"P{s}"] = x
        if features_only and f"P{s}" == levels[-1]:
            break
        if stage.pool_size is not None:
            x = keras.layers.MaxPooling2D(stage.pool_size, stage.pool_strides, name=f"pool{s}")(x)

    if include_top:
        x = SpatialPyramidPooling(architecture.spp_levels, name="spp")(x)
        for index, units in enumerate(architecture.fc_units, start=1):
            fc = Dense(units, kernel_initializer=fc_init(FC_HIDDEN_STDDEV), name=f"fc{index}")
            x = rectifier(f"_fc{index}")(fc(x))
            if dropout:
                x = keras.layers.Dropout(
                    dropout, seed=next(layer_seeds), name=f"dropout_fc{index}"
                )(x)
        fc_index = len(architecture.fc_units) + 1
        classifier_init = fc_init(FC_CLASSIFIER_STDDEV)
        x = Dense(classes, kernel_initializer=classifier_init, name=f"fc{fc_index}")(x)
        # float32 so that the scores are exact under mixed precision too.
        x = keras.layers.Activation(classifier_activation, dtype="float32", name="predictions")(x)
    elif pooling == "avg":
        x = keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
    elif pooling == "max":
        x = keras.layers.GlobalMaxPooling2D(name="max_pool")(x)
    elif pooling == "spp":
        x = SpatialPyramidPooling(architecture.spp_levels, name="spp")(x)

    if features_only:
        x = {level: pyramid[level] for level in levels}
    model = keras.Model(inputs, x, name=name or architecture.name)
    if features_only:
        info = {row["level"]: row for row in feature_info(architecture, activation)}
        model.feature_info = [info[level] for level in levels]
    if weights_file is not None:
        weights_lib.load_weights(model, weights_file)
    return model


def _feature_levels(architecture: Architecture, features_only, feature_levels, pooling) -> tuple:
    if not isinstance(features_only, bool):
        raise ValueError(
            f"`features_only` must be True or False. Received: features_only={features_only!r}"
        )
    available = tuple(row["level"] for row in feature_info(architecture))
    if not features_only:
        if feature_levels is not None:
            raise ValueError(
                "`feature_levels` applies only with features_only=True. "
                f"Received: feature_levels={feature_levels!r}"
            )
        return ()
    if pooling is not None:
        raise ValueError(
            "`pooling` does not apply with features_only=True (the outputs are feature maps). "
            f"Received: pooling={pooling!r}"
        )
    if feature_levels is None:
        return available
    if isinstance(feature_levels, str) or not feature_levels:
        raise ValueError(
            f"`feature_levels` must be a non-empty sequence of levels among {available}. "
            f"Received: feature_levels={feature_levels!r}"
        )
    for level in feature_levels:
        check_choice("feature_levels", level, available)
    if len(set(feature_levels)) != len(feature_levels):
        raise ValueError(f"`feature_levels` repeats a level. Received: {feature_levels!r}")
    return tuple(level for level in available if level in feature_levels)


def feature_info(architecture, activation: str = "prelu") -> list[dict]:
    """The stage outputs a `features_only=True` model returns, shallowest first.

    Level `P{s}` is the output of stage `s` (conv1, then the conv2_*, conv3_*, ... groups of
    Table 3) after its last rectifier, before its max-pool. For Models A/B/C the strides are 2,
    4, 8 and 16, so `P{s}` has stride `2**s` as in keras-hub's `pyramid_outputs`; the
    14-layer and 30-layer models (3x3/3 pool) have strides 2, 6 and 12.

    Args:
        architecture: a registered name (`"model_a"`) or an `Architecture`.
        activation: `"prelu"` or `"relu"`, which names the layers.

    Returns:
        `[{"level": "P1", "stride": 2, "channels": 96, "layer": "prelu1"}, ...]`.
    """
    architecture = get_architecture(architecture)
    check_choice("activation", activation, ACTIVATIONS)
    rows, stride = [], 1
    for s, stage in enumerate(architecture.stages, start=1):
        stride *= stage.strides
        suffix = f"{s}" if stage.num_layers == 1 else f"{s}_{stage.num_layers}"
        rows.append(
            {
                "level": f"P{s}",
                "stride": stride,
                "channels": stage.filters,
                "layer": f"{activation}{suffix}",
            }
        )
        stride *= stage.pool_strides or 1
    return rows


_CONSTRUCTOR_DOC = """Instantiates {title}.

    Reference: {reference}. Input: RGB images with values in 0..255 (the ImageNet mean is
    subtracted inside the model unless `include_preprocessing=False`). With SPP the top works
    at any input size of at least {min_size} pixels per side, so the default input shape is
    `(None, None, 3)`.

    Paper defaults: conv kernels drawn from the MSRA fan-out Gaussian (Eqn. 14), with the
    PReLU factor `1 / (1 + a^2)`, `a = 0.25`, when `activation="prelu"` (our reading of the
    paper: Eqn. 15 for the initial slope); biases zero; fc1/fc2/fc3 drawn with std
    0.01/0.01/0.001; dropout 0.5 after fc1 and fc2.

    Args:
        include_top: whether to include SPP and the three fc layers.
        weights: `None` (random), `"imagenet"` (a registered ImageNet entry, see
            `rectifier_zoo.weights`), or the path to a `.weights.h5` file. Loaded layer by
            layer by name (`rectifier_zoo.weights.load_weights`): without the top only the
            trunk is loaded; a file with another class count loads all but the classifier,
            which starts from its initializer (fine-tuning); a file for another model raises.
        input_tensor: optional Keras tensor (output of `keras.Input()`) to use as image input.
        input_shape: optional `(height, width, channels)`; height and width may be `None`. 3
            channels (RGB) by default; with 1 (grayscale) or more, RGB weights are adapted
            (conv1's RGB kernels summed, or repeated and scaled by 3 / channels) and the mean
            follows (`rectifier_zoo.preprocessing.channel_mean`).
        pooling: with `include_top=False`: `None` (the last conv map), `"avg"`, `"max"` or
            `"spp"` (the pyramid vector).
        classes: number of classes of the top.
        classifier_activation: activation of the `predictions` layer (`None` for logits);
            only `"softmax"` or `None` with `weights` and the top, as in `keras.applications`.
        name: the model's name.
        activation: `"prelu"` or `"relu"` after every conv, fc1 and fc2.
        channel_shared: one PReLU slope per layer instead of one per channel.
        kernel_initializer: `"msra_fan_out"` (paper), `"msra_fan_in"`, `"xavier"` (std
            `sqrt(1/n)`, the init study's baseline) or any Keras initializer, for the convs.
        fc_initializer: `None` or `"paper"` for the paper's fixed stds (0.01, 0.01, 0.001; for
            its raw, mean-subtracted inputs), or an initializer for all fc layers.
        dropout: dropout rate after fc1 and fc2 (0 to disable).
        include_preprocessing: subtract the ImageNet mean inside the model; with `False`,
            apply `rectifier_zoo.preprocess_input` or `rectifier_zoo.preprocessing_layer`.
        seed: seed of the initializers and dropout.
        features_only: return the stage outputs instead (no top; `include_top`, `classes`
            and `classifier_activation` are ignored): a dict `{{"P1": map, ...}}`, listed with
            their stride and channels in `model.feature_info` (see `feature_info`).
        feature_levels: with `features_only`, the levels to return, e.g. `("P3", "P4")`.

    Returns:
        A `keras.Model`.
    """


def _constructor(arch_name: str, title: str):
    architecture = ARCHITECTURES[arch_name]

    def constructor(**kwargs) -> keras.Model:
        return build_model(architecture, **kwargs)

    constructor.__name__ = constructor.__qualname__ = arch_name
    constructor.__doc__ = _CONSTRUCTOR_DOC.format(
        title=title, reference=architecture.reference, min_size=architecture.min_input_size
    )
    return constructor


model_a = _constructor("model_a", "Model A (19 layers, Table 3)")
model_b = _constructor("model_b", "Model B (22 layers, Table 3)")
model_c = _constructor("model_c", "Model C (22 layers, wider, Table 3)")
model_small = _constructor("model_small", "the 14-layer model of Table 1 (SPP {6, 3, 2, 1})")
model_tiny = _constructor("model_tiny", "a tiny Model-A-shaped net for tests (not in the paper)")


def model_deep(depth: int = 30, **kwargs) -> keras.Model:
    """Instantiates the init-study model: the 14-layer model plus `depth - 14` conv 2x2, 256.

    `depth=30` (default) is the paper's 30-layer model (27 conv + 3 fc, Sec. 2.2); the other
    arguments are those of `model_a`.
    """
    return build_model(deep_architecture(depth), **kwargs)


_CONSTRUCTORS = {
    "model_a": model_a,
    "model_b": model_b,
    "model_c": model_c,
    "model_small": model_small,
    "model_deep": model_deep,
    "model_tiny": model_tiny,
}


def list_models(pattern: str | None = None, pretrained: bool = False) -> list[str]:
    """Names accepted by `get_model`.

    Args:
        pattern: a shell wildcard (`fnmatch`), e.g. `"model_[ab]"` or `"*small*"`.
        pretrained: only the models with at least one weights entry (`rectifier_zoo.weights`).
    """
    if pattern is not None and not isinstance(pattern, str):
        raise ValueError(f"`pattern` must be a string. Received: pattern={pattern!r}")
    names = [n for n in _CONSTRUCTORS if pattern is None or fnmatch.fnmatchcase(n, pattern)]
    if pretrained:
        published = {model for model, _ in weights_lib.manifest()}
        names = [n for n in names if n in published]
    return names


def check_initializers(kernel_initializer, fc_initializer=None) -> None:
    """Raises ValueError for an unknown initializer name, before any layer is built."""
    initializers.get(kernel_initializer)
    if fc_initializer not in (None, PAPER_FC_INITIALIZER):
        initializers.get(fc_initializer)


def get_model(name: str, **kwargs) -> keras.Model:
    """Builds a registered model by name, e.g. `get_model("model_c", weights="imagenet")`."""
    check_choice("name", name, tuple(_CONSTRUCTORS))
    return _CONSTRUCTORS[name](**kwargs)


def weight_decay_exclusions(model: keras.Model) -> list[str]:
    """Variable names to keep out of weight decay: PReLU slopes and biases.

    The paper decays only the conv and fc kernels (Sec. 2.1: "no weight decay on a"). Pass the
    list to a Keras optimizer: `optimizer.exclude_from_weight_decay(var_names=...)`; Keras
    matches these names against each variable's `name`.
    """
    return sorted({v.name for v in model.trainable_weights if v.name != "kernel"})


def trunk_layers(model: keras.Model) -> list[keras.layers.Layer]:
    """The layers of `model` before its top: mean subtraction, convolutions, rectifiers, pools.

    Everything but the input and the builder's top (`spp`, `fc*`, their rectifiers and dropout,
    `predictions`) or pooling (`avg_pool`, `max_pool`).
    """
    return [
        layer
        for layer in model.layers
        if not isinstance(layer, keras.layers.InputLayer) and not _HEAD_LAYER.fullmatch(layer.name)
    ]


def set_trunk_trainable(model: keras.Model, trainable: bool) -> list[str]:
    """Freezes (`False`) or unfreezes (`True`) the trunk of `model`, PReLU slopes included.

    For fine-tuning only the top. As with any change of `trainable`, compile the model (or build
    the optimizer on `model.trainable_variables`) after the call.

    Returns:
        The names of the trunk layers that have variables.
    """
    if not isinstance(trainable, bool):
        raise ValueError(f"`trainable` must be True or False. Received: trainable={trainable!r}")
    layers = trunk_layers(model)
    for layer in layers:
        layer.trainable = trainable
    return [layer.name for layer in layers if layer.weights]
