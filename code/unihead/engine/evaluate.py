"""Evaluation of one task on its validation set: mIoU, COCO mAP or top-k accuracy, and the per-image record
(:mod:`unihead.metrics.per_image`) from which the primary metric is recomputed on resamples of the images."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.utils.data import DataLoader

from unihead.config import EvalConfig
from unihead.data.collate import to_device
from unihead.data.decoded import DecodedDataset
from unihead.detection_codecs import detection_codec
from unihead.metrics.classification import TopKAccuracy
from unihead.metrics.detection import coco_evaluation, detections_to_coco
from unihead.metrics.per_image import PerImage
from unihead.metrics.segmentation import ConfusionMatrix, per_image_counts
from unihead.tasks import CLS, DET, SEG


@dataclass(frozen=True)
class Evaluation:
    """One task's evaluation: every metric, and the per-image record of its primary metric."""

    metrics: dict[str, float]
    per_image: PerImage


@torch.inference_mode()
def evaluate_task(model: nn.Module, task: str, loader: DataLoader, device: torch.device,
                  det_head: str, eval_config: EvalConfig) -> Evaluation:
    """All metrics of ``task`` on the images of ``loader`` (over a :class:`DecodedDataset`), with their per-image
    record in the loader's image order; the model is left in eval mode.

    Segmentation is scored at the model's input size (masks resized with nearest neighbour);
    detection boxes are mapped back to each image's original size and scored with COCOeval against
    the dataset's own annotations (original image and category ids).
    """
    model.eval()
    if task == SEG:
        confusion, per_image = ConfusionMatrix(), {"tp": [], "gt": [], "pred": []}
        for images, masks in loader:
            predicted, masks = model(images.to(device), tasks=[SEG])[SEG].argmax(1), masks.to(device)
            confusion.update(predicted, masks)
            for name, counts in per_image_counts(predicted, masks).items():
                per_image[name] += counts
        return Evaluation({"miou": confusion.miou(), "pixel_acc": confusion.pixel_accuracy()}, per_image)
    if task == CLS:
        accuracy = TopKAccuracy()
        for images, labels in loader:
            accuracy.update(model(images.to(device), tasks=[CLS])[CLS].cpu(), labels.cpu())
        return Evaluation(accuracy.compute(), {"correct": accuracy.top1_hits})
    if task == DET:
        data: DecodedDataset = loader.dataset
        reader, codec = data.reader, detection_codec(det_head)
        results: list[dict] = []
        for images, targets in loader:
            raw = model(images.to(device), tasks=[DET])[DET]
            size = images.shape[-1]
            decoded = codec.decode(raw.cpu(), size, reader.num_classes, score_threshold=eval_config.score_threshold,
                                   nms_iou=eval_config.nms_iou, max_detections=eval_config.max_detections)
            for found, target in zip(decoded, to_device(targets, torch.device("cpu")), strict=True):
                height, width = target["orig_size"]
                results += detections_to_coco(target["image_id"], found["boxes"], found["scores"], found["labels"],
                                              reader.label_to_category_id, scale_xy=(width / size, height / size))
        return Evaluation(*coco_evaluation(reader.coco, results, [reader.image_ids[i] for i in data.indices]))
    raise ValueError(f"unknown task {task!r}")


def chance_score(task: str, loader: DataLoader, num_classes: int) -> float:
    """The primary metric of a model that learned nothing about ``task``, measured on ``loader``'s images.

    Classification: top-1 of a constant guess, 1 / ``num_classes``. Detection: mAP 0 (no box matches).
    Segmentation: the mIoU of predicting background (class 0) at every pixel, which depends on how much
    of the val set is background: IoU_bg = background pixels / scored pixels, averaged with a zero IoU
    for every other class present in the ground truth.
    """
    if task == CLS:
        return 1.0 / num_classes
    if task == DET:
        return 0.0
    if task == SEG:
        confusion = ConfusionMatrix(num_classes)
        for _, masks in loader:
            confusion.update(torch.zeros_like(masks), masks)
        return confusion.miou()
    raise ValueError(f"unknown task {task!r}")
