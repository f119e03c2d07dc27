from unihead.metrics.classification import TopKAccuracy
from unihead.metrics.detection import coco_evaluation, coco_map, detections_to_coco
from unihead.metrics.segmentation import ConfusionMatrix, per_image_counts

__all__ = ["ConfusionMatrix", "TopKAccuracy", "coco_evaluation", "coco_map", "detections_to_coco", "per_image_counts"]
