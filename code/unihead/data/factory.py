"""The reader of each task."""

from __future__ import annotations

from pathlib import Path

from torch.utils.data import Dataset
from torchvision.transforms import v2

from unihead.data.coco import CocoDetection
from unihead.data.imagenette import ImagenetteClassification
from unihead.data.voc import VocSegmentation
from unihead.tasks import CLS, DATASET_DIRS, DET, SEG

READERS = {SEG: VocSegmentation, DET: CocoDetection, CLS: ImagenetteClassification}


def build_dataset(task: str, data_root: Path, split: str, size: int, train: bool,
                  transforms: v2.Transform | None = None) -> Dataset:
    """The dataset of ``task`` under ``data_root`` (the challenge layout), resized to ``size`` x ``size``.

    ``transforms`` replaces the reader's pipeline (:func:`unihead.data.transforms.build_transforms`),
    which gets the decoded image with its mask or boxes: :class:`unihead.data.decoded.DecodedDataset`
    passes :func:`unihead.data.transforms.decode_transforms` to hold the resized tensors.
    """
    if task not in READERS:
        raise ValueError(f"unknown task {task!r}; expected one of {list(READERS)}")
    return READERS[task](Path(data_root) / DATASET_DIRS[task], split, size, train, transforms)
