"""Folders that cannot be written, for the bad-input tables: a full disk or a read-only file system under one
folder, simulated in this process (the tests may run as root, whom file modes do not stop).

On a full disk (``ENOSPC``) files and folders are created but every write into a file fails; on a read-only
file system (``EROFS``) creating or opening a file for writing, and making a folder, fail naming the path.
"""

from __future__ import annotations

import builtins
import errno
import io
import os
from pathlib import Path
from typing import Any

import pytest

FULL, READ_ONLY = errno.ENOSPC, errno.EROFS
_WRITING = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC


def _inside(path: Any, folder: Path) -> bool:
    return isinstance(path, (str, os.PathLike)) and Path(os.path.abspath(path)).is_relative_to(folder)


def make_unwritable(monkeypatch: pytest.MonkeyPatch, folder: Path, reason: int) -> None:
    """From now on (until ``monkeypatch`` is undone) writes under ``folder`` fail for ``reason``: FULL or READ_ONLY."""
    folder = Path(os.path.abspath(folder))
    real_open, real_os_open, real_mkdir = builtins.open, os.open, os.mkdir

    def refuse(path: Any) -> None:
        raise OSError(reason, os.strerror(reason), os.fspath(path))

    def full(fd: int) -> int:
        """``fd``, whose writes now go to /dev/full (ENOSPC)."""
        device = real_os_open("/dev/full", os.O_WRONLY)
        os.dup2(device, fd)
        os.close(device)
        return fd

    def open_(file: Any, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
        if _inside(file, folder) and any(flag in mode for flag in "wax+"):
            if reason == READ_ONLY:
                refuse(file)
            handle = real_open(file, mode, *args, **kwargs)
            full(handle.fileno())
            return handle
        return real_open(file, mode, *args, **kwargs)

    def os_open(path: Any, flags: int, *args: Any, **kwargs: Any) -> int:
        if _inside(path, folder) and flags & _WRITING:
            if reason == READ_ONLY:
                refuse(path)
            return full(real_os_open(path, flags, *args, **kwargs))
        return real_os_open(path, flags, *args, **kwargs)

    def mkdir(path: Any, *args: Any, **kwargs: Any) -> None:
        if reason == READ_ONLY and _inside(path, folder) and not os.path.lexists(path):
            refuse(path)
        real_mkdir(path, *args, **kwargs)

    for module, name, replacement in ((builtins, "open", open_), (io, "open", open_), (os, "open", os_open),
                                      (os, "mkdir", mkdir)):
        monkeypatch.setattr(module, name, replacement)
