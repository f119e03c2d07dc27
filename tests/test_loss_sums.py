"""Loss terms summed on the device and read once per epoch: the means, and the term that diverged first."""

from __future__ import annotations

import math

import pytest
import torch

from unihead.engine.loss_sums import LossSums
from unihead.errors import TrainingDiverged


def _terms(**values: float) -> dict[str, torch.Tensor]:
    return {name: torch.tensor(value, dtype=torch.float32) for name, value in values.items()}


def test_means_weigh_each_step_by_its_images_like_python_floats():
    sums = LossSums()
    sums.add(_terms(seg_ce=0.1, replay_det=2.0, loss=2.1), images=8)
    sums.add(_terms(seg_ce=0.3, replay_det=1.0, loss=1.3), images=2)
    means = sums.means(10, "stage 1", lr=1e-3)
    assert list(means) == ["loss", "replay_det", "seg_ce"]
    # (0.1 * 8 + 0.3 * 2) / 10 = 0.14, (2 * 8 + 1 * 2) / 10 = 1.8, in float32 values summed as doubles
    expected = {name: (float(torch.tensor(a)) * 8 + float(torch.tensor(b)) * 2) / 10
                for name, a, b in (("seg_ce", 0.1, 0.3), ("replay_det", 2.0, 1.0), ("loss", 2.1, 1.3))}
    assert means == expected
    assert means["seg_ce"] == pytest.approx(0.14) and means["replay_det"] == 1.8


def test_the_term_that_diverged_first_is_named_though_every_term_follows():
    """Step 2: det_box is nan (so is loss); from step 3 on the weights are nan and so is every term."""
    sums = LossSums()
    sums.add(_terms(det_obj=1.0, det_box=0.5, loss=1.5), images=4)
    sums.add(_terms(det_obj=0.9, det_box=math.nan, loss=math.nan), images=4)
    sums.add(_terms(det_obj=math.nan, det_box=math.nan, loss=math.nan), images=4)
    with pytest.raises(TrainingDiverged, match=r"^stage 2/3 \(det\), epoch 1/1: loss term 'det_box' is nan at step 2 "
                                               r"of 3 \(learning rate 0.0008\); the run is stopped$"):
        sums.means(12, "stage 2/3 (det), epoch 1/1", lr=8e-4)


def test_an_infinite_term_is_named_with_its_sign():
    sums = LossSums()
    sums.add(_terms(cls_ce=-math.inf, loss=-math.inf), images=1)
    with pytest.raises(TrainingDiverged, match=r"loss term 'cls_ce' is -inf at step 1 of 1"):
        sums.means(1, "here", lr=1.0)


def test_terms_that_change_within_an_epoch_are_an_error():
    sums = LossSums()
    sums.add(_terms(seg_ce=1.0, loss=1.0), images=1)
    with pytest.raises(ValueError, match=r"step 2 has loss terms \['seg_ce', 'ewc_penalty', 'loss'\]"):
        sums.add(_terms(seg_ce=1.0, ewc_penalty=0.0, loss=1.0), images=1)
