"""Evaluates exported SavedModels (one, or several as an ensemble) with the paper's test views.

    python training/evaluate.py --models=exported_models/model_a/1 --dataset=imagenet2012 \
        --data_dir=~/tensorflow_datasets --protocol=ten_view --output=results/model_a_10view.json
    python training/evaluate.py --models=exported_models/model_a/1,exported_models/model_c/1 \
        --dataset=imagenet2012 --protocol=dense --scales=256,384,480 --output=results/ens.json
    python training/evaluate.py --models=exported_models/quickstart/1 --dataset=synthetic

Prints a table (top-1 / top-5 error in percent, images/s); --output writes the same rows as JSON
and CSV (same name, .csv), with the protocol, scales, model paths and machine in every row.
"""

from __future__ import annotations

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_list("models", None, "Comma-separated SavedModel version folders (several: ensemble).")
flags.DEFINE_string("dataset", "synthetic", "synthetic, folder, tfrecord or imagenet2012.")
flags.DEFINE_string("data_dir", None, "Data folder (folder / tfrecord / tfds data dir).")
flags.DEFINE_string("split", "validation", "validation or train.")
flags.DEFINE_enum("protocol", "center", ["center", "ten_view", "dense"], "Test protocol.")
flags.DEFINE_list(
    "scales", None, "Shorter sides; default 256 for center / ten_view, 256,384,480 for dense."
)
flags.DEFINE_integer("batch_size", 32, "Images per batch (center / ten_view).")
flags.DEFINE_list("weights", None, "Ensemble weights, one per model (default equal).")
flags.DEFINE_integer("max_images", None, "Evaluate only the first N images.")
flags.DEFINE_string("output", None, "JSON path for the rows (a .csv is written next to it).")
flags.DEFINE_boolean("progress", True, "Show a progress bar on stderr.")


def _numbers(values, kind, name):
    try:
        return [kind(v) for v in values]
    except ValueError:
        raise SystemExit(f"error: --{name} must be a list of numbers. Received: {values}") from None


def main(argv):
    del argv
    if not FLAGS.models:
        raise SystemExit("error: --models is required (comma-separated SavedModel folders)")
    from rectifier_zoo import data
    from rectifier_zoo.serving import evaluation

    scales = _numbers(FLAGS.scales, int, "scales") if FLAGS.scales else None
    weights = _numbers(FLAGS.weights, float, "weights") if FLAGS.weights else None
    try:
        for path in FLAGS.models:
            # Checked before the data set is opened, so a typo fails in a second.
            if not os.path.isdir(path):
                raise evaluation.EvaluationError(f"Model folder not found: {path}")
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
    except (evaluation.EvaluationError, FileNotFoundError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    evaluation.print_table(result)
    if FLAGS.output:
        json_path, csv_path = evaluation.write_results(result, FLAGS.output)
        print(f"wrote {json_path} and {csv_path}")
    return 0


if __name__ == "__main__":
    app.run(main)
