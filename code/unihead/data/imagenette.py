"""Imagenette folders: ``{split}/<wnid>/*.JPEG``, labels in sorted wnid order."""

from __future__ import annotations

from pathlib import Path

from torch import Tensor
from torch.utils.data import Dataset

from unihead.data.errors import DatasetError
from unihead.data.images import read_image, require_dir
from unihead.data.transforms import build_transforms
from unihead.tasks import NUM_CLS_CLASSES

IMAGE_SUFFIXES = (".jpeg", ".jpg", ".png")


class ImagenetteClassification(Dataset):
    def __init__(self, root: Path, split: str, size: int, train: bool) -> None:
        base = require_dir(Path(root) / split, f"classification '{split}' split")
        self.classes = sorted(p.name for p in base.iterdir() if p.is_dir())
        if len(self.classes) != NUM_CLS_CLASSES:
            raise DatasetError(f"{base}: expected {NUM_CLS_CLASSES} class folders, found {len(self.classes)}: "
                               f"{self.classes}")
        self.samples: list[tuple[Path, int]] = []
        for label, wnid in enumerate(self.classes):
            files = sorted(p for p in (base / wnid).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
            if not files:
                raise DatasetError(f"{base / wnid}: class folder has no images")
            self.samples += [(path, label) for path in files]
        self.num_classes = len(self.classes)
        self.transforms = build_transforms(size, train)

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[Tensor, int]:
        path, label = self.samples[index]
        return self.transforms(read_image(path)), label
