"""Class lists and the mask palette of the paper's datasets (shared by the synthetic generator, the
dataset builders and the figures)."""

from typing import Final

COCO_CATEGORIES: Final = (
    (1, "person"), (14, "parking meter"), (39, "baseball bat"), (42, "surfboard"), (52, "banana"),
    (65, "bed"), (67, "dining table"), (73, "laptop"), (74, "mouse"), (88, "teddy bear"),
)
"""Mini-COCO-Det's 10 categories: original COCO 2017 id and name."""

IMAGENETTE_WNIDS: Final = (
    "n01440764", "n02102040", "n02979186", "n03000684", "n03028079",
    "n03394916", "n03417042", "n03425413", "n03445777", "n03888257",
)
"""Imagenette's 10 WordNet ids; a class's label is its index in this (sorted) order."""


def voc_palette() -> list[int]:
    """PASCAL VOC's colour map (the palette of its SegmentationClass PNGs), 256 RGB triples flattened."""
    palette = []
    for index in range(256):
        r = g = b = 0
        c = index
        for bit in range(8):
            r |= ((c >> 0) & 1) << (7 - bit)
            g |= ((c >> 1) & 1) << (7 - bit)
            b |= ((c >> 2) & 1) << (7 - bit)
            c >>= 3
        palette += [r, g, b]
    return palette
