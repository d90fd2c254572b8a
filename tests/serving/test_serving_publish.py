"""Versions and atomic writes: a taken version is skipped, stale staging folders go, a failed
write leaves nothing behind."""

import os
import socket
import subprocess
import sys

import pytest
from serving_support import CLASSES, CROP, RESIZE

from rectifier_zoo.serving import publish


def test_next_version_path_counts_integer_folders_only(tmp_path):
    assert publish.next_version_path(str(tmp_path / "missing")) == str(tmp_path / "missing" / "1")
    for name in ("1", "7", "10", "latest", ".tmp-export-x-1-ab"):
        (tmp_path / name).mkdir()
    assert publish.next_version_path(str(tmp_path)) == str(tmp_path / "11")


def test_a_taken_version_folder_is_refused(tmp_path):
    (tmp_path / "3").mkdir()
    with pytest.raises(ValueError, match="exists already"):
        publish.base_folder(tmp_path / "3")
    assert publish.base_folder(tmp_path / "4") == str(tmp_path)
    assert publish.base_folder(tmp_path) == str(tmp_path)


def test_write_atomically_leaves_nothing_when_the_write_fails(tmp_path):
    target = tmp_path / "out" / "model.tflite"

    def broken(staging):
        with open(staging, "wb") as f:
            f.write(b"half")
        raise RuntimeError("converter died")

    with pytest.raises(RuntimeError, match="converter died"):
        publish.write_atomically(target, broken)
    assert os.listdir(tmp_path / "out") == []
    path = publish.write_atomically(target, lambda staging: open(staging, "wb").close())
    assert path == str(target) and os.listdir(tmp_path / "out") == ["model.tflite"]


@pytest.mark.tf_only
def test_a_taken_version_is_skipped_not_overwritten(model, tmp_path, monkeypatch):
    """Two exports into one base: the one that renames second takes the next free version."""
    from rectifier_zoo.serving import export

    base = tmp_path / "base"
    first = export.export_model(
        model, base, class_names=CLASSES, crop_size=CROP, eval_resize=RESIZE
    )
    real_next = publish.next_version_path
    calls = []

    def stale_listing(folder):
        # The first look happens as if the other export had not yet renamed its folder.
        calls.append(folder)
        return first if len(calls) == 1 else real_next(folder)

    monkeypatch.setattr(publish, "next_version_path", stale_listing)
    second = export.export_model(
        model, base, class_names=CLASSES, crop_size=CROP, eval_resize=RESIZE
    )
    assert os.path.basename(second) == "2" and len(calls) == 2
    assert sorted(os.listdir(base)) == ["1", "2"]
    assert os.path.exists(os.path.join(first, "saved_model.pb"))
    with pytest.raises(ValueError, match="exists already"):
        export.export_model(model, first, class_names=CLASSES)


@pytest.mark.tf_only
def test_stale_staging_folders_are_removed(model, tmp_path):
    from rectifier_zoo.serving import export

    base = tmp_path / "base"
    base.mkdir()
    host = socket.gethostname()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True).stdout.strip()  # fmt: skip
    crashed = base / f".tmp-export-{host}-{dead}-0123abcd"
    live = base / f".tmp-export-{host}-{os.getpid()}-4567abcd"
    crashed.mkdir()
    live.mkdir()
    export.export_model(model, base, class_names=CLASSES, crop_size=CROP, eval_resize=RESIZE)
    assert not crashed.exists()
    assert live.exists()  # a running export's folder is left alone
