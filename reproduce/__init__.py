"""The paper's findings reproduced at small scale, with figures: not part of the installed model
zoo's API. `python training/reproduce.py` (or `rectifier-zoo-reproduce`) runs them.

    import reproduce
    reproduce.run_study("init", "results/reproduce", quick=True)

One module per study, each with `run(output_dir, quick, data_dir, settings) -> summary` (which
writes `summary.json`, the figures and `report.md` into `<output_dir>/<study>/`),
`plot(summary, output_dir)` and `report(summary, output_dir)`:

- `reproduce.init`: MSRA vs Xavier at initialization and in training (Sec. 2.2, Figs. 2-3).
- `reproduce.prelu`: ReLU vs channel-shared and channel-wise PReLU (Sec. 3, Table 2).
- `reproduce.slopes`: the slopes PReLU learns, the `prelu` study's models trained longer
  (Sec. 2.1, Table 1).

`reproduce.settings` holds their sizes, `reproduce.common` the data and training run they share,
`reproduce.output` the file helpers, `reproduce.cli` the command line. Importing this package
imports neither TensorFlow nor matplotlib; the study modules import TensorFlow, and matplotlib
only when they draw.
"""

from __future__ import annotations

import importlib
import time

STUDIES = ("init", "prelu", "slopes")


def run_study(
    study: str,
    output_dir: str,
    quick: bool = False,
    settings=None,
    data_dir: str | None = None,
) -> dict:
    """Runs one study (`"init"`, `"prelu"`, `"slopes"`) or `"all"`; returns the summaries by name.

    Args:
        study: a name of `STUDIES`, or `"all"` for each in turn.
        output_dir: parent folder of the studies' folders.
        quick: the `quick` sizes rather than the full ones.
        settings: a `reproduce.settings.StudySettings` that replaces them.
        data_dir: parent folder of the synthetic sets; `None`: the package's cache.
    """
    from rectifier_zoo.checks import check_choice

    check_choice("study", study, (*STUDIES, "all"))
    summaries = {}
    for name in STUDIES if study == "all" else (study,):
        module = importlib.import_module(f"{__name__}.{name}")
        start = time.perf_counter()
        summaries[name] = module.run(output_dir, quick, data_dir, settings)
        print(f"[{name}] done in {time.perf_counter() - start:.0f} s", flush=True)
    return summaries
