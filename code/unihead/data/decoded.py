"""A task's split decoded and resized once per run, held as uint8 tensors on the training device.

Reading a JPEG and resizing it to 512 px costs far more than a training step's share of the model
on a GPU, and the readers did it for every image in every epoch. A :class:`DecodedDataset` asks the
reader once per image for its deterministic part (:func:`unihead.data.transforms.decode_transforms`:
decode, resize, mask or boxes resized alike), keeps the results, and applies the rest of the reader's
pipeline (:func:`unihead.data.transforms.augment_transforms`: the random flip, scaling to [0, 1])
to the held tensors each time a sample is drawn. So a sample is exactly the reader's:
the same values, the same ``torch.rand(1)`` per sample for the flip, drawn in the same order.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, Subset
from torchvision import tv_tensors

from unihead.data.factory import build_dataset
from unihead.data.transforms import augment_transforms, decode_transforms
from unihead.schema import ConfigError
from unihead.tasks import CLS, DET, SEG


def _as_read(sample: Any) -> Any:
    """The reader's sample as it is (the DataLoader's default would turn tuples into lists)."""
    return sample


HOLDOUT_SEED = 0
"""Seeds the draw of the held-out images: one draw for every run and seed, so that every value of a sweep is
scored on the same images."""


@dataclass(frozen=True)
class Holdout:
    """A part of a split: ``fraction`` of its samples drawn at random once (:data:`HOLDOUT_SEED`), spread over
    the split whatever its order (a split sorted by class keeps every class in both parts), or the others."""

    fraction: float
    held_out: bool
    """True: the drawn samples; False: the others."""

    def indices(self, count: int) -> list[int]:
        """The part's indices among ``count`` samples, in the split's order; a part with no sample is an error."""
        drawn = round(self.fraction * count)
        order = torch.randperm(count, generator=torch.Generator().manual_seed(HOLDOUT_SEED))
        chosen = set(order[:drawn].tolist())
        indices = [i for i in range(count) if (i in chosen) == self.held_out]
        if not indices:
            raise ConfigError(f"holding out {self.fraction:g} of {count} training images leaves "
                             f"{'none held out' if self.held_out else 'none to train on'}; change 'train.holdout' "
                             "(or 'ewc_sweep.holdout') or use more images")
        return indices


class DecodedDataset(Dataset):
    """The first ``limit`` samples (all without a limit) of ``task``'s ``split``, or the part ``holdout`` of them,
    as the reader gives them with ``build_dataset(task, data_root, split, size, train)``, on ``device``.

    Held: images as uint8 ``[N, 3, size, size]``, segmentation masks as uint8 ``[N, size, size]`` (class
    indices and 255 fit), class labels as int64 ``[N]``, all on ``device``; detection targets stay on
    the CPU, where the detection loss assigns them to grid cells. ``reader`` is the reader (class lists,
    COCO ground truth, image ids) and ``indices`` the reader's indices of the samples held, in order;
    ``num_workers`` processes decode the images.
    """

    def __init__(self, task: str, data_root: Path, split: str, size: int, train: bool, device: torch.device,
                 limit: int | None = None, num_workers: int = 0, holdout: Holdout | None = None) -> None:
        if task not in (SEG, DET, CLS):
            raise ValueError(f"unknown task {task!r}; expected one of {[SEG, DET, CLS]}")
        self.task, self.size = task, size
        self.reader = build_dataset(task, data_root, split, size, train=False, transforms=decode_transforms(size))
        available = len(self.reader) if limit is None else min(limit, len(self.reader))
        self.indices = list(range(available)) if holdout is None else holdout.indices(available)
        count = len(self.indices)
        self.augment = augment_transforms(train)
        images = torch.empty((count, 3, size, size), dtype=torch.uint8)
        masks = torch.empty((count, size, size), dtype=torch.uint8) if task == SEG else None
        targets: list[Any] = []
        # the loader's own generator seeds its workers, leaving the global one (which the run seeds) alone
        samples = DataLoader(Subset(self.reader, self.indices), batch_size=None, num_workers=num_workers,
                             collate_fn=_as_read, generator=torch.Generator())
        for index, (image, target) in enumerate(samples):
            images[index] = image
            if masks is None:
                targets.append(target)
            else:
                masks[index] = target
        self.images = images.to(device)
        self.masks = None if masks is None else masks.to(device)
        self.labels = torch.tensor(targets, dtype=torch.int64, device=device) if task == CLS else None
        self.targets = targets if task == DET else None

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> tuple[Tensor, Any]:
        image = tv_tensors.Image(self.images[index])
        if self.task == SEG:
            image, mask = self.augment(image, tv_tensors.Mask(self.masks[index].long()))
            return image, mask.as_subclass(Tensor)
        if self.task == DET:
            target = self.targets[index]
            boxes = tv_tensors.BoundingBoxes(target["boxes"], format=tv_tensors.BoundingBoxFormat.XYXY,
                                             canvas_size=(self.size, self.size))
            image, boxes = self.augment(image, boxes)
            return image, {**target, "boxes": boxes.as_subclass(Tensor)}
        return self.augment(image), self.labels[index]
