"""`tf.distribute` strategies from a name (TensorFlow).

    strategy = get_strategy("auto")      # all local GPUs, else one device
    strategy = get_strategy("multi_worker")  # the cluster of the TF_CONFIG environment variable

One training loop (`rectifier_zoo.train.loop`) runs under every strategy returned here.
"""

from __future__ import annotations

import json
import os

import tensorflow as tf

from rectifier_zoo.checks import check_choice
from rectifier_zoo.train.config import StrategyName

STRATEGIES = StrategyName.values()


def _default_device() -> str:
    return "/gpu:0" if tf.config.list_physical_devices("GPU") else "/cpu:0"


def _read_tf_config() -> dict:
    raw = os.environ.get("TF_CONFIG")
    if not raw:
        raise ValueError(
            "strategy='multi_worker' needs the cluster in the TF_CONFIG environment variable, e.g. "
            'TF_CONFIG=\'{"cluster": {"worker": ["host1:12345", "host2:12345"]}, '
            '"task": {"type": "worker", "index": 0}}\' on each worker. Received: TF_CONFIG unset'
        )
    try:
        config = json.loads(raw)
    except ValueError as error:
        raise ValueError(
            f"TF_CONFIG is not valid JSON ({error}). Received: TF_CONFIG={raw!r}"
        ) from None
    if not isinstance(config, dict) or "cluster" not in config or "task" not in config:
        raise ValueError(
            f"TF_CONFIG must hold 'cluster' and 'task' entries. Received: TF_CONFIG={raw!r}"
        )
    return config


def get_strategy(name: str = "auto", tpu_address: str = "") -> tf.distribute.Strategy:
    """Returns the `tf.distribute.Strategy` called `name`.

    Args:
        name: one of `STRATEGIES`:
            "auto": `MirroredStrategy` over all local GPUs if there are several, else
                `OneDeviceStrategy` on GPU:0 or, without a GPU, CPU:0;
            "one_device": `OneDeviceStrategy` on GPU:0 or CPU:0;
            "mirrored": `MirroredStrategy` over all local GPUs (or all logical CPUs without one);
            "multi_worker": `MultiWorkerMirroredStrategy`, the cluster read from `TF_CONFIG`;
            "tpu": `TPUStrategy` on the TPU at `tpu_address` ("" = the local / Cloud TPU VM).
        tpu_address: the TPU name or grpc address for "tpu".

    Returns:
        The strategy. Build the model and optimizer inside `strategy.scope()`.
    """
    check_choice("strategy", name, STRATEGIES)
    if name == "auto":
        gpus = tf.config.list_logical_devices("GPU")
        if len(gpus) > 1:
            return tf.distribute.MirroredStrategy()
        return tf.distribute.OneDeviceStrategy(_default_device())
    if name == "one_device":
        return tf.distribute.OneDeviceStrategy(_default_device())
    if name == "mirrored":
        if tf.config.list_logical_devices("GPU"):
            return tf.distribute.MirroredStrategy()
        # No GPU: mirror over the logical CPUs (tests split one CPU into several).
        cpus = [device.name for device in tf.config.list_logical_devices("CPU")]
        return tf.distribute.MirroredStrategy(devices=cpus)
    if name == "multi_worker":
        _read_tf_config()
        return tf.distribute.MultiWorkerMirroredStrategy()
    resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=tpu_address)
    tf.config.experimental_connect_to_cluster(resolver)
    tf.tpu.experimental.initialize_tpu_system(resolver)
    return tf.distribute.TPUStrategy(resolver)


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    """Whether this process writes checkpoints, logs and exports (always True on one host)."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return True
    task_type, task_id = resolver.task_type, resolver.task_id
    if task_type is None:
        return True
    # With a "chief" task that one writes; with workers only, worker 0 does.
    return task_type == "chief" or (
        task_type == "worker" and task_id == 0 and not _has_chief(resolver)
    )


def _has_chief(resolver) -> bool:
    return "chief" in resolver.cluster_spec().as_dict()


def worker_id(strategy: tf.distribute.Strategy) -> str:
    """A name for this process in the cluster, e.g. "worker_1" ("chief" on one host)."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or resolver.task_type is None:
        return "chief"
    return f"{resolver.task_type}_{resolver.task_id}"


def num_workers(strategy: tf.distribute.Strategy) -> int:
    """The number of processes training together (1 unless multi-worker with a cluster)."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return 1
    cluster = resolver.cluster_spec().as_dict()
    return max(1, len(cluster.get("worker", ())) + len(cluster.get("chief", ())))
