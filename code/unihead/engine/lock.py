"""The lock of a run folder: one run at a time trains into it.

``<run folder>/run.lock`` is created atomically (``O_CREAT | O_EXCL``) and holds the host, PID and start
time of the run that holds it (never empty: a failed write, such as on a full disk, removes it); it is removed
when that run ends, also on an error. A second run on the folder stops with an error naming the lock and its
holder. A lock left by a run that was killed is stale when it names this host and a PID that is no longer
alive: it is reported and replaced. A lock from another host is never judged stale (its PID cannot be checked
from here), so the error says to delete it once that run is known to be over.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path

from unihead.errors import InputError
from unihead.files import cannot_write, remove_orphan_temps

LOCK = "run.lock"
ATTEMPTS = 3
"""Tries at creating the lock: a stale lock, once removed, leaves the next try free."""


class RunFolderLocked(InputError):
    """Another run holds the run folder; the message names the lock file and its holder."""


@dataclass(frozen=True)
class Holder:
    """Who holds a lock: the host, the process and when it started (UTC, ISO 8601)."""

    host: str
    pid: int
    started: str

    @classmethod
    def this_process(cls) -> Holder:
        return cls(socket.gethostname(), os.getpid(), datetime.now(timezone.utc).isoformat(timespec="seconds"))

    @classmethod
    def parse(cls, raw: bytes) -> Holder | None:
        """The holder a lock file names, or None when it names none (empty, or not written by this module)."""
        try:
            values = json.loads(raw)
            holder = cls(str(values["host"]), int(values["pid"]), str(values["started"]))
        except (ValueError, KeyError, TypeError):
            return None
        return holder if holder.pid > 0 else None

    def is_alive(self) -> bool:
        """False only when certain: this host, and no process with the PID."""
        if self.host != socket.gethostname():
            return True
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:  # a process of another user
            return True
        return True

    def __str__(self) -> str:
        return f"PID {self.pid} on host {self.host} (started {self.started})"


def _in_use(path: Path, holder: Holder | None, raw: bytes) -> RunFolderLocked:
    who = str(holder) if holder else f"a run this lock does not name (it holds {raw[:80]!r})"
    return RunFolderLocked(f"{path}: the run folder is in use by {who}; wait for that run to end, or delete the "
                           "lock if no run is using the folder")


def _remove_if_stale(path: Path, log: Callable[[str], None]) -> None:
    """Remove the lock at ``path`` if its holder is dead; raise :class:`RunFolderLocked` if it is not."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return  # its run has just ended
    holder = Holder.parse(raw)
    if holder is None or holder.is_alive():
        raise _in_use(path, holder, raw)
    # moved aside, not deleted, so that of two runs taking over the same stale lock only one removes it: the
    # other moves aside the first one's new lock (other bytes), puts it back, and then finds it in use
    aside = path.with_name(f"{path.name}.{socket.gethostname()}.{os.getpid()}.stale")
    try:
        os.rename(path, aside)
    except FileNotFoundError:
        return
    if aside.read_bytes() != raw:
        os.replace(aside, path)
        return
    aside.unlink()
    log(f"{path}: removed the stale lock of {holder}, which is no longer running; taking over the run folder")


def acquire(folder: Path, log: Callable[[str], None]) -> Holder:
    """Take the lock of ``folder`` for this process, replacing a stale one; return this process's entry."""
    path, me = folder / LOCK, Holder.this_process()
    for _ in range(ATTEMPTS):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            _remove_if_stale(path, log)
            continue
        except OSError as err:
            raise cannot_write(path, err) from err
        try:
            with os.fdopen(fd, "w") as handle:
                handle.write(json.dumps(asdict(me)) + "\n")
        except BaseException as err:
            path.unlink()  # an empty lock (a full disk) would refuse every later run
            if isinstance(err, OSError):
                raise cannot_write(path, err) from err
            raise
        return me
    raise RunFolderLocked(f"{path}: could not take the lock in {ATTEMPTS} tries (other runs keep taking it); "
                          "run one at a time on a run folder")


def release(folder: Path, me: Holder) -> None:
    """Remove the lock of ``folder`` if it is still this process's (never another run's)."""
    path = folder / LOCK
    with contextlib.suppress(FileNotFoundError):
        if Holder.parse(path.read_bytes()) == me:
            path.unlink()


@contextlib.contextmanager
def locked(folder: Path, log: Callable[[str], None]) -> Iterator[None]:
    """Hold the lock of ``folder`` for the block, and remove it when the block ends, also on an error. Taking it
    removes the folder's temporary files of atomic writes: with the lock held no other run writes there, so they
    are a killed run's (however recent)."""
    me = acquire(folder, log)
    try:
        remove_orphan_temps(folder, max_age_s=0)
        yield
    finally:
        release(folder, me)
