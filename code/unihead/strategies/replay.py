"""Experience replay: a small reservoir of each finished task's training samples, trained with their own loss."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor, nn

from unihead.data.collate import to_device
from unihead.strategies.base import StageContext, Strategy, register_strategy
from unihead.strategy_options import ReplayOptions


class ReservoirBuffer:
    """Reservoir sampling (Vitter's algorithm R): after n offers, each offered item is kept with
    probability capacity / n, whatever the order of the stream."""

    def __init__(self, capacity: int, seed: int) -> None:
        if capacity < 1:
            raise ValueError(f"reservoir capacity must be at least 1, got {capacity}")
        self.capacity = capacity
        self.items: list[int] = []
        self.seen = 0
        self.generator = torch.Generator().manual_seed(seed)

    def offer(self, item: int) -> None:
        self.seen += 1
        if len(self.items) < self.capacity:
            self.items.append(item)
            return
        slot = int(torch.randint(self.seen, (1,), generator=self.generator))
        if slot < self.capacity:
            self.items[slot] = item

    def sample(self, count: int) -> list[int]:
        """``count`` items drawn uniformly with replacement."""
        picks = torch.randint(len(self.items), (count,), generator=self.generator)
        return [self.items[i] for i in picks.tolist()]

    def state_dict(self) -> dict[str, Any]:
        return {"items": list(self.items), "seen": self.seen, "capacity": self.capacity,
                "generator": self.generator.get_state()}

    @classmethod
    def from_state_dict(cls, state: dict[str, Any]) -> ReservoirBuffer:
        buffer = cls(state["capacity"], seed=0)
        buffer.items, buffer.seen = list(state["items"]), state["seen"]
        buffer.generator.set_state(state["generator"])
        return buffer


@register_strategy("replay")
class Replay(Strategy):
    """Keeps ``capacity`` training samples (as dataset indices) of every finished task; each step of a
    later stage also trains on ``batch_size`` of them per old task, with that task's own loss."""

    options: ReplayOptions

    def __init__(self, options: ReplayOptions, seed: int = 0) -> None:
        super().__init__(options, seed)
        self.buffers: dict[str, ReservoirBuffer] = {}

    def after_stage(self, model: nn.Module, stage: StageContext) -> None:
        """Streams the finished task's training set through a fresh reservoir in a seeded order."""
        seed = stage.seed * 1000 + stage.index
        buffer = ReservoirBuffer(self.options.capacity, seed)
        order = torch.randperm(len(stage.train_data[stage.task]), generator=torch.Generator().manual_seed(seed))
        for index in order.tolist():
            buffer.offer(index)
        self.buffers[stage.task] = buffer

    def extra_loss(self, model: nn.Module, images: Tensor, outputs: Mapping[str, Any],
                   stage: StageContext) -> dict[str, Tensor]:
        terms: dict[str, Tensor] = {}
        for task, buffer in self.buffers.items():
            if task == stage.task:
                continue
            data = stage.train_data[task]
            old_images, old_targets = stage.collate([data[i] for i in buffer.sample(self.options.batch_size)])
            old_images = old_images.to(images.device)
            output = model(old_images, tasks=[task])[task]
            loss = stage.loss_fn(task, output, to_device(old_targets, images.device))["total"]
            terms[task] = self.options.weight * loss
        return terms

    def state_dict(self) -> dict[str, Any]:
        return {"buffers": {t: b.state_dict() for t, b in self.buffers.items()}}

    def load_state_dict(self, state: dict[str, Any], model: nn.Module) -> None:
        self.buffers = {t: ReservoirBuffer.from_state_dict(b) for t, b in state["buffers"].items()}
