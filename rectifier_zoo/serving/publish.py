"""Putting an export in place atomically: SavedModel versions and single files (pure Python).

TensorFlow Serving's layout is `<base>/<integer version>/`, and it loads integer folders only.
A version is written to a hidden staging folder beside the versions
(`.tmp-export-<host>-<pid>-<random>`) and renamed into place: the rename is atomic on one file
system, so a server never sees half a version, and the version number is taken at the rename, so
two exports started at once into one base folder get two versions. A staging folder whose writer
is gone (this host and a dead process; another host and older than a day) is removed by the next
export into that base. Single files (TFLite, ONNX) are written beside their target and replaced
into place the same way.
"""

from __future__ import annotations

import errno
import os
import shutil
import socket
import time
import uuid
from collections.abc import Callable

# Staging folders older than this whose writer cannot be checked (another host) are stale.
_STALE_STAGING_SECONDS = 24 * 3600
_STAGING_PREFIX = ".tmp-export-"
_MAX_VERSION_TRIES = 100


def next_version_path(base: str) -> str:
    """`<base>/<1 + the largest integer version in base>` (TensorFlow Serving's layout)."""
    versions = [int(n) for n in os.listdir(base) if n.isdigit()] if os.path.isdir(base) else []
    return os.path.join(base, str(max(versions, default=0) + 1))


def staging_path(base: str) -> str:
    """A fresh staging folder path in `base` (not created)."""
    # Host and pid let a later export tell a crashed writer's folder from a live one.
    name = f"{_STAGING_PREFIX}{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    return os.path.join(base, name)


def remove_stale_staging(base: str) -> list[str]:
    """Removes staging folders left by killed exports in `base`; returns the removed paths.

    A folder is stale when its writer ran on this host and that process is gone, or, for another
    host's writer, when it is older than a day.
    """
    removed = []
    if not os.path.isdir(base):
        return removed
    host = socket.gethostname()
    for name in os.listdir(base):
        if not name.startswith(_STAGING_PREFIX):
            continue
        path = os.path.join(base, name)
        writer, _, _ = name[len(_STAGING_PREFIX) :].rpartition("-")
        writer_host, _, pid = writer.rpartition("-")
        if writer_host == host and pid.isdigit():
            stale = not _process_alive(int(pid))
        else:
            stale = time.time() - os.path.getmtime(path) > _STALE_STAGING_SECONDS
        if stale:
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    return removed


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, owned by another user
        pass
    return True


def _version_taken(export_path: str) -> ValueError:
    return ValueError(
        "The export version folder exists already; pass the model's base folder to get the "
        f"next version. Received: export_path={export_path!r}"
    )


def base_folder(export_path: str | os.PathLike) -> str:
    """The base folder of `export_path` (a base folder, or a version folder not yet there)."""
    export_path = os.path.abspath(os.fspath(export_path))
    if os.path.basename(export_path).isdigit():
        if os.path.exists(export_path):
            raise _version_taken(export_path)
        return os.path.dirname(export_path)
    return export_path


def publish(staging: str, export_path: str | os.PathLike) -> str:
    """Renames `staging` to the requested version, or to the next free one of the base folder.

    When another export takes the version first, the rename fails (the folder is not empty) and
    the next number is tried. Returns the absolute version folder.
    """
    export_path = os.path.abspath(os.fspath(export_path))
    if os.path.basename(export_path).isdigit():
        try:
            os.rename(staging, export_path)
        except OSError as error:
            if error.errno in (errno.EEXIST, errno.ENOTEMPTY):
                raise _version_taken(export_path) from None
            raise
        return export_path
    for _ in range(_MAX_VERSION_TRIES):
        target = next_version_path(export_path)
        try:
            os.rename(staging, target)
            return target
        except OSError as error:
            if error.errno not in (errno.EEXIST, errno.ENOTEMPTY):
                raise
    raise RuntimeError(f"Could not find a free version folder in {export_path!r}")


def write_atomically(path: str | os.PathLike, write: Callable[[str], None]) -> str:
    """Calls `write(staging_file)` beside `path`, then replaces `path` by it; returns `path`."""
    path = os.path.abspath(os.fspath(path))
    folder = os.path.dirname(path)
    os.makedirs(folder, exist_ok=True)
    staging = os.path.join(folder, f".{os.path.basename(path)}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        write(staging)
        os.replace(staging, path)
    finally:
        if os.path.exists(staging):
            os.remove(staging)
    return path
