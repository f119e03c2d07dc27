"""Per-image records give back each evaluation's metric, and score a resample (images counted with weights) as
the evaluation would score the same images physically repeated."""

from __future__ import annotations

import contextlib
import io

import numpy as np
import pytest
import torch
from pycocotools.coco import COCO

from unihead.metrics.classification import TopKAccuracy
from unihead.metrics.detection import coco_evaluation
from unihead.metrics.per_image import images_of, score
from unihead.metrics.segmentation import ConfusionMatrix, per_image_counts


def test_classification_by_hand():
    logits = torch.tensor([[3.0, 1, 0], [0.0, 2, 1], [1.0, 0, 3], [0.0, 1, 2]])
    accuracy = TopKAccuracy(ks=(1,))
    accuracy.update(logits, torch.tensor([0, 1, 0, 0]))
    record = {"correct": accuracy.top1_hits}
    assert record == {"correct": [1, 1, 0, 0]}
    assert score(record, "cls") == accuracy.compute()["top1"] == 0.5
    # image 0 twice, image 1 never, images 2 and 3 once: 2 hits of 4 draws; image 0 three times: 3 of 5
    assert score(record, "cls", np.array([2, 0, 1, 1])) == 0.5
    assert score(record, "cls", np.array([3, 0, 1, 1])) == 0.6


def test_segmentation_by_hand_and_against_the_confusion_matrix():
    # image 0 as in test_metrics' known confusion; image 1 predicts class 1 where class 2 is
    target = torch.tensor([[[0, 0, 0, 1], [1, 1, 2, 255]], [[2, 2, 0, 0], [0, 0, 0, 0]]])
    pred = torch.tensor([[[0, 0, 1, 1], [1, 2, 2, 0]], [[1, 1, 0, 0], [0, 0, 0, 0]]])
    record = per_image_counts(pred, target, num_classes=3)
    assert record == {"tp": [[2, 2, 1], [6, 0, 0]], "gt": [[3, 3, 1], [6, 0, 2]], "pred": [[2, 3, 2], [6, 2, 0]]}
    confusion = ConfusionMatrix(num_classes=3)
    confusion.update(pred, target)
    assert score(record, "seg") == confusion.miou()
    # image 0 alone: IoU 2/3, 1/2, 1/2
    assert score(record, "seg", np.array([1, 0])) == pytest.approx((2 / 3 + 1 / 2 + 1 / 2) / 3)
    # image 1 twice: class 0 12/12, class 1 0/4, class 2 0/4
    assert score(record, "seg", np.array([0, 2])) == pytest.approx(1 / 3)


def test_segmentation_records_of_random_batches_give_the_confusion_matrix_miou():
    generator = torch.Generator().manual_seed(0)
    target = torch.randint(0, 6, (5, 8, 8), generator=generator)
    target[target == 5] = 255
    pred = torch.randint(0, 5, (5, 8, 8), generator=generator)
    confusion = ConfusionMatrix(num_classes=5)
    confusion.update(pred, target)
    record = per_image_counts(pred, target, num_classes=5)
    assert images_of(record, "seg") == 5
    assert score(record, "seg") == pytest.approx(confusion.miou(), abs=1e-15)
    repeated = ConfusionMatrix(num_classes=5)
    repeated.update(torch.cat([pred[:1], pred[:1], pred[3:]]), torch.cat([target[:1], target[:1], target[3:]]))
    assert score(record, "seg", np.array([2, 0, 0, 1, 1])) == pytest.approx(repeated.miou(), abs=1e-15)


def _ground_truth(images: list[int], boxes: dict[int, list[tuple[int, list[float], int]]]) -> COCO:
    """Images of 100 x 100 px with (category, box, crowd) boxes; categories 3 and 9."""
    annotations = [{"id": n, "image_id": image, "category_id": category, "bbox": box, "area": box[2] * box[3],
                    "iscrowd": crowd}
                   for n, (image, category, box, crowd) in enumerate(
                       ((image, *found) for image in images for found in boxes.get(image, [])), start=1)]
    coco = COCO()
    coco.dataset = {"images": [{"id": image, "width": 100, "height": 100} for image in images],
                    "categories": [{"id": 3, "name": "c3"}, {"id": 9, "name": "c9"}], "annotations": annotations}
    with contextlib.redirect_stdout(io.StringIO()):
        coco.createIndex()
    return coco


def _random_case(seed: int, n_images: int) -> tuple[dict, list[dict]]:
    """Ground-truth boxes and detections near them (some shifted off, some of the wrong category), a crowd."""
    rng = np.random.default_rng(seed)
    boxes, detections = {}, []
    for image in range(1, n_images + 1):
        boxes[image] = []
        for _ in range(rng.integers(0, 4)):
            x, y = rng.uniform(0, 60, 2)
            category = int(rng.choice([3, 9]))
            boxes[image].append((category, [float(x), float(y), 30.0, 30.0], int(rng.random() < 0.1)))
            for _ in range(rng.integers(0, 3)):
                shift = rng.uniform(-15, 15, 2)
                detections.append({"image_id": image, "category_id": category if rng.random() < 0.8 else 12 - category,
                                   "bbox": [float(x + shift[0]), float(y + shift[1]), 30.0, 30.0],
                                   "score": float(rng.random())})
    return boxes, detections


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_detection_records_give_cocoevals_map_and_weights_mean_repeated_images(seed):
    boxes, detections = _random_case(seed, 12)
    images = list(range(1, 13))
    metrics, record = coco_evaluation(_ground_truth(images, boxes), detections, images)
    assert images_of(record, "det") == 12
    assert score(record, "det") == pytest.approx(metrics["map_50"], abs=1e-12)
    # a bootstrap draw: images 1..4 twice, 5..8 never, 9..12 once; COCOeval on the draw's images as copies
    weights = np.array([2] * 4 + [0] * 4 + [1] * 4)
    copies = [(copy, image) for image, weight in zip(images, weights, strict=True) for copy in range(weight)]
    copy_id = {key: 100 * key[0] + key[1] for key in copies}
    drawn = {copy_id[(copy, image)]: boxes[image] for copy, image in copies}
    copied = [{**found, "image_id": copy_id[(copy, image)]} for copy, image in copies
              for found in detections if found["image_id"] == image]
    expected, _ = coco_evaluation(_ground_truth(sorted(drawn), drawn), copied, sorted(drawn))
    assert score(record, "det", weights) == pytest.approx(expected["map_50"], abs=1e-12)


def test_detection_record_by_hand_and_without_detections():
    coco = _ground_truth([1, 2], {1: [(3, [0, 0, 50, 50], 0)], 2: [(3, [50, 50, 40, 40], 0), (9, [0, 0, 20, 20], 1)]})
    found = [{"image_id": 1, "category_id": 3, "bbox": [0, 0, 50, 50], "score": 0.9},
             {"image_id": 2, "category_id": 3, "bbox": [0, 0, 10, 10], "score": 0.8},
             {"image_id": 2, "category_id": 9, "bbox": [0, 0, 20, 20], "score": 0.7}]
    metrics, record = coco_evaluation(coco, found, [1, 2])
    # category 3: a hit at 0.9, a miss at 0.8, 2 boxes: precision 1 up to recall 0.5, then nothing: AP 51/101;
    # category 9 has only a crowd, so it is left out (its detection is matched to the crowd and ignored)
    assert record["gt"] == [[1, 0], [1, 0]]
    assert [row[:2] + row[3:] for row in record["detections"]] == [[0, 0, 1, 0], [1, 0, 0, 0], [1, 1, 1, 1]]
    assert [row[2] for row in record["detections"]] == pytest.approx([0.9, 0.8, 0.7])
    assert metrics["map_50"] == pytest.approx(51 / 101)
    assert score(record, "det") == pytest.approx(51 / 101)
    # image 1 alone: one box, one hit: AP 1
    assert score(record, "det", np.array([1, 0])) == pytest.approx(1.0)
    none_found, empty = coco_evaluation(coco, [], [1, 2])
    assert none_found["map_50"] == score(empty, "det") == 0.0
