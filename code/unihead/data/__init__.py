"""Dataset readers for the three on-disk formats, their transforms, batching and synthetic data."""

from unihead.data.coco import CocoDetection
from unihead.data.collate import collate
from unihead.data.errors import DatasetError
from unihead.data.factory import build_dataset
from unihead.data.imagenette import ImagenetteClassification
from unihead.data.synthetic import write_synthetic_dataset
from unihead.data.transforms import build_transforms
from unihead.data.voc import VocSegmentation

__all__ = ["CocoDetection", "DatasetError", "ImagenetteClassification", "VocSegmentation", "build_dataset",
           "build_transforms", "collate", "write_synthetic_dataset"]
