"""Making a data root ready for training: synthesise it, build it from the official sources, or validate a
folder the user already has; each way ends with the manifest of every file.

Synthetic and official data are written into a hidden staging folder in the data root (the official
data is validated there) and only then moved into place, so a failed run leaves the data root as it
was. Each run records the files it moved into place in ``.unihead-prepare.json``; a later run replaces
a dataset folder only when it still holds nothing but those files: a folder or a file it did not write
is never deleted, the run stops naming it instead.
"""

from __future__ import annotations

import contextlib
import json
import shutil
from collections.abc import Iterator
from pathlib import Path

from unihead.config import DataConfig
from unihead.data.errors import DatasetError
from unihead.data.factory import build_dataset
from unihead.files import atomic_write_text, writing_into
from unihead.sources.manifest import MANIFEST, build_manifest
from unihead.sources.official import build_official
from unihead.sources.subsets import SPLITS
from unihead.sources.synthetic import write_synthetic_dataset
from unihead.tasks import DATASET_DIRS, TASKS

RECORD = ".unihead-prepare.json"
"""In the data root: ``{"source": ..., "folders": {dataset folder: {file path in it: bytes}}}``."""
STAGING = ".unihead-staging"
"""In the data root: where a run writes (and checks) the datasets before they replace the old ones."""
REPLACED = ".unihead-replaced"
"""In the data root: the previous datasets and manifest while the new ones move in; removed right after."""


def validate_folder(root: Path, expected_counts: dict[str, int] | None = None) -> dict[str, dict[str, int]]:
    """Open every split of every task with its reader and load every sample once.

    That checks the layout, that every file is readable, mask values and category ids (the readers'
    own checks). ``expected_counts`` (``{"train": 240, "val": 60}``) also checks the number of images.
    Returns the counts per task and split.
    """
    counts: dict[str, dict[str, int]] = {}
    for task in TASKS:
        if not (root / DATASET_DIRS[task]).is_dir():
            raise DatasetError(f"{root / DATASET_DIRS[task]}: dataset folder not found (expected the challenge "
                               f"layout: {', '.join(DATASET_DIRS.values())})")
        counts[task] = {}
        for split in SPLITS:
            dataset = build_dataset(task, root, split, size=32, train=False)
            for index in range(len(dataset)):
                dataset[index]
            counts[task][split] = len(dataset)
            if expected_counts and expected_counts.get(split) not in (None, len(dataset)):
                raise DatasetError(f"{root / DATASET_DIRS[task] / split}: {len(dataset)} images, expected "
                                   f"{expected_counts[split]}")
    return counts


def _files(folder: Path) -> dict[str, int]:
    """Every file (or link) under ``folder``: its path relative to ``folder`` -> its size in bytes."""
    return {str(path.relative_to(folder)): path.lstat().st_size for path in sorted(folder.rglob("*"))
            if path.is_symlink() or not path.is_dir()}


def _read_record(root: Path) -> dict[str, dict[str, int]]:
    """The dataset folders a previous run moved into ``root`` and their files (empty without a record)."""
    record = root / RECORD
    if not record.is_file():
        return {}
    try:
        folders = json.loads(record.read_text())["folders"]
    except (ValueError, KeyError, TypeError) as err:
        raise DatasetError(f"{record}: unreadable record of the previous `unihead prepare` ({err}); expected "
                           'JSON {"source": ..., "folders": {...}}. Remove it and move the dataset folders away, '
                           "then run again") from err
    if not isinstance(folders, dict) or not all(isinstance(files, dict) for files in folders.values()):
        raise DatasetError(f"{record}: 'folders' is not a mapping of folder -> {{file: bytes}}; remove it and move "
                           "the dataset folders away, then run again")
    return folders


def check_replaceable(root: Path) -> None:
    """Refuse a data root whose dataset folders hold anything a previous run did not put there."""
    if (root / REPLACED).exists():
        raise DatasetError(f"{root / REPLACED}: left by an interrupted `unihead prepare` (it holds the data that "
                           f"run was replacing); move what you need back into {root} or remove it, then run again")
    recorded = _read_record(root)
    for folder in DATASET_DIRS.values():
        path = root / folder
        if not (path.exists() or path.is_symlink()):
            continue
        if folder not in recorded or path.is_symlink() or not path.is_dir():
            raise DatasetError(f"{path}: not made by `unihead prepare` (no record of it in {root / RECORD}); it "
                               "is left untouched and nothing was built: move it away or choose another data root")
        foreign = [name for name, size in _files(path).items() if recorded[folder].get(name) != size]
        if foreign:
            more = f" (and {len(foreign) - 1} more)" if len(foreign) > 1 else ""
            raise DatasetError(f"{path / foreign[0]}{more}: not as `unihead prepare` wrote it into {path} (added or "
                               f"changed since, see {root / RECORD}); nothing was replaced: move it out of {path} "
                               "and run again")


@contextlib.contextmanager
def _staging(root: Path) -> Iterator[Path]:
    """An empty staging folder in ``root`` (after checking ``root`` may be replaced), removed afterwards."""
    check_replaceable(root)
    staging = root / STAGING
    shutil.rmtree(staging, ignore_errors=True)  # an interrupted run's: never moved into place, never checked
    with writing_into(root):
        staging.mkdir(parents=True)
        try:
            yield staging
        finally:
            shutil.rmtree(staging, ignore_errors=True)


def _install(root: Path, staging: Path, source: str) -> None:
    """Move the datasets of ``staging`` into ``root``, replacing the previous ones and their manifest."""
    check_replaceable(root)
    replaced = root / REPLACED
    replaced.mkdir()
    for name in (*DATASET_DIRS.values(), MANIFEST):
        if (root / name).exists():
            (root / name).rename(replaced / name)
    record = {"source": source, "folders": {folder: _files(staging / folder) for folder in DATASET_DIRS.values()}}
    atomic_write_text(root / RECORD, json.dumps(record, indent=1, sort_keys=True) + "\n")
    for folder in DATASET_DIRS.values():
        (staging / folder).rename(root / folder)
    shutil.rmtree(replaced)


def prepare_synthetic(root: Path, n_train: int, n_val: int, image_size: int, seed: int) -> dict:
    """Write the synthetic datasets into ``root`` (replacing those a previous run wrote) and list them."""
    with _staging(root) as staging:
        write_synthetic_dataset(staging, n_train=n_train, n_val=n_val, image_size=image_size, seed=seed)
        _install(root, staging, "synthetic")
    return build_manifest(root, "synthetic")


def prepare_folder(root: Path, expected_counts: dict[str, int] | None = None) -> dict:
    """Validate an existing folder in the challenge layout and list its files, without copying them."""
    validate_folder(root, expected_counts)
    return build_manifest(root, "folder")


def prepare_official(data: DataConfig) -> dict:
    """Build the datasets from the official archives (downloads cached), check them, and list them."""
    root = Path(data.root)
    with _staging(root) as staging:
        build_official(data.official, staging)
        try:
            counts = validate_folder(staging)
        except DatasetError as err:
            raise DatasetError(f"the data built from the official archives fails validation, so {root} was left as "
                               f"it was: {err}") from err
        _install(root, staging, "official")
    for task, splits in counts.items():
        print(f"{root / DATASET_DIRS[task]}: {sum(splits.values())} images")
    return build_manifest(root, "official")


def prepare_data(data: DataConfig) -> dict:
    """Make ``data.root`` ready as ``data.source`` says, and return its manifest."""
    if data.source == "synthetic":
        s = data.synthetic
        return prepare_synthetic(Path(data.root), s.n_train, s.n_val, s.image_size, s.seed)
    if data.source == "official":
        return prepare_official(data)
    return prepare_folder(Path(data.root))
