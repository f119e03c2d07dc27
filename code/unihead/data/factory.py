"""The reader of each task."""

from __future__ import annotations

from pathlib import Path

from torch.utils.data import Dataset

from unihead.data.coco import CocoDetection
from unihead.data.imagenette import ImagenetteClassification
from unihead.data.voc import VocSegmentation
from unihead.tasks import CLS, DATASET_DIRS, DET, SEG

READERS = {SEG: VocSegmentation, DET: CocoDetection, CLS: ImagenetteClassification}


def build_dataset(task: str, data_root: Path, split: str, size: int, train: bool) -> Dataset:
    """The dataset of ``task`` under ``data_root`` (the challenge layout), resized to ``size`` x ``size``."""
    if task not in READERS:
        raise ValueError(f"unknown task {task!r}; expected one of {list(READERS)}")
    return READERS[task](Path(data_root) / DATASET_DIRS[task], split, size, train)
