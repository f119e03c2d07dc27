"""Making a data root ready for training: synthesise it, build it from the official sources, or validate a
folder the user already has; each way ends with the manifest of every file."""

from __future__ import annotations

from pathlib import Path

from unihead.config import DataConfig
from unihead.data.errors import DatasetError
from unihead.data.factory import build_dataset
from unihead.data.manifest import build_manifest
from unihead.data.official import build_official
from unihead.data.subsets import SPLITS
from unihead.data.synthetic import write_synthetic_dataset
from unihead.tasks import DATASET_DIRS, TASKS


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


def prepare_synthetic(root: Path, n_train: int, n_val: int, image_size: int, seed: int) -> dict:
    """Write the synthetic datasets into ``root`` (refusing a folder that already has data) and list them."""
    existing = [d for d in DATASET_DIRS.values() if (root / d).exists()]
    if existing:
        raise DatasetError(f"{root}: already holds {existing}; remove it to write synthetic data afresh")
    write_synthetic_dataset(root, n_train=n_train, n_val=n_val, image_size=image_size, seed=seed)
    return build_manifest(root, "synthetic")


def prepare_folder(root: Path, expected_counts: dict[str, int] | None = None) -> dict:
    """Validate an existing folder in the challenge layout and list its files, without copying them."""
    validate_folder(root, expected_counts)
    return build_manifest(root, "folder")


def prepare_official(data: DataConfig) -> dict:
    """Build the datasets from the official archives (downloads cached), check them, and list them."""
    root = Path(data.root)
    build_official(data.official, root)
    validate_folder(root)
    return build_manifest(root, "official")


def prepare_data(data: DataConfig) -> dict:
    """Make ``data.root`` ready as ``data.source`` says, and return its manifest."""
    if data.source == "synthetic":
        s = data.synthetic
        return prepare_synthetic(Path(data.root), s.n_train, s.n_val, s.image_size, s.seed)
    if data.source == "official":
        return prepare_official(data)
    return prepare_folder(Path(data.root))
