"""The shared layer and the three task heads."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from unihead.detection import OBJECTNESS

OBJECTNESS_PRIOR = 0.01
"""Initial objectness probability of every cell (RetinaNet's prior)."""


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
        return F.interpolate(self.conv(x), size=input_size, mode="bilinear", align_corners=False)


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
            self.conv.bias[OBJECTNESS] = -math.log((1 - OBJECTNESS_PRIOR) / OBJECTNESS_PRIOR)

    def forward(self, x: Tensor, input_size: tuple[int, int]) -> Tensor:
        return self.conv(x)


class ClassificationHead(nn.Module):
    """Global average pooling -> linear."""

    def __init__(self, in_channels: int, num_classes: int) -> None:
        super().__init__()
        self.fc = nn.Linear(in_channels, num_classes)

    def forward(self, x: Tensor, input_size: tuple[int, int]) -> Tensor:
        return self.fc(x.mean(dim=(2, 3)))
