"""FPN neck: torchvision's FeaturePyramidNetwork with an extra max-pooled level, as in the paper's code."""

from __future__ import annotations

from collections import OrderedDict

from torch import Tensor, nn
from torchvision.ops import FeaturePyramidNetwork
from torchvision.ops.feature_pyramid_network import LastLevelMaxPool

BACKBONE_STRIDES = (8, 16, 32)
EXTRA_STRIDE = 64


def level_name(stride: int) -> str:
    """Feature-dict key of an FPN level: ``p3`` for stride 8 ... ``p6`` for stride 64."""
    return f"p{stride.bit_length() - 1}"


class Neck(nn.Module):
    """Maps the backbone's stride-8/16/32 maps to ``{"p3", "p4", "p5", "p6"}``, all ``out_channels`` wide."""

    def __init__(self, in_channels: list[int], out_channels: int) -> None:
        super().__init__()
        if len(in_channels) != len(BACKBONE_STRIDES):
            raise ValueError(f"expected {len(BACKBONE_STRIDES)} backbone levels, got {len(in_channels)}")
        self.fpn = FeaturePyramidNetwork(in_channels, out_channels, extra_blocks=LastLevelMaxPool())
        self.out_channels = out_channels

    def forward(self, features: list[Tensor]) -> dict[str, Tensor]:
        named = OrderedDict((level_name(s), f) for s, f in zip(BACKBONE_STRIDES, features, strict=True))
        out = self.fpn(named)
        out[level_name(EXTRA_STRIDE)] = out.pop("pool")
        return dict(out)
