"""The learning-rate schedule of the task sequence.

The factor is the closed form of cosine annealing (``CosineAnnealingLR`` with ``eta_min`` 0) given to
``torch.optim.lr_scheduler.LambdaLR``. ``CosineAnnealingLR`` itself is not used: its recursive update
differs from the closed form by rounding (17 of the paper's 30 epochs, by about 1e-19), which would
change every result, and it cannot start inside the schedule, where a single-task baseline starts
(at its task's stage of the sequence, for matched conditions).
"""

from __future__ import annotations

import math

import torch

from unihead.config import TrainConfig


def lr_factor(schedule: str, epoch: int, epochs_per_stage: int, stages: int) -> float:
    """Learning-rate multiplier at the start of global epoch ``epoch`` of the task sequence."""
    if schedule == "cosine_total":
        return 0.5 * (1.0 + math.cos(math.pi * epoch / (epochs_per_stage * stages)))
    if schedule == "cosine_stage":
        return 0.5 * (1.0 + math.cos(math.pi * (epoch % epochs_per_stage) / epochs_per_stage))
    return 1.0


def make_scheduler(optimizer: torch.optim.Optimizer, train: TrainConfig,
                   first_stage: int = 0) -> torch.optim.lr_scheduler.LambdaLR:
    """``train.schedule`` over the sequence ``train.tasks``, starting at stage ``first_stage``; stepped once
    per epoch."""
    offset = first_stage * train.epochs
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda epoch: lr_factor(train.schedule, epoch + offset, epochs_per_stage=train.epochs,
                                           stages=len(train.tasks)))
