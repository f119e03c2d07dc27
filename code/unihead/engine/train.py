"""One training epoch of one task, with the strategy's extra loss terms."""

from __future__ import annotations

import time
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader

from unihead.data.collate import to_device
from unihead.engine.device import autocast_context, to_model_input
from unihead.engine.forward_count import ForwardCount
from unihead.engine.loss_sums import LossSums
from unihead.models import batchnorm_layers
from unihead.strategies import ComposedStrategy, StageContext

EPOCH_COUNTS = ("images", "forwarded", "backpropagated", "seconds", "images_per_s")
"""The entries of an epoch's row that count and time it; the others are its mean loss terms."""


def set_train_mode(model: nn.Module, freeze_batchnorm: bool) -> None:
    """Training mode for every module; with ``freeze_batchnorm`` the BatchNorm layers stay in eval mode,
    so they normalise with, and keep, their running statistics (their affine weights still train)."""
    model.train()
    if freeze_batchnorm:
        for layer in batchnorm_layers(model):
            layer.eval()


def train_one_epoch(model: nn.Module, loader: DataLoader, optimizer: torch.optim.Optimizer, strategy: ComposedStrategy,
                    stage: StageContext, device: torch.device, where: str,
                    freeze_batchnorm: bool = False, precision: str = "auto") -> dict[str, Any]:
    """Train ``stage.task`` for one pass over ``loader``; returns the mean of each loss term,
    the number of images, the images forwarded through any network (``forwarded``: replayed samples and a
    teacher's inputs too) and those of them a backward pass followed (``backpropagated``, see
    :class:`ForwardCount`), the seconds taken and the throughput. The terms are summed on the device and
    read once, after the last step; if one was not finite at some step, :class:`TrainingDiverged` names it
    with ``where`` (the stage and epoch). ``freeze_batchnorm`` see :func:`set_train_mode`; the forward
    pass and the loss run in ``precision`` (``train.precision``, see :mod:`unihead.engine.device`)."""
    set_train_mode(model, freeze_batchnorm)
    sums = LossSums()
    images_seen = 0
    start = time.perf_counter()
    tasks = [stage.task, *strategy.output_tasks(stage)]
    with ForwardCount() as count:
        for images, targets in loader:
            images = to_model_input(images, device)
            targets = to_device(targets, device)
            with autocast_context(device, precision):
                outputs = model(images, tasks=tasks, return_features=strategy.needs_features)
                terms = stage.loss_fn(stage.task, outputs[stage.task], targets)
                extra = strategy.extra_loss(model, images, outputs, stage)
                loss = terms.pop("total") + sum(extra.values())
            terms.update(extra)
            terms["loss"] = loss
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            batch = images.shape[0]
            images_seen += batch
            sums.add(terms, batch)
    row: dict[str, Any] = sums.means(images_seen, where, optimizer.param_groups[0]["lr"])
    seconds = time.perf_counter() - start
    row.update(images=images_seen, forwarded=count.forwarded, backpropagated=count.backpropagated,
               seconds=seconds, images_per_s=images_seen / seconds)
    return row
