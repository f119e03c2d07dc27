"""The bad-input suite, archives-and-builds surface: every bad input of building a data root (official
archives served from 127.0.0.1 by tests/test_official.py's fixture, the synthetic generator) and of the
atomic file writes, one table row each.

A row arranges the bad input and returns the action that meets it, names the error the action must
give (``None``: it must succeed), and may check more afterwards. A failing action must also leave the
data root byte for byte as it was before (hidden files included): no half-built data, no lost file.
"""

from __future__ import annotations

import io
import os
import re
import stat
import tarfile
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

import test_official
from test_official import build, md5, write_tar, write_zip
from unihead.config import Download
from unihead.data.categories import IMAGENETTE_WNIDS
from unihead.data.errors import DatasetError, DownloadError
from unihead.errors import OutputError
from unihead.files import atomic_write_text
from unihead.sources.archives import SizeCap, extract_selected
from unihead.sources.manifest import MANIFEST, write_manifest
from unihead.sources.prepare import prepare_synthetic
from unwritable import FULL, READ_ONLY, make_unwritable

sources = test_official.sources
"""The fake official archives, their server and id lists (the fixture of tests/test_official.py)."""

Action = Callable[[], object]
VOC_TAR = "VOCtrainval_11-May-2012.tar"
IMAGENETTE_TGZ = "imagenette2-160.tgz"
VOC_JPEG = "VOCdevkit/VOC2012/JPEGImages/2007_000032.jpg"
VOC_MASK = "VOCdevkit/VOC2012/SegmentationClass/2009_000200.png"
IMAGENETTE_WNID = IMAGENETTE_WNIDS[1]
IMAGENETTE_JPEG = f"imagenette2-160/train/{IMAGENETTE_WNID}/{IMAGENETTE_WNID}_train1.JPEG"
"""A listed Imagenette train image, in the archive's train folder."""
COCO_ZIP_JPEG = "val2017/000000000139.jpg"
ORPHAN = ".results.csv.0123456789ab.tmp"
"""An atomic write's temporary file, as a killed run leaves it."""


@dataclass(frozen=True)
class BadInput:
    name: str
    arrange: Callable[[dict, Path], Action]
    error: type[Exception] | None
    match: str = ""
    check: Callable[[Path], None] = lambda tmp_path: None
    """More to check afterwards, given the test's tmp_path."""


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()} \
        if root.exists() else {}


def _members(archive: Path) -> dict[str, bytes]:
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as handle:
            return {info.filename: handle.read(info) for info in handle.infolist()}
    with tarfile.open(archive) as handle:
        return {member.name: handle.extractfile(member).read() for member in handle if member.isfile()}


def _serve(sources: dict, name: str, members: dict[str, bytes]) -> Download:
    """Serve ``members`` as the archive ``name`` (zip, tgz or tar by its suffix)."""
    path = sources["served"] / name
    if name.endswith(".zip"):
        write_zip(path, members)
    else:
        write_tar(path, members, "w:gz" if name.endswith(".tgz") else "w")
    return Download(f"{sources['server'].url}/{name}", md5(path))


def _variant(original: str, field: str, name: str, edit: Callable[[dict[str, bytes]], None],
             **changes: object) -> Callable[[dict, Path], Action]:
    """Build with the archive ``original`` (config ``field``) replaced by an edited copy named ``name``."""

    def arrange(sources: dict, tmp_path: Path) -> Action:
        members = _members(sources["served"] / original)
        edit(members)
        download = _serve(sources, name, members)
        return lambda: build(sources, tmp_path, **{field: download}, **changes)

    return arrange


def _link_member(original: str, field: str, name: str, member: str, **changes: object
                 ) -> Callable[[dict, Path], Action]:
    """Build with ``member`` of the archive ``original`` turned into a symbolic link to /etc/passwd."""

    def arrange(sources: dict, tmp_path: Path) -> Action:
        members = _members(sources["served"] / original)
        path = sources["served"] / name
        if name.endswith(".zip"):
            with zipfile.ZipFile(path, "w") as handle:
                for other, data in members.items():
                    if other == member:
                        info = zipfile.ZipInfo(member)
                        info.external_attr = (stat.S_IFLNK | 0o777) << 16
                        handle.writestr(info, "/etc/passwd")
                    else:
                        handle.writestr(other, data)
        else:
            with tarfile.open(path, "w") as handle:
                for other, data in members.items():
                    info = tarfile.TarInfo(other)
                    if other == member:
                        info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
                        handle.addfile(info)
                    else:
                        info.size = len(data)
                        handle.addfile(info, io.BytesIO(data))
        download = Download(f"{sources['server'].url}/{name}", md5(path))
        return lambda: build(sources, tmp_path, **{field: download}, **changes)

    return arrange


def _download(field: str, edit: Callable[[Download], Download]) -> Callable[[dict, Path], Action]:
    def arrange(sources: dict, tmp_path: Path) -> Action:
        download = edit(getattr(sources["config"], field))
        return lambda: build(sources, tmp_path, **{field: download})

    return arrange


def _after_a_good_build(then: Callable[[dict, Path], Action]) -> Callable[[dict, Path], Action]:
    """Build once (and write its manifest, as ``unihead prepare`` does) before arranging ``then``."""

    def arrange(sources: dict, tmp_path: Path) -> Action:
        root, manifest = build(sources, tmp_path)
        write_manifest(manifest, root / MANIFEST)
        return then(sources, tmp_path)

    return arrange


def _user_file(relative: str, then: Callable[[dict, Path], Action]) -> Callable[[dict, Path], Action]:
    """Put a user's file at ``data/<relative>`` before arranging ``then``."""

    def arrange(sources: dict, tmp_path: Path) -> Action:
        path = tmp_path / "data" / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("a user's notes\n")
        return then(sources, tmp_path)

    return arrange


def _rebuild(sources: dict, tmp_path: Path) -> Action:
    return lambda: build(sources, tmp_path)


def _synthetic(sources: dict, tmp_path: Path) -> Action:
    return lambda: prepare_synthetic(tmp_path / "data", n_train=10, n_val=10, image_size=32, seed=0)


def _nothing_escaped(tmp_path: Path) -> None:
    assert not list(tmp_path.rglob("escaped*"))


def _absolute_member(sources: dict, tmp_path: Path) -> Action:
    members = _members(sources["served"] / VOC_TAR)
    members[str(tmp_path / "escaped.txt")] = b"evil"
    download = _serve(sources, "absolute.tar", members)
    return lambda: build(sources, tmp_path, voc=download)


def _garbage_archive(sources: dict, tmp_path: Path) -> Action:
    path = sources["served"] / "garbage.tar"
    path.write_bytes(b"neither tar nor zip\n" * 100)
    download = Download(f"{sources['server'].url}/{path.name}", md5(path))
    return lambda: build(sources, tmp_path, voc=download)


def _inflating_image(members: dict[str, bytes]) -> None:
    members[IMAGENETTE_JPEG] = bytes(51 << 20)  # about 50 KB compressed


def _capped_zip_member(sources: dict, tmp_path: Path) -> Action:
    archive = tmp_path / "big.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as handle:
        handle.writestr("annotations/instances_val2017.json", bytes(5000))
    return lambda: extract_selected(archive, lambda name: tmp_path / "out.json", SizeCap(4096, "a test file"))


def _no_partial_output(tmp_path: Path) -> None:
    assert not (tmp_path / "out.json").exists()


def _write_with_umask(umask: int) -> Callable[[dict, Path], Action]:
    def arrange(sources: dict, tmp_path: Path) -> Action:
        def write() -> None:
            previous = os.umask(umask)
            try:
                atomic_write_text(tmp_path / "results" / "table.csv", "a,b\n")
            finally:
                os.umask(previous)

        return write

    return arrange


def _mode_is(mode: int) -> Callable[[Path], None]:
    def check(tmp_path: Path) -> None:
        assert stat.S_IMODE((tmp_path / "results" / "table.csv").stat().st_mode) == mode

    return check


def _orphans(sources: dict, tmp_path: Path) -> Action:
    folder = tmp_path / "results"
    folder.mkdir()
    an_hour_ago = time.time() - 3600
    for name in (ORPHAN, ".notes.tmp", ".results.csv.fedcba987654.tmp"):
        (folder / name).write_text("partial")
    for name in (ORPHAN, ".notes.tmp"):
        os.utime(folder / name, (an_hour_ago, an_hour_ago))
    return lambda: atomic_write_text(folder / "results.csv", "a,b\n")


def _only_the_orphan_is_removed(tmp_path: Path) -> None:
    """The old temporary file goes; a user's file and a fresh temporary file (a live write) stay."""
    assert sorted(p.name for p in (tmp_path / "results").iterdir()) == \
        [".notes.tmp", ".results.csv.fedcba987654.tmp", "results.csv"]


def _unwritable(reason: int, folder: str, then: Callable[[dict, Path], Action]) -> Callable[[dict, Path], Action]:
    """``then``, with ``tmp_path/<folder>`` unwritable while it runs (a full disk or a read-only file system)."""

    def arrange(sources: dict, tmp_path: Path) -> Action:
        action = then(sources, tmp_path)

        def act() -> object:
            with pytest.MonkeyPatch.context() as monkeypatch:
                make_unwritable(monkeypatch, tmp_path / folder, reason)
                return action()

        return act

    return arrange


def _existing_data(then: Callable[[dict, Path], Action]) -> Callable[[dict, Path], Action]:
    """A data root that already holds a user's file, which the failed build must leave as it was."""
    return _user_file("notes.txt", then)


def _replaced_left_behind(sources: dict, tmp_path: Path) -> Action:
    (tmp_path / "data" / ".unihead-replaced" / "mini_voc_seg").mkdir(parents=True)
    return _rebuild(sources, tmp_path)


ROWS = [
    # already behaving before the "No silent wrong answers" issue
    BadInput("tar member climbing out with ..", _variant(
        IMAGENETTE_TGZ, "imagenette", "climbing.tgz",
        lambda m: m.update({"imagenette2-160/../../escaped.txt": b"evil"})),
        DatasetError, r"member 'imagenette2-160/../../escaped.txt' would be written outside", _nothing_escaped),
    BadInput("tar member with an absolute path", _absolute_member,
             DatasetError, r"absolute.tar: member '/.*/escaped.txt' would be written outside", _nothing_escaped),
    BadInput("zip member that is a symbolic link", _link_member(
        "val2017.zip", "coco_val_zip", "link.zip", COCO_ZIP_JPEG, coco_images="zip"),
        DatasetError, rf"link.zip: member '{COCO_ZIP_JPEG}' is a symbolic link, not a file"),
    BadInput("tar member that is a symbolic link", _link_member(VOC_TAR, "voc", "link.tar", VOC_JPEG),
             DatasetError, rf"link.tar: member '{VOC_JPEG}' is not a regular file"),
    BadInput("archive with a wrong checksum", _download("voc", lambda d: Download(d.url, "md5:" + "0" * 32)),
             DownloadError, rf"{VOC_TAR} has md5 [0-9a-f]{{32}}, expected 0{{32}}"),
    BadInput("URL answering HTTP 404", _download("voc", lambda d: Download(d.url + ".gone", d.checksum)),
             DownloadError, rf"PASCAL VOC 2012 trainval: http://127.0.0.1:\d+/{VOC_TAR}.gone answered HTTP 404"),
    BadInput("listed member missing from the archive", _variant(
        IMAGENETTE_TGZ, "imagenette", "missing.tgz", lambda m: m.pop(IMAGENETTE_JPEG)),
        DatasetError, rf"missing.tgz: 1 member\(s\) listed in .*imagenette_160_train.txt .* are missing: "
                      rf"{IMAGENETTE_WNID}/{IMAGENETTE_WNID}_train1.JPEG"),
    BadInput("archive that is neither tar nor zip", _garbage_archive,
             DatasetError, r"garbage.tar: not a readable tar or zip archive"),
    BadInput("two members for one listed file", _variant(
        IMAGENETTE_TGZ, "imagenette", "twice.tgz",
        lambda m: m.update({IMAGENETTE_JPEG.replace("/train/", "/val/"): b"again"})),
        DatasetError, rf"twice.tgz: two members map to .*{IMAGENETTE_WNID}_train1.JPEG"),
    # new: defects 6, 7 and 10 of the issue
    BadInput("a user's file in a dataset folder an earlier build made", _after_a_good_build(
        _user_file("mini_voc_seg/train/notes.txt", _rebuild)),
        DatasetError, r"data/mini_voc_seg/train/notes.txt: not as `unihead prepare` wrote it into .*data/mini_voc_seg"),
    BadInput("a dataset folder the build did not make", _user_file("imagenette_160/mine.txt", _rebuild),
             DatasetError, r"data/imagenette_160: not made by `unihead prepare` \(no record of it in "),
    BadInput("a dataset folder the synthetic generator did not make", _user_file("mini_coco_det/mine.json",
                                                                                 _synthetic),
             DatasetError, r"data/mini_coco_det: not made by `unihead prepare`"),
    BadInput("data that fails the final validation", _after_a_good_build(_variant(
        VOC_TAR, "voc", "unreadable-mask.tar", lambda m: m.update({VOC_MASK: b"not a png"}))),
        DatasetError, r"fails validation, so .*data was left as it was: .*2009_000200.png: unreadable image"),
    BadInput("image member inflating past its cap", _variant(
        IMAGENETTE_TGZ, "imagenette", "inflating.tgz", _inflating_image),
        DatasetError, re.escape(f"inflating.tgz: member '{IMAGENETTE_JPEG}' holds more than 52,428,800 bytes, "
                                "the cap for a listed image or mask; stopped reading it")),
    BadInput("zip member past its cap", _capped_zip_member, DatasetError,
             r"big.zip: member 'annotations/instances_val2017.json' holds more than 4,096 bytes, the cap for a "
             r"test file", _no_partial_output),
    BadInput("data left behind by an interrupted replace", _replaced_left_behind,
             DatasetError, r"data/.unihead-replaced: left by an interrupted `unihead prepare`"),
    BadInput("umask 022 (results must stay readable)", _write_with_umask(0o022), None, check=_mode_is(0o644)),
    BadInput("umask 002 (a group-writable results folder)", _write_with_umask(0o002), None, check=_mode_is(0o664)),
    BadInput("temporary file of a killed write", _orphans, None, check=_only_the_orphan_is_removed),
    # new: defect 13 of "No silent wrong answers, round two" (a full disk, a read-only folder)
    BadInput("synthetic data on a full disk", _existing_data(_unwritable(FULL, "data", _synthetic)),
             OutputError, r"data: cannot write it: No space left on device; free some space"),
    BadInput("synthetic data into a read-only folder", _existing_data(_unwritable(READ_ONLY, "data", _synthetic)),
             OutputError, r"data/\S+: cannot write it: Read-only file system"),
    BadInput("official data with its downloads on a full disk", _existing_data(_unwritable(FULL, ".", _rebuild)),
             OutputError, rf"cache/{VOC_TAR}\.part: cannot write it: No space left on device"),
    BadInput("official data with a read-only download cache", _existing_data(_unwritable(READ_ONLY, "cache", _rebuild)),
             OutputError, r"cache: cannot write it: Read-only file system"),
]


@pytest.mark.parametrize("row", ROWS, ids=[row.name for row in ROWS])
def test_bad_input(row: BadInput, sources: dict, tmp_path: Path) -> None:
    action = row.arrange(sources, tmp_path)
    before = _tree(tmp_path / "data")
    if row.error is None:
        action()
    else:
        with pytest.raises(row.error, match=row.match):
            action()
        assert _tree(tmp_path / "data") == before
    row.check(tmp_path)
