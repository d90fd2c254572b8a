r"""Reproduces the paper's findings at small scale, with figures (`reproduce.cli`).

    python training/reproduce.py --study all --quick     # init ~110, prelu ~21 min on 2 CPU cores
    python training/reproduce.py --study init --output_dir /tmp/reproduce

Each study writes PNG figures, `summary.json` and `report.md` into `<output_dir>/<study>/`:
`init` (MSRA vs Xavier, Sec. 2.2), `prelu` (ReLU vs PReLU, Table 2), `slopes` (learned slopes,
Table 1; reuses the `prelu` study's models, running it first if its results are missing).
The figures need matplotlib (`pip install -e .[reproduce]`).
"""

import os
import sys

# This file is named like the package it runs: with its own folder first on the path (as
# `python training/reproduce.py` puts it), `import reproduce` would find this file. The
# repository root takes that place.
_HERE = os.path.dirname(os.path.abspath(__file__))
if sys.path and os.path.abspath(sys.path[0] or os.curdir) == _HERE:
    sys.path[0] = os.path.dirname(_HERE)

from reproduce import cli  # noqa: E402

if __name__ == "__main__":
    cli.run()
