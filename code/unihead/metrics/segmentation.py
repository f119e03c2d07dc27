"""Mean intersection-over-union from an accumulated confusion matrix."""

from __future__ import annotations

import torch
from torch import Tensor

from unihead.tasks import NUM_SEG_CLASSES, SEG_IGNORE_INDEX


class ConfusionMatrix:
    """``num_classes x num_classes`` pixel counts (rows: ground truth, columns: prediction);
    pixels whose ground truth is ``ignore_index`` are left out."""

    def __init__(self, num_classes: int = NUM_SEG_CLASSES, ignore_index: int = SEG_IGNORE_INDEX) -> None:
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.matrix = torch.zeros(num_classes, num_classes, dtype=torch.int64)

    def update(self, pred: Tensor, target: Tensor) -> None:
        if pred.shape != target.shape:
            raise ValueError(f"prediction {tuple(pred.shape)} and target {tuple(target.shape)} differ in shape")
        keep = target != self.ignore_index
        pred, target = pred[keep].long(), target[keep].long()
        for name, values in (("target", target), ("prediction", pred)):
            bad = values[(values < 0) | (values >= self.num_classes)]
            if bad.numel():
                raise ValueError(f"{name} has values {sorted(set(bad.tolist()))[:10]} outside 0..{self.num_classes - 1}"
                                 f" (and not the ignore value {self.ignore_index})")
        counts = torch.bincount(target * self.num_classes + pred, minlength=self.num_classes**2)
        self.matrix += counts.reshape(self.num_classes, self.num_classes).cpu()


    def iou(self) -> Tensor:
        """Per-class IoU; NaN for a class absent from both prediction and ground truth."""
        matrix = self.matrix.double()
        intersection = matrix.diag()
        union = matrix.sum(0) + matrix.sum(1) - intersection
        return torch.where(union > 0, intersection / union.clamp(min=1), torch.full_like(union, float("nan")))

    def miou(self) -> float:
        """Mean IoU over the classes present in the prediction or the ground truth."""
        return float(self.iou().nanmean())

    def pixel_accuracy(self) -> float:
        total = self.matrix.sum()
        return float(self.matrix.diag().sum() / total) if total else float("nan")


def per_image_counts(pred: Tensor, target: Tensor, num_classes: int = NUM_SEG_CLASSES,
                     ignore_index: int = SEG_IGNORE_INDEX) -> dict[str, list[list[int]]]:
    """Each image's pixel counts per class of a batch ``[B, H, W]``: true positives, ground truth and prediction
    (the diagonal, row sums and column sums of its own :class:`ConfusionMatrix`), as
    :mod:`unihead.metrics.per_image` records them; ignored pixels are left out."""
    keep = target != ignore_index
    counted = {"tp": torch.where(keep & (pred == target), target, num_classes),
               "gt": torch.where(keep, target, num_classes), "pred": torch.where(keep, pred, num_classes)}
    return {name: [torch.bincount(image.flatten().long(), minlength=num_classes + 1)[:num_classes].tolist()
                   for image in labels] for name, labels in counted.items()}
