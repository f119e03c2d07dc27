"""COCO mAP with pycocotools' COCOeval, on the dataset's own image and category ids."""

from __future__ import annotations

import contextlib
import io
from collections.abc import Sequence

from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval
from torch import Tensor

from unihead.metrics.per_image import PerImage

ALL_AREAS = (0, 1e5**2)
"""COCOeval's area range 'all' (``params.areaRng[0]``), in which a ground-truth box counts."""


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
    return coco_evaluation(coco_gt, results, image_ids)[0]


def coco_evaluation(coco_gt: COCO, results: list[dict],
                    image_ids: Sequence[int] | None = None) -> tuple[dict[str, float], PerImage]:
    """:func:`coco_map`'s metrics and the per-image record of :mod:`unihead.metrics.per_image` (images in the
    order of ``image_ids``, categories in COCOeval's sorted order): each image's ground-truth boxes that
    COCOeval counts per category, and each detection it kept, matched at IoU 0.5 or not."""
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
    categories = sorted(known_categories)
    record: PerImage = {"gt": _counted_boxes(coco_gt, image_ids, categories), "detections": []}
    if not results:
        return {"map_50": 0.0, "map_50_95": 0.0}, record
    with contextlib.redirect_stdout(io.StringIO()):
        coco_dt = coco_gt.loadRes([dict(result) for result in results])  # loadRes adds keys to each dict
        evaluator = COCOeval(coco_gt, coco_dt, iouType="bbox")
        evaluator.params.imgIds = image_ids
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    record["detections"] = _kept_detections(evaluator, image_ids, categories)
    return {"map_50": max(float(evaluator.stats[1]), 0.0), "map_50_95": max(float(evaluator.stats[0]), 0.0)}, record


def _counted_boxes(coco_gt: COCO, image_ids: list[int], categories: list[int]) -> list[list[int]]:
    """Per image and category, the ground-truth boxes COCOeval counts at area 'all': those not crowds."""
    column = {category: k for k, category in enumerate(categories)}
    counts = [[0] * len(categories) for _ in image_ids]
    for i, image_id in enumerate(image_ids):
        for annotation in coco_gt.loadAnns(coco_gt.getAnnIds(imgIds=[image_id])):
            if not annotation.get("iscrowd", 0) and annotation["area"] <= ALL_AREAS[1]:
                counts[i][column[annotation["category_id"]]] += 1
    return counts


def _kept_detections(evaluator: COCOeval, image_ids: list[int], categories: list[int]) -> list[list[float]]:
    """``[image, category, score, matched, ignored]`` of every detection ``COCOeval.evaluate`` kept at area 'all'
    and the largest maxDets, its match at the first IoU threshold (0.5)."""
    params = evaluator.params
    position = {image_id: i for i, image_id in enumerate(image_ids)}
    max_dets, n_images, n_areas = params.maxDets[-1], len(params.imgIds), len(params.areaRng)
    area = params.areaRngLbl.index("all")
    found = []
    assert list(params.catIds) == categories, "COCOeval's categories are the ground truth's, sorted"
    for k in range(len(params.catIds)):
        for j, image_id in enumerate(params.imgIds):
            entry = evaluator.evalImgs[k * n_areas * n_images + area * n_images + j]
            if entry is None:
                continue
            matched, ignored = entry["dtMatches"][0][:max_dets], entry["dtIgnore"][0][:max_dets]
            found += [[position[image_id], k, float(score), float(m > 0), float(ig)]
                      for score, m, ig in zip(entry["dtScores"][:max_dets], matched, ignored, strict=True)]
    return found
