"""Trains a model of the paper: flags -> config (written next to the checkpoints) -> loop.train.

    python training/train.py                          # the quickstart recipe on synthetic data
    python training/train.py --recipe=paper_model_a --data_dir=~/tensorflow_datasets
    python training/train.py --recipe=paper_small --activation=relu --strategy=mirrored

Flags override the fields of the chosen recipe (rectifier_zoo/train/recipes.py); every field of
rectifier_zoo/train/config.py is a flag of the same name. Restarting with the same --model_dir
resumes from its last checkpoint; a changed model, class list, batch size or precision is
refused, other changes (more steps, a new learning rate) are recorded in config.json.
SIGTERM or Ctrl-C saves a checkpoint at the next step boundary and exits (code 143 or 130).

The console shows the progress, the validation lines and the final block; --verbosity=-1 (warnings),
0 (info) or 1 (debug) brings back TensorFlow's and absl's own logs. The same command is installed
as `rectifier-zoo-train`.
"""

from rectifier_zoo.train import cli

if __name__ == "__main__":
    cli.run()
