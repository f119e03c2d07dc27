"""Batching of the three tasks' samples, and moving a batch to the training device."""

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


def to_device(targets: Any, device: torch.device) -> Any:
    """Tensors, and the tensors inside a list of detection target dicts, moved to ``device``."""
    if isinstance(targets, Tensor):
        return targets.to(device)
    if isinstance(targets, list):
        return [to_device(t, device) for t in targets]
    if isinstance(targets, dict):
        return {k: to_device(v, device) for k, v in targets.items()}
    return targets
