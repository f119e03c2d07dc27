"""File helpers: atomic writes (a reader or a resumed run never sees a half-written file as
complete) and checksums.

An atomic write goes to ``.<name>.<12 hex digits>.tmp`` beside its target, created with mode 0o666 less
the umask (as ``open`` would), so a results folder shared on a cluster stays readable to the group. A
temporary file left by a killed run is removed by the next atomic write into that folder once nothing
has written to it for ``ORPHAN_AGE_S`` seconds.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO

TEMP_NAME = re.compile(r"\..+\.[0-9a-f]{12}\.tmp")
"""The temporary files of atomic writes, and nothing else (see ``_temp_path``)."""
ORPHAN_AGE_S = 300.0
"""A temporary file untouched this long belongs to a run that was killed: a live write keeps it fresh."""


def _temp_path(path: Path) -> Path:
    return path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")


def remove_orphan_temps(folder: Path, max_age_s: float = ORPHAN_AGE_S) -> None:
    """Delete the atomic-write temporary files in ``folder`` that nothing has modified for ``max_age_s``."""
    cutoff = time.time() - max_age_s
    for entry in os.scandir(folder):
        if not TEMP_NAME.fullmatch(entry.name):
            continue
        with contextlib.suppress(FileNotFoundError):  # another run's cleanup got there first
            if entry.is_file(follow_symlinks=False) and entry.stat(follow_symlinks=False).st_mtime < cutoff:
                Path(entry.path).unlink()


@contextlib.contextmanager
def atomic_open(path: Path, mode: str = "w") -> Iterator[IO]:
    """Write to a temporary file beside ``path`` and move it into place only when the block succeeds."""
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_orphan_temps(path.parent)
    tmp = _temp_path(path)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)  # the umask applies, as with open()
    try:
        with os.fdopen(fd, mode) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    with atomic_open(path, "w") as handle:
        handle.write(text)


def file_digest(path: Path, algorithm: str) -> str:
    """Hex digest of a file's bytes with a hashlib algorithm (``sha256``, ``md5``), read in 1 MB chunks."""
    digest = hashlib.new(algorithm)
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def sha256_file(path: Path) -> str:
    return file_digest(path, "sha256")
