"""Per-image evaluation records, from which a task's primary metric can be recomputed on any resample of its
validation images (each image counted with a multiplicity, as a bootstrap draws them).

One record per evaluation of one task, a JSON-able dict:

- classification: ``{"correct": [0 or 1 per image]}`` (top-1 hits); top-1 = mean.
- segmentation: ``{"tp": [[per class] per image], "gt": [...], "pred": [...]}``: each image's pixel counts of
  true positives, ground truth and prediction per class, the rows and columns of its confusion matrix that IoU
  reads; mIoU = mean over classes with a non-empty union of sum(tp) / (sum(gt) + sum(pred) - sum(tp)).
- detection: ``{"gt": [[non-crowd boxes per category] per image], "detections": [[image, category, score,
  matched, ignored], ...]}``: each detection COCOeval kept (at most its maxDets per image and category), its
  match at IoU 0.5 and whether COCOeval ignored it; mAP@0.5 is COCOeval's 101-point interpolated precision,
  accumulated as ``COCOeval.accumulate`` does with every detection weighted by its image's multiplicity.

With every image counted once, each score equals the metric the evaluation reported (tests check this against
:class:`ConfusionMatrix`, :class:`TopKAccuracy` and COCOeval). Imports no torch or pycocotools, so the
workflow's host side can use it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from unihead.tasks import CLS, DET, SEG

PerImage = dict[str, Any]
"""One evaluation's per-image record (see the module docstring)."""

RECALL_THRESHOLDS = np.linspace(0.0, 1.0, 101)
"""COCOeval's recall thresholds (``params.recThrs``)."""


def images_of(record: PerImage, task: str) -> int:
    """How many validation images ``record`` holds."""
    return len(record["correct" if task == CLS else "tp" if task == SEG else "gt"])


def cls_score(record: PerImage, weights: np.ndarray) -> float:
    correct = np.asarray(record["correct"], dtype=np.float64)
    return float(weights @ correct / weights.sum())


def seg_score(record: PerImage, weights: np.ndarray) -> float:
    tp, gt, pred = (weights @ np.asarray(record[key], dtype=np.float64) for key in ("tp", "gt", "pred"))
    union = gt + pred - tp
    present = union > 0
    return float(np.mean(tp[present] / union[present])) if present.any() else math.nan


def _average_precision(scores: np.ndarray, matched: np.ndarray, weights: np.ndarray, positives: float) -> float:
    """COCOeval's interpolated AP of one category: detections sorted by score (stably, as concatenated image
    after image), true and false positives summed with their weights, precision made monotone, read at the
    101 recall thresholds (0 past the largest recall)."""
    order = np.argsort(-scores, kind="mergesort")
    tp = np.cumsum(weights[order] * matched[order])
    fp = np.cumsum(weights[order] * (1 - matched[order]))
    recall = tp / positives
    precision = tp / (tp + fp + np.spacing(1))
    precision = np.maximum.accumulate(precision[::-1])[::-1]
    at = np.searchsorted(recall, RECALL_THRESHOLDS, side="left")
    return float(np.where(at < len(precision), precision[np.minimum(at, len(precision) - 1)], 0.0).mean())


def det_score(record: PerImage, weights: np.ndarray) -> float:
    """mAP@0.5 over the categories with at least one (weighted) ground-truth box; NaN without any."""
    positives = weights @ np.asarray(record["gt"], dtype=np.float64).reshape(len(weights), -1)
    found = np.asarray(record["detections"], dtype=np.float64).reshape(-1, 5)
    kept = found[found[:, 4] == 0]
    aps = []
    for category in np.flatnonzero(positives > 0):
        mine = kept[kept[:, 1] == category]
        if not len(mine):
            aps.append(0.0)
            continue
        aps.append(_average_precision(mine[:, 2], mine[:, 3], weights[mine[:, 0].astype(int)], positives[category]))
    return float(np.mean(aps)) if aps else math.nan


SCORERS: dict[str, Callable[[PerImage, np.ndarray], float]] = {CLS: cls_score, SEG: seg_score, DET: det_score}
"""The primary metric of each task (top-1, mIoU, mAP@0.5) from a record and per-image weights."""


def score(record: PerImage, task: str, weights: np.ndarray | None = None) -> float:
    """``task``'s primary metric on the record's images, each counted ``weights[i]`` times (once by default)."""
    if weights is None:
        weights = np.ones(images_of(record, task))
    return SCORERS[task](record, np.asarray(weights, dtype=np.float64))
