"""Class lists of the paper's datasets (shared by the synthetic generator and the dataset builders)."""

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
