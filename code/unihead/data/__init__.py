"""Dataset readers for the three on-disk formats (what a sample is), their transforms and batching.

Where the data on disk comes from (official downloads, archives, id lists, the synthetic generator,
preparation and the manifest) is :mod:`unihead.sources`.
"""

from unihead.data.coco import CocoDetection
from unihead.data.collate import collate, to_device
from unihead.data.errors import DatasetError
from unihead.data.factory import build_dataset
from unihead.data.imagenette import ImagenetteClassification
from unihead.data.transforms import build_transforms
from unihead.data.voc import VocSegmentation

__all__ = ["CocoDetection", "DatasetError", "ImagenetteClassification", "VocSegmentation", "build_dataset",
           "build_transforms", "collate", "to_device"]
