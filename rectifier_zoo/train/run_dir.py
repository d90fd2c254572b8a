"""A training run's folder read back: `config.json`, `checkpoints/`, `summary.json` (TensorFlow)."""

from __future__ import annotations

import json
import os

import keras
import tensorflow as tf


def model_from_checkpoint(model_dir: str) -> tuple[keras.Model, dict, dict]:
    """Rebuilds the model of a training run and restores its latest checkpoint.

    Reads what `rectifier_zoo.trainer` writes: `<model_dir>/config.json` (the run's config),
    `<model_dir>/checkpoints/` (`tf.train.Checkpoint(model=model, ...)`) and, if there,
    `<model_dir>/summary.json`. The number of classes is the one 2-D kernel width of the
    checkpoint whose model restores without a shape mismatch, unless config.json records it.

    Returns:
        (model, config dict, summary dict or {}).
    """
    from rectifier_zoo.architectures import Architecture, ConvStage
    from rectifier_zoo.models import build_model, get_model

    config_path = os.path.join(model_dir, "config.json")
    if not os.path.exists(config_path):
        raise FileNotFoundError(f"No config.json in {model_dir!r}: not a training run folder")
    with open(config_path, encoding="utf-8") as f:
        config = json.load(f)
    latest = tf.train.latest_checkpoint(os.path.join(model_dir, "checkpoints"))
    if latest is None:
        raise FileNotFoundError(f"No checkpoint in {os.path.join(model_dir, 'checkpoints')!r}")
    if "num_classes" in config:
        candidates = [int(config["num_classes"])]
    else:
        # Runs from before config.json recorded the class count: Keras 3 variables sit in the
        # checkpoint under object-graph paths, not layer names, so the classifier's width is
        # found as the one 2-D kernel width whose model restores.
        candidates = sorted(
            {int(shape[1]) for _, shape in tf.train.list_variables(latest) if len(shape) == 2}
        )
    kwargs = dict(
        input_shape=(None, None, 3),
        activation=config.get("activation", "prelu"),
        channel_shared=config.get("channel_shared", False),
        kernel_initializer=config.get("kernel_initializer", "msra_fan_out"),
        dropout=config.get("dropout", 0.5),
    )
    architecture = config.get("architecture")
    if architecture:
        architecture = Architecture(
            **{
                **architecture,
                "stages": tuple(ConvStage(**stage) for stage in architecture["stages"]),
                "spp_levels": tuple(architecture["spp_levels"]),
                "fc_units": tuple(architecture["fc_units"]),
            }
        )

        def make(classes):
            return build_model(architecture, classes=classes, **kwargs)
    else:

        def make(classes):
            return get_model(config["model"], classes=classes, **kwargs)

    model = None
    for num_classes in candidates:
        candidate = make(num_classes)
        try:
            status = tf.train.Checkpoint(model=candidate).restore(latest).expect_partial()
            status.assert_existing_objects_matched()
        except (ValueError, AssertionError, tf.errors.OpError):
            continue
        model = candidate
        break
    if model is None:
        raise ValueError(
            f"Checkpoint {latest!r} does not match the model of {config_path!r} "
            f"(tried {len(candidates)} class counts)"
        )
    summary = {}
    summary_path = os.path.join(model_dir, "summary.json")
    if os.path.exists(summary_path):
        with open(summary_path, encoding="utf-8") as f:
            summary = json.load(f)
    return model, config, summary
