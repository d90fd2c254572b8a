"""One smoke run of every study (`SMOKE_SETTINGS`), shared by the study modules' tests."""

import pytest


@pytest.fixture(scope="session")
def smoke_results(tmp_path_factory):
    """`(output folder, summaries)` of `run_study("all")` at the smoke sizes."""
    pytest.importorskip("matplotlib", reason="the figures need matplotlib (the `reproduce` extra)")
    import reproduce
    from reproduce.settings import SMOKE_SETTINGS

    root = tmp_path_factory.mktemp("reproduce")
    summaries = reproduce.run_study(
        "all", str(root / "out"), quick=True, settings=SMOKE_SETTINGS, data_dir=str(root / "data")
    )
    return root / "out", summaries
