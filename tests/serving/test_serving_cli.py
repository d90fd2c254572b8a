"""The export and evaluate commands: their own --help without TensorFlow, quiet consoles,
one-line errors, and what they write."""

import importlib.util
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from serving_support import CLASSES, REPO, images, onnx_session, run_command, run_tflite

from rectifier_zoo import console

_HELP = r"""
import runpy, sys
sys.argv = [sys.argv[1], "--help"]
try:
    runpy.run_path(sys.argv[0], run_name="__main__")
except SystemExit:
    pass
loaded = sorted(m for m in sys.modules if m.split(".")[0] in ("tensorflow", "keras"))
print("LOADED", loaded)
"""


@pytest.mark.parametrize(
    "script, own, other",
    [
        ("export.py", ["--checkpoint_dir", "--format", "--max_pixels"], ["--models", "--protocol"]),
        ("evaluate.py", ["--models", "--protocol", "--scales"], ["--checkpoint_dir", "--format"]),
    ],
)
def test_help_lists_its_own_flags_without_tensorflow(script, own, other):
    done = subprocess.run(
        [sys.executable, "-c", _HELP, os.path.join(REPO, "training", script)],
        capture_output=True, text=True,
    )  # fmt: skip
    assert "LOADED []" in done.stdout, done.stdout[-500:]
    for flag in [*own, "--verbosity"]:
        assert f"  {flag}" in done.stdout or f",{flag}" in done.stdout, flag
    for flag in other:
        assert f"  {flag}:" not in done.stdout, flag
    assert done.stderr == ""


def _no_native_noise(stderr: str) -> bool:
    return not any(console.NATIVE_NOISE.search(line) for line in stderr.splitlines())


@pytest.mark.tf_only
def test_export_cli_writes_tflite_and_onnx(model, tmp_path):
    weights = str(tmp_path / "tiny.weights.h5")
    model.save_weights(weights)
    source = [f"--weights={weights}", "--model=model_tiny", f"--classes={len(CLASSES)}"]
    batch = images(13, shape=(1, 72, 72))
    want = model(batch).numpy()
    done = run_command(
        "export.py", *source, "--format=tflite", "--input_size=72", f"--output={tmp_path}/t"
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == f"{tmp_path}/t"
    assert _no_native_noise(done.stderr), done.stderr[-2000:]
    np.testing.assert_allclose(run_tflite(tmp_path / "t", batch), want, atol=1e-5)
    if importlib.util.find_spec("tf2onnx") and importlib.util.find_spec("onnxruntime"):
        done = run_command("export.py", *source, "--format=onnx", f"--output={tmp_path}/o.onnx")
        assert done.returncode == 0, done.stderr[-2000:]
        (got,) = onnx_session(tmp_path / "o.onnx").run(None, {"images:0": batch})
        np.testing.assert_allclose(got, want, atol=1e-5)


@pytest.mark.tf_only
@pytest.mark.parametrize(
    "flags, message",
    [
        (["--format=tflite", "--output=x.tflite"], "--format=tflite needs --input_size"),
        (["--format=onnx"], "--format=onnx needs --output"),
        (["--input_size=64"], "--output and --input_size are for --format=tflite|onnx"),
        (["--format=tflite", "--input_size=4", "--output=x.tflite"], "too small"),
        # The last --classes wins: a 7-class model for a 4-class file is refused, not exported
        # with a random classifier.
        (["--classes=7"], "has a 4-class classifier: pass --classes=4"),
    ],
)
def test_export_cli_bad_flags_are_one_line(model, tmp_path, flags, message):
    weights = str(tmp_path / "tiny.weights.h5")
    model.save_weights(weights)
    done = run_command("export.py", f"--weights={weights}", "--model=model_tiny", "--classes=4",
                       *flags)  # fmt: skip
    assert done.returncode == 1
    # Quiet: the error, one line, and nothing of TensorFlow's start-up.
    assert done.stderr.count("\n") == 1 and done.stderr.startswith("error: ")
    assert message in done.stderr
    assert not (tmp_path / "x.tflite").exists() and not os.path.exists("x.tflite")


@pytest.mark.tf_only
def test_verbosity_brings_back_the_details(model, tmp_path):
    weights = str(tmp_path / "tiny.weights.h5")
    model.save_weights(weights)
    flags = ["--format=tflite", "--input_size=4", f"--output={tmp_path}/x.tflite"]
    done = run_command("export.py", f"--weights={weights}", "--model=model_tiny", "--classes=4",
                       *flags, "--verbosity=0")  # fmt: skip
    assert done.returncode == 1
    assert "Traceback" in done.stderr
    assert done.stderr.strip().splitlines()[-1].startswith("error: `input_size` is too small")


@pytest.mark.tf_only
def test_evaluate_cli(exported, tmp_path):
    from rectifier_zoo.data import testing

    root = tmp_path / "folder"
    testing.write_image_folder(root, CLASSES, {"train": 1, "val": 1}, size=(70, 90))
    output = tmp_path / "eval.json"
    flags = [
        "--dataset=folder",
        f"--data_dir={root}",
        "--protocol=center",
        f"--output={output}",
        "--noprogress",
    ]
    done = run_command("evaluate.py", f"--models={exported},{exported}", *flags)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stderr == ""  # quiet: no TensorFlow start-up lines, no logs
    assert "ensemble" in done.stdout
    rows = json.loads(output.read_text())["rows"]
    assert [row["role"] for row in rows] == ["member", "member", "ensemble"]
    assert output.with_suffix(".csv").exists()

    missing = run_command("evaluate.py", f"--models={tmp_path / 'missing'}", *flags)
    assert missing.returncode == 1
    assert missing.stderr.strip().splitlines() == [
        f"error: Model folder not found: {tmp_path / 'missing'}"
    ]
    bad = run_command("evaluate.py", f"--models={exported}", "--scales=big", *flags)
    assert bad.returncode == 1
    assert bad.stderr.startswith("error: --scales must be a list of numbers")
