"""Exports a model as a versioned SavedModel, TFLite or ONNX: `rectifier-zoo-export`.

    python training/export.py --checkpoint_dir=runs/quickstart
    python training/export.py --help

The flags and the command are in rectifier_zoo/serving/cli.py.
"""

from rectifier_zoo.serving.cli import run_export

if __name__ == "__main__":
    run_export()
