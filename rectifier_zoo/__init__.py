"""rectifier_zoo: He et al., "Delving Deep into Rectifiers" (ICCV 2015) as a Keras 3 model zoo.

The core imported here (layers, initializers, architectures, models, weights, ImageNet helpers)
uses only `keras` and runs under the TensorFlow, JAX and PyTorch backends. The TensorFlow parts
(`rectifier_zoo.data`, training, export, evaluation) are imported on their own.
"""

from rectifier_zoo import initializers
from rectifier_zoo.architectures import ARCHITECTURES, Architecture, ConvStage
from rectifier_zoo.imagenet import IMAGENET_MEAN_RGB, decode_predictions
from rectifier_zoo.initializers import MSRANormal
from rectifier_zoo.layers import PReLU, SpatialPyramidPooling
from rectifier_zoo.models import (
    build_model,
    get_model,
    list_models,
    model_a,
    model_b,
    model_c,
    model_deep,
    model_small,
    model_tiny,
    weight_decay_exclusions,
)
from rectifier_zoo.optimizers import CaffeSGD
from rectifier_zoo.weights import register_weights

__version__ = "0.1.0"

__all__ = [
    "ARCHITECTURES",
    "Architecture",
    "CaffeSGD",
    "ConvStage",
    "IMAGENET_MEAN_RGB",
    "MSRANormal",
    "PReLU",
    "SpatialPyramidPooling",
    "build_model",
    "decode_predictions",
    "get_model",
    "initializers",
    "list_models",
    "model_a",
    "model_b",
    "model_c",
    "model_deep",
    "model_small",
    "model_tiny",
    "register_weights",
    "weight_decay_exclusions",
]
