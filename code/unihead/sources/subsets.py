"""The id lists under ``workflow/config/subsets/`` that define which official images make up each mini dataset."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from unihead.data.errors import DatasetError
from unihead.tasks import CLS, DATASET_DIRS, DET, SEG

SPLITS = ("train", "val")
ID_PATTERNS = {
    SEG: re.compile(r"\d{4}_\d{6}"),
    DET: re.compile(r"[1-9]\d*"),
    CLS: re.compile(r"n\d{8}/[\w.-]+\.JPEG"),
}
"""What one line of each task's list looks like: a VOC id, a COCO image id, ``<wnid>/<file>``."""
COCO_CATEGORIES_FILE = "mini_coco_det_categories.json"


@dataclass(frozen=True)
class Subsets:
    folder: Path
    ids: dict[str, dict[str, list[str]]]
    """Task -> split -> ids, in the files' order."""
    coco_categories: dict[int, str]
    """COCO category id -> name, for the detection subset."""

    def list_file(self, task: str, split: str) -> Path:
        return list_path(self.folder, task, split)


def list_path(folder: Path, task: str, split: str) -> Path:
    return folder / f"{DATASET_DIRS[task]}_{split}.txt"


def read_id_list(path: Path, pattern: re.Pattern[str]) -> list[str]:
    if not path.is_file():
        raise DatasetError(f"{path}: id list not found")
    ids = [line.strip() for line in path.read_text().splitlines() if line.strip()]
    if not ids:
        raise DatasetError(f"{path}: the id list is empty")
    for number, value in enumerate(ids, 1):
        if not pattern.fullmatch(value):
            raise DatasetError(f"{path}: entry {number} {value!r} is not of the form {pattern.pattern}")
    duplicates = sorted({value for value in ids if ids.count(value) > 1})
    if duplicates:
        raise DatasetError(f"{path}: ids listed more than once: {duplicates[:5]}")
    return ids


def read_coco_categories(path: Path) -> dict[int, str]:
    try:
        data = json.loads(path.read_text())
        categories = dict(zip(data["category_ids"], data["category_names"], strict=True))
    except FileNotFoundError as err:
        raise DatasetError(f"{path}: category list not found") from err
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as err:
        raise DatasetError(f"{path}: expected JSON with equally long 'category_ids' and 'category_names' "
                           f"({err})") from err
    if not categories or not all(isinstance(i, int) for i in categories):
        raise DatasetError(f"{path}: expected a non-empty list of integer 'category_ids'")
    return categories


def read_subsets(folder: Path) -> Subsets:
    """Read and check every list: known format, no duplicates, no image in both splits."""
    if not folder.is_dir():
        raise DatasetError(f"{folder}: subsets folder not found (config key data.official.subsets, or "
                           f"--subsets; a relative path is taken from the current folder {Path.cwd()})")
    ids: dict[str, dict[str, list[str]]] = {}
    for task, pattern in ID_PATTERNS.items():
        ids[task] = {split: read_id_list(list_path(folder, task, split), pattern) for split in SPLITS}
        shared = sorted(set(ids[task]["train"]) & set(ids[task]["val"]))
        if shared:
            raise DatasetError(f"{list_path(folder, task, 'val')}: also listed for train: {shared[:5]}")
    return Subsets(folder, ids, read_coco_categories(folder / COCO_CATEGORIES_FILE))
