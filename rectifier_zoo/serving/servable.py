"""What a Keras model must be to be exported, and the softmax its endpoints serve (TensorFlow).

The endpoints need a functional graph (the dense endpoint's trunk and head are cut from it), the
`spp` layer followed by a classifier, channels_last, and scores that are softmax probabilities
or logits (the softmax is then added in the graph). Every exporter checks this first, so an
unservable model is refused with one line before anything is written.
"""

import keras
import tensorflow as tf

from rectifier_zoo.layers import SpatialPyramidPooling

SPP_LAYER = "spp"


def servable(model) -> tuple[keras.Model, bool]:
    """(the functional model, whether its output is logits) or a ValueError saying why not.

    A built `keras.Sequential` is turned into the functional model over the same layers.
    """
    if isinstance(model, keras.Sequential) and getattr(model, "outputs", None):
        model = keras.Model(model.inputs, model.outputs, name=model.name)
    if not isinstance(model, keras.Model) or not getattr(model, "outputs", None):
        raise ValueError(
            "Export needs a functional Keras model (rectifier_zoo's builders or "
            "keras.Model(inputs, outputs)); subclassed models have no graph to cut the dense "
            f"endpoint from. Received: {type(model).__name__}"
        )
    if len(model.outputs) != 1 or len(model.outputs[0].shape) != 2:
        raise ValueError(
            "Export needs a classifier with one output of shape [batch, classes] (build it with "
            f"include_top=True). Received: outputs {[tuple(o.shape) for o in model.outputs]}"
        )
    spp = spp_layer(model)
    if spp.output is model.outputs[0]:
        raise ValueError(
            "Export needs the classifier after the SPP layer (build the model with "
            f"include_top=True). Received: model {model.name!r} ending at its SPP layer"
        )
    last = model.layers[-1]
    if isinstance(last, keras.layers.Softmax):
        activation = "softmax"
    else:
        # Dense and Activation layers say what they apply; any other last layer does not.
        function = getattr(last, "activation", "unknown")
        activation = getattr(function, "__name__", str(function))
    if activation not in ("softmax", "linear"):
        raise ValueError(
            "Export serves softmax probabilities; the model's output must be a softmax or logits "
            "(classifier_activation='softmax' or None, from a Dense, Activation or Softmax "
            f"layer). Received: {activation!r} on layer {last.name!r} ({type(last).__name__})"
        )
    return model, activation == "linear"


def spp_layer(model: keras.Model) -> SpatialPyramidPooling:
    """The model's channels_last SpatialPyramidPooling layer named `spp`, or a ValueError."""
    try:
        layer = model.get_layer(SPP_LAYER)
    except ValueError:
        layer = None
    if not isinstance(layer, SpatialPyramidPooling):
        raise ValueError(
            "The model needs its SpatialPyramidPooling layer named 'spp' and the top (build it "
            f"with include_top=True). Received: model {model.name!r} without it"
        )
    if layer.data_format != "channels_last":
        raise ValueError(
            "Export supports channels_last models only. "
            f"Received: data_format={layer.data_format!r}"
        )
    return layer


def probabilities(scores, logits: bool) -> tf.Tensor:
    """The model's scores as float32 probabilities (the softmax of logits)."""
    scores = tf.cast(scores[0] if isinstance(scores, list | tuple) else scores, tf.float32)
    return tf.nn.softmax(scores) if logits else scores
