"""The export and evaluate commands: `rectifier-zoo-export` / `rectifier-zoo-evaluate` (also
`python training/export.py` / `python training/evaluate.py`).

Each command has its own flags (`EXPORT_FLAGS`, `EVALUATE_FLAGS`), joined to absl's at start, so
`--help` lists only that command's flags. Importing this module, and `--help`, load neither
Keras nor TensorFlow. TensorFlow starts quietly (`console.start_tensorflow`); `--verbosity=-1`
(warnings), 0 (info) or 1 (debug) brings back its start-up lines and logs, and the traceback of
an error. Errors are one line, `error: ...`, with exit status 1.
"""

from __future__ import annotations

import json
import os
import sys
import traceback

from absl import app, flags

from rectifier_zoo import console, paper
from rectifier_zoo.serving import contract, protocols

_DENSE_SCALES = ",".join(str(s) for s in protocols.DEFAULT_DENSE_SCALES)

EXPORT_USAGE = """Exports a model as a versioned SavedModel (TF Serving, the evaluator), TFLite
or ONNX.

    rectifier-zoo-export --checkpoint_dir=runs/quickstart           # a training run
    rectifier-zoo-export --keras_model=model_a.keras --name=model_a
    rectifier-zoo-export --model=model_a --weights=model_a.weights.h5 --classes=1000
    rectifier-zoo-export --checkpoint_dir=runs/quickstart --format=tflite \\
        --input_size=64 --output=quickstart.tflite
    rectifier-zoo-export --checkpoint_dir=runs/quickstart --format=onnx --output=q.onnx

(or python training/export.py ...). SavedModel: writes `<export_base>/<next integer version>/`
(default `exported_models/<name>/`) through a staging folder renamed into place, and prints it.
Class names: --class_names (a file, one name a line), else the training run's class names (its
config.json, or its data set), else the ImageNet names for 1000 classes, else `class_<i>`.
TFLite and ONNX: the float-image endpoint (RGB 0..255, NHWC, probabilities out) as one file, at
a fixed --input_size (TFLite: required; ONNX: any size when omitted). --verbosity=0 shows
TensorFlow's start-up lines and logs.
"""

EVALUATE_USAGE = f"""Evaluates exported SavedModels (one, or several as an ensemble) with the
paper's test views.

    rectifier-zoo-evaluate --models=exported_models/model_a/1 --dataset=imagenet2012 \\
        --data_dir=~/tensorflow_datasets --protocol=ten_view --output=results/model_a_10view.json
    rectifier-zoo-evaluate --models=exported_models/model_a/1,exported_models/model_c/1 \\
        --dataset=imagenet2012 --protocol=dense --scales={_DENSE_SCALES} --output=results/ens.json
    rectifier-zoo-evaluate --models=exported_models/quickstart/1 --dataset=synthetic

(or python training/evaluate.py ...). Prints a table (top-1 / top-5 error in percent, images/s);
--output writes the same rows as JSON and CSV (same name, .csv), with the protocol, scales,
model paths and machine in every row. --verbosity=0 shows TensorFlow's start-up lines and logs.
"""

# --- rectifier-zoo-export ---------------------------------------------------------------------
EXPORT_FLAGS = flags.FlagValues()
_E = {"flag_values": EXPORT_FLAGS}
flags.DEFINE_string(
    "checkpoint_dir", None, "A training run's model_dir (config.json + checkpoints/).", **_E
)
flags.DEFINE_string("keras_model", None, "A .keras model file.", **_E)
flags.DEFINE_string("weights", None, "A .weights.h5 file for --model.", **_E)
flags.DEFINE_string("model", None, "Registered model name, with --weights.", **_E)
flags.DEFINE_integer("classes", 1000, "Classes of --model.", **_E)
flags.DEFINE_string("activation", "prelu", "prelu or relu, with --model.", **_E)
flags.DEFINE_string("name", None, "Export name; default: the run's or the model's name.", **_E)
flags.DEFINE_string("export_base", None, "Base folder; default exported_models/<name>.", **_E)
flags.DEFINE_string("class_names", None, "File with one class name a line, in label order.", **_E)
flags.DEFINE_integer(
    "crop_size", None, f"Test crop; default the run's crop_size or {paper.CROP_SIZE}.", **_E
)
flags.DEFINE_integer(
    "eval_resize",
    None,
    f"Shorter side before the crop; default run's or {paper.TEST_RESIZE}.",
    **_E,
)
flags.DEFINE_integer(
    "window_cells", None, "Dense window in conv cells; default from the model.", **_E
)
flags.DEFINE_string("metadata", None, "Extra metadata as a JSON object.", **_E)
flags.DEFINE_enum("format", contract.SAVED_MODEL, contract.FORMATS, "What to write.", **_E)
flags.DEFINE_integer("input_size", None, "tflite / onnx: side of the square float input.", **_E)
flags.DEFINE_string("output", None, "tflite / onnx: the file to write.", **_E)
flags.DEFINE_integer(
    "max_pixels",
    None,
    "SavedModel: largest image (width x height) served; default "
    f"{contract.DEFAULT_MAX_PIXELS / 1e6:g} MP.",
    **_E,
)
flags.DEFINE_boolean(
    "jpeg_downscale", True, "SavedModel: decode large JPEGs at a reduced DCT scale.", **_E
)

# --- rectifier-zoo-evaluate -------------------------------------------------------------------
EVALUATE_FLAGS = flags.FlagValues()
_V = {"flag_values": EVALUATE_FLAGS}
flags.DEFINE_list(
    "models", None, "Comma-separated SavedModel version folders (several: ensemble).", **_V
)
flags.DEFINE_string("dataset", "synthetic", "synthetic, folder, tfrecord or imagenet2012.", **_V)
flags.DEFINE_string("data_dir", None, "Data folder (folder / tfrecord / tfds data dir).", **_V)
flags.DEFINE_string("split", "validation", "validation or train.", **_V)
flags.DEFINE_enum("protocol", protocols.CENTER, protocols.PROTOCOLS, "Test protocol.", **_V)
flags.DEFINE_list(
    "scales",
    None,
    f"Shorter sides; default the export's eval_resize ({paper.TEST_RESIZE} in the paper) for "
    f"center / ten_view, {_DENSE_SCALES} for dense.",
    **_V,
)
flags.DEFINE_integer("batch_size", 32, "Images per batch (center / ten_view).", **_V)
flags.DEFINE_list("weights", None, "Ensemble weights, one per model (default equal).", **_V)
flags.DEFINE_integer("max_images", None, "Evaluate only the first N images.", **_V)
flags.DEFINE_string("output", None, "JSON path for the rows (a .csv is written next to it).", **_V)
flags.DEFINE_boolean("progress", True, "Show a progress bar on stderr.", **_V)


# --- Shared -------------------------------------------------------------------------------------
def _quiet() -> bool:
    """Quiet unless --verbosity was given."""
    return not flags.FLAGS["verbosity"].present


def _fail(message: str):
    print(f"error: {message}", file=sys.stderr)
    sys.exit(1)


def _fail_on_error(error: BaseException):
    """One line for an error of the inputs or of TensorFlow; the traceback with --verbosity."""
    if not _quiet():
        traceback.print_exc()
    _fail(console.one_line(error))


def _run(main, command_flags: flags.FlagValues, usage: str, argv=None) -> None:
    """`absl.app.run(main)` with `command_flags` as the flags `--help` shows."""
    # absl's --help prints the main module's docstring, then its key flags.
    sys.modules["__main__"].__doc__ = usage
    flags.FLAGS.append_flag_values(command_flags)
    main_module = sys.argv[0]
    for name in command_flags:
        flags.FLAGS.register_key_flag_for_module(main_module, command_flags[name])
    flags.FLAGS.register_key_flag_for_module(main_module, flags.FLAGS["verbosity"])

    def parse(args):
        rest = app.parse_flags_with_usage(args)
        command_flags.mark_as_parsed()
        return rest

    app.run(main, argv=argv, flags_parser=parse)


# --- Export ---------------------------------------------------------------------------------
def _class_names(num_classes: int, run_config: dict) -> list[str]:
    FLAGS = EXPORT_FLAGS
    if FLAGS.class_names:
        with open(FLAGS.class_names, encoding="utf-8") as f:
            return [line.rstrip("\n") for line in f if line.strip()]
    if len(run_config.get("class_names", [])) == num_classes:
        return list(run_config["class_names"])
    if run_config.get("dataset"):
        from rectifier_zoo import data

        try:
            names = data.get_source(run_config["dataset"], run_config.get("data_dir")).class_names
            if len(names) == num_classes:
                return list(names)
        except (FileNotFoundError, ValueError):
            pass
    if num_classes == 1000:
        from rectifier_zoo import imagenet

        return imagenet.class_names()
    return [f"class_{i}" for i in range(num_classes)]


def _check_export_flags(argv) -> list:
    """The model sources given (one), after the checks that need no TensorFlow."""
    FLAGS = EXPORT_FLAGS
    if len(argv) > 1:
        _fail(f"unexpected arguments: {' '.join(argv[1:])}")
    sources = [FLAGS.checkpoint_dir, FLAGS.keras_model, FLAGS.weights]
    if sum(s is not None for s in sources) != 1:
        _fail("pass exactly one of --checkpoint_dir, --keras_model, --weights (with --model)")
    if FLAGS.format == contract.SAVED_MODEL and (FLAGS.output or FLAGS.input_size):
        _fail("--output and --input_size are for --format=tflite|onnx; use --export_base")
    if FLAGS.format != contract.SAVED_MODEL and not FLAGS.output:
        _fail(f"--format={FLAGS.format} needs --output=FILE")
    if FLAGS.format == "tflite" and not FLAGS.input_size:
        _fail("--format=tflite needs --input_size=N (TFLite graphs have a fixed input size)")
    return sources


def _load_model():
    """(model, export name, the run's config, the run's summary) from the source flags."""
    import keras

    import rectifier_zoo

    FLAGS = EXPORT_FLAGS
    if FLAGS.checkpoint_dir:
        from rectifier_zoo.train import run_dir

        model, run_config, summary = run_dir.model_from_checkpoint(FLAGS.checkpoint_dir)
        return model, FLAGS.name or run_config.get("name") or model.name, run_config, summary
    if FLAGS.keras_model:
        model = keras.saving.load_model(FLAGS.keras_model, compile=False)
        return model, FLAGS.name or model.name, {}, {}
    if not FLAGS.model:
        _fail("--weights needs --model (one of " + ", ".join(rectifier_zoo.list_models()) + ")")
    model = rectifier_zoo.get_model(FLAGS.model, classes=FLAGS.classes, activation=FLAGS.activation)
    # By layer name, with the core's checks: another architecture, activation or depth is one
    # ValueError. A classifier of another width is not re-drawn for an export: --classes is wrong.
    loaded = rectifier_zoo.load_weights(model, FLAGS.weights, architecture=FLAGS.model)
    if loaded.reinitialized:
        _, classes = rectifier_zoo.weights.inspect_file(loaded.path)
        raise ValueError(
            f"The weights file {FLAGS.weights!r} has a {classes}-class classifier: pass "
            f"--classes={classes}. Received: --classes={FLAGS.classes}"
        )
    return model, FLAGS.name or FLAGS.model, {}, {}


def _export_metadata(source: str, run_config: dict, summary: dict, extra: dict) -> dict:
    metadata = {"source": source}
    if run_config:
        metadata.update(
            training_data=run_config.get("dataset"),
            training_data_dir=run_config.get("data_dir"),
            training_config=run_config,
        )
    if summary:
        metadata.update(
            steps=summary.get("train_steps"),
            evaluation={
                "protocol": protocols.CENTER,
                "top1_error": summary.get("val_top1_error"),
                "top5_error": summary.get("val_top5_error"),
                "images": summary.get("val_examples"),
                "top_k": summary.get("top_k"),
            },
        )
    metadata.update(extra)
    return metadata


def export_main(argv) -> None:
    FLAGS = EXPORT_FLAGS
    sources = _check_export_flags(argv)
    console.start_tensorflow(quiet=_quiet())
    import tensorflow as tf

    from rectifier_zoo.serving import convert, export

    try:
        model, name, run_config, summary = _load_model()
        extra = json.loads(FLAGS.metadata) if FLAGS.metadata else {}
        if FLAGS.format != contract.SAVED_MODEL:
            print(
                convert.export_file(model, FLAGS.output, FLAGS.format, input_size=FLAGS.input_size)
            )
            return
        num_classes = int(model.outputs[0].shape[-1])
        source = next(s for s in sources if s is not None)
        path = export.export_model(
            model,
            FLAGS.export_base or os.path.join("exported_models", name),
            class_names=_class_names(num_classes, run_config),
            metadata=_export_metadata(source, run_config, summary, extra),
            crop_size=FLAGS.crop_size or run_config.get("crop_size", paper.CROP_SIZE),
            eval_resize=FLAGS.eval_resize or run_config.get("eval_resize", paper.TEST_RESIZE),
            window_cells=FLAGS.window_cells,
            max_pixels=FLAGS.max_pixels or contract.DEFAULT_MAX_PIXELS,
            jpeg_downscale=FLAGS.jpeg_downscale,
        )
    except (ValueError, OSError, tf.errors.OpError) as error:
        _fail_on_error(error)
    print(path)


def run_export(argv=None) -> None:
    """The `rectifier-zoo-export` command."""
    _run(export_main, EXPORT_FLAGS, EXPORT_USAGE, argv)


# --- Evaluate -------------------------------------------------------------------------------
def _numbers(values, kind, name):
    try:
        return [kind(v) for v in values]
    except ValueError:
        _fail(f"--{name} must be a list of numbers. Received: {values}")


def evaluate_main(argv) -> int:
    FLAGS = EVALUATE_FLAGS
    if len(argv) > 1:
        _fail(f"unexpected arguments: {' '.join(argv[1:])}")
    if not FLAGS.models:
        _fail("--models is required (comma-separated SavedModel folders)")
    scales = _numbers(FLAGS.scales, int, "scales") if FLAGS.scales else None
    weights = _numbers(FLAGS.weights, float, "weights") if FLAGS.weights else None
    for path in FLAGS.models:
        # Checked before TensorFlow starts and the data set is opened: a typo fails in a second.
        if not os.path.isdir(path):
            _fail(f"Model folder not found: {path}")
    console.start_tensorflow(quiet=_quiet())
    import tensorflow as tf

    from rectifier_zoo import data
    from rectifier_zoo.serving import evaluation, report

    try:
        source = data.get_source(FLAGS.dataset, FLAGS.data_dir)
        result = evaluation.evaluate(
            FLAGS.models,
            source,
            split=FLAGS.split,
            protocol=FLAGS.protocol,
            scales=scales,
            batch_size=FLAGS.batch_size,
            weights=weights,
            max_images=FLAGS.max_images,
            progress=FLAGS.progress,
        )
    except (ValueError, OSError, tf.errors.OpError) as error:
        _fail_on_error(error)
    report.print_table(result)
    if FLAGS.output:
        json_path, csv_path = report.write_results(result, FLAGS.output)
        print(f"wrote {json_path} and {csv_path}")
    return 0


def run_evaluate(argv=None) -> None:
    """The `rectifier-zoo-evaluate` command."""
    _run(evaluate_main, EVALUATE_FLAGS, EVALUATE_USAGE, argv)
