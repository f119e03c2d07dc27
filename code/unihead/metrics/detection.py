"""COCO mAP with pycocotools' COCOeval, on the dataset's own image and category ids."""

from __future__ import annotations

import contextlib
import io
from collections.abc import Sequence

from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval
from torch import Tensor


def detections_to_coco(image_id: int, boxes_xyxy: Tensor, scores: Tensor, labels: Tensor,
                       label_to_category_id: Sequence[int], scale_xy: tuple[float, float] = (1.0, 1.0)) -> list[dict]:
    """COCO result dicts for one image: boxes from model-input pixels back to the original image
    (``scale_xy`` = original size / input size per axis), labels to the original category ids."""
    sx, sy = scale_xy
    results = []
    rows = zip(boxes_xyxy.tolist(), scores.tolist(), labels.tolist(), strict=True)
    for (x0, y0, x1, y1), score, label in rows:
        results.append({"image_id": int(image_id), "category_id": int(label_to_category_id[label]),
                        "bbox": [x0 * sx, y0 * sy, (x1 - x0) * sx, (y1 - y0) * sy], "score": float(score)})
    return results


def coco_map(coco_gt: COCO, results: list[dict], image_ids: Sequence[int] | None = None) -> dict[str, float]:
    """mAP@0.5 (``stats[1]``) and mAP@[.5:.95] (``stats[0]``) of ``results`` on ``image_ids``."""
    image_ids = list(coco_gt.getImgIds() if image_ids is None else image_ids)
    if not image_ids:
        raise ValueError("no image ids to evaluate (pycocotools would read an empty list as 'every image')")
    known_images, known_categories = set(coco_gt.getImgIds()), set(coco_gt.getCatIds())
    for result in results:
        if result["image_id"] not in known_images:
            raise ValueError(f"detection for image id {result['image_id']}, which the ground truth does not have")
        if result["category_id"] not in known_categories:
            raise ValueError(f"detection with category id {result['category_id']}, which the ground truth does not "
                             f"have (its ids: {sorted(known_categories)})")
    if not coco_gt.getAnnIds(imgIds=image_ids, iscrowd=False):
        raise ValueError("the evaluated images have no ground-truth boxes: mAP is undefined")
    if not results:
        return {"map_50": 0.0, "map_50_95": 0.0}
    with contextlib.redirect_stdout(io.StringIO()):
        coco_dt = coco_gt.loadRes([dict(result) for result in results])  # loadRes adds keys to each dict
        evaluator = COCOeval(coco_gt, coco_dt, iouType="bbox")
        evaluator.params.imgIds = image_ids
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return {"map_50": max(float(evaluator.stats[1]), 0.0), "map_50_95": max(float(evaluator.stats[0]), 0.0)}
