"""FPN neck: torchvision's FeaturePyramidNetwork with an extra max-pooled level, as in the paper's code."""

from __future__ import annotations

from collections.abc import Collection

import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.ops import FeaturePyramidNetwork
from torchvision.ops.feature_pyramid_network import LastLevelMaxPool

BACKBONE_STRIDES = (8, 16, 32)
EXTRA_STRIDE = 64


def level_name(stride: int) -> str:
    """Feature-dict key of an FPN level: ``p3`` for stride 8 ... ``p6`` for stride 64."""
    return f"p{stride.bit_length() - 1}"


BACKBONE_LEVELS = tuple(level_name(s) for s in BACKBONE_STRIDES)
LEVELS = (*BACKBONE_LEVELS, level_name(EXTRA_STRIDE))
"""Every level the neck can return, finest first."""


class Neck(nn.Module):
    """Maps the backbone's stride-8/16/32 maps to ``{"p3", "p4", "p5", "p6"}``, all ``out_channels`` wide.

    ``forward(features, levels)`` computes only what the named levels need: the top-down path from the
    deepest map down to the finest named level, and the 3x3 output conv of a named level only (``p6`` is
    max-pooled from ``p5``'s output). The operations are torchvision's own, in its order, so a level
    comes out bit-identical to the full FPN's; the skipped convolutions keep their parameters.
    """

    def __init__(self, in_channels: list[int], out_channels: int) -> None:
        super().__init__()
        if len(in_channels) != len(BACKBONE_STRIDES):
            raise ValueError(f"expected {len(BACKBONE_STRIDES)} backbone levels, got {len(in_channels)}")
        self.fpn = FeaturePyramidNetwork(in_channels, out_channels, extra_blocks=LastLevelMaxPool())
        self.out_channels = out_channels

    def forward(self, features: list[Tensor], levels: Collection[str] | None = None) -> dict[str, Tensor]:
        """The FPN levels named in ``levels`` (every level when None), finest first."""
        if len(features) != len(BACKBONE_STRIDES):
            raise ValueError(f"expected {len(BACKBONE_STRIDES)} backbone maps, got {len(features)}")
        wanted = set(LEVELS if levels is None else levels)
        unknown = sorted(wanted - set(LEVELS))
        if unknown:
            raise ValueError(f"unknown FPN level(s) {unknown}; the neck has {list(LEVELS)}")
        extra = level_name(EXTRA_STRIDE)
        outputs_needed = (wanted - {extra}) | ({BACKBONE_LEVELS[-1]} if extra in wanted else set())
        if not outputs_needed:
            return {}
        finest = min(BACKBONE_LEVELS.index(name) for name in outputs_needed)
        fpn = self.fpn
        out: dict[str, Tensor] = {}
        last_inner = fpn.get_result_from_inner_blocks(features[-1], -1)
        if BACKBONE_LEVELS[-1] in outputs_needed:
            out[BACKBONE_LEVELS[-1]] = fpn.get_result_from_layer_blocks(last_inner, -1)
        for idx in range(len(features) - 2, finest - 1, -1):
            inner_lateral = fpn.get_result_from_inner_blocks(features[idx], idx)
            inner_top_down = F.interpolate(last_inner, size=inner_lateral.shape[-2:], mode="nearest")
            last_inner = inner_lateral + inner_top_down
            if BACKBONE_LEVELS[idx] in outputs_needed:
                out[BACKBONE_LEVELS[idx]] = fpn.get_result_from_layer_blocks(last_inner, idx)
        if extra in wanted:
            pooled, _ = fpn.extra_blocks([out[BACKBONE_LEVELS[-1]]], [], [BACKBONE_LEVELS[-1]])
            out[extra] = pooled[-1]
        return {name: out[name] for name in LEVELS if name in wanted}
