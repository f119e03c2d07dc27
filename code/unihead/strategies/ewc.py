"""Elastic Weight Consolidation with a diagonal Fisher accumulated online across tasks."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor, nn

from unihead.likelihood import sampled_log_likelihood
from unihead.strategies.base import StageContext, Strategy, register_strategy
from unihead.strategy_options import EWCOptions


def fisher_diagonal(model: nn.Module, stage: StageContext, samples: int) -> dict[str, Tensor]:
    """Diagonal Fisher of the stage's task: mean over inputs of the squared score of a sampled label.

    For each input, a label is drawn from the model's own predictive distribution
    (:mod:`unihead.likelihood`) and the gradient of its log-likelihood is squared: the true Fisher of
    Kirkpatrick et al. (2017), which, unlike squared gradients of the training loss, measures how much
    each weight changes what the model predicts. One seeded generator draws both the inputs (the first
    ``samples`` of a permutation of the stage's training set) and the labels. Inputs go one at a time
    (batch 1: the square of a batch's gradient is not the mean of per-sample squares) with the model in
    eval mode, so BatchNorm uses its running statistics. On the CPU this runs on one thread: batch-1
    backward passes sum their gradients in a thread-dependent order there, which made two seeded runs
    differ in the last bits. Every trainable parameter gets an entry (zero where the task's output
    does not depend on it).
    """
    data = stage.train_data[stage.task]
    generator = torch.Generator().manual_seed(stage.seed)
    order = torch.randperm(len(data), generator=generator)[:samples]
    params = {name: p for name, p in model.named_parameters() if p.requires_grad}
    fisher = {name: torch.zeros_like(p) for name, p in params.items()}
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    threads = torch.get_num_threads()
    if device.type == "cpu":
        torch.set_num_threads(1)
    try:
        _accumulate_squared_scores(model, stage, order.tolist(), generator, params, fisher, device)
    finally:
        torch.set_num_threads(threads)
    model.zero_grad(set_to_none=True)
    model.train(was_training)
    return {name: f / len(order) for name, f in fisher.items()}


def _accumulate_squared_scores(model: nn.Module, stage: StageContext, indices: list[int], generator: torch.Generator,
                               params: dict[str, Tensor], fisher: dict[str, Tensor], device: torch.device) -> None:
    data = stage.train_data[stage.task]
    for index in indices:
        images, _ = stage.collate([data[index]])
        model.zero_grad(set_to_none=True)
        output = model(images.to(device), tasks=[stage.task])[stage.task]
        sampled_log_likelihood(stage.task, output, generator).backward()
        for name, p in params.items():
            if p.grad is not None:
                fisher[name] += p.grad.detach().pow(2)


def normalised(fisher: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """``fisher`` divided by its mean over all its entries, so that it has mean 1.

    The tasks' log-likelihoods have unrelated scales (a mean over 262,144 pixels, over 256 grid cells
    with box densities of standard deviation 0.1, over one image); normalised, each finished task
    weighs alike in the accumulated Fisher and lambda means the same for every task.
    """
    mean = sum(f.sum() for f in fisher.values()) / sum(f.numel() for f in fisher.values())
    if mean <= 0:
        raise ValueError("the Fisher is zero everywhere: the task's output does not depend on any trainable weight")
    return {name: f / mean for name, f in fisher.items()}


def accumulate(old: Mapping[str, Tensor], new: Mapping[str, Tensor], decay: float) -> dict[str, Tensor]:
    """Online EWC, ``decay * old + new``, keeping only the parameters whose sum is not all zero.

    ``new`` has an entry for every trainable parameter (as :func:`fisher_diagonal` gives it). A
    parameter no finished task depends on (a later task's head) gets no entry, so the penalty leaves it
    without a gradient: AdamW then skips it, instead of decaying it and moving it by stale momentum as
    it would for a zero gradient.
    """
    total = {name: decay * old[name] + f if name in old else f for name, f in new.items()}
    return {name: f for name, f in total.items() if f.any()}


@register_strategy("ewc")
class ElasticWeightConsolidation(Strategy):
    """Penalty lambda/2 * sum_i F_i (theta_i - theta*_i)^2 around the weights at the end of the last stage.

    F is the online sum of the finished tasks' Fishers (:func:`fisher_diagonal`), each normalised to
    mean 1 (:func:`normalised`) before it is added (:func:`accumulate`).
    """

    options: EWCOptions

    def __init__(self, options: EWCOptions, seed: int = 0) -> None:
        super().__init__(options, seed)
        self.fisher: dict[str, Tensor] = {}
        self.anchor: dict[str, Tensor] = {}

    def penalty(self, model: nn.Module) -> Tensor:
        """lambda/2 * sum F (theta - theta*)^2 over the parameters that have a Fisher.

        Computed with one fused (``_foreach``) kernel per operation over all those tensors rather than
        a few kernels per tensor, forward and backward.
        """
        params = dict(model.named_parameters())
        names = list(self.fisher)
        distance = torch._foreach_sub([params[name] for name in names], [self.anchor[name] for name in names])
        weighted = torch._foreach_mul(torch._foreach_mul(distance, distance), [self.fisher[name] for name in names])
        return 0.5 * self.options.penalty_weight * torch.stack([w.sum() for w in weighted]).sum()

    def extra_loss(self, model: nn.Module, images: Tensor, outputs: Mapping[str, Any],
                   stage: StageContext) -> dict[str, Tensor]:
        return {"penalty": self.penalty(model)} if self.fisher else {}

    def after_stage(self, model: nn.Module, stage: StageContext) -> None:
        """Adds the finished task's Fisher and anchors the weights, unless no stage follows to use them."""
        if stage.is_last:
            return
        new = normalised(fisher_diagonal(model, stage, self.options.fisher_samples))
        self.fisher = accumulate(self.fisher, new, self.options.decay)
        self.anchor = {name: p.detach().clone() for name, p in model.named_parameters() if name in self.fisher}

    def state_dict(self) -> dict[str, Any]:
        return {"fisher": self.fisher, "anchor": self.anchor}

    def load_state_dict(self, state: dict[str, Any], model: nn.Module) -> None:
        self.fisher, self.anchor = dict(state["fisher"]), dict(state["anchor"])
