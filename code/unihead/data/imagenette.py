"""Imagenette folders: ``{split}/<wnid>/*.JPEG``; a class's label is its index in ``IMAGENETTE_WNIDS``."""

from __future__ import annotations

from pathlib import Path

from torch import Tensor
from torch.utils.data import Dataset
from torchvision.transforms import v2

from unihead.data.categories import IMAGENETTE_WNIDS
from unihead.data.errors import DatasetError
from unihead.data.images import read_image, refuse_skipped_images, require_dir
from unihead.data.transforms import build_transforms

IMAGE_SUFFIXES = (".jpeg", ".jpg", ".png")


def check_class_folders(base: Path) -> None:
    """The split's class folders must be exactly Imagenette's wnids: with a renamed, missing or extra
    folder, labels would no longer mean the same class in every split."""
    found = {p.name for p in base.iterdir() if p.is_dir()}
    unexpected, missing = sorted(found - set(IMAGENETTE_WNIDS)), sorted(set(IMAGENETTE_WNIDS) - found)
    if unexpected or missing:
        raise DatasetError(f"{base}: class folders must be Imagenette's {len(IMAGENETTE_WNIDS)} wnids; "
                           f"unexpected: {unexpected or 'none'}, missing: {missing or 'none'}")


class ImagenetteClassification(Dataset):
    def __init__(self, root: Path, split: str, size: int, train: bool,
                 transforms: v2.Transform | None = None) -> None:
        base = require_dir(Path(root) / split, f"classification '{split}' split")
        check_class_folders(base)
        self.classes = list(IMAGENETTE_WNIDS)
        self.samples: list[tuple[Path, int]] = []
        for label, wnid in enumerate(self.classes):
            refuse_skipped_images(base / wnid, lambda p: p.suffix.lower() in IMAGE_SUFFIXES,
                                  f"{', '.join(IMAGE_SUFFIXES)} (any case)")
            files = sorted(p for p in (base / wnid).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
            if not files:
                raise DatasetError(f"{base / wnid}: class folder has no images")
            self.samples += [(path, label) for path in files]
        self.num_classes = len(self.classes)
        self.transforms = build_transforms(size, train) if transforms is None else transforms

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[Tensor, int]:
        path, label = self.samples[index]
        return self.transforms(read_image(path)), label
