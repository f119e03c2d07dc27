"""Metrics on small cases worked out by hand."""

from __future__ import annotations

import contextlib
import io
import math

import pytest
import torch
from pycocotools.coco import COCO

from unihead.metrics.classification import TopKAccuracy
from unihead.metrics.detection import coco_map, detections_to_coco
from unihead.metrics.segmentation import ConfusionMatrix


def test_miou_of_a_known_confusion():
    # 3 classes. ground truth / prediction per pixel (255 = ignore):
    target = torch.tensor([[0, 0, 0, 1], [1, 1, 2, 255]])
    pred = torch.tensor([[0, 0, 1, 1], [1, 2, 2, 0]])
    cm = ConfusionMatrix(num_classes=3)
    cm.update(pred, target)
    assert cm.matrix.tolist() == [[2, 1, 0], [0, 2, 1], [0, 0, 1]]
    # IoU: class 0: 2/(2+1+0)=2/3; class 1: 2/(3+3-2)=1/2; class 2: 1/(1+2-1)=1/2
    torch.testing.assert_close(cm.iou(), torch.tensor([2 / 3, 1 / 2, 1 / 2], dtype=torch.float64))
    assert cm.miou() == pytest.approx((2 / 3 + 0.5 + 0.5) / 3)
    assert cm.pixel_accuracy() == pytest.approx(5 / 7)


def test_classes_absent_from_prediction_and_truth_are_left_out_of_the_mean():
    cm = ConfusionMatrix(num_classes=21)
    cm.update(torch.tensor([0, 0, 5, 5]), torch.tensor([0, 5, 5, 5]))
    # class 0: 1/(2+1-1)=1/2; class 5: 2/(2+3-2)=2/3; the other 19 classes are NaN and skipped
    assert int(torch.isnan(cm.iou()).sum()) == 19
    assert cm.miou() == pytest.approx((0.5 + 2 / 3) / 2)


def test_confusion_accumulates_over_batches_and_rejects_unknown_values():
    cm = ConfusionMatrix(num_classes=2)
    cm.update(torch.tensor([[0, 1]]), torch.tensor([[0, 1]]))
    cm.update(torch.tensor([[1, 1]]), torch.tensor([[0, 1]]))
    assert cm.matrix.tolist() == [[1, 1], [0, 2]]
    with pytest.raises(ValueError, match=r"target has values \[7\] outside 0..1"):
        cm.update(torch.tensor([0]), torch.tensor([7]))


def test_top1_and_top5_by_hand():
    logits = torch.tensor([
        [6.0, 5, 4, 3, 2, 1],  # label 0: rank 1
        [6.0, 5, 4, 3, 2, 1],  # label 4: rank 5
        [6.0, 5, 4, 3, 2, 1],  # label 5: rank 6
        [1.0, 2, 3, 4, 5, 6],  # label 5: rank 1
    ])
    accuracy = TopKAccuracy()
    accuracy.update(logits[:2], torch.tensor([0, 4]))
    accuracy.update(logits[2:], torch.tensor([5, 5]))
    assert accuracy.compute() == {"top1": 0.5, "top5": 0.75}
    with pytest.raises(ValueError, match="no samples"):
        TopKAccuracy().compute()


def _coco() -> COCO:
    """Two images of different sizes; original, non-contiguous category ids 1, 14 and 88."""
    data = {
        "images": [{"id": 42, "width": 640, "height": 480, "file_name": "a.jpg"},
                   {"id": 7, "width": 320, "height": 240, "file_name": "b.jpg"}],
        "categories": [{"id": 1, "name": "person"}, {"id": 14, "name": "parking meter"},
                       {"id": 88, "name": "teddy bear"}],
        "annotations": [
            {"id": 1, "image_id": 42, "category_id": 14, "bbox": [100, 100, 200, 100], "area": 20000, "iscrowd": 0},
            {"id": 2, "image_id": 7, "category_id": 88, "bbox": [10, 20, 100, 50], "area": 5000, "iscrowd": 0},
        ],
    }
    coco = COCO()
    coco.dataset = data
    with contextlib.redirect_stdout(io.StringIO()):
        coco.createIndex()
    return coco


def _result(image_id, category_id, bbox, score=0.9):
    return {"image_id": image_id, "category_id": category_id, "bbox": bbox, "score": score}


def test_perfect_detections_give_map_one():
    results = [_result(42, 14, [100, 100, 200, 100]), _result(7, 88, [10, 20, 100, 50])]
    assert coco_map(_coco(), results) == pytest.approx({"map_50": 1.0, "map_50_95": 1.0})


def test_box_shifted_below_iou_half_scores_zero():
    # shifted right by 120 px: intersection 80x100 over union 2*20000-8000 -> IoU 0.25
    results = [_result(42, 14, [220, 100, 200, 100])]
    assert coco_map(_coco(), results, image_ids=[42])["map_50"] == 0.0


def test_box_with_iou_between_half_and_three_quarters():
    # shifted right by 40 px: intersection 160x100 = 16000, union 24000 -> IoU 2/3:
    # a true positive at thresholds 0.50, 0.55, 0.60, 0.65 (4 of 10)
    results = [_result(42, 14, [140, 100, 200, 100])]
    scores = coco_map(_coco(), results, image_ids=[42])
    assert scores["map_50"] == pytest.approx(1.0)
    assert scores["map_50_95"] == pytest.approx(0.4)


def test_wrong_category_scores_zero_and_no_detections_do_not_crash():
    assert coco_map(_coco(), [_result(42, 1, [100, 100, 200, 100])], image_ids=[42])["map_50"] == 0.0
    assert coco_map(_coco(), []) == {"map_50": 0.0, "map_50_95": 0.0}


def test_the_callers_detections_are_left_unchanged():
    results = [_result(42, 14, [100, 100, 200, 100])]
    coco_map(_coco(), results)
    assert results == [_result(42, 14, [100, 100, 200, 100])]


def test_unknown_ids_are_errors():
    with pytest.raises(ValueError, match="no image ids to evaluate"):
        coco_map(_coco(), [_result(42, 14, [0, 0, 1, 1])], image_ids=[])
    with pytest.raises(ValueError, match="image id 5"):
        coco_map(_coco(), [_result(5, 14, [0, 0, 1, 1])])
    with pytest.raises(ValueError, match="category id 2,"):
        coco_map(_coco(), [_result(42, 2, [0, 0, 1, 1])])


def test_detections_are_mapped_back_to_original_pixels_and_category_ids():
    # the 640x480 image was resized to 128x128: scale (5, 3.75); label 1 is category 14
    results = detections_to_coco(42, torch.tensor([[20.0, 26.6667, 60.0, 53.3333]]), torch.tensor([0.8]),
                                 torch.tensor([1]), label_to_category_id=[1, 14, 88], scale_xy=(640 / 128, 480 / 128))
    assert results[0]["category_id"] == 14 and results[0]["image_id"] == 42
    assert results[0]["bbox"] == pytest.approx([100, 100, 200, 100], abs=1e-3)
    assert math.isclose(results[0]["score"], 0.8, rel_tol=1e-6)
    assert coco_map(_coco(), results, image_ids=[42])["map_50"] == pytest.approx(1.0)
