"""Detection grid: encode -> decode round trip, assignment rules, NMS and clipping."""

from __future__ import annotations

import pytest
import torch

from unihead.detection import GridTargets, decode_detections, det_channels, encode_targets, raw_from_targets


def _target(boxes, labels, crowd=None):
    boxes = torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4)
    crowd = torch.zeros(len(boxes), dtype=torch.bool) if crowd is None else torch.tensor(crowd)
    return {"boxes": boxes, "labels": torch.tensor(labels, dtype=torch.long), "iscrowd": crowd,
            "image_id": 1, "orig_size": (100, 100)}


@pytest.mark.parametrize("head", ["paper", "logits"])
@pytest.mark.parametrize(("image_size", "grid"), [(512, 16), (128, 4)])
def test_encode_then_decode_returns_the_original_boxes(head, image_size, grid):
    s = image_size / 512
    boxes = [[10 * s, 20 * s, 110 * s, 220 * s], [300 * s, 40 * s, 500 * s, 90 * s],
             [200 * s, 300 * s, 260 * s, 480 * s]]
    labels = [3, 0, 9]
    target = _target(boxes, labels)
    encoded = encode_targets([target], grid, image_size)
    assert int(encoded.positive.sum()) == 3
    raw = raw_from_targets(encoded, head, num_classes=10)
    (found,) = decode_detections(raw, head, image_size, num_classes=10, score_threshold=0.5)
    order = found["scores"].argsort(descending=True)
    found_pairs = zip(found["boxes"][order].tolist(), found["labels"][order].tolist(), strict=True)
    got = sorted(found_pairs, key=lambda x: x[0][0])
    want = sorted(zip(boxes, labels, strict=True), key=lambda x: x[0][0])
    assert [label for _, label in got] == [label for _, label in want]
    torch.testing.assert_close(torch.tensor([b for b, _ in got]), torch.tensor([b for b, _ in want]),
                               atol=1e-3 * image_size / 128, rtol=0)


def test_larger_box_keeps_a_shared_cell():
    small, large = [40, 40, 60, 60], [20, 20, 80, 80]  # both centred at (50, 50): cell (1, 1) of a 4x4 grid at 128
    for boxes, labels in (([small, large], [1, 2]), ([large, small], [2, 1])):
        grid = encode_targets([_target(boxes, labels)], grid_size=4, image_size=128)
        assert int(grid.positive.sum()) == 1 and bool(grid.positive[0, 1, 1])
        assert int(grid.labels[0, 1, 1]) == 2
        torch.testing.assert_close(grid.boxes[0, :, 1, 1], torch.tensor([50, 50, 60, 60]) / 128)


def test_crowd_box_is_no_positive_and_its_cell_is_ignored():
    grid = encode_targets([_target([[0, 0, 60, 60], [64, 64, 128, 128]], [1, 2], crowd=[True, False])], 4, 128)
    assert grid.positive[0].nonzero().tolist() == [[3, 3]]
    assert grid.ignore[0].nonzero().tolist() == [[0, 0]]


def test_image_without_boxes_gives_empty_targets():
    grid = encode_targets([_target([], [])], 4, 128)
    assert not grid.positive.any() and not grid.ignore.any()


def _grid_with(cells: list[tuple[int, int, list[float], int]], size: int = 4) -> GridTargets:
    positive = torch.zeros(1, size, size, dtype=torch.bool)
    boxes, labels = torch.zeros(1, 4, size, size), torch.zeros(1, size, size, dtype=torch.long)
    for row, col, box, label in cells:
        positive[0, row, col] = True
        boxes[0, :, row, col] = torch.tensor(box)
        labels[0, row, col] = label
    return GridTargets(positive, torch.zeros_like(positive), boxes, labels)


def test_nms_removes_a_same_class_duplicate_but_keeps_other_classes():
    # two neighbouring cells predicting nearly the same box (IoU ~0.9)
    same = _grid_with([(1, 1, [0.45, 0.45, 0.4, 0.4], 2), (1, 2, [0.5, 0.45, 0.4, 0.4], 2)])
    other = _grid_with([(1, 1, [0.45, 0.45, 0.4, 0.4], 2), (1, 2, [0.5, 0.45, 0.4, 0.4], 5)])
    (found_same,) = decode_detections(raw_from_targets(same, "logits", 10), "logits", 128, 10, score_threshold=0.5)
    (found_other,) = decode_detections(raw_from_targets(other, "logits", 10), "logits", 128, 10, score_threshold=0.5)
    assert len(found_same["boxes"]) == 1
    assert sorted(found_other["labels"].tolist()) == [2, 5]


def test_boxes_beyond_the_image_are_clipped():
    grid = _grid_with([(0, 0, [0.1, 0.1, 0.5, 0.5], 0)])
    (found,) = decode_detections(raw_from_targets(grid, "paper", 10), "paper", 100, 10, score_threshold=0.5)
    torch.testing.assert_close(found["boxes"], torch.tensor([[0.0, 0.0, 35.0, 35.0]]), atol=0.05, rtol=0)


def test_paper_head_rounds_and_clamps_the_regressed_class():
    grid = _grid_with([(0, 0, [0.1, 0.1, 0.1, 0.1], 0), (3, 3, [0.9, 0.9, 0.1, 0.1], 0)])
    raw = raw_from_targets(grid, "paper", 10)
    raw[0, 5, 0, 0], raw[0, 5, 3, 3] = 2.6, -1.0
    (found,) = decode_detections(raw, "paper", 128, 10, score_threshold=0.5)
    assert sorted(found["labels"].tolist()) == [0, 3]


def test_bad_head_and_shape_are_rejected():
    with pytest.raises(ValueError, match=r"unknown detection head 'yolo'; expected one of \['paper', 'logits'\]"):
        det_channels("yolo", 10)
    with pytest.raises(ValueError, match=r"expected a raw detection output \[B, 15, G, G\]"):
        decode_detections(torch.zeros(1, 6, 4, 4), "logits", 128, 10)
