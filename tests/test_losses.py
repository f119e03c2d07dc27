"""Task losses: hand cases, the detection loss minimum, and that a few steps lower it."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from unihead.detection import encode_targets, raw_from_targets
from unihead.losses import task_loss


def _det_targets():
    return [{"boxes": torch.tensor([[10.0, 10.0, 50.0, 70.0], [70.0, 64.0, 120.0, 100.0]]),
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


@pytest.mark.parametrize("head", ["paper", "logits"])
def test_detection_loss_is_near_zero_at_the_ideal_output_and_large_at_random(head):
    targets = _det_targets()
    ideal = raw_from_targets(encode_targets(targets, 4, 128), head, 10)
    at_ideal = task_loss("det", ideal, targets, det_head=head, image_size=128, num_classes=10)
    at_random = task_loss("det", torch.randn_like(ideal), targets, det_head=head, image_size=128, num_classes=10)
    assert at_ideal["total"].item() < 1e-2
    assert at_random["total"].item() > 1.0
    assert set(at_ideal) == {"det_obj", "det_box", "det_giou", "det_cls", "total"}


def test_detection_loss_without_boxes_is_finite_with_zero_box_terms():
    targets = [_det_targets()[1]]
    raw = torch.randn(1, 15, 4, 4, requires_grad=True)
    terms = task_loss("det", raw, targets, det_head="logits", image_size=128, num_classes=10)
    assert terms["det_box"].item() == 0.0 and terms["det_cls"].item() == 0.0 and terms["det_giou"].item() == 0.0
    terms["total"].backward()
    expected_obj = F.binary_cross_entropy_with_logits(raw.detach()[:, 4], torch.zeros(1, 4, 4))
    assert terms["det_obj"].item() == pytest.approx(expected_obj.item(), rel=1e-6)
    assert torch.isfinite(raw.grad).all()


@pytest.mark.parametrize("head", ["paper", "logits"])
def test_a_few_adam_steps_lower_the_detection_loss(head):
    torch.manual_seed(0)
    targets = _det_targets()
    raw = torch.randn(2, 6 if head == "paper" else 15, 4, 4, requires_grad=True)
    optimizer = torch.optim.Adam([raw], lr=0.1)
    losses = []
    for _ in range(30):
        loss = task_loss("det", raw, targets, det_head=head, image_size=128, num_classes=10)["total"]
        losses.append(loss.item())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert losses[-1] < 0.5 * losses[0]


def test_unknown_task_is_rejected():
    with pytest.raises(ValueError, match="unknown task 'depth'"):
        task_loss("depth", torch.zeros(1), torch.zeros(1))
