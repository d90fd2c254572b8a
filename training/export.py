"""Exports a model as a versioned SavedModel (TF Serving, the evaluator), TFLite or ONNX.

    python training/export.py --checkpoint_dir=runs/quickstart           # a training run
    python training/export.py --keras_model=model_a.keras --name=model_a
    python training/export.py --model=model_a --weights=model_a.weights.h5 --classes=1000
    python training/export.py --checkpoint_dir=runs/quickstart --format=tflite \
        --input_size=64 --output=quickstart.tflite
    python training/export.py --checkpoint_dir=runs/quickstart --format=onnx --output=q.onnx

SavedModel: writes `<export_base>/<next integer version>/` (default `exported_models/<name>/`)
through a staging folder renamed into place. Class names: --class_names (a file, one name a
line), else the training run's class names (its config.json, or its data set), else the
ImageNet names for 1000 classes, else `class_<i>`. TFLite and ONNX: the float-image endpoint
(RGB 0..255, NHWC, probabilities out) as one file, at a fixed --input_size (TFLite: required;
ONNX: any size when omitted).
"""

from __future__ import annotations

import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags  # noqa: E402
from absl import logging as absl_logging  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_string(
    "checkpoint_dir", None, "A training run's model_dir (config.json + checkpoints/)."
)
flags.DEFINE_string("keras_model", None, "A .keras model file.")
flags.DEFINE_string("weights", None, "A .weights.h5 file for --model.")
flags.DEFINE_string("model", None, "Registered model name, with --weights.")
flags.DEFINE_integer("classes", 1000, "Classes of --model.")
flags.DEFINE_string("activation", "prelu", "prelu or relu, with --model.")
flags.DEFINE_string("name", None, "Export name; default: the run's or the model's name.")
flags.DEFINE_string("export_base", None, "Base folder; default exported_models/<name>.")
flags.DEFINE_string("class_names", None, "File with one class name a line, in label order.")
flags.DEFINE_integer("crop_size", None, "Test crop; default the run's crop_size or 224.")
flags.DEFINE_integer("eval_resize", None, "Shorter side before the crop; default run's or 256.")
flags.DEFINE_integer("window_cells", None, "Dense window in conv cells; default from the model.")
flags.DEFINE_string("metadata", None, "Extra metadata as a JSON object.")
flags.DEFINE_enum("format", "saved_model", ["saved_model", "tflite", "onnx"], "What to write.")
flags.DEFINE_integer("input_size", None, "tflite / onnx: side of the square float input.")
flags.DEFINE_string("output", None, "tflite / onnx: the file to write.")
flags.DEFINE_integer(
    "max_pixels", None, "SavedModel: largest image (width x height) served; default 50 MP."
)
flags.DEFINE_boolean(
    "jpeg_downscale", True, "SavedModel: decode large JPEGs at a reduced DCT scale."
)


def _fail(message: str) -> None:
    print(f"error: {message}", file=sys.stderr)
    sys.exit(1)


def _class_names(num_classes: int, run_config: dict) -> list[str]:
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


def main(argv):
    # The path written is the output; converter and SavedModel INFO and deprecation lines are noise.
    absl_logging.set_verbosity(absl_logging.ERROR)
    if len(argv) > 1:
        _fail(f"unexpected arguments: {' '.join(argv[1:])}")
    sources = [FLAGS.checkpoint_dir, FLAGS.keras_model, FLAGS.weights]
    if sum(s is not None for s in sources) != 1:
        _fail("pass exactly one of --checkpoint_dir, --keras_model, --weights (with --model)")
    if FLAGS.format == "saved_model" and (FLAGS.output or FLAGS.input_size):
        _fail("--output and --input_size are for --format=tflite|onnx; use --export_base")
    if FLAGS.format != "saved_model" and not FLAGS.output:
        _fail(f"--format={FLAGS.format} needs --output=FILE")
    if FLAGS.format == "tflite" and not FLAGS.input_size:
        _fail("--format=tflite needs --input_size=N (TFLite graphs have a fixed input size)")
    import keras

    import rectifier_zoo
    from rectifier_zoo.serving import export

    run_config, summary = {}, {}
    try:
        if FLAGS.checkpoint_dir:
            from rectifier_zoo.train import run_dir

            model, run_config, summary = run_dir.model_from_checkpoint(FLAGS.checkpoint_dir)
            name = FLAGS.name or run_config.get("name") or model.name
        elif FLAGS.keras_model:
            model = keras.saving.load_model(FLAGS.keras_model, compile=False)
            name = FLAGS.name or model.name
        else:
            if not FLAGS.model:
                _fail(
                    "--weights needs --model (one of "
                    + ", ".join(rectifier_zoo.list_models())
                    + ")"
                )
            model = rectifier_zoo.get_model(
                FLAGS.model, classes=FLAGS.classes, activation=FLAGS.activation
            )
            model.load_weights(FLAGS.weights)
            name = FLAGS.name or FLAGS.model
        extra = json.loads(FLAGS.metadata) if FLAGS.metadata else {}
    except (FileNotFoundError, ValueError, OSError) as error:
        _fail(str(error))
    if FLAGS.format != "saved_model":
        writer = export.export_tflite if FLAGS.format == "tflite" else export.export_onnx
        try:
            print(writer(model, FLAGS.output, input_size=FLAGS.input_size))
        except ValueError as error:
            _fail(str(error))
        return
    num_classes = int(model.outputs[0].shape[-1])
    metadata = {"source": next(s for s in sources if s is not None)}
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
                "protocol": "center",
                "top1_error": summary.get("val_top1_error"),
                "top5_error": summary.get("val_top5_error"),
                "images": summary.get("val_examples"),
                "top_k": summary.get("top_k"),
            },
        )
    metadata.update(extra)
    try:
        path = export.export_model(
            model,
            FLAGS.export_base or os.path.join("exported_models", name),
            class_names=_class_names(num_classes, run_config),
            metadata=metadata,
            crop_size=FLAGS.crop_size or run_config.get("crop_size", 224),
            eval_resize=FLAGS.eval_resize or run_config.get("eval_resize", 256),
            window_cells=FLAGS.window_cells,
            max_pixels=FLAGS.max_pixels or export.DEFAULT_MAX_PIXELS,
            jpeg_downscale=FLAGS.jpeg_downscale,
        )
    except ValueError as error:
        _fail(str(error))
    print(path)


if __name__ == "__main__":
    app.run(main)
