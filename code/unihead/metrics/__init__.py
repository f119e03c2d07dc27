from unihead.metrics.classification import TopKAccuracy
from unihead.metrics.detection import coco_map, detections_to_coco
from unihead.metrics.segmentation import ConfusionMatrix

__all__ = ["ConfusionMatrix", "TopKAccuracy", "coco_map", "detections_to_coco"]
