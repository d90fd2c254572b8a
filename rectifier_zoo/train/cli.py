"""The training command line: flags generated from the config's fields, then `loop.train`.

    python training/train.py --recipe=paper_small --activation=relu --data_dir=...
    rectifier-zoo-train --recipe=paper_small --activation=relu --data_dir=...

Every leaf field of `rectifier_zoo.train.config.Config` is a flag of the same name, with the
help of its docstring entry; "one of these" fields are choice flags, so a wrong value fails
while the flags are parsed, with one line naming the choices. `--recipe` picks the base config
(`rectifier_zoo.train.recipes`); only the flags given on the command line override it.
`--model` replaces the recipe's own network. The config is built and checked before TensorFlow
is imported, so `--help` and flag errors are immediate.
"""

from __future__ import annotations

import os
import sys
import traceback
import typing

from absl import app, flags

from rectifier_zoo import console
from rectifier_zoo.checks import check_choice
from rectifier_zoo.train import config as config_lib
from rectifier_zoo.train import recipes
from rectifier_zoo.train.config import Config

FLAGS = flags.FLAGS
DEFAULT_RECIPE = "quickstart"
# The command's own flags, joined to absl's global ones only when it runs, so that importing this
# module defines nothing global (other command lines define flags of the same names).
TRAIN_FLAGS = flags.FlagValues()


class _ChoiceParser(flags.EnumParser):
    """An enum flag whose error is `check_choice`'s: the field, the choices, the value."""

    def __init__(self, name: str, choices: tuple[str, ...]):
        super().__init__(list(choices))
        self.name = name

    def parse(self, argument):
        check_choice(self.name, argument, tuple(self.enum_values))
        return argument


class _NumbersParser(flags.ListParser):
    """A comma-separated list of numbers, as a tuple of floats."""

    def parse(self, argument):
        values = super().parse(argument)
        try:
            return tuple(float(value) for value in values)
        except ValueError:
            raise ValueError(f"expected comma-separated numbers, got {argument!r}") from None


def _define_choice(name, choices, help_text, flag_values) -> None:
    flags.DEFINE(
        _ChoiceParser(name, choices),
        name,
        None,
        f"<{'|'.join(choices)}>: {help_text}",
        flag_values=flag_values,
    )


def _define(setting: config_lib.Setting, flag_values: flags.FlagValues) -> None:
    """One flag for one config field, typed from the field's annotation; default None (unset)."""
    name, hint, help_text = setting.name, setting.hint, setting.help
    options = set(typing.get_args(hint) or (hint,)) - {type(None)}
    if setting.choices is not None:
        _define_choice(name, setting.choices.values(), help_text, flag_values)
    elif options == {bool}:
        flags.DEFINE_boolean(name, None, help_text, flag_values=flag_values)
    elif options == {int}:
        flags.DEFINE_integer(name, None, help_text, flag_values=flag_values)
    elif options == {float}:
        flags.DEFINE_float(name, None, help_text, flag_values=flag_values)
    elif options == {str}:
        flags.DEFINE_string(name, None, help_text, flag_values=flag_values)
    elif typing.get_origin(hint) is tuple:
        flags.DEFINE(
            _NumbersParser(),
            name,
            None,
            help_text,
            serializer=flags.CsvListSerializer(","),
            flag_values=flag_values,
        )
    else:
        raise TypeError(f"No flag type for the config field {name!r} of type {hint!r}")


def define_flags(flag_values: flags.FlagValues) -> list[str]:
    """Defines `--recipe` and one flag per config field on `flag_values`; returns their names."""
    _define_choice(
        "recipe",
        tuple(recipes.RECIPES),
        f"The base config (rectifier_zoo/train/recipes.py); default {DEFAULT_RECIPE}.",
        flag_values,
    )
    for setting in config_lib.settings():
        _define(setting, flag_values)
    return ["recipe", *config_lib.FIELD_NAMES]


def config_from_flags(flag_values: flags.FlagValues = TRAIN_FLAGS) -> Config:
    """The chosen recipe, with every flag given on the command line put over it."""
    base = recipes.get_recipe(flag_values["recipe"].value or DEFAULT_RECIPE)
    values = {
        name: flag_values[name].value
        for name in config_lib.FIELD_NAMES
        if flag_values[name].present
    }
    return base.override(**values)


FLAG_NAMES = define_flags(TRAIN_FLAGS)


def _quiet() -> bool:
    """Quiet unless --verbosity was given."""
    return not FLAGS["verbosity"].present


def _exit_with(error: BaseException) -> typing.NoReturn:
    """One line that says what is wrong; the traceback only when asked for (--verbosity)."""
    if not _quiet():
        traceback.print_exc()
    kind = "" if isinstance(error, ValueError | FileNotFoundError) else f"{type(error).__name__}: "
    sys.exit(f"Error: {kind}{console.one_line(error)}")


def main(argv) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {' '.join(argv[1:])}")
    try:
        config = config_from_flags(TRAIN_FLAGS)
    except ValueError as error:
        _exit_with(error)
    console.start_tensorflow(quiet=_quiet())
    import tensorflow as tf

    from rectifier_zoo.train import loop

    try:
        summary = loop.train(config)
    except loop.TrainingInterrupted as stopped:
        print(str(stopped), file=sys.stderr)
        sys.exit(stopped.exit_code)
    except KeyboardInterrupt:  # a second Ctrl-C while the checkpoint is written
        print("Interrupted.", file=sys.stderr)
        sys.exit(130)
    except (ValueError, OSError, FloatingPointError, tf.errors.OpError) as error:
        # A bad data set, a diverged run or a TensorFlow runtime error.
        _exit_with(error)
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


def parse_flags(argv: list[str]) -> list[str]:
    """absl's flag parsing, with a bad flag reported in one line (no usage hint after it)."""
    try:
        rest = FLAGS(argv)
    except flags.Error as error:
        sys.exit(f"Error: {console.one_line(error)}")
    TRAIN_FLAGS.mark_as_parsed()
    return rest


def run(argv: list[str] | None = None) -> None:
    """The console script `rectifier-zoo-train` (and `training/train.py`)."""
    FLAGS.append_flag_values(TRAIN_FLAGS)
    # `--help` lists the flags of the main module (absl names it by sys.argv[0]): these.
    for name in (*FLAG_NAMES, "verbosity"):
        FLAGS.register_key_flag_for_module(sys.argv[0], FLAGS[name])
    app.run(main, argv=argv, flags_parser=parse_flags)


if __name__ == "__main__":
    run()
