"""The detection grid: channel layout, target encoding by box centre, and decoding with NMS.

Raw output ``[B, K, G, G]`` (G = input size / stride; 16 at 512 px from stride 32):

- channels 0, 1 (tx, ty): box centre ``cx = (col + sigmoid(tx)) / G``, ``cy = (row + sigmoid(ty)) / G``,
  as fractions of the image width and height;
- channels 2, 3 (tw, th): box size ``w = sigmoid(tw)``, ``h = sigmoid(th)``, fractions of the image;
- channel 4: objectness logit (the paper's "conf");
- ``paper`` head (K = 6): channel 5 regresses the class index as one number (decoded by rounding);
  ``logits`` head (K = 5 + C): channels 5.. are per-class logits.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor
from torchvision.ops import batched_nms, box_convert, clip_boxes_to_image

from unihead.tasks import NUM_DET_CLASSES

HEAD_TYPES = ("paper", "logits")
OBJECTNESS = 4
CLASS_START = 5


def det_channels(head: str, num_classes: int) -> int:
    """Number of raw output channels of a detection head type."""
    if head == "paper":
        return 6
    if head == "logits":
        return CLASS_START + num_classes
    raise ValueError(f"unknown detection head {head!r}; expected one of {list(HEAD_TYPES)}")


def detection_head_type(channels: int, num_classes: int = NUM_DET_CLASSES) -> str:
    """The detection head type (``paper`` or ``logits``) whose raw output has ``channels`` channels."""
    for head in HEAD_TYPES:
        if det_channels(head, num_classes) == channels:
            return head
    raise ValueError(f"a raw detection output has {det_channels('paper', num_classes)} (paper) or "
                     f"{det_channels('logits', num_classes)} (logits) channels, not {channels}")


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


def encode_targets(targets: list[dict], grid_size: int, image_size: int) -> GridTargets:
    """Assign every non-crowd box to the grid cell that contains its centre.

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
        cxcywh = box_convert(xyxy, "xyxy", "cxcywh") / image_size
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


def class_scores(raw: Tensor, head: str, num_classes: int) -> tuple[Tensor, Tensor]:
    """Score and label of every cell, ``[B, G, G]`` each: objectness (times the class probability for ``logits``)."""
    objectness = raw[:, OBJECTNESS].sigmoid()
    if head == "paper":
        labels = raw[:, CLASS_START].round().clamp(0, num_classes - 1).long()
        return objectness, labels
    if head == "logits":
        probabilities, labels = raw[:, CLASS_START:CLASS_START + num_classes].softmax(dim=1).max(dim=1)
        return objectness * probabilities, labels
    raise ValueError(f"unknown detection head {head!r}; expected one of {list(HEAD_TYPES)}")


def decode_detections(raw: Tensor, head: str, image_size: int, num_classes: int, score_threshold: float = 0.05,
                      nms_iou: float = 0.5, max_detections: int = 100) -> list[dict[str, Tensor]]:
    """Scored boxes per image (XYXY in input pixels, clipped) after class-aware NMS."""
    expected = det_channels(head, num_classes)
    if raw.dim() != 4 or raw.shape[1] != expected:
        raise ValueError(f"expected a raw detection output [B, {expected}, G, G] for head {head!r}, "
                         f"got {tuple(raw.shape)}")
    boxes = box_convert(grid_boxes(raw).flatten(2).transpose(1, 2), "cxcywh", "xyxy") * image_size
    scores, labels = class_scores(raw, head, num_classes)
    detections = []
    for b in range(raw.shape[0]):
        keep = scores[b].flatten() >= score_threshold
        image_boxes = clip_boxes_to_image(boxes[b][keep], (image_size, image_size))
        image_scores, image_labels = scores[b].flatten()[keep], labels[b].flatten()[keep]
        kept = batched_nms(image_boxes, image_scores, image_labels, nms_iou)[:max_detections]
        detections.append({"boxes": image_boxes[kept], "scores": image_scores[kept], "labels": image_labels[kept]})
    return detections


def raw_from_targets(grid: GridTargets, head: str, num_classes: int, eps: float = 1e-4) -> Tensor:
    """The raw output that decodes exactly to the targets: logits of the offsets and sizes, objectness
    logits of +/-log((1-eps)/eps), and one-hot class logits or the class index."""
    batch, _, size, _ = grid.boxes.shape
    raw = torch.zeros(batch, det_channels(head, num_classes), size, size)
    steps = torch.arange(size, dtype=raw.dtype)
    offsets = torch.stack([grid.boxes[:, 0] * size - steps.view(1, 1, size),
                           grid.boxes[:, 1] * size - steps.view(1, size, 1)], dim=1)
    raw[:, 0:2] = torch.logit(offsets.clamp(eps, 1 - eps))
    raw[:, 2:4] = torch.logit(grid.boxes[:, 2:4].clamp(eps, 1 - eps))
    confident = torch.logit(torch.tensor(1 - eps))
    raw[:, OBJECTNESS] = torch.where(grid.positive, confident, -confident)
    if head == "paper":
        raw[:, CLASS_START] = grid.labels.float()
    else:
        raw[:, CLASS_START:] = -confident
        raw[:, CLASS_START:].scatter_(1, grid.labels.unsqueeze(1), confident.expand(batch, 1, size, size))
    return raw
