"""Batching of the three tasks' samples."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor


def collate(batch: list[tuple[Tensor, Any]]) -> tuple[Tensor, Any]:
    """Images stacked; masks stacked, class labels as a tensor, detection target dicts kept as a list."""
    images = torch.stack([image for image, _ in batch])
    targets = [target for _, target in batch]
    if isinstance(targets[0], Tensor):
        return images, torch.stack(targets)
    if isinstance(targets[0], int):
        return images, torch.tensor(targets, dtype=torch.int64)
    return images, targets
