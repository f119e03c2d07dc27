"""Taking chosen files out of tar and zip archives, refusing any member that would land outside the target.

Only the members a caller selects are written (a 2 GB VOC archive yields 600 files, not 17,000), but
every member name is checked: an archive holding an absolute path or a ``..`` component is refused
as a whole, whether or not that member was selected. Each selected member is read up to a size cap
given by the caller and no further, whatever its header declares: a small member that inflates to
gigabytes stops at the cap.
"""

from __future__ import annotations

import stat
import tarfile
import zipfile
from collections.abc import Callable
from pathlib import Path, PurePosixPath
from typing import IO, NamedTuple

from unihead.data.errors import DatasetError

Selector = Callable[[str], "Path | None"]
"""Maps an archive member's name to the file it should be written to, or None to skip it."""
CHUNK = 1 << 20


class SizeCap(NamedTuple):
    """The most bytes one extracted member may hold, and what kind of member that is (for the error)."""

    max_bytes: int
    what: str


def check_member_name(archive: Path, name: str) -> None:
    """Refuse a member whose path is absolute or climbs out of the extraction folder."""
    path = PurePosixPath(name.replace("\\", "/"))
    if path.is_absolute() or ".." in path.parts or (path.parts and ":" in path.parts[0]):
        raise DatasetError(f"{archive}: member {name!r} would be written outside the target folder; refusing "
                           "this archive (it is not the official file, or it was tampered with)")


def _copy_capped(source: IO[bytes], handle: IO[bytes], cap: SizeCap, archive: Path, name: str) -> None:
    """Copy at most ``cap.max_bytes``; one byte more is an error (the bytes are counted, not the header)."""
    copied = 0
    while chunk := source.read(min(CHUNK, cap.max_bytes + 1 - copied)):
        copied += len(chunk)
        if copied > cap.max_bytes:
            raise DatasetError(f"{archive}: member {name!r} holds more than {cap.max_bytes:,} bytes, the cap for "
                               f"{cap.what}; stopped reading it (the official archive holds no such member: "
                               "a corrupted or tampered file)")
        handle.write(chunk)


def _write(source: IO[bytes], dest: Path, cap: SizeCap, archive: Path, name: str, written: set[Path]) -> None:
    if dest in written:
        raise DatasetError(f"{archive}: two members map to {dest} (the second is {name!r})")
    dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        with dest.open("wb") as handle:
            _copy_capped(source, handle, cap, archive, name)
    except BaseException:
        dest.unlink(missing_ok=True)
        raise
    written.add(dest)


def extract_selected(archive: Path, select: Selector, cap: SizeCap) -> set[Path]:
    """Write the selected regular-file members of a tar (any compression) or zip archive; return the files.

    Each member is cut off with an error past ``cap``.
    """
    written: set[Path] = set()
    try:
        if zipfile.is_zipfile(archive):
            with zipfile.ZipFile(archive) as handle:
                for info in handle.infolist():
                    check_member_name(archive, info.filename)
                    dest = select(info.filename)
                    if dest is not None and stat.S_ISLNK(info.external_attr >> 16):
                        raise DatasetError(f"{archive}: member {info.filename!r} is a symbolic link, not a file")
                    if dest is not None and not info.is_dir():
                        with handle.open(info) as source:
                            _write(source, dest, cap, archive, info.filename, written)
            return written
        with tarfile.open(archive, "r:*") as handle:
            for member in handle:
                check_member_name(archive, member.name)
                dest = select(member.name)
                if dest is None:
                    continue
                if not member.isfile():
                    raise DatasetError(f"{archive}: member {member.name!r} is not a regular file")
                source = handle.extractfile(member)
                _write(source, dest, cap, archive, member.name, written)
    except (tarfile.TarError, zipfile.BadZipFile, EOFError) as err:
        raise DatasetError(f"{archive}: not a readable tar or zip archive ({err})") from err
    return written


def member_names(archive: Path) -> list[str]:
    """The names of the regular-file members of a tar (any compression) or zip archive, each checked."""
    try:
        if zipfile.is_zipfile(archive):
            with zipfile.ZipFile(archive) as handle:
                names = [info.filename for info in handle.infolist() if not info.is_dir()]
        else:
            with tarfile.open(archive, "r:*") as handle:
                names = [member.name for member in handle if member.isfile()]
    except (tarfile.TarError, zipfile.BadZipFile, EOFError) as err:
        raise DatasetError(f"{archive}: not a readable tar or zip archive ({err})") from err
    for name in names:
        check_member_name(archive, name)
    return names


def extract_files(archive: Path, targets: dict[str, Path], listed_in: str, cap: SizeCap,
                  select: Selector | None = None) -> None:
    """Write the files in ``targets`` (name -> file), each at most ``cap``; all of them must be in the archive.

    The names are member names unless ``select`` maps member names to the target files another way.
    """
    written = extract_selected(archive, select or targets.get, cap)
    missing = [name for name, dest in targets.items() if dest not in written]
    if missing:
        shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
        raise DatasetError(f"{archive}: {len(missing)} member(s) listed in {listed_in} are missing: {shown}")
