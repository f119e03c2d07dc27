"""Names and sizes of the paper's three tasks: the one place these facts live."""

from typing import Final

SEG: Final = "seg"
DET: Final = "det"
CLS: Final = "cls"
TASKS: Final = (SEG, DET, CLS)

NUM_SEG_CLASSES: Final = 21
"""PASCAL VOC: background + 20 object classes."""
SEG_IGNORE_INDEX: Final = 255
"""VOC's 'void' label (object borders and difficult regions), left out of loss and mIoU."""
NUM_DET_CLASSES: Final = 10
NUM_CLS_CLASSES: Final = 10

DATASET_DIRS: Final = {SEG: "mini_voc_seg", DET: "mini_coco_det", CLS: "imagenette_160"}
"""Folder of each task's dataset inside a data root (the challenge's layout)."""


PRIMARY_METRIC: Final = {SEG: "miou", DET: "map_50", CLS: "top1"}
"""The metric of each task that the accuracy matrix R and the forgetting rule use (higher is better)."""
