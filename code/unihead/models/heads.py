"""The heads: the shared layer and three task heads (``separate``), or one branch for all tasks (``unified``)."""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterable, Mapping

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from unihead.detection import OBJECTNESS
from unihead.tasks import CLS, DET, SEG

OBJECTNESS_PRIOR = 0.01
"""Initial objectness probability of every cell (RetinaNet's prior)."""


def objectness_prior_bias() -> float:
    """The objectness bias ``-log((1 - prior) / prior)`` at which every cell starts at :data:`OBJECTNESS_PRIOR`."""
    return -math.log((1 - OBJECTNESS_PRIOR) / OBJECTNESS_PRIOR)


def upsampled(logits: Tensor, input_size: tuple[int, int]) -> Tensor:
    """Segmentation logits bilinearly upsampled to the input size."""
    return F.interpolate(logits, size=input_size, mode="bilinear", align_corners=False)


class SharedLayer(nn.Sequential):
    """Conv3x3 -> ReLU shared by all heads; no BatchNorm (with it the paper's count is 128 too high)."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__(nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=True), nn.ReLU(inplace=True))


class SegmentationHead(nn.Module):
    """1x1 conv to class logits, bilinearly upsampled to the input size."""

    def __init__(self, in_channels: int, num_classes: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, num_classes, 1)

    def forward(self, x: Tensor, input_size: tuple[int, int]) -> Tensor:
        return upsampled(self.conv(x), input_size)


class DetectionHead(nn.Module):
    """1x1 conv to the raw detection grid (layout in :mod:`unihead.detection`).

    The objectness bias starts at ``-log((1 - prior) / prior)`` (RetinaNet): every cell begins at
    probability 0.01 instead of 0.5, so the focal loss, summed over the cells and divided by the
    number of objects, does not start dominated by hundreds of background cells per object.
    """

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, 1)
        with torch.no_grad():
            self.conv.bias[OBJECTNESS] = objectness_prior_bias()

    def forward(self, x: Tensor, input_size: tuple[int, int]) -> Tensor:
        return self.conv(x)


class ClassificationHead(nn.Module):
    """Global average pooling -> linear."""

    def __init__(self, in_channels: int, num_classes: int) -> None:
        super().__init__()
        self.fc = nn.Linear(in_channels, num_classes)

    def forward(self, x: Tensor, input_size: tuple[int, int]) -> Tensor:
        return self.fc(x.mean(dim=(2, 3)))


READOUTS: dict[str, Callable[[Tensor, tuple[int, int]], Tensor]] = {
    SEG: upsampled,
    DET: lambda grid, input_size: grid,
    CLS: lambda logits, input_size: logits.mean(dim=(2, 3)),
}
"""How each task's channels of the unified output become the task's output: segmentation logits upsampled to
the input, the detection grid as it is (at the branch's stride), classification logits averaged over positions."""


class UnifiedHead(nn.Module):
    """One branch for every task: Conv3x3-ReLU, Conv3x3-ReLU, Conv1x1 to one tensor whose channels are, in
    ``task_channels``' order, each task's raw output (split and read out by :data:`READOUTS`).

    Averaging the classification channels over positions equals a linear layer on the averaged features (both
    are linear), so the classifier is the separate head's; what the tasks share is every weight up to the last
    1x1 convolution, and that convolution itself as one weight tensor. No BatchNorm, as in :class:`SharedLayer`:
    running statistics shared by the tasks would follow whichever task's images the branch saw last. The
    objectness channel's bias starts at the prior of :class:`DetectionHead`.
    """

    def __init__(self, in_channels: int, width: int, task_channels: Mapping[str, int]) -> None:
        super().__init__()
        self.hidden = nn.Sequential(nn.Conv2d(in_channels, width, 3, padding=1), nn.ReLU(inplace=True),
                                    nn.Conv2d(width, width, 3, padding=1), nn.ReLU(inplace=True))
        self.out = nn.Conv2d(width, sum(task_channels.values()), 1)
        stops = list(itertools.accumulate(task_channels.values()))
        self.channels = {task: slice(stop - task_channels[task], stop) for task, stop in zip(task_channels, stops,
                                                                                            strict=True)}
        with torch.no_grad():
            self.out.bias[self.channels[DET].start + OBJECTNESS] = objectness_prior_bias()

    def forward(self, x: Tensor, tasks: Iterable[str], input_size: tuple[int, int]) -> dict[str, Tensor]:
        """Every task's channels are computed (one tensor); only ``tasks`` are read out."""
        out = self.out(self.hidden(x))
        return {task: READOUTS[task](out[:, self.channels[task]], input_size) for task in tasks}
