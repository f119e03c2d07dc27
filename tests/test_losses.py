"""Task losses: hand cases, the detection loss minimum, and that a few steps lower it."""

from __future__ import annotations

import math

import pytest
import torch

from unihead.detection import encode_targets
from unihead.detection_codecs import DET_CODECS
from unihead.losses import task_loss
from unihead.models.heads import DetectionHead


def _det_targets():
    """Two boxes in a 128 px image (XYXY as fractions of it), and an image without boxes."""
    return [{"boxes": torch.tensor([[10.0, 10.0, 50.0, 70.0], [70.0, 64.0, 120.0, 100.0]]) / 128,
             "labels": torch.tensor([4, 7]), "iscrowd": torch.tensor([False, False]), "image_id": 1,
             "orig_size": (128, 128)},
            {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.long),
             "iscrowd": torch.zeros(0, dtype=torch.bool), "image_id": 2, "orig_size": (128, 128)}]


def test_segmentation_loss_ignores_void_pixels():
    logits = torch.zeros(1, 21, 2, 2)
    logits[0, 3, 0, 0] = 2.0
    target = torch.full((1, 2, 2), 255)
    target[0, 0, 0] = 3
    # one counted pixel: -log(e^2 / (e^2 + 20))
    expected = -math.log(math.exp(2) / (math.exp(2) + 20))
    assert task_loss("seg", logits, target)["seg_ce"].item() == pytest.approx(expected, rel=1e-6)


def test_classification_loss_is_cross_entropy():
    logits, target = torch.tensor([[1.0, 0.0, 0.0]]), torch.tensor([0])
    assert task_loss("cls", logits, target)["total"].item() == pytest.approx(-math.log(math.e / (math.e + 2)))


@pytest.mark.parametrize("head", list(DET_CODECS))
def test_detection_loss_is_near_zero_at_the_ideal_output_and_large_at_random(head):
    targets = _det_targets()
    ideal = DET_CODECS[head].encode(encode_targets(targets, 4), 10)
    at_ideal = task_loss("det", ideal, targets, det_head=head, num_classes=10)
    at_random = task_loss("det", torch.randn_like(ideal), targets, det_head=head, num_classes=10)
    assert at_ideal["total"].item() < 1e-2
    assert at_random["total"].item() > 1.0
    assert set(at_ideal) == {"det_obj", "det_box", "det_giou", "det_cls", "total"}


def _box_target(boxes, size, crowd=None):
    """A target of boxes given in pixels of a ``size`` px image."""
    boxes = torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4) / size
    crowd = torch.zeros(len(boxes), dtype=torch.bool) if crowd is None else torch.tensor(crowd)
    return {"boxes": boxes, "labels": torch.zeros(len(boxes), dtype=torch.long), "iscrowd": crowd, "image_id": 1,
            "orig_size": (size, size)}


def _focal(p: float, positive: bool) -> float:
    """Sigmoid focal loss (alpha 0.25, gamma 2) of one cell predicted with probability ``p``."""
    return 0.25 * (1 - p) ** 2 * -math.log(p) if positive else 0.75 * p**2 * -math.log(1 - p)


def test_detection_loss_without_boxes_is_the_negatives_focal_sum_with_zero_box_terms():
    targets = [_det_targets()[1]]
    raw = torch.zeros(1, 15, 4, 4, requires_grad=True)
    terms = task_loss("det", raw, targets, det_head="logits", num_classes=10)
    assert terms["det_box"].item() == 0.0 and terms["det_cls"].item() == 0.0 and terms["det_giou"].item() == 0.0
    terms["total"].backward()
    # 16 negatives at p = 1/2, divided by max(1, 0 positives): 16 * 0.75 * 1/4 * ln 2 = 3 ln 2
    assert terms["det_obj"].item() == pytest.approx(16 * _focal(0.5, False), rel=1e-6)
    assert terms["det_obj"].item() == pytest.approx(3 * math.log(2), rel=1e-6)
    assert torch.isfinite(raw.grad).all()


def test_objectness_is_the_focal_sum_over_kept_cells_divided_by_the_positives():
    """2x2 grids at 64 px: two positives, a crowd cell predicted very wrongly (ignored), five negatives."""
    targets = [_box_target([[4, 4, 24, 24], [36, 36, 60, 60]], 64, crowd=[False, True]),  # cells (0, 0); (1, 1) crowd
               _box_target([[4, 36, 28, 60]], 64)]  # cell (row 1, col 0)
    third = math.log(3.0)  # logit of p = 3/4
    raw = torch.zeros(2, 6, 2, 2)
    raw[0, 4] = torch.tensor([[third, 0.0], [-third, 10.0]])
    raw[1, 4] = torch.tensor([[0.0, -third], [-third, 0.0]])
    cells = [_focal(0.75, True), _focal(0.5, False), _focal(0.25, False),
             _focal(0.5, False), _focal(0.25, False), _focal(0.25, True), _focal(0.5, False)]
    # = (7 ln(4/3) / 64 + 27 ln 2 / 32) / 2
    expected = 7 * math.log(4 / 3) / 128 + 27 * math.log(2) / 64
    assert sum(cells) / 2 == pytest.approx(expected, rel=1e-12)
    det_obj = task_loss("det", raw, targets, det_head="paper", num_classes=10)["det_obj"]
    assert det_obj.item() == pytest.approx(expected, rel=1e-6)  # 0.30815


def test_one_positive_in_a_16x16_grid_counts_in_full_not_as_one_cell_in_256():
    targets = [_box_target([[230, 166, 250, 186]], 512)]  # centre (240, 176): the cell at row 5, column 7
    third = math.log(3.0)
    raw = torch.full((1, 15, 16, 16), 0.0)
    raw[0, 4] = -third  # every cell at p = 1/4
    wrong = task_loss("det", raw, targets, det_head="logits", num_classes=10)["det_obj"]
    raw[0, 4, 5, 7] = third  # the object's cell at p = 3/4
    right = task_loss("det", raw, targets, det_head="logits", num_classes=10)["det_obj"]
    # 255 negatives at p = 1/4: 255 * 0.75 / 16 * ln(4/3) = 3.4387 in both
    negatives = 255 * _focal(0.25, False)
    assert right.item() == pytest.approx(negatives + _focal(0.75, True), rel=1e-6)
    # the positive's own change, undivided: 0.25 (9/16 ln 4 - 1/16 ln(4/3)) = 0.19045
    # (a BCE mean over the cells changed by ln(3) / 256 = 0.0043)
    change = (9 * math.log(4) - math.log(4 / 3)) / 64
    assert (wrong - right).item() == pytest.approx(change, rel=1e-4)


def test_objectness_prior_of_the_detection_head():
    head = DetectionHead(64, 15)
    raw = head(torch.zeros(1, 64, 16, 16), (512, 512))
    torch.testing.assert_close(raw[:, 4].sigmoid(), torch.full((1, 16, 16), 0.01))
    assert head.conv.bias[[0, 1, 2, 3, 5]].abs().max().item() <= 1 / 8  # the others keep PyTorch's U(-1/sqrt(64), .)
    empty = [_det_targets()[1]]
    # 256 negatives at p = 0.01: 256 * 0.75 * 1e-4 * -ln(0.99) = 1.93e-4
    det_obj = task_loss("det", raw, empty, det_head="logits", num_classes=10)["det_obj"]
    assert det_obj.item() == pytest.approx(256 * _focal(0.01, False), rel=1e-5)


@pytest.mark.parametrize("head", list(DET_CODECS))
def test_a_few_adam_steps_lower_the_detection_loss(head):
    torch.manual_seed(0)
    targets = _det_targets()
    raw = torch.randn(2, DET_CODECS[head].channels(10), 4, 4, requires_grad=True)
    optimizer = torch.optim.Adam([raw], lr=0.1)
    losses = []
    for _ in range(30):
        loss = task_loss("det", raw, targets, det_head=head, num_classes=10)["total"]
        losses.append(loss.item())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert losses[-1] < 0.5 * losses[0]


@pytest.mark.parametrize(("head", "class_logit", "expected"), [
    ("paper", 1.5, 1.0),  # regressed index 1.5 against label 0: smooth-L1 1.5 - 0.5
    ("logits", math.log(3.0), math.log(4.0)),  # class 0 at 3 / (3 + 9 ones): cross-entropy ln 4
])
def test_class_term_is_the_head_types_own(head, class_logit, expected):
    targets = [_box_target([[8, 8, 24, 24]], 64)]  # label 0 in cell (0, 0) of a 2x2 grid
    raw = torch.zeros(1, DET_CODECS[head].channels(10), 2, 2)
    raw[0, 5, 0, 0] = class_logit
    assert task_loss("det", raw, targets, det_head=head, num_classes=10)["det_cls"].item() == \
        pytest.approx(expected, rel=1e-6)


def test_detection_loss_needs_the_head_type():
    with pytest.raises(ValueError, match="the detection loss needs det_head and num_classes"):
        task_loss("det", torch.zeros(1, 6, 2, 2), [_box_target([], 64)], num_classes=10)


def test_unknown_task_is_rejected():
    with pytest.raises(ValueError, match="unknown task 'depth'"):
        task_loss("depth", torch.zeros(1), torch.zeros(1))
