"""The command lines' console: TensorFlow started without its start-up noise, one-line errors.

Used by the entry scripts of `training/` (train, export, evaluate). Importing this module imports
neither Keras nor TensorFlow.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import sys
import tempfile

# TensorFlow's native start-up lines, printed before its log settings apply: on a CPU host the
# CUDA probes, and the oneDNN / CPU-instruction banners.
NATIVE_NOISE = re.compile(
    r"absl::InitializeLog|cudart_stub|cuInit|cuda_platform|cuda_dnn|cuda_fft|cuda_blas|"
    r"oneDNN custom operations|TensorFlow binary is optimized|rebuild TensorFlow with|"
    r"computation_placer|Unable to register cu|TF-TRT Warning|Could not find cuda drivers"
)


@contextlib.contextmanager
def filtered_native_stderr():
    """Holds file descriptor 2 while TensorFlow starts; then replays all but the known noise.

    Those lines come from C++ before TF_CPP_MIN_LOG_LEVEL applies, so Python's logging cannot
    filter them. Anything else written meanwhile (a real error) is replayed, not lost.
    """
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            for line in captured.read().decode("utf-8", "replace").splitlines(keepends=True):
                if not NATIVE_NOISE.search(line):
                    sys.stderr.write(line)
            sys.stderr.flush()


def start_tensorflow(quiet: bool) -> None:
    """Imports TensorFlow and Keras; `quiet` hides their start-up and INFO/WARNING lines.

    Quiet keeps errors from C++ only, and drops the Python-side INFO and WARNING lines
    (checkpoint sharding, SavedModel assets, signature renames). Not quiet: everything, as
    TensorFlow logs it by default.
    """
    if not quiet:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "0")
        return
    from absl import logging as absl_logging

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    with filtered_native_stderr():
        import tensorflow as tf

        tf.config.list_physical_devices()  # the CUDA probe runs (and logs) here, once
        import keras  # noqa: F401  (logs on its first import)
    absl_logging.set_verbosity(absl_logging.ERROR)
    logging.getLogger("tensorflow").setLevel(logging.ERROR)


def one_line(error: BaseException) -> str:
    """The first non-empty line of an error's message (its type when it has none)."""
    lines = [line.strip() for line in str(error).strip().splitlines() if line.strip()]
    return lines[0] if lines else type(error).__name__
