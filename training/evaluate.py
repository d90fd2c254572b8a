"""Evaluates exported SavedModels with the paper's test views: `rectifier-zoo-evaluate`.

    python training/evaluate.py --models=exported_models/quickstart/1 --protocol=dense
    python training/evaluate.py --help

The flags and the command are in rectifier_zoo/serving/cli.py.
"""

from rectifier_zoo.serving.cli import run_evaluate

if __name__ == "__main__":
    run_evaluate()
