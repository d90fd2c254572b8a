"""rectifier_zoo: He et al., "Delving Deep into Rectifiers" (ICCV 2015) as a Keras 3 model zoo.

The core named here (layers, initializer, architectures, builders, weights, the paper's SGD,
ImageNet helpers) uses only `keras` and runs under the TensorFlow, JAX and PyTorch backends. The
TensorFlow-only parts are subpackages imported on their own: `rectifier_zoo.data` (tf.data),
`rectifier_zoo.train` (the training loop) and `rectifier_zoo.serving` (export, evaluation).

Names are loaded on first use, so `import rectifier_zoo.paper` or the training flags do not
import Keras (and with it TensorFlow).
"""

from rectifier_zoo._lazy import lazy_namespace

__version__ = "0.1.0"

# name -> module that defines it
_EXPORTS = {
    "ARCHITECTURES": "architectures",
    "Architecture": "architectures",
    "ConvStage": "architectures",
    "CaffeSGD": "optimizers",
    "IMAGENET_MEAN_RGB": "imagenet",
    "decode_predictions": "imagenet",
    "MSRANormal": "initializers",
    "PReLU": "layers",
    "SpatialPyramidPooling": "layers",
    "build_model": "models",
    "feature_info": "models",
    "get_model": "models",
    "list_models": "models",
    "model_a": "models",
    "model_b": "models",
    "model_c": "models",
    "model_deep": "models",
    "model_small": "models",
    "model_tiny": "models",
    "set_trunk_trainable": "models",
    "trunk_layers": "models",
    "weight_decay_exclusions": "models",
    "preprocess_input": "preprocessing",
    "preprocessing_layer": "preprocessing",
    "load_weights": "weights",
    "register_weights": "weights",
}
_SUBMODULES = ("initializers", "paper", "preprocessing", "weights")

__getattr__, __dir__, __all__ = lazy_namespace(__name__, _EXPORTS, _SUBMODULES)
