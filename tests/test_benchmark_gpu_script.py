"""benchmarks/gpu_jax.py, the script the GPU machine runs, works end to end (on the CPU, a tiny
model): device time is too scarce to find a broken script there."""

import json
import os
import subprocess
import sys

import keras
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.skipif(keras.backend.backend() != "jax", reason="runs once, in the JAX test run")
def test_gpu_jax_script_runs_and_reports_every_variant(tmp_path):
    output = tmp_path / "gpu.json"
    command = [
        sys.executable,
        os.path.join(ROOT, "benchmarks", "gpu_jax.py"),
        "--variants",
        "model_tiny:prelu,model_tiny:relu_as_prelu",
        "--batch_size=2",
        "--input_size=40",
        "--steps=1",
        "--repeats=2",
        "--matmul_size=64",
        f"--output={output}",
    ]
    env = dict(os.environ, KERAS_BACKEND="jax", PYTHONPATH=ROOT)
    subprocess.run(command, check=True, env=env, cwd=ROOT, capture_output=True, timeout=300)
    result = json.loads(output.read_text())
    rows = {(row["model"], row["activation"]): row for row in result["rows"]}
    assert set(rows) == {("model_tiny", "prelu"), ("model_tiny", "relu_as_prelu")}
    for row in rows.values():
        assert row["step_seconds"] > 0 and 0 < row["mfu"]
        assert row["step_seconds_range"][0] <= row["step_seconds"] <= row["step_seconds_range"][1]
