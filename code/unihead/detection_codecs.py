"""Detection head types as codecs: one object per ``model.det_head`` owning what its class channels mean.

Both types share the grid of :mod:`unihead.detection` (box channels 0-3, objectness 4); they differ in
channels 5 onwards, and so in the channel count, in the class a cell decodes to, in the class term of
the training loss, of distillation and of EWC's sampled likelihood, and in the raw output that decodes
to given targets. Callers take ``DET_CODECS[config.model.det_head]``, or :func:`codec_for_output` where
only the raw output is at hand, and never test the head's name.

- ``paper`` (6 channels): channel 5 regresses the class index as one number (decoded by rounding);
- ``logits`` (5 + C channels): channels 5.. are per-class logits.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor
from torchvision.ops import batched_nms, box_convert, clip_boxes_to_image

from unihead.config import DET_HEADS
from unihead.detection import CLASS_START, OBJECTNESS, GridTargets, grid_boxes
from unihead.distributions import sampled_categorical, sampled_gaussian, softmax_kl_per_position
from unihead.tasks import NUM_DET_CLASSES


class DetectionCodec(ABC):
    """One detection head type: the shared grid plus its own class channels."""

    name: ClassVar[str]

    @abstractmethod
    def channels(self, num_classes: int) -> int:
        """Number of raw output channels for ``num_classes`` classes."""

    @abstractmethod
    def scores_and_labels(self, raw: Tensor, num_classes: int) -> tuple[Tensor, Tensor]:
        """Score and label of every cell, ``[B, G, G]`` each."""

    @abstractmethod
    def class_channels(self, labels: Tensor, num_classes: int, confident: Tensor) -> Tensor:
        """Class channels ``[B, K - 5, G, G]`` that decode to ``labels`` [B, G, G]; ``confident`` is the
        logit used for a near-certain probability."""

    @abstractmethod
    def class_loss(self, raw: Tensor, positive: Tensor, labels: Tensor, num_classes: int) -> Tensor:
        """The loss's class term ``det_cls``: a mean over the ``positive`` cells [B, G, G] (at least one)
        of the class channels against the cells' ``labels`` (int64, one per positive cell)."""

    @abstractmethod
    def class_distillation(self, student: Tensor, teacher: Tensor, temperature: float) -> Tensor:
        """Per-cell ``[B, G, G]`` distance of the student's class channels from the teacher's (zero when equal)."""

    @abstractmethod
    def class_log_likelihood(self, raw: Tensor, generator: torch.Generator) -> Tensor:
        """Per-cell ``[B, G, G]`` log-likelihood of a class drawn from the head's own class distribution."""

    def check_output(self, raw: Tensor, num_classes: int) -> None:
        expected = self.channels(num_classes)
        if raw.dim() != 4 or raw.shape[1] != expected:
            raise ValueError(f"expected a raw detection output [B, {expected}, G, G] for head {self.name!r}, "
                             f"got {tuple(raw.shape)}")

    def decode(self, raw: Tensor, image_size: int, num_classes: int, score_threshold: float = 0.05,
               nms_iou: float = 0.5, max_detections: int = 100) -> list[dict[str, Tensor]]:
        """Scored boxes per image (XYXY in pixels of the ``image_size`` input, clipped) after class-aware NMS."""
        self.check_output(raw, num_classes)
        boxes = box_convert(grid_boxes(raw).flatten(2).transpose(1, 2), "cxcywh", "xyxy") * image_size
        scores, labels = self.scores_and_labels(raw, num_classes)
        detections = []
        for b in range(raw.shape[0]):
            keep = scores[b].flatten() >= score_threshold
            image_boxes = clip_boxes_to_image(boxes[b][keep], (image_size, image_size))
            image_scores, image_labels = scores[b].flatten()[keep], labels[b].flatten()[keep]
            kept = batched_nms(image_boxes, image_scores, image_labels, nms_iou)[:max_detections]
            detections.append({"boxes": image_boxes[kept], "scores": image_scores[kept], "labels": image_labels[kept]})
        return detections

    def encode(self, grid: GridTargets, num_classes: int, eps: float = 1e-4) -> Tensor:
        """The raw output that decodes exactly to the targets: logits of the offsets and sizes, objectness
        logits of +/-log((1-eps)/eps), and the codec's class channels."""
        batch, _, size, _ = grid.boxes.shape
        raw = torch.zeros(batch, self.channels(num_classes), size, size)
        steps = torch.arange(size, dtype=raw.dtype)
        offsets = torch.stack([grid.boxes[:, 0] * size - steps.view(1, 1, size),
                               grid.boxes[:, 1] * size - steps.view(1, size, 1)], dim=1)
        raw[:, 0:2] = torch.logit(offsets.clamp(eps, 1 - eps))
        raw[:, 2:4] = torch.logit(grid.boxes[:, 2:4].clamp(eps, 1 - eps))
        confident = torch.logit(torch.tensor(1 - eps))
        raw[:, OBJECTNESS] = torch.where(grid.positive, confident, -confident)
        raw[:, CLASS_START:] = self.class_channels(grid.labels, num_classes, confident)
        return raw


class PaperCodec(DetectionCodec):
    """The paper's head: channel 5 regresses the class index."""

    name = "paper"

    def channels(self, num_classes: int) -> int:
        return CLASS_START + 1

    def scores_and_labels(self, raw: Tensor, num_classes: int) -> tuple[Tensor, Tensor]:
        """Objectness, and the regressed index rounded into the class range."""
        labels = raw[:, CLASS_START].round().clamp(0, num_classes - 1).long()
        return raw[:, OBJECTNESS].sigmoid(), labels

    def class_channels(self, labels: Tensor, num_classes: int, confident: Tensor) -> Tensor:
        return labels.float().unsqueeze(1)

    def class_loss(self, raw: Tensor, positive: Tensor, labels: Tensor, num_classes: int) -> Tensor:
        """Smooth-L1 of the regressed index."""
        return F.smooth_l1_loss(raw[:, CLASS_START][positive], labels.float())

    def class_distillation(self, student: Tensor, teacher: Tensor, temperature: float) -> Tensor:
        """Squared difference of the regressed indices."""
        classes = slice(CLASS_START, None)
        return (student[:, classes] - teacher[:, classes]).pow(2).mean(dim=1)

    def class_log_likelihood(self, raw: Tensor, generator: torch.Generator) -> Tensor:
        """A unit-variance Gaussian on the regressed index."""
        return sampled_gaussian(raw[:, CLASS_START], 1.0, generator)


class LogitsCodec(DetectionCodec):
    """Per-class logits in channels 5.. (softmax over the classes)."""

    name = "logits"

    def channels(self, num_classes: int) -> int:
        return CLASS_START + num_classes

    def scores_and_labels(self, raw: Tensor, num_classes: int) -> tuple[Tensor, Tensor]:
        """Objectness times the most probable class's probability, and that class."""
        probabilities, labels = raw[:, CLASS_START:CLASS_START + num_classes].softmax(dim=1).max(dim=1)
        return raw[:, OBJECTNESS].sigmoid() * probabilities, labels

    def class_channels(self, labels: Tensor, num_classes: int, confident: Tensor) -> Tensor:
        batch, size, _ = labels.shape
        logits = torch.full((batch, num_classes, size, size), -confident.item())
        return logits.scatter_(1, labels.unsqueeze(1), confident.expand(batch, 1, size, size))

    def class_loss(self, raw: Tensor, positive: Tensor, labels: Tensor, num_classes: int) -> Tensor:
        """Cross-entropy of the class logits."""
        return F.cross_entropy(raw[:, CLASS_START:CLASS_START + num_classes].permute(0, 2, 3, 1)[positive], labels)

    def class_distillation(self, student: Tensor, teacher: Tensor, temperature: float) -> Tensor:
        """Hinton's softened KL over the classes."""
        classes = slice(CLASS_START, None)
        return softmax_kl_per_position(student[:, classes], teacher[:, classes], temperature)

    def class_log_likelihood(self, raw: Tensor, generator: torch.Generator) -> Tensor:
        """A categorical over the class logits."""
        return sampled_categorical(raw[:, CLASS_START:], generator)


DET_CODECS: dict[str, DetectionCodec] = {codec.name: codec for codec in (PaperCodec(), LogitsCodec())}
if tuple(DET_CODECS) != DET_HEADS:
    raise ImportError(f"detection codecs {list(DET_CODECS)} differ from unihead.config.DET_HEADS {list(DET_HEADS)}: "
                      "add a new head type's name there (the config schema checks model.det_head against it)")


def detection_codec(name: str) -> DetectionCodec:
    """The codec of the head type ``name`` (``model.det_head``)."""
    if name not in DET_CODECS:
        raise ValueError(f"unknown detection head {name!r}; expected one of {list(DET_CODECS)}")
    return DET_CODECS[name]


def codec_for_output(raw: Tensor, num_classes: int = NUM_DET_CLASSES) -> DetectionCodec:
    """The codec whose head type gives ``raw`` [B, K, G, G] its channel count K."""
    for codec in DET_CODECS.values():
        if codec.channels(num_classes) == raw.shape[1]:
            return codec
    counts = ", ".join(f"{codec.channels(num_classes)} ({name})" for name, codec in DET_CODECS.items())
    raise ValueError(f"a raw detection output has {counts} channels, not {raw.shape[1]}")
