"""The detection grid shared by every head type: channel layout, target assignment by box centre and
decoded boxes. What the class channels hold, and everything that depends on it, is a head type's codec
(:mod:`unihead.detection_codecs`).

Raw output ``[B, K, G, G]`` (G = input size / stride; 16 at 512 px from stride 32):

- channels 0, 1 (tx, ty): box centre ``cx = (col + sigmoid(tx)) / G``, ``cy = (row + sigmoid(ty)) / G``,
  as fractions of the image width and height;
- channels 2, 3 (tw, th): box size ``w = sigmoid(tw)``, ``h = sigmoid(th)``, fractions of the image;
- channel 4: objectness logit (the paper's "conf");
- channels 5..K-1: the class, as the head type's codec lays it out.

Target boxes are XYXY fractions of the image (the dataset divides by the resized image's size), so
nothing here needs to know the image size.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor
from torchvision.ops import box_convert

OBJECTNESS = 4
CLASS_START = 5
BOX_FRACTION_TOLERANCE = 0.01
"""How far a target box may reach past [0, 1]: the readers clip boxes to the image, so only the float
rounding of the resize; boxes still in pixels lie far outside and are refused."""


@dataclass
class GridTargets:
    """Per-cell training targets of a batch."""

    positive: Tensor
    """bool [B, G, G]: the cell is responsible for a box."""
    ignore: Tensor
    """bool [B, G, G]: the cell holds only crowd boxes' centres and gets no objectness loss."""
    boxes: Tensor
    """float [B, 4, G, G]: (cx, cy, w, h) as fractions of the image, valid where positive."""
    labels: Tensor
    """int64 [B, G, G]: contiguous class label, valid where positive."""


def encode_targets(targets: list[dict], grid_size: int) -> GridTargets:
    """Assign every non-crowd box (XYXY, fractions of the image) to the grid cell that contains its centre.

    When two boxes fall in one cell the larger one keeps it (the smaller would be an occluded or
    duplicate object a single-box cell cannot represent anyway); crowd boxes are never positives and
    their centre cells are ignored for objectness unless a real box holds them.
    """
    batch = len(targets)
    positive = torch.zeros(batch, grid_size, grid_size, dtype=torch.bool)
    ignore = torch.zeros_like(positive)
    boxes = torch.zeros(batch, 4, grid_size, grid_size)
    labels = torch.zeros(batch, grid_size, grid_size, dtype=torch.long)
    area = torch.zeros(batch, grid_size, grid_size)
    for b, target in enumerate(targets):
        xyxy = target["boxes"].as_subclass(Tensor).detach().float().cpu().reshape(-1, 4)
        _check_fractions(xyxy)
        cxcywh = box_convert(xyxy, "xyxy", "cxcywh")
        crowd = target["iscrowd"].detach().cpu().bool().reshape(-1)
        box_labels = target["labels"].detach().cpu().long().reshape(-1)
        cells = (cxcywh[:, :2] * grid_size).floor().long().clamp(0, grid_size - 1)
        for (cx, cy, w, h), (col, row), is_crowd, label in zip(cxcywh.tolist(), cells.tolist(), crowd.tolist(),
                                                               box_labels.tolist(), strict=True):
            if w <= 0 or h <= 0:
                continue
            if is_crowd:
                ignore[b, row, col] = True
                continue
            if positive[b, row, col] and area[b, row, col] >= w * h:
                continue
            positive[b, row, col] = True
            area[b, row, col] = w * h
            boxes[b, :, row, col] = torch.tensor([cx, cy, w, h])
            labels[b, row, col] = label
    return GridTargets(positive, ignore & ~positive, boxes, labels)


def grid_boxes(raw: Tensor) -> Tensor:
    """Decoded (cx, cy, w, h) of every cell as fractions of the image, ``[B, 4, G, G]``."""
    grid = raw.shape[-1]
    steps = torch.arange(grid, device=raw.device, dtype=raw.dtype)
    offsets = raw[:, 0:2].sigmoid()
    cx = (steps.view(1, 1, grid) + offsets[:, 0]) / grid
    cy = (steps.view(1, grid, 1) + offsets[:, 1]) / grid
    return torch.stack([cx, cy, raw[:, 2].sigmoid(), raw[:, 3].sigmoid()], dim=1)


def _check_fractions(xyxy: Tensor) -> None:
    if xyxy.numel() and not (-BOX_FRACTION_TOLERANCE <= xyxy.min() and xyxy.max() <= 1 + BOX_FRACTION_TOLERANCE):
        raise ValueError(f"detection target boxes must be XYXY fractions of the image in [0, 1], got values in "
                         f"[{xyxy.min().item():g}, {xyxy.max().item():g}] (boxes in pixels?)")
