"""Trains a model of the paper: flags -> config (written next to the checkpoints) -> trainer.train.

    python training/train.py                          # the quickstart recipe on synthetic data
    python training/train.py --recipe=paper_model_a --data_dir=~/tensorflow_datasets
    python training/train.py --recipe=paper_small --activation=relu --strategy=mirrored

Flags override the fields of the chosen recipe (rectifier_zoo/train/recipes.py). Restarting
with the same --model_dir resumes from its last checkpoint; a changed model, class list, batch size
or precision is refused, other changes (more steps, a new learning rate) are recorded in
config.json.
SIGTERM or Ctrl-C saves a checkpoint at the next step boundary and exits (code 143 or 130).

The console shows the progress, the validation lines and the final block; --verbosity=-1 (warnings),
0 (info) or 1 (debug) brings back TensorFlow's and absl's own logs.
"""

from __future__ import annotations

import os
import sys
import traceback

from absl import app, flags

from rectifier_zoo import console

FLAGS = flags.FLAGS
flags.DEFINE_string(
    "recipe",
    "quickstart",
    "A recipe of rectifier_zoo/train/recipes.py: quickstart, paper_model_a, paper_model_b, "
    "paper_model_c, paper_small or init_study.",
)
flags.DEFINE_string("model", None, "Registered model name (overrides the recipe's model).")
flags.DEFINE_string("activation", None, "prelu or relu.")
flags.DEFINE_boolean("channel_shared", None, "One PReLU slope per layer.")
flags.DEFINE_string("dataset", None, "synthetic, folder, tfrecord or imagenet2012.")
flags.DEFINE_string("data_dir", None, "Data folder (folder / tfrecord / tfds data dir).")
flags.DEFINE_string(
    "model_dir", None, "Checkpoints, logs, config.json, summary.json. Default runs/<recipe>."
)
flags.DEFINE_string(
    "export_dir",
    None,
    "Base folder of the SavedModel versions (<export_dir>/<next version>). "
    "Default exported_models/<recipe>.",
)
flags.DEFINE_string("strategy", "auto", "auto, one_device, mirrored, multi_worker or tpu.")
flags.DEFINE_integer("batch_size", None, "Global batch size.")
flags.DEFINE_float("epochs", None, "Training epochs.")
flags.DEFINE_integer("train_steps", None, "Training steps (overrides --epochs).")
flags.DEFINE_float("learning_rate", None, "Initial learning rate.")
flags.DEFINE_string("lr_schedule", None, "step or plateau.")
flags.DEFINE_list("lr_boundaries", None, "Epochs at which the learning rate is divided by 10.")
flags.DEFINE_float("weight_decay", None, "L2 coefficient on kernels.")
flags.DEFINE_float("dropout", None, "Dropout on fc1 / fc2.")
flags.DEFINE_string("precision", None, "float32, mixed_bfloat16 or mixed_float16.")
flags.DEFINE_boolean("xla", None, "Compile the train step with XLA.")
flags.DEFINE_integer("seed", None, "Random seed (repeatable runs).")
flags.DEFINE_integer("checkpoint_every_steps", None, "Checkpoint interval in steps.")
flags.DEFINE_integer("verbose", 1, "1: progress bar, 0: log lines.")

_OVERRIDES = (
    "model",
    "activation",
    "channel_shared",
    "dataset",
    "data_dir",
    "model_dir",
    "export_dir",
    "strategy",
    "batch_size",
    "epochs",
    "train_steps",
    "learning_rate",
    "lr_schedule",
    "weight_decay",
    "dropout",
    "precision",
    "xla",
    "seed",
    "checkpoint_every_steps",
    "verbose",
)


def _quiet() -> bool:
    """Quiet unless --verbosity was given."""
    return not FLAGS["verbosity"].present


def _start_tensorflow():
    """Imports TensorFlow with the console settings of --verbosity; returns the trainer."""
    console.start_tensorflow(quiet=_quiet())
    from rectifier_zoo.train import loop as trainer

    return trainer


def make_config(recipe_name: str):
    """The recipe's fields, then every flag that was set."""
    from rectifier_zoo.train import loop as trainer
    from rectifier_zoo.train import recipes

    recipe = recipes.get_recipe(recipe_name)
    fields = recipe.overrides()
    fields.update(name=recipe_name, model_dir=os.path.join("runs", recipe_name))
    for name in _OVERRIDES:
        value = getattr(FLAGS, name)
        if value is not None:
            fields[name] = value
    if FLAGS.model is not None:
        # A registered model replaces the recipe's own network. Those are the paper's nets, on
        # raw mean-subtracted inputs, which only the paper's fixed fc stds suit.
        fields["architecture"] = None
        fields["fc_initializer"] = None
    if FLAGS.lr_boundaries is not None:
        fields["lr_boundaries"] = tuple(float(b) for b in FLAGS.lr_boundaries)
    config = trainer.TrainConfig(**fields)
    config.validate()
    return config


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {' '.join(argv[1:])}")
    trainer = _start_tensorflow()
    import tensorflow as tf

    try:
        config = make_config(FLAGS.recipe)
        summary = trainer.train(config)
    except trainer.TrainingInterrupted as stopped:
        print(str(stopped), file=sys.stderr)
        sys.exit(stopped.exit_code)
    except KeyboardInterrupt:  # a second Ctrl-C while the checkpoint is written
        print("Interrupted.", file=sys.stderr)
        sys.exit(130)
    except (ValueError, OSError, FloatingPointError, tf.errors.OpError) as error:
        # A wrong flag, bad data, a diverged run or a TensorFlow runtime error: one line that
        # says what is wrong; the traceback only when asked for (--verbosity).
        if not _quiet():
            traceback.print_exc()
        kind = (
            "" if isinstance(error, ValueError | FileNotFoundError) else f"{type(error).__name__}: "
        )
        sys.exit(f"Error: {kind}{console.one_line(error)}")
    if summary.get("export_path"):  # the chief prints where things are
        print(
            f"\nval top-1 error {summary['val_top1_error']:.4f} "
            f"(accuracy {summary['val_top1_accuracy']:.2%}), "
            f"top-{summary['top_k']} error {summary['val_top5_error']:.4f}, "
            f"{summary['train_steps']} steps, {summary['images_per_sec']:.0f} images/s, "
            f"{summary['wall_time_sec']:.0f} s\n"
            f"checkpoints: {summary['checkpoint_dir']}\n"
            f"TensorBoard: tensorboard --logdir {summary['tensorboard_dir']}\n"
            f"SavedModel:  {summary['export_path']}\n"
            f"summary:     {os.path.join(summary['model_dir'], 'summary.json')}"
        )


if __name__ == "__main__":
    app.run(main)
