"""rectifier_zoo: PReLU, MSRA init and the SPP Models A/B/C of He et al. 2015 in Keras 3."""

from setuptools import find_packages, setup

setup(
    name="rectifier_zoo",
    version="0.1.0",
    description=(
        "He et al., 'Delving Deep into Rectifiers' (PReLU, MSRA init, Models A/B/C with SPP) "
        "as a Keras 3 / TensorFlow model zoo"
    ),
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=find_packages(include=["rectifier_zoo", "rectifier_zoo.*"]),
    package_data={"rectifier_zoo": ["imagenet_classes.tsv", "weights_manifest.json"]},
    install_requires=[
        "tensorflow>=2.16",
        "keras>=3.3",
        "tensorflow-datasets>=4.9",
        "absl-py>=1.0",
        # tensorflow-datasets imports it without declaring it on Python 3.11.
        "importlib_resources",
        "numpy",
        "h5py",
    ],
    extras_require={
        # GPU hosts: TensorFlow with its CUDA libraries from PyPI.
        "cuda": ["tensorflow[and-cuda]>=2.16"],
        # The core also runs on the JAX backend (KERAS_BACKEND=jax).
        "jax": ["jax>=0.4.30"],
        # training/export.py --format=onnx, and the tests that run the file in onnxruntime.
        "onnx": ["tf2onnx>=1.16", "onnxruntime>=1.17"],
        # scikit-learn: the handwritten digits, a real data set the training tests write on the fly.
        "test": ["pytest>=8", "ruff>=0.6", "matplotlib", "scikit-learn"],
        # training/reproduce.py draws its figures with matplotlib.
        "reproduce": ["matplotlib"],
        # keras-cv only for the input-pipeline comparison; the package never imports it.
        "bench": ["keras-cv"],
    },
    entry_points={
        "console_scripts": ["rectifier-zoo-info=rectifier_zoo.info:main"],
    },
    license="Apache-2.0",
)
