"""Training losses of the three tasks, each returning named terms (logged separately) and ``total``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch.nn.functional as F
from torch import Tensor
from torchvision.ops import box_convert, generalized_box_iou_loss, sigmoid_focal_loss

from unihead.detection import OBJECTNESS, encode_targets, grid_boxes
from unihead.detection_codecs import DetectionCodec, detection_codec
from unihead.tasks import CLS, DET, SEG, SEG_IGNORE_INDEX

DET_WEIGHTS = {"det_obj": 1.0, "det_box": 5.0, "det_giou": 2.0, "det_cls": 1.0}
"""Weights of the detection terms in ``total`` (box terms are small numbers: fractions of the image)."""
FOCAL_ALPHA = 0.25
FOCAL_GAMMA = 2.0
"""Focal loss parameters of the objectness, RetinaNet's and FCOS's."""


def segmentation_loss(logits: Tensor, target: Tensor) -> dict[str, Tensor]:
    """Per-pixel cross-entropy, VOC's void label 255 left out."""
    return {"seg_ce": F.cross_entropy(logits, target, ignore_index=SEG_IGNORE_INDEX)}


def classification_loss(logits: Tensor, target: Tensor) -> dict[str, Tensor]:
    return {"cls_ce": F.cross_entropy(logits, target)}


def detection_loss(raw: Tensor, targets: list[dict], codec: DetectionCodec, num_classes: int) -> dict[str, Tensor]:
    """Grid detection loss with assignment by box centre (see :func:`unihead.detection.encode_targets`).

    ``det_obj``: sigmoid focal loss of the objectness (alpha 0.25, gamma 2) summed over every cell not
    ignored and divided by the number of positive cells in the batch (at least 1), as in RetinaNet and
    FCOS. A mean over cells gives one object 1/256 of the weight of a 16x16 grid's background; here
    each positive cell's term counts in full (per object, whatever the grid size) and the focal factor
    keeps the many easy negatives from swamping it.
    On the cells responsible for a box (means over those cells; exactly 0 when there are none):
    ``det_box``: L1 of the decoded (cx, cy, w, h) against the box, as fractions of the image;
    ``det_giou``: generalised-IoU loss of the decoded box; ``det_cls``: the head type's class term
    (:meth:`unihead.detection_codecs.DetectionCodec.class_loss`).
    """
    grid = encode_targets(targets, raw.shape[-1])
    positive = grid.positive.to(raw.device)
    keep = ~grid.ignore.to(raw.device)
    count = int(positive.sum())
    # float32: under bf16 autocast the focal factor (1 - p_t)^2 of confident cells would round away
    focal = sigmoid_focal_loss(raw[:, OBJECTNESS][keep].float(), positive[keep].float(), alpha=FOCAL_ALPHA,
                               gamma=FOCAL_GAMMA, reduction="sum")
    objectness = focal / max(1, count)
    if count == 0:
        zero = raw.sum() * 0.0
        return {"det_obj": objectness, "det_box": zero, "det_giou": zero, "det_cls": zero}
    predicted = grid_boxes(raw).permute(0, 2, 3, 1)[positive]
    wanted = grid.boxes.to(raw.device).permute(0, 2, 3, 1)[positive]
    box = F.l1_loss(predicted, wanted)
    giou = generalized_box_iou_loss(box_convert(predicted, "cxcywh", "xyxy"), box_convert(wanted, "cxcywh", "xyxy"),
                                    reduction="mean")
    cls = codec.class_loss(raw, positive, grid.labels.to(raw.device)[positive], num_classes)
    return {"det_obj": objectness, "det_box": box, "det_giou": giou, "det_cls": cls}


def _with_total(terms: dict[str, Tensor], weights: Mapping[str, float]) -> dict[str, Tensor]:
    terms["total"] = sum(weights.get(name, 1.0) * value for name, value in terms.items())
    return terms


def task_loss(task: str, output: Tensor, target: Any, *, det_head: str | None = None,
              num_classes: int | None = None) -> dict[str, Tensor]:
    """The loss terms of ``task`` plus their weighted sum ``total``; detection needs the head type
    ``det_head`` (``model.det_head``) and the class count."""
    if task == SEG:
        return _with_total(segmentation_loss(output, target), {})
    if task == CLS:
        return _with_total(classification_loss(output, target), {})
    if task == DET:
        if det_head is None or num_classes is None:
            raise ValueError("the detection loss needs det_head and num_classes")
        return _with_total(detection_loss(output, target, detection_codec(det_head), num_classes), DET_WEIGHTS)
    raise ValueError(f"unknown task {task!r}; expected one of {[SEG, DET, CLS]}")
