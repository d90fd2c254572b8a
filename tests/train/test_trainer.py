"""The training loop, strategies, checkpoints / resume, export and the train.py CLI."""

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
import train_support

pytestmark = pytest.mark.tf_only

REPO, TRAIN_PY = train_support.REPO, train_support.TRAIN_PY
SUMMARY_KEYS = (
    "run_name",
    "val_top1_error",
    "val_top5_error",
    "val_top1_accuracy",
    "val_examples",
    "top_k",
    "learning_rate",
    "lr_drops",
    "train_steps",
    "steps_this_run",
    "resumed_from_step",
    "epochs",
    "steps_per_epoch",
    "global_batch_size",
    "num_replicas",
    "strategy",
    "images_per_sec",
    "wall_time_sec",
    "export_path",
    "model_dir",
    "checkpoint_dir",
    "latest_checkpoint",
    "tensorboard_dir",
    "skipped_images",
    "weights_checksum",
)


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    from rectifier_zoo import data

    return data.ensure_tiny_synthetic_dataset(str(tmp_path_factory.mktemp("tiny_data")))


def tiny_config(data_dir, tmp_path, **overrides):
    """model_tiny on the tiny synthetic set: 32 px crops, batch 4, a handful of steps."""
    overrides.setdefault("model_dir", str(tmp_path / "run"))
    overrides.setdefault("export_dir", str(tmp_path / "export"))
    return train_support.tiny_config(data_dir, **overrides)


@pytest.mark.parametrize("precision", ["float32", "mixed_float16"])
def test_trainer_uses_caffe_sgd_on_kernels_only(precision, tmp_path):
    """The trainer's update is rectifier_zoo.CaffeSGD: coupled decay on kernels, none on slopes."""
    import keras
    import tensorflow as tf

    import rectifier_zoo
    from rectifier_zoo.train import state

    config = tiny_config("unused", tmp_path, precision=precision, weight_decay=0.5, momentum=0.0)
    model = rectifier_zoo.model_tiny(input_shape=(32, 32, 3), classes=4)
    optimizer = state.build_optimizer(config, model)
    inner = getattr(optimizer, "inner_optimizer", optimizer)
    assert isinstance(inner, rectifier_zoo.CaffeSGD)
    assert (inner.momentum, inner.weight_decay) == (0.0, 0.5)
    before = [np.array(v) for v in model.trainable_variables]
    zeros = [tf.zeros_like(v) for v in model.trainable_variables]
    if precision == "mixed_float16":
        zeros = [optimizer.scale_loss(g) for g in zeros]  # a loss-scaled zero is still zero
    optimizer.apply_gradients(zip(zeros, model.trainable_variables, strict=True))
    lr = float(keras.ops.convert_to_numpy(inner.learning_rate))
    for variable, old in zip(model.trainable_variables, before, strict=True):
        decays = variable.name == "kernel"
        want = old * (1 - lr * 0.5) if decays else old  # zero gradient: only the decay moves w
        np.testing.assert_allclose(np.array(variable), want, rtol=1e-6, err_msg=variable.path)


def trained_weights(checkpoint_path) -> list:
    """The model's trainable weights from a checkpoint, in `model.trainable_variables` order."""
    import tensorflow as tf

    reader = tf.train.load_checkpoint(str(checkpoint_path))
    prefix = "optimizer/_trainable_variables/"
    indices = sorted(
        int(name[len(prefix) :].split("/")[0])
        for name in reader.get_variable_to_shape_map()
        if name.startswith(prefix)
    )
    return [reader.get_tensor(f"{prefix}{i}/.ATTRIBUTES/VARIABLE_VALUE") for i in indices]


def test_weight_decay_in_the_step_decays_kernels_only(tiny_data, tmp_path):
    """Two runs from the same checkpoint on the same data, one with weight decay, one without.

    After one more plain SGD step (no momentum) they differ by lr * wd * w on the kernels and
    not at all on the PReLU slopes and biases.
    """
    import shutil

    from rectifier_zoo.train import loop as trainer

    common = dict(momentum=0.0, log_every_steps=10, eval_every_epochs=0, learning_rate=1e-3)
    trainer.train(tiny_config(tiny_data, tmp_path, train_steps=1, weight_decay=0.0, **common))
    start = trained_weights(tmp_path / "run" / "checkpoints" / "ckpt-1")
    shutil.copytree(tmp_path / "run", tmp_path / "decayed")
    trainer.train(tiny_config(tiny_data, tmp_path, train_steps=2, weight_decay=0.0, **common))
    trainer.train(
        tiny_config(
            tiny_data,
            tmp_path,
            train_steps=2,
            weight_decay=10.0,
            model_dir=str(tmp_path / "decayed"),
            **common,
        )
    )
    plain = trained_weights(tmp_path / "run" / "checkpoints" / "ckpt-2")
    decayed = trained_weights(tmp_path / "decayed" / "checkpoints" / "ckpt-2")
    assert len(start) == len(plain) == len(decayed) > 10
    num_kernels = 0
    for w, a, b in zip(start, plain, decayed, strict=True):
        if w.ndim >= 2:  # conv / fc kernels: the extra step is -lr * wd * w
            np.testing.assert_allclose(b - a, -1e-3 * 10.0 * w, rtol=1e-3, atol=1e-6)
            num_kernels += 1
        else:  # PReLU slopes and biases: untouched by weight decay
            np.testing.assert_array_equal(a, b)
    assert num_kernels == 8  # 5 conv + 3 fc


def test_one_step_run_writes_everything(tiny_data, tmp_path):
    import tensorflow as tf

    from rectifier_zoo.train import loop as trainer

    summary = trainer.train(tiny_config(tiny_data, tmp_path, train_steps=1))
    run = tmp_path / "run"
    written = json.loads((run / "summary.json").read_text())
    assert set(written) == set(summary) == set(SUMMARY_KEYS)
    assert written["train_steps"] == 1
    assert 0.0 <= written["val_top1_error"] <= 1.0 and 0.0 <= written["val_top5_error"] <= 1.0
    assert written["val_examples"] == 8  # the whole validation split, partial batch included
    assert json.loads((run / "config.json").read_text())["network"]["model"] == "model_tiny"
    assert tf.train.latest_checkpoint(str(run / "checkpoints")).endswith("ckpt-1")
    assert os.listdir(run / "logs" / "train") and os.listdir(run / "logs" / "validation")

    loaded = tf.saved_model.load(written["export_path"])
    # Any image size, since SPP makes the head size-free.
    probabilities = loaded.signatures["predict_images"](images=tf.zeros([3, 40, 56, 3]))[
        "probabilities"
    ]
    assert probabilities.shape == (3, 4)
    np.testing.assert_allclose(np.sum(probabilities.numpy(), axis=1), 1.0, rtol=1e-5)


def test_resume_continues_to_the_new_total(tiny_data, tmp_path):
    from rectifier_zoo.train import loop as trainer

    first = trainer.train(tiny_config(tiny_data, tmp_path, train_steps=3, checkpoint_every_steps=1))
    assert first["train_steps"] == 3 and first["resumed_from_step"] == 0
    second = trainer.train(
        tiny_config(tiny_data, tmp_path, train_steps=6, checkpoint_every_steps=2)
    )
    assert second["resumed_from_step"] == 3
    assert second["steps_this_run"] == 3 and second["train_steps"] == 6
    # Already at the total: nothing more to train, still validates and exports.
    third = trainer.train(tiny_config(tiny_data, tmp_path, train_steps=6))
    assert third["steps_this_run"] == 0 and third["train_steps"] == 6
    checkpoints = sorted(os.listdir(tmp_path / "run" / "checkpoints"))
    assert "ckpt-6.index" in checkpoints
    assert len([c for c in checkpoints if c.endswith(".index")]) <= 3  # keep_checkpoints


def test_default_export_dir_gets_next_version(tiny_data, tmp_path, monkeypatch):
    from rectifier_zoo.train import loop as trainer

    monkeypatch.chdir(tmp_path)
    config = tiny_config(tiny_data, tmp_path, train_steps=1, export_dir=None, name="demo")
    first = trainer.train(config)
    second = trainer.train(
        tiny_config(tiny_data, tmp_path, train_steps=1, export_dir=None, name="demo")
    )
    base = tmp_path / "exported_models" / "demo"
    assert first["export_path"] == str(base / "1")
    assert second["export_path"] == str(base / "2")
    assert (base / "2" / "saved_model.pb").exists()
    assert not [n for n in os.listdir(base) if n.startswith(".tmp")]


def test_mixed_bfloat16_runs_and_restores_the_policy(tiny_data, tmp_path):
    from rectifier_zoo.train import loop as trainer

    summary = trainer.train(
        tiny_config(tiny_data, tmp_path, train_steps=2, precision="mixed_bfloat16", epochs=1.0)
    )
    assert summary["train_steps"] == 2
    import keras

    assert keras.mixed_precision.dtype_policy().name == "float32"  # restored afterwards


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"model": "nope"}, "Unknown model"),
        ({"strategy": "nope"}, "Unknown strategy"),
        ({"precision": "float8"}, "Unknown precision"),
        ({"dataset": "nope"}, "Unknown dataset"),
        ({"batch_size": 0}, "batch_size must be a positive integer"),
        ({"learning_rate": float("inf")}, "learning_rate must be a finite number"),
        ({"learning_rate": float("nan")}, "learning_rate must be a finite number"),
        ({"weight_decay": float("nan")}, "weight_decay must be a finite number"),
        ({"momentum": 1.0}, r"momentum must be a finite number in \[0.0, 1.0\)"),
        ({"lr_boundaries": (1.0, float("inf"))}, "lr_boundaries must be a finite number"),
        ({"warmup_epochs": -1.0}, "warmup_epochs must be a finite number"),
        ({"eval_every_epochs": -1}, "eval_every_epochs must be an integer >= 0"),
        ({"fc_initializer": "nope"}, "Unknown initializer"),
        ({"data_dir": "/nonexistent/data"}, "Folder data set not found"),
        ({"batch_size": 17}, "fewer than one batch"),
    ],
)
def test_config_errors(tiny_data, tmp_path, overrides, message):
    from rectifier_zoo.train import loop as trainer

    overrides = dict(overrides)
    data_dir = overrides.pop("data_dir", tiny_data)
    with pytest.raises((ValueError, FileNotFoundError), match=message) as error:
        trainer.train(tiny_config(data_dir, tmp_path, **overrides))
    assert "Received:" in str(error.value) or error.type is FileNotFoundError
    assert not (tmp_path / "run").exists()  # failed before writing anything


def test_unwritable_model_dir_fails_before_training(tiny_data, tmp_path):
    from rectifier_zoo.train import loop as trainer

    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(ValueError, match="model_dir must be a writable folder"):
        trainer.train(tiny_config(tiny_data, tmp_path, model_dir=str(blocker / "run")))


def test_batch_not_divisible_by_replicas(tiny_data, tmp_path):
    from rectifier_zoo.train import loop as trainer

    class TwoReplicas:
        num_replicas_in_sync = 2

    with pytest.raises(ValueError, match="divisible by the 2 replicas"):
        trainer.train(tiny_config(tiny_data, tmp_path, batch_size=3), strategy=TwoReplicas())


def test_strategy_names():
    import tensorflow as tf

    from rectifier_zoo.train import distribute

    assert isinstance(distribute.get_strategy("auto"), tf.distribute.OneDeviceStrategy)
    assert isinstance(distribute.get_strategy("one_device"), tf.distribute.OneDeviceStrategy)
    with pytest.raises(ValueError, match=r"Expected one of .*mirrored.*Received: strategy='gpu'"):
        distribute.get_strategy("gpu")


def test_multi_worker_without_tf_config(monkeypatch):
    from rectifier_zoo.train import distribute

    monkeypatch.delenv("TF_CONFIG", raising=False)
    with pytest.raises(ValueError, match="TF_CONFIG"):
        distribute.get_strategy("multi_worker")


def test_recipes_are_configs_with_their_commands():
    from rectifier_zoo import paper
    from rectifier_zoo.train import recipes
    from rectifier_zoo.train.config import Config

    assert set(recipes.RECIPES) >= {
        "quickstart",
        "paper_model_a",
        "paper_model_b",
        "paper_model_c",
        "paper_small",
        "init_study",
    }
    for name, recipe in recipes.RECIPES.items():
        assert isinstance(recipe, Config) and recipe.name == name
        assert recipe.model_dir == f"runs/{name}"
        assert "python training/train.py" in recipes.RECIPE_NOTES[name], name
    assert recipes.RECIPES["paper_model_c"].batch_size == paper.BATCH_SIZE
    with pytest.raises(ValueError, match="Expected one of"):
        recipes.get_recipe("nope")


def _run(args, env=None, timeout=120, **kwargs):
    full_env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", **(env or {}))
    return subprocess.run(
        [sys.executable, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=full_env,
        cwd=kwargs.pop("cwd", REPO),
        **kwargs,
    )


@pytest.mark.parametrize(
    "flag, expected",
    [
        ("--recipe=nope", "quickstart"),
        ("--strategy=nope", "mirrored"),
        ("--model=nope", "model_c"),
        ("--precision=nope", "mixed_float16"),
        ("--dataset=nope", "imagenet2012"),
    ],
)
def test_cli_rejects_bad_choices_in_one_line(flag, expected, tmp_path):
    result = _run([TRAIN_PY, flag, f"--model_dir={tmp_path / 'run'}"])
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    last_line = result.stderr.strip().splitlines()[-1]
    assert "Expected one of" in last_line and expected in last_line and "nope" in last_line


def test_cli_names_the_expected_layout_when_data_is_missing(tmp_path):
    result = _run(
        [
            TRAIN_PY,
            "--dataset=folder",
            f"--data_dir={tmp_path / 'none'}",
            f"--model_dir={tmp_path / 'run'}",
        ]
    )
    assert result.returncode != 0 and "Traceback" not in result.stderr
    last_line = result.stderr.strip().splitlines()[-1]
    assert "Folder data set not found" in last_line and "<root>/train/<class>/*.JPEG" in last_line
    assert not (tmp_path / "run").exists()  # nothing written


def test_cli_runs_a_tiny_training(tiny_data, tmp_path):
    result = _run(
        [
            TRAIN_PY,
            "--model=model_tiny",
            "--dataset=folder",
            f"--data_dir={tiny_data}",
            f"--model_dir={tmp_path / 'run'}",
            f"--export_dir={tmp_path / 'export'}",
            "--train_steps=2",
            "--batch_size=4",
            "--strategy=one_device",
            "--seed=1",
            "--verbose=0",
        ],
        timeout=180,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "SavedModel:" in result.stdout and str(tmp_path / "export") in result.stdout
    # Quiet by default: the step lines, the validation line and the final block only.
    assert result.stderr.strip() == "", result.stderr[-3000:]
    assert "validation (epoch 0, step 2)" in result.stdout and "step 2/2 loss" in result.stdout
    for noise in ("cuInit", "InitializeLog", "Sharding callback", "Assets written", "unsupported"):
        assert noise not in result.stdout
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    # Flags override the quickstart recipe; its network is replaced by --model, its input scale
    # and fc init kept.
    assert config["network"]["model"] == "model_tiny"
    assert config["network"]["fc_initializer"] == "msra_fan_in"
    assert config["network"]["input_std"] == 58.0
    assert config["transform"]["crop_size"] == 64 and config["batch_size"] == 4


_MIRRORED_SCRIPT = textwrap.dedent(
    """
    import sys
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration(), tf.config.LogicalDeviceConfiguration()]
    )
    from rectifier_zoo.train import distribute
    from rectifier_zoo.train import loop as trainer
    from rectifier_zoo.train.config import Config
    data_dir, out = sys.argv[1], sys.argv[2]
    for name in ("one_device", "mirrored"):
        strategy = distribute.get_strategy(name)
        config = Config().override(
            name=name, model="model_tiny", dataset="folder", data_dir=data_dir,
            model_dir=f"{out}/{name}", export_dir=f"{out}/{name}_export", strategy=name,
            batch_size=6, train_steps=3, crop_size=32, min_scale=32, max_scale=32,
            eval_resize=32, flip=False, pca_lighting=0.0, dropout=0.0, weight_decay=0.05,
            seed=3, verbose=0, checkpoint_every_steps=1, keep_checkpoints=5,
        )
        summary = trainer.train(config, strategy=strategy)
        print(name, summary["num_replicas"], summary["train_steps"], summary["val_examples"])
    """
)


def test_mirrored_over_two_cpus_matches_one_device(tiny_data, tmp_path):
    script = tmp_path / "mirrored.py"
    script.write_text(_MIRRORED_SCRIPT)
    result = _run([str(script), tiny_data, str(tmp_path)], timeout=240)
    assert result.returncode == 0, result.stderr[-3000:]
    # 8 validation images in batches of 6: the partial batch (one image per replica) counts too.
    assert "one_device 1 3 8" in result.stdout and "mirrored 2 3 8" in result.stdout
    one = trained_weights(tmp_path / "one_device" / "checkpoints" / "ckpt-3")
    two = trained_weights(tmp_path / "mirrored" / "checkpoints" / "ckpt-3")
    initial = trained_weights(tmp_path / "one_device" / "checkpoints" / "ckpt-1")
    assert len(one) == len(two) > 10
    moved = 0
    for index, (a, b) in enumerate(zip(one, two, strict=True)):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6, err_msg=str(index))
        moved += not np.array_equal(a, initial[index])
    assert moved >= 10  # the comparison is about trained weights


def _free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


_WORKER_SCRIPT = textwrap.dedent(
    """
    import json, sys
    from rectifier_zoo.train import loop as trainer
    from rectifier_zoo.train.config import Config
    data_dir, out = sys.argv[1], sys.argv[2]
    config = Config().override(
        name="mw", model="model_tiny", dataset="folder", data_dir=data_dir,
        model_dir=f"{out}/run", export_dir=f"{out}/export", strategy="multi_worker",
        batch_size=6, train_steps=3, crop_size=32, min_scale=32, max_scale=40, eval_resize=32,
        seed=5, verbose=0, dropout=0.0,
    )
    summary = trainer.train(config)
    print("RESULT " + json.dumps(summary))
    """
)


def _start_two_workers(script, tiny_data, tmp_path) -> list:
    """`script` as the two workers of a localhost MultiWorkerMirroredStrategy cluster."""
    ports = _free_ports(2)
    cluster = {"worker": [f"127.0.0.1:{port}" for port in ports]}
    processes = []
    for index in range(2):
        tf_config = json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})
        processes.append(
            subprocess.Popen(
                [sys.executable, str(script), tiny_data, str(tmp_path)],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                cwd=REPO,
                env=dict(os.environ, TF_CONFIG=tf_config, TF_CPP_MIN_LOG_LEVEL="2"),
            )
        )
    return processes


@pytest.mark.slow
def test_multi_worker_two_processes_end_with_identical_weights(tiny_data, tmp_path):
    script = tmp_path / "worker.py"
    script.write_text(_WORKER_SCRIPT)
    processes = _start_two_workers(script, tiny_data, tmp_path)
    summaries = []
    for process in processes:
        stdout, stderr = process.communicate(timeout=300)
        assert process.returncode == 0, stderr[-3000:]
        line = [ln for ln in stdout.splitlines() if ln.startswith("RESULT ")][-1]
        summaries.append(json.loads(line[len("RESULT ") :]))
    chief, other = summaries
    assert chief["num_replicas"] == other["num_replicas"] == 2
    assert chief["train_steps"] == other["train_steps"] == 3
    assert chief["weights_checksum"] == pytest.approx(other["weights_checksum"], rel=1e-6)
    assert chief["val_top1_error"] == pytest.approx(other["val_top1_error"])
    assert chief["val_examples"] == other["val_examples"] == 8  # partial batches counted once
    assert chief["export_path"] and other["export_path"] is None  # only the chief exports
    assert (tmp_path / "run" / "summary.json").exists()


@pytest.mark.slow
def test_sigkill_mid_run_then_resume(tiny_data, tmp_path):
    args = [
        TRAIN_PY,
        "--model=model_tiny",
        "--dataset=folder",
        f"--data_dir={tiny_data}",
        f"--model_dir={tmp_path / 'run'}",
        f"--export_dir={tmp_path / 'export'}",
        "--batch_size=4",
        "--strategy=one_device",
        "--seed=1",
        "--verbose=0",
        "--checkpoint_every_steps=2",
        "--learning_rate=1e-3",
    ]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    process = subprocess.Popen(
        [sys.executable, *args, "--train_steps=100000"],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=open(tmp_path / "killed_run.log", "w"),  # noqa: SIM115
    )
    checkpoints = tmp_path / "run" / "checkpoints"
    import tensorflow as tf

    def latest_step():
        latest = tf.train.latest_checkpoint(str(checkpoints))
        return int(latest.rsplit("-", 1)[1]) if latest else 0

    deadline = time.time() + 180
    try:
        while latest_step() < 6:
            if process.poll() is not None:
                log = (tmp_path / "killed_run.log").read_text()[-3000:]
                pytest.fail(f"the run ended before it was killed:\n{log}")
            if time.time() > deadline:
                pytest.fail("no checkpoint at step >= 6 within 180 s")
            time.sleep(0.2)
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    saved_step = int(tf.train.latest_checkpoint(str(checkpoints)).rsplit("-", 1)[1])
    assert saved_step >= 6
    total = saved_step + 4
    result = _run([*args, f"--train_steps={total}"], timeout=180)
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["resumed_from_step"] == saved_step
    assert summary["train_steps"] == total and summary["steps_this_run"] == 4


def test_learning_rate_schedule_steps_and_warmup():
    from rectifier_zoo.train import schedule
    from rectifier_zoo.train.config import Config

    config = Config().override(learning_rate=0.01, lr_boundaries=(2.0, 3.0), warmup_epochs=1.0)

    def rate(step, drops):
        return schedule.learning_rate(config, step, steps_per_epoch=10, plateau_drops=drops)

    assert rate(0, 0) == pytest.approx(0.001)  # warm-up: (step + 1) / 10 of the rate
    assert rate(9, 0) == pytest.approx(0.01)
    assert rate(19, 0) == pytest.approx(0.01)
    assert rate(20, 0) == pytest.approx(0.001)  # Sec. 2.3: 1e-2 -> 1e-3 -> 1e-4
    assert rate(30, 0) == pytest.approx(0.0001)
    assert rate(15, 1) == pytest.approx(0.001)  # one plateau drop


def test_plateau_schedule_divides_the_rate_when_validation_stalls(tiny_data, tmp_path):
    from rectifier_zoo.train import loop as trainer

    # A rate too small to change the predictions: the validation error cannot improve.
    config = tiny_config(
        tiny_data,
        tmp_path,
        train_steps=12,
        learning_rate=1e-7,
        lr_schedule="plateau",
        plateau_patience=1,
        eval_every_epochs=1,
        log_every_steps=4,
    )
    summary = trainer.train(config)
    assert summary["lr_drops"] == 1  # evaluations after epochs 1 and 2: one stall
    assert summary["learning_rate"] == pytest.approx(1e-8)


@pytest.mark.parametrize("overrides", [{"precision": "mixed_float16"}, {"xla": True}])
def test_float16_loss_scaling_and_xla_train(tiny_data, tmp_path, overrides):
    import tensorflow as tf

    from rectifier_zoo.train import loop as trainer

    summary = trainer.train(tiny_config(tiny_data, tmp_path, train_steps=2, **overrides))
    assert summary["train_steps"] == 2
    assert all(np.all(np.isfinite(w)) for w in trained_weights(summary["latest_checkpoint"]))
    loaded = tf.saved_model.load(summary["export_path"])
    output = loaded.signatures["predict_images"](images=tf.zeros([1, 32, 32, 3]))
    assert output["probabilities"].dtype == tf.float32


def _copy_data(tiny_data, tmp_path):
    import shutil

    root = tmp_path / "data"
    shutil.copytree(tiny_data, root)
    return root


@pytest.mark.parametrize("problem", ["unknown_validation_class", "empty_training_class"])
def test_data_errors_come_before_the_first_step(tiny_data, tmp_path, problem):
    from rectifier_zoo.train import loop as trainer

    root = _copy_data(tiny_data, tmp_path)
    if problem == "unknown_validation_class":
        (root / "val" / "zz_new").mkdir()
        some_image = next(p for p in (root / "val").rglob("*") if p.is_file())
        (root / "val" / "zz_new" / some_image.name).write_bytes(some_image.read_bytes())
        expected = "not among the 4 training classes.*'zz_new'"
    else:
        (root / "train" / "zz_empty").mkdir()
        expected = "hold no image files.*'zz_empty'"
    with pytest.raises(ValueError, match=expected):
        trainer.train(tiny_config(str(root), tmp_path, train_steps=1000))
    assert not (tmp_path / "run").exists()


def test_incompatible_resume_is_refused_and_the_run_kept(tiny_data, tmp_path):
    from rectifier_zoo.train import loop as trainer

    trainer.train(tiny_config(tiny_data, tmp_path, train_steps=1))
    config_path = tmp_path / "run" / "config.json"
    before = config_path.read_bytes()
    with pytest.raises(ValueError) as error:
        trainer.train(
            tiny_config(tiny_data, tmp_path, train_steps=2, activation="relu", batch_size=8)
        )
    message = str(error.value)
    assert "activation (stored 'prelu', received 'relu')" in message
    assert "batch_size (stored 4, received 8)" in message and "Received: model_dir=" in message
    # Another data set with other classes: refused too, even though the model would build.
    other = _copy_data(tiny_data, tmp_path)
    first = sorted(os.listdir(other / "train"))[0]
    os.rename(other / "train" / first, other / "train" / "renamed")
    os.rename(other / "val" / first, other / "val" / "renamed")
    with pytest.raises(ValueError, match=r"class_names \(stored \[.*received \[.*'renamed'"):
        trainer.train(tiny_config(str(other), tmp_path, train_steps=2))
    assert config_path.read_bytes() == before
    assert sorted(os.listdir(tmp_path / "run" / "checkpoints")) == [
        "checkpoint",
        "ckpt-1.data-00000-of-00001",
        "ckpt-1.index",
    ]
    # A compatible change is taken and recorded.
    summary = trainer.train(tiny_config(tiny_data, tmp_path, train_steps=2, learning_rate=5e-3))
    assert summary["resumed_from_step"] == 1 and summary["train_steps"] == 2
    stored = json.loads(config_path.read_text())
    assert stored["optimizer"]["learning_rate"] == 5e-3 and stored["schedule"]["train_steps"] == 2
    assert stored["class_names"] == sorted(os.listdir(os.path.join(tiny_data, "train")))
    first_start, resume = stored["history"]
    assert first_start["from_step"] == 0 and first_start["changes"] == {}
    assert resume["from_step"] == 1
    assert resume["changes"] == {
        "learning_rate": {"stored": 0.01, "new": 5e-3},
        "train_steps": {"stored": 1, "new": 2},
    }


def test_checkpoint_that_does_not_fit_is_a_one_line_error(tiny_data, tmp_path):
    from rectifier_zoo.train import loop as trainer

    trainer.train(tiny_config(tiny_data, tmp_path, train_steps=1))
    config_path = tmp_path / "run" / "config.json"
    stored = json.loads(config_path.read_text())
    # A run folder whose config.json does not say what the checkpoint holds (hand-edited, or
    # from an older version without the comparison).
    stored["network"]["activation"] = "relu"
    config_path.write_text(json.dumps(stored))
    before = config_path.read_bytes()
    with pytest.raises(ValueError, match="does not fit this configuration"):
        trainer.train(tiny_config(tiny_data, tmp_path, train_steps=2, activation="relu"))
    assert config_path.read_bytes() == before


def _signal_when_checkpointed(run_dir, signum, at_least=2):
    """Sends `signum` to this process once a checkpoint of step >= `at_least` exists."""
    import threading

    import tensorflow as tf

    def watch():
        deadline = time.time() + 120
        while time.time() < deadline:
            latest = tf.train.latest_checkpoint(str(run_dir / "checkpoints"))
            if latest and int(latest.rsplit("-", 1)[1]) >= at_least:
                os.kill(os.getpid(), signum)
                return
            time.sleep(0.05)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread


@pytest.mark.parametrize("signum, code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_stop_signal_saves_at_the_next_step_then_resumes(tiny_data, tmp_path, signum, code):
    from rectifier_zoo.train import loop as trainer

    previous = signal.getsignal(signum)
    config = tiny_config(
        tiny_data, tmp_path, train_steps=100_000, checkpoint_every_steps=2, learning_rate=1e-3
    )
    watcher = _signal_when_checkpointed(tmp_path / "run", signum)
    with pytest.raises(trainer.TrainingInterrupted) as stopped:
        trainer.train(config)
    watcher.join()
    assert signal.getsignal(signum) == previous  # the handlers are put back
    interrupted = stopped.value
    assert interrupted.exit_code == code and interrupted.signal_name == signal.Signals(signum).name
    # The signal came after the checkpoint of an even step: the step in flight then finished and
    # was saved; nothing more was lost or trained.
    assert interrupted.step >= 2 and interrupted.checkpoint.endswith(f"ckpt-{interrupted.step}")
    assert not (tmp_path / "run" / "summary.json").exists()  # no final evaluation or export
    summary = trainer.train(
        tiny_config(tiny_data, tmp_path, train_steps=interrupted.step + 1, learning_rate=1e-3)
    )
    assert summary["resumed_from_step"] == interrupted.step and summary["steps_this_run"] == 1


def test_cli_verbosity_brings_the_library_logs_back(tiny_data, tmp_path):
    result = _run(
        [
            TRAIN_PY,
            "--model=model_tiny",
            "--dataset=folder",
            f"--data_dir={tiny_data}",
            f"--model_dir={tmp_path / 'run'}",
            f"--export_dir={tmp_path / 'export'}",
            "--train_steps=1",
            "--batch_size=4",
            "--verbose=0",
            "--verbosity=0",
        ],
        timeout=180,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Assets written" in result.stderr and "SavedModel:" in result.stdout


@pytest.mark.parametrize(
    "flags, expected",
    [
        (["--learning_rate=inf"], "Error: learning_rate must be a finite number"),
        (["--learning_rate=1e9", "--train_steps=30"], "Error: FloatingPointError: The loss is"),
    ],
)
def test_cli_errors_are_one_line(tiny_data, tmp_path, flags, expected):
    result = _run(
        [
            TRAIN_PY,
            "--model=model_tiny",
            "--dataset=folder",
            f"--data_dir={tiny_data}",
            f"--model_dir={tmp_path / 'run'}",
            f"--export_dir={tmp_path / 'export'}",
            "--batch_size=4",
            "--verbose=0",
            *flags,
        ],
        timeout=180,
    )
    assert result.returncode == 1 and "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(expected), result.stderr[-3000:]


def test_divergence_error_names_the_checkpoint_and_the_usual_causes():
    from rectifier_zoo.train import metrics

    with pytest.raises(FloatingPointError, match=r"step 7.*ckpt-5.*learning_rate.*input_std"):
        metrics.check_finite(float("nan"), 7, False, "ckpt-5")
    # A loss-scaled step skips non-finite steps itself.
    metrics.check_finite(float("inf"), 7, True, None)
    metrics.check_finite(2.3, 7, False, None)


def _stop_with_sigterm(args, checkpoints, at_least, log_path):
    """Starts train.py, sends SIGTERM once a checkpoint >= `at_least` exists; returns the
    process result, the seconds from the signal to the exit and the step last checkpointed
    before the signal."""
    import tensorflow as tf

    def latest_step():
        latest = tf.train.latest_checkpoint(str(checkpoints))
        return int(latest.rsplit("-", 1)[1]) if latest else 0

    with open(log_path, "w") as log:
        process = subprocess.Popen(
            [sys.executable, *args],
            cwd=REPO,
            env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"),
            stdout=log,
            stderr=subprocess.PIPE,
            text=True,
        )
        deadline = time.time() + 180
        try:
            while latest_step() < at_least:
                if process.poll() is not None:
                    pytest.fail(f"the run ended before the signal: {process.stderr.read()[-3000:]}")
                if time.time() > deadline:
                    pytest.fail(f"no checkpoint at step >= {at_least} within 180 s")
                time.sleep(0.05)
            before = latest_step()
            sent = time.time()
            process.send_signal(signal.SIGTERM)
            stderr = process.communicate(timeout=120)[1]
            seconds = time.time() - sent
        finally:
            if process.poll() is None:
                process.kill()
    return process.returncode, stderr, seconds, before


@pytest.mark.slow
def test_cli_sigterm_saves_exits_143_and_resumes(tiny_data, tmp_path):
    args = [
        TRAIN_PY,
        "--model=model_tiny",
        "--dataset=folder",
        f"--data_dir={tiny_data}",
        f"--model_dir={tmp_path / 'run'}",
        f"--export_dir={tmp_path / 'export'}",
        "--batch_size=4",
        "--strategy=one_device",
        "--seed=1",
        "--verbose=0",
        "--checkpoint_every_steps=3",
        "--learning_rate=1e-3",
    ]
    checkpoints = tmp_path / "run" / "checkpoints"
    code, stderr, seconds, before = _stop_with_sigterm(
        [*args, "--train_steps=100000"], checkpoints, 6, tmp_path / "stopped.log"
    )
    assert code == 143 and "Traceback" not in stderr, stderr[-3000:]
    import tensorflow as tf

    saved = int(tf.train.latest_checkpoint(str(checkpoints)).rsplit("-", 1)[1])
    # Saved at the boundary of the step in flight: no step lost, not a checkpoint interval.
    assert before < saved < before + 3, (before, saved)
    assert "SIGTERM received" in stderr
    assert f"Stopped by SIGTERM at step {saved} of 100000" in stderr.strip().splitlines()[-1]
    assert seconds < 60
    result = _run([*args, f"--train_steps={saved + 2}"], timeout=180)
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["resumed_from_step"] == saved and summary["steps_this_run"] == 2


_STOPPING_WORKER_SCRIPT = textwrap.dedent(
    """
    import json, sys
    from rectifier_zoo.train import loop as trainer
    from rectifier_zoo.train.config import Config
    data_dir, out = sys.argv[1], sys.argv[2]
    config = Config().override(
        name="mw", model="model_tiny", dataset="folder", data_dir=data_dir,
        model_dir=f"{out}/run", export_dir=f"{out}/export", strategy="multi_worker",
        batch_size=4, train_steps=100000, crop_size=32, min_scale=32, max_scale=40,
        eval_resize=32, seed=5, verbose=0, dropout=0.0, checkpoint_every_steps=2,
        learning_rate=1e-3,
    )
    try:
        trainer.train(config)
    except trainer.TrainingInterrupted as stopped:
        print("STOPPED " + json.dumps({"step": stopped.step, "signal": stopped.signal_name}))
        sys.exit(stopped.exit_code)
    """
)


@pytest.mark.slow
def test_multi_worker_sigterm_to_one_worker_stops_all_at_the_same_step(tiny_data, tmp_path):
    import tensorflow as tf

    script = tmp_path / "worker.py"
    script.write_text(_STOPPING_WORKER_SCRIPT)
    processes = _start_two_workers(script, tiny_data, tmp_path)
    checkpoints = str(tmp_path / "run" / "checkpoints")
    deadline = time.time() + 240
    try:
        while not tf.train.latest_checkpoint(checkpoints):
            assert all(p.poll() is None for p in processes), processes[0].stderr.read()[-3000:]
            assert time.time() < deadline, "no checkpoint within 240 s"
            time.sleep(0.1)
        processes[1].send_signal(signal.SIGTERM)  # the non-chief worker only
        outputs = [p.communicate(timeout=120) for p in processes]
    finally:
        for p in processes:
            if p.poll() is None:
                p.kill()
    stopped = []
    for process, (stdout, stderr) in zip(processes, outputs, strict=True):
        assert process.returncode == 143, stderr[-3000:]
        line = [ln for ln in stdout.splitlines() if ln.startswith("STOPPED ")][-1]
        stopped.append(json.loads(line[len("STOPPED ") :]))
    chief, other = stopped
    assert chief["step"] == other["step"]  # every worker saved at the same step
    assert other["signal"] == "SIGTERM" and chief["signal"] == "a stop signal on another worker"
    assert tf.train.latest_checkpoint(checkpoints).endswith(f"ckpt-{chief['step']}")


def test_input_std_and_fc_initializer_survive_a_rebuild_from_the_run(tiny_data, tmp_path):
    import dataclasses

    import tensorflow as tf

    from rectifier_zoo.architectures import ARCHITECTURES
    from rectifier_zoo.train import loop as trainer
    from rectifier_zoo.train import run_dir

    scaled = dataclasses.replace(ARCHITECTURES["model_tiny"], name="tiny_scaled", input_std=58.0)
    config = tiny_config(
        tiny_data, tmp_path, train_steps=1, model=scaled, fc_initializer="msra_fan_in"
    )
    summary = trainer.train(config)
    rebuilt, stored, _ = run_dir.model_from_checkpoint(str(tmp_path / "run"))
    assert stored["architecture"]["input_std"] == 58.0
    images = tf.random.stateless_uniform([2, 40, 48, 3], seed=[1, 2], maxval=255.0)
    exported = tf.saved_model.load(summary["export_path"]).signatures["predict_images"]
    np.testing.assert_allclose(
        rebuilt(images, training=False).numpy(),
        exported(images=images)["probabilities"].numpy(),
        rtol=1e-5,
        atol=1e-6,
    )
    normalization = rebuilt.get_layer("mean_subtraction")
    np.testing.assert_allclose(np.asarray(normalization.variance).ravel(), [58.0**2] * 3)


def test_the_recipes_input_std_is_built_in_and_resumes_a_run_that_kept_it_in_the_architecture(
    tiny_data, tmp_path
):
    import dataclasses

    from rectifier_zoo.architectures import ARCHITECTURES
    from rectifier_zoo.train import loop as trainer
    from rectifier_zoo.train import run_dir

    # Runs written before `input_std` was a field kept the scale in their architecture.
    tiny = dataclasses.replace(ARCHITECTURES["model_tiny"], name="tiny_net")
    scaled = dataclasses.replace(tiny, input_std=58.0)
    trainer.train(tiny_config(tiny_data, tmp_path, train_steps=1, model=scaled))
    config_path = tmp_path / "run" / "config.json"
    stored = json.loads(config_path.read_text())
    del stored["network"]["input_std"]
    config_path.write_text(json.dumps(stored))
    summary = trainer.train(
        tiny_config(tiny_data, tmp_path, train_steps=2, model=tiny, input_std=58.0)
    )
    assert summary["resumed_from_step"] == 1
    resume = json.loads(config_path.read_text())["history"][-1]
    assert resume["changes"] == {"train_steps": {"stored": 1, "new": 2}}
    model, _, _ = run_dir.model_from_checkpoint(str(tmp_path / "run"))
    normalization = model.get_layer("mean_subtraction")
    np.testing.assert_allclose(np.asarray(normalization.variance).ravel(), [58.0**2] * 3)
    # Another scale is another network: refused, the run kept.
    with pytest.raises(ValueError, match=r"input_std \(stored 58.0, received 1.0\)"):
        trainer.train(tiny_config(tiny_data, tmp_path, train_steps=3, model=tiny, input_std=1.0))


def test_a_run_with_the_old_flat_config_json_is_read_and_resumed(tiny_data, tmp_path):
    """Runs written before the config had sections stored it flat; both readers still take it."""
    from rectifier_zoo.train import loop as trainer
    from rectifier_zoo.train import run_dir
    from rectifier_zoo.train.config import Config

    trainer.train(tiny_config(tiny_data, tmp_path, train_steps=1))
    config_path = tmp_path / "run" / "config.json"
    nested = json.loads(config_path.read_text())
    flat = {
        **Config.from_stored(nested).flat(),
        **{key: nested[key] for key in ("num_classes", "class_names", "history")},
    }
    del flat["jpeg_downscale"]  # not a field of the flat form
    config_path.write_text(json.dumps(flat))

    model, stored, _ = run_dir.model_from_checkpoint(str(tmp_path / "run"))
    assert model.outputs[0].shape[-1] == 4
    assert (stored["name"], stored["dataset"], stored["crop_size"]) == ("tiny", "folder", 32)
    assert stored["class_names"] == flat["class_names"] and stored["architecture"] is None
    summary = trainer.train(tiny_config(tiny_data, tmp_path, train_steps=2))
    assert summary["resumed_from_step"] == 1 and summary["train_steps"] == 2
    rewritten = json.loads(config_path.read_text())
    assert rewritten["network"]["model"] == "model_tiny"  # written back in the nested form
    assert [entry["changes"] for entry in rewritten["history"]] == [
        {},
        {"train_steps": {"stored": 1, "new": 2}},
    ]


def test_precision_policy_is_restored_after_an_error():
    import keras

    from rectifier_zoo.train import state

    with pytest.raises(RuntimeError), state.precision_policy("mixed_bfloat16"):
        assert keras.mixed_precision.dtype_policy().name == "mixed_bfloat16"
        raise RuntimeError("stop")
    assert keras.mixed_precision.dtype_policy().name == "float32"
