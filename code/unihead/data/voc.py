"""VOC-style semantic segmentation: ``{split}/JPEGImages/<id>.jpg`` + ``{split}/SegmentationClass/<id>.png``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset
from torchvision import tv_tensors
from torchvision.transforms import v2

from unihead.data.errors import DatasetError
from unihead.data.images import read_image, refuse_skipped_images, require_dir
from unihead.data.transforms import build_transforms
from unihead.tasks import NUM_SEG_CLASSES, SEG_IGNORE_INDEX


class VocSegmentation(Dataset):
    """Image and class mask pairs; mask values are class indices 0..20 and 255 for VOC's void border."""

    num_classes = NUM_SEG_CLASSES

    def __init__(self, root: Path, split: str, size: int, train: bool,
                 transforms: v2.Transform | None = None) -> None:
        base = require_dir(Path(root) / split, f"segmentation '{split}' split")
        self.image_dir = require_dir(base / "JPEGImages", "segmentation images")
        self.mask_dir = require_dir(base / "SegmentationClass", "segmentation masks")
        refuse_skipped_images(self.image_dir, lambda p: p.suffix == ".jpg", "<id>.jpg (lower case)")
        refuse_skipped_images(self.mask_dir, lambda p: p.suffix == ".png", "<id>.png (lower case)")
        image_ids = {p.stem for p in self.image_dir.glob("*.jpg")}
        mask_ids = {p.stem for p in self.mask_dir.glob("*.png")}
        if not image_ids:
            raise DatasetError(f"{self.image_dir}: no .jpg images")
        for missing, have, ext in ((image_ids - mask_ids, self.mask_dir, "png"), (mask_ids - image_ids, self.image_dir,
                                                                                   "jpg")):
            if missing:
                first = sorted(missing)[0]
                raise DatasetError(f"{have / f'{first}.{ext}'}: file not found ({len(missing)} "
                                   f"{'masks' if ext == 'png' else 'images'} missing in {have})")
        self.ids = sorted(image_ids)
        self.transforms = build_transforms(size, train) if transforms is None else transforms

    def __len__(self) -> int:
        return len(self.ids)

    def read_mask(self, image_id: str) -> Tensor:
        path = self.mask_dir / f"{image_id}.png"
        mask = np.asarray(read_image(path, mode=""))
        if mask.ndim != 2:
            raise DatasetError(f"{path}: expected a single-channel (palette) mask, got shape {mask.shape}")
        values = np.unique(mask)
        bad = [int(v) for v in values if v >= NUM_SEG_CLASSES and v != SEG_IGNORE_INDEX]
        if bad:
            raise DatasetError(f"{path}: mask values {bad[:10]} are no class (expected 0..{NUM_SEG_CLASSES - 1} "
                               f"or {SEG_IGNORE_INDEX})")
        return torch.from_numpy(mask.astype(np.int64))

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor]:
        image_id = self.ids[index]
        image = read_image(self.image_dir / f"{image_id}.jpg")
        mask = self.read_mask(image_id)
        if mask.shape != (image.height, image.width):
            raise DatasetError(f"{self.mask_dir / f'{image_id}.png'}: mask is {tuple(mask.shape)}, its image "
                               f"{(image.height, image.width)}")
        image, mask = self.transforms(image, tv_tensors.Mask(mask))
        return image, mask.as_subclass(Tensor)
