"""Matched conditions of the protocol: a baseline's learning-rate schedule and the BatchNorm mode."""

from __future__ import annotations

import csv

import pytest
import torch
from torch import nn

from unihead.engine.run import Run, execute
from unihead.engine.train import set_train_mode
from unihead.runs import run_spec
from unihead.schema import ConfigError
from unihead.scopes import run_config

SCHEDULED = {"epochs": 2, "limit_train": 4, "limit_val": 4, "schedule": "cosine_total"}
"""The tiny config's train section here: two epochs per stage of 4 images, one cosine schedule over all stages."""


def _lr_by_task(out) -> dict[str, list[float]]:
    with open(out / "history.csv") as handle:
        rows = list(csv.DictReader(handle))
    lrs: dict[str, list[float]] = {}
    for row in rows:
        lrs.setdefault(row["task"], []).append(float(row["lr"]))
    return lrs


@pytest.mark.slow
def test_a_baseline_trains_with_the_schedule_segment_of_its_stage(tiny_config, tmp_path):
    config = tiny_config(train=SCHEDULED)
    for name in ("none", "baseline-cls", "baseline-seg"):
        execute(Run(run_config(config, name, 0), tmp_path / name, log=lambda line: None))
    sequence = _lr_by_task(tmp_path / "none")
    # cosine over 3 stages x 2 epochs, eta_min 0: the cls stage runs epochs 4 and 5 of 6
    assert sequence["cls"] == pytest.approx([8e-4 * 0.5 * (1 + torch.cos(torch.tensor(torch.pi * e / 6)).item())
                                             for e in (4, 5)])
    assert _lr_by_task(tmp_path / "baseline-cls")["cls"] == sequence["cls"]
    assert _lr_by_task(tmp_path / "baseline-seg")["seg"] == sequence["seg"]


def test_a_baseline_of_a_task_outside_the_sequence_is_refused(tiny_config):
    config = tiny_config(train={**SCHEDULED, "tasks": ["seg", "det"]})
    with pytest.raises(ConfigError, match="'cls' is not in config key 'train.tasks'"):
        run_spec(config, "baseline-cls", 0)


def _batchnorm_statistics_after_each_stage(config, out) -> list[dict[str, torch.Tensor]]:
    """The running statistics of every BatchNorm layer right after each stage of a ``none`` run."""
    run = Run(run_config(config, "none", 0), out, log=lambda line: None)
    stats: list[dict[str, torch.Tensor]] = []
    original = run.strategy.after_stage

    def record(model: nn.Module, stage) -> None:
        original(model, stage)
        stats.append({k: v.clone() for k, v in model.state_dict().items() if "running_" in k})

    run.strategy.after_stage = record
    execute(run)
    return stats


@pytest.mark.slow
def test_frozen_batchnorm_keeps_the_running_statistics_while_training(tiny_config, tmp_path):
    config = tiny_config(train={**SCHEDULED, "bn": "freeze_after_first", "epochs": 1})
    stats = _batchnorm_statistics_after_each_stage(config, tmp_path)
    assert stats[0], "the model has BatchNorm running statistics"
    assert all(torch.equal(stats[0][k], stats[2][k]) for k in stats[0])  # unchanged by det and cls


@pytest.mark.slow
def test_trained_batchnorm_moves_the_running_statistics(tiny_config, tmp_path):
    stats = _batchnorm_statistics_after_each_stage(tiny_config(train={**SCHEDULED, "epochs": 1}), tmp_path)
    assert any(not torch.equal(stats[0][k], stats[2][k]) for k in stats[0] if "running_mean" in k)


def test_set_train_mode_leaves_only_batchnorm_in_eval_mode():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Dropout())
    model.eval()
    set_train_mode(model, freeze_batchnorm=True)
    assert [m.training for m in model] == [True, False, True, True]
    set_train_mode(model, freeze_batchnorm=False)
    assert all(m.training for m in model)
