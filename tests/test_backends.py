"""The core runs without TensorFlow: under JAX it must not even import it."""

import importlib.util
import os
import subprocess
import sys
import textwrap

import pytest

SCRIPT = textwrap.dedent(
    """
    import sys
    import numpy as np
    import rectifier_zoo
    from rectifier_zoo import architectures, imagenet, initializers, layers, models, weights

    model = rectifier_zoo.model_tiny(classes=3, channel_shared=True)
    scores = np.asarray(model(np.zeros((1, 32, 32, 3), "float32")))
    assert scores.shape == (1, 3), scores.shape
    loaded = [name for name in sys.modules if name.split(".")[0] == "tensorflow"]
    assert not loaded, loaded
    print("backend", rectifier_zoo.PReLU().dtype_policy.name, "ok")
    """
)


@pytest.mark.skipif(importlib.util.find_spec("jax") is None, reason="jax is not installed")
def test_core_under_jax_does_not_import_tensorflow():
    env = {**os.environ, "KERAS_BACKEND": "jax", "JAX_PLATFORMS": "cpu"}
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "ok" in result.stdout
