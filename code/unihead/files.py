"""File helpers: atomic writes (a reader or a resumed run never sees a half-written file as
complete) and checksums.

An atomic write goes to ``.<name>.<12 hex digits>.tmp`` beside its target, created with mode 0o666 less
the umask (as ``open`` would), so a results folder shared on a cluster stays readable to the group. A
temporary file left by a killed run is removed by the next atomic write into that folder once nothing
has written to it for ``ORPHAN_AGE_S`` seconds. A write that fails (a read-only folder, a full disk) leaves no
temporary file and raises an :class:`OutputError` naming the file; an exit during the write (SIGTERM, Ctrl-C)
stays an exit, also where a library (``torch.save``) wrapped it in an error of its own.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import re
import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from unihead.errors import OutputError

TEMP_NAME = re.compile(r"\..+\.[0-9a-f]{12}\.tmp")
"""The temporary files of atomic writes, and nothing else (see ``_temp_path``)."""
ORPHAN_AGE_S = 300.0
"""A temporary file untouched this long belongs to a run that was killed: a live write keeps it fresh."""
WRITE_FAILURES = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.EFBIG}
"""The errors of a file that cannot be written where it should go (space, quota, permissions)."""


def cannot_write(path: Path, err: OSError) -> OutputError:
    """The error for ``path`` that could not be written because of ``err``."""
    return OutputError(f"{path}: cannot write it: {err.strerror or err}; free some space or make the folder "
                       "writable (or choose another one), then run the command again")


def is_write_failure(err: OSError) -> bool:
    """Whether ``err`` says a file cannot be written where it should go (not a network or a reading error)."""
    return err.errno in WRITE_FAILURES


@contextlib.contextmanager
def writing_into(folder: Path) -> Iterator[None]:
    """Within the block, a write that fails (a full disk, a read-only folder) is an :class:`OutputError` naming the
    file, or ``folder`` where the error names none (a failed ``write`` of an open file)."""
    try:
        yield
    except OSError as err:
        if not is_write_failure(err):
            raise
        raise cannot_write(Path(err.filename) if err.filename else folder, err) from err


def _cause(err: BaseException) -> BaseException | None:
    """The exit or write failure behind ``err`` (itself, or an exception a library wrapped), else None."""
    seen: BaseException | None = err
    while seen is not None:
        if isinstance(seen, (SystemExit, KeyboardInterrupt)) or \
                (isinstance(seen, OSError) and is_write_failure(seen)):
            return seen
        seen = seen.__context__
    return None


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
    tmp = _temp_path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        remove_orphan_temps(path.parent)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)  # the umask applies, as with open()
    except OSError as err:
        raise cannot_write(path, err) from err
    try:
        with os.fdopen(fd, mode) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException as err:
        tmp.unlink(missing_ok=True)
        cause = _cause(err)
        if isinstance(cause, OSError):
            raise cannot_write(path, cause) from err
        if cause is not None and cause is not err:
            raise cause from None
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
