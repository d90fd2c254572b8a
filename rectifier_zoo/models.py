"""One builder for every architecture of the paper, and the public constructors.

The constructors speak `keras.applications`: `include_top`, `weights`, `input_tensor`,
`input_shape`, `pooling`, `classes`, `classifier_activation`, `name`, plus the paper's knobs.
Layer names are fixed (`conv1`, `conv2_3`, `prelu2_3`, `spp`, `fc1`, `prelu_fc1`, `fc3`,
`predictions`) because weight files and the dense-testing export depend on them.
"""

import itertools

import keras

from rectifier_zoo import initializers, paper
from rectifier_zoo import weights as weights_lib
from rectifier_zoo.architectures import ARCHITECTURES, SAME, Architecture, deep_architecture
from rectifier_zoo.checks import check_choice
from rectifier_zoo.layers import PReLU, SpatialPyramidPooling

ACTIVATIONS = ("prelu", "relu")
POOLINGS = (None, "avg", "max", "spp")
# Sec. 2.2: the fc layers were drawn with fixed stds (fc1, fc2: 0.01; fc3: 0.001), the input
# being only mean-subtracted (range about +-128).
FC_HIDDEN_STDDEV, FC_CLASSIFIER_STDDEV = paper.FC_STDS[0], paper.FC_STDS[-1]
# Sec. 2.1: PReLU slopes start at 0.25.
INITIAL_SLOPE = paper.PRELU_INITIAL_SLOPE


def _resolve_input_shape(architecture: Architecture, input_shape, data_format: str) -> tuple:
    if input_shape is None:
        return (None, None, 3) if data_format == "channels_last" else (3, None, None)
    input_shape = tuple(input_shape)
    channels = input_shape[-1] if data_format == "channels_last" else input_shape[0]
    spatial = input_shape[:2] if data_format == "channels_last" else input_shape[1:]
    if len(input_shape) != 3 or channels != 3:
        raise ValueError(
            f"`input_shape` must be (height, width, 3) for {data_format} RGB images; height and "
            f"width may be None. Received: input_shape={input_shape}"
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
) -> keras.Model:
    """Builds a `keras.Model` for `architecture` (see the public constructors for the arguments)."""
    check_choice("activation", activation, ACTIVATIONS)
    check_choice("pooling", pooling, POOLINGS)
    if not isinstance(include_top, bool):
        raise ValueError(
            f"`include_top` must be True or False. Received: include_top={include_top!r}"
        )
    if not isinstance(classes, int) or isinstance(classes, bool) or classes < 1:
        raise ValueError(f"`classes` must be a positive integer. Received: classes={classes!r}")
    if not isinstance(dropout, int | float) or not 0 <= dropout < 1:
        raise ValueError(f"`dropout` must be a number in [0, 1). Received: dropout={dropout!r}")
    if include_top and pooling is not None:
        raise ValueError(
            "`pooling` applies only with include_top=False (the top always uses SPP). "
            f"Received: pooling={pooling!r} with include_top=True"
        )
    data_format = keras.config.image_data_format()
    input_shape = _resolve_input_shape(architecture, input_shape, data_format)
    slope = INITIAL_SLOPE if activation == "prelu" else 0.0
    # Keras initializers with an integer seed draw the same values at every call, so each layer
    # gets its own seed (seed, seed + 1, ...): same-shaped layers must not share kernels, nor
    # the two dropout layers their masks.
    layer_seeds = itertools.count(seed) if seed is not None else itertools.repeat(None)

    def conv_init():
        return initializers.get(kernel_initializer, negative_slope=slope, seed=next(layer_seeds))

    def fc_init(paper_stddev):
        if fc_initializer is None:
            return keras.initializers.RandomNormal(stddev=paper_stddev, seed=next(layer_seeds))
        return initializers.get(fc_initializer, negative_slope=slope, seed=next(layer_seeds))

    # Unknown initializer names fail here, before any layer is built.
    initializers.get(kernel_initializer)
    if fc_initializer is not None:
        initializers.get(fc_initializer)
    # Last of the checks, since it may download.
    weights_file = weights_lib.resolve(architecture.name, weights, include_top, classes)

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
        channel_axis = -1 if data_format == "channels_last" else 1
        # Sec. 2.3 "Training" subtracts the mean; we subtract the per-channel ImageNet mean from
        # raw RGB in 0..255 inside the graph (docs/choices.md), in float32 also under mixed
        # precision.
        x = keras.layers.Normalization(
            axis=channel_axis,
            mean=paper.IMAGENET_MEAN_RGB,
            variance=[float(architecture.input_std) ** 2] * 3,
            dtype="float32",
            name="mean_subtraction",
        )(x)
    for s, stage in enumerate(architecture.stages, start=1):
        for i in range(1, stage.num_layers + 1):
            suffix = f"{s}" if stage.num_layers == 1 else f"{s}_{i}"
            padding = stage.padding
            if padding != SAME:
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
        if stage.pool_size is not None:
            x = keras.layers.MaxPooling2D(stage.pool_size, stage.pool_strides, name=f"pool{s}")(x)

    if include_top:
        x = SpatialPyramidPooling(architecture.spp_levels, name="spp")(x)
        for index, units in enumerate(architecture.fc_units, start=1):
            fc = keras.layers.Dense(
                units, kernel_initializer=fc_init(FC_HIDDEN_STDDEV), name=f"fc{index}"
            )
            x = rectifier(f"_fc{index}")(fc(x))
            if dropout:
                x = keras.layers.Dropout(
                    dropout, seed=next(layer_seeds), name=f"dropout_fc{index}"
                )(x)
        fc_index = len(architecture.fc_units) + 1
        classifier_init = fc_init(FC_CLASSIFIER_STDDEV)
        x = keras.layers.Dense(classes, kernel_initializer=classifier_init, name=f"fc{fc_index}")(x)
        # float32 so that the scores are exact under mixed precision too.
        x = keras.layers.Activation(classifier_activation, dtype="float32", name="predictions")(x)
    elif pooling == "avg":
        x = keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
    elif pooling == "max":
        x = keras.layers.GlobalMaxPooling2D(name="max_pool")(x)
    elif pooling == "spp":
        x = SpatialPyramidPooling(architecture.spp_levels, name="spp")(x)

    model = keras.Model(inputs, x, name=name or architecture.name)
    if weights_file is not None:
        weights_lib.load_weights(
            model,
            weights_file,
            lambda file_classes: build_model(
                architecture,
                include_top=True,
                classes=file_classes,
                activation=activation,
                channel_shared=channel_shared,
                include_preprocessing=include_preprocessing,
            ),
        )
    return model


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
            `rectifier_zoo.weights`), or the path to a `.weights.h5` file.
        input_tensor: optional Keras tensor (output of `keras.Input()`) to use as image input.
        input_shape: optional `(height, width, 3)`; height and width may be `None`.
        pooling: with `include_top=False`: `None` (the last conv map), `"avg"`, `"max"` or
            `"spp"` (the pyramid vector).
        classes: number of classes of the top.
        classifier_activation: activation of the `predictions` layer (`None` for logits).
        name: the model's name.
        activation: `"prelu"` or `"relu"` after every conv, fc1 and fc2.
        channel_shared: one PReLU slope per layer instead of one per channel.
        kernel_initializer: `"msra_fan_out"` (paper), `"msra_fan_in"`, `"xavier"` (std
            `sqrt(1/n)`, the init study's baseline) or any Keras initializer, for the convs.
        fc_initializer: `None` for the paper's fixed stds, or an initializer for all fc layers.
        dropout: dropout rate after fc1 and fc2 (0 to disable).
        include_preprocessing: subtract the ImageNet mean inside the model.
        seed: seed of the initializers and dropout.

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


def list_models() -> list[str]:
    """Names accepted by `get_model`."""
    return list(_CONSTRUCTORS)


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
