"""Detection grid and head codecs: the registry, encode -> decode round trips, assignment rules, NMS and clipping."""

from __future__ import annotations

import pytest
import torch

from unihead.config import DET_HEADS
from unihead.detection import GridTargets, encode_targets
from unihead.detection_codecs import DET_CODECS, codec_for_output, detection_codec

CODECS = list(DET_CODECS.values())


def _target(boxes, labels, crowd=None):
    """A target with XYXY boxes as fractions of the image."""
    boxes = torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4)
    crowd = torch.zeros(len(boxes), dtype=torch.bool) if crowd is None else torch.tensor(crowd)
    return {"boxes": boxes, "labels": torch.tensor(labels, dtype=torch.long), "iscrowd": crowd,
            "image_id": 1, "orig_size": (100, 100)}


def test_the_codec_registry_holds_exactly_the_configs_head_names():
    assert tuple(DET_CODECS) == DET_HEADS
    assert [codec.name for codec in CODECS] == list(DET_HEADS)


@pytest.mark.parametrize("codec", CODECS, ids=lambda codec: codec.name)
def test_encode_then_decode_returns_a_hand_made_box_in_pixels(codec):
    # x 0.25..0.75, y 0.5..0.625: centre (0.5, 0.5625) in cell (row 2, col 2) of a 4x4 grid
    grid = encode_targets([_target([[0.25, 0.5, 0.75, 0.625]], [7])], grid_size=4)
    assert grid.positive[0].nonzero().tolist() == [[2, 2]]
    raw = codec.encode(grid, num_classes=10)
    assert raw.shape == (1, codec.channels(10), 4, 4)
    (found,) = codec.decode(raw, image_size=64, num_classes=10, score_threshold=0.5)
    # at 64 px: x 16..48, y 32..40
    torch.testing.assert_close(found["boxes"], torch.tensor([[16.0, 32.0, 48.0, 40.0]]), atol=0.01, rtol=0)
    assert found["labels"].tolist() == [7]
    assert found["scores"].item() == pytest.approx(1.0, abs=1e-3)


@pytest.mark.parametrize("codec", CODECS, ids=lambda codec: codec.name)
@pytest.mark.parametrize(("image_size", "grid"), [(512, 16), (128, 4)])
def test_encode_then_decode_returns_the_original_boxes(codec, image_size, grid):
    pixels = [[10, 20, 110, 220], [300, 40, 500, 90], [200, 300, 260, 480]]  # at 512 px
    fractions = [[v / 512 for v in box] for box in pixels]
    labels = [3, 0, 9]
    encoded = encode_targets([_target(fractions, labels)], grid)
    assert int(encoded.positive.sum()) == 3
    (found,) = codec.decode(codec.encode(encoded, num_classes=10), image_size, num_classes=10, score_threshold=0.5)
    got = sorted(zip(found["boxes"].tolist(), found["labels"].tolist(), strict=True), key=lambda x: x[0][0])
    want = sorted(zip(pixels, labels, strict=True), key=lambda x: x[0][0])
    assert [label for _, label in got] == [label for _, label in want]
    want_boxes = torch.tensor([b for b, _ in want], dtype=torch.float32) * image_size / 512
    torch.testing.assert_close(torch.tensor([b for b, _ in got]), want_boxes, atol=1e-3 * image_size / 128, rtol=0)


@pytest.mark.parametrize("codec", CODECS, ids=lambda codec: codec.name)
def test_the_codec_of_a_raw_output_is_found_by_its_channel_count(codec):
    assert codec_for_output(torch.zeros(1, codec.channels(10), 4, 4), num_classes=10) is codec


def test_larger_box_keeps_a_shared_cell():
    # both centred at (50, 50) of 128 px: cell (1, 1) of a 4x4 grid
    small, large = [v / 128 for v in (40, 40, 60, 60)], [v / 128 for v in (20, 20, 80, 80)]
    for boxes, labels in (([small, large], [1, 2]), ([large, small], [2, 1])):
        grid = encode_targets([_target(boxes, labels)], grid_size=4)
        assert int(grid.positive.sum()) == 1 and bool(grid.positive[0, 1, 1])
        assert int(grid.labels[0, 1, 1]) == 2
        torch.testing.assert_close(grid.boxes[0, :, 1, 1], torch.tensor([50, 50, 60, 60]) / 128)


def test_crowd_box_is_no_positive_and_its_cell_is_ignored():
    boxes = [[0, 0, 60 / 128, 60 / 128], [0.5, 0.5, 1.0, 1.0]]
    grid = encode_targets([_target(boxes, [1, 2], crowd=[True, False])], 4)
    assert grid.positive[0].nonzero().tolist() == [[3, 3]]
    assert grid.ignore[0].nonzero().tolist() == [[0, 0]]


def test_image_without_boxes_gives_empty_targets():
    grid = encode_targets([_target([], [])], 4)
    assert not grid.positive.any() and not grid.ignore.any()


def test_boxes_still_in_pixels_are_refused():
    with pytest.raises(ValueError, match=r"XYXY fractions of the image in \[0, 1\], got values in \[10, 50\]"):
        encode_targets([_target([[10, 10, 50, 50]], [0])], 4)


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
    logits = DET_CODECS["logits"]
    (found_same,) = logits.decode(logits.encode(same, 10), 128, 10, score_threshold=0.5)
    (found_other,) = logits.decode(logits.encode(other, 10), 128, 10, score_threshold=0.5)
    assert len(found_same["boxes"]) == 1
    assert sorted(found_other["labels"].tolist()) == [2, 5]


def test_boxes_beyond_the_image_are_clipped():
    paper = DET_CODECS["paper"]
    (found,) = paper.decode(paper.encode(_grid_with([(0, 0, [0.1, 0.1, 0.5, 0.5], 0)]), 10), 100, 10,
                            score_threshold=0.5)
    torch.testing.assert_close(found["boxes"], torch.tensor([[0.0, 0.0, 35.0, 35.0]]), atol=0.05, rtol=0)


def test_paper_head_rounds_and_clamps_the_regressed_class():
    paper = DET_CODECS["paper"]
    raw = paper.encode(_grid_with([(0, 0, [0.1, 0.1, 0.1, 0.1], 0), (3, 3, [0.9, 0.9, 0.1, 0.1], 0)]), 10)
    raw[0, 5, 0, 0], raw[0, 5, 3, 3] = 2.6, -1.0
    (found,) = paper.decode(raw, 128, 10, score_threshold=0.5)
    assert sorted(found["labels"].tolist()) == [0, 3]


def test_bad_head_and_shape_are_rejected():
    with pytest.raises(ValueError, match=r"unknown detection head 'yolo'; expected one of \['paper', 'logits'\]"):
        detection_codec("yolo")
    with pytest.raises(ValueError, match=r"expected a raw detection output \[B, 15, G, G\] for head 'logits'"):
        DET_CODECS["logits"].decode(torch.zeros(1, 6, 4, 4), 128, 10)
    with pytest.raises(ValueError, match=r"has 6 \(paper\), 15 \(logits\) channels, not 7"):
        codec_for_output(torch.zeros(1, 7, 4, 4), num_classes=10)
