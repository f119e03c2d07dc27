"""Elastic Weight Consolidation with a diagonal Fisher accumulated online across tasks."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from unihead.engine.batch import to_device
from unihead.strategies.base import StageContext, Strategy, register_strategy


def fisher_diagonal(model: nn.Module, stage: StageContext, samples: int) -> dict[str, Tensor]:
    """Empirical diagonal Fisher of the stage's task: mean of per-sample squared gradients of its loss.

    Samples are the first ``samples`` of a seeded permutation of the stage's training set, one at a
    time (batch 1) with the model in eval mode, so BatchNorm uses its running statistics. On the CPU
    this runs on one thread: batch-1 backward passes sum their gradients in a thread-dependent order
    there, which made two seeded runs differ in the last bits.
    """
    data = stage.train_data[stage.task]
    order = torch.randperm(len(data), generator=torch.Generator().manual_seed(stage.seed))[:samples]
    params = {name: p for name, p in model.named_parameters() if p.requires_grad}
    fisher = {name: torch.zeros_like(p) for name, p in params.items()}
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    threads = torch.get_num_threads()
    if device.type == "cpu":
        torch.set_num_threads(1)
    try:
        _accumulate_squared_gradients(model, stage, order.tolist(), params, fisher, device)
    finally:
        torch.set_num_threads(threads)
    model.zero_grad(set_to_none=True)
    model.train(was_training)
    return {name: f / len(order) for name, f in fisher.items()}


def _accumulate_squared_gradients(model: nn.Module, stage: StageContext, indices: list[int],
                                  params: dict[str, Tensor], fisher: dict[str, Tensor], device: torch.device) -> None:
    data = stage.train_data[stage.task]
    for index in indices:
        images, targets = stage.collate([data[index]])
        images = images.to(device)
        targets = to_device(targets, device)
        model.zero_grad(set_to_none=True)
        output = model(images, tasks=[stage.task])[stage.task]
        stage.loss_fn(stage.task, output, targets)["total"].backward()
        for name, p in params.items():
            if p.grad is not None:
                fisher[name] += p.grad.detach().pow(2)


@register_strategy("ewc")
class ElasticWeightConsolidation(Strategy):
    """Penalty lambda/2 * sum_i F_i (theta_i - theta*_i)^2 around the weights at the end of the last stage."""

    @dataclass(frozen=True)
    class Options:
        penalty_weight: float = 1000.0
        """lambda in lambda/2 * sum F (theta - theta*)^2."""
        fisher_samples: int = 200
        """Training samples of each finished task whose squared gradients make its Fisher."""
        decay: float = 1.0
        """Online EWC: F <- decay * F_old + F_new (1.0 sums the tasks' Fishers)."""

    def __init__(self, options: Any, seed: int = 0) -> None:
        super().__init__(options, seed)
        self.fisher: dict[str, Tensor] = {}
        self.anchor: dict[str, Tensor] = {}

    def penalty(self, model: nn.Module) -> Tensor:
        """lambda/2 * sum F (theta - theta*)^2 over the parameters that have a Fisher."""
        total = sum(
            (self.fisher[name] * (p - self.anchor[name]).pow(2)).sum()
            for name, p in model.named_parameters() if name in self.fisher
        )
        return 0.5 * self.options.penalty_weight * total

    def extra_loss(self, model: nn.Module, images: Tensor, outputs: Mapping[str, Any],
                   stage: StageContext) -> dict[str, Tensor]:
        terms = super().extra_loss(model, images, outputs, stage)
        if self.fisher:
            terms["ewc_penalty"] = self.penalty(model)
        return terms

    def after_stage(self, model: nn.Module, stage: StageContext) -> None:
        super().after_stage(model, stage)
        new = fisher_diagonal(model, stage, self.options.fisher_samples)
        self.fisher = {name: self.options.decay * self.fisher[name] + f if name in self.fisher else f
                       for name, f in new.items()}
        self.anchor = {name: p.detach().clone() for name, p in model.named_parameters() if name in self.fisher}

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "fisher": self.fisher, "anchor": self.anchor}

    def load_state_dict(self, state: dict[str, Any], model: nn.Module) -> None:
        super().load_state_dict(state, model)
        self.fisher, self.anchor = dict(state["fisher"]), dict(state["anchor"])
