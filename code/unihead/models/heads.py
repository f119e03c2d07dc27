"""The shared layer and the three task heads."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn


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
    """1x1 conv to the raw detection grid (layout in :mod:`unihead.detection`)."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, 1)

    def forward(self, x: Tensor, input_size: tuple[int, int]) -> Tensor:
        return self.conv(x)


class ClassificationHead(nn.Module):
    """Global average pooling -> linear."""

    def __init__(self, in_channels: int, num_classes: int) -> None:
        super().__init__()
        self.fc = nn.Linear(in_channels, num_classes)

    def forward(self, x: Tensor, input_size: tuple[int, int]) -> Tensor:
        return self.fc(x.mean(dim=(2, 3)))
