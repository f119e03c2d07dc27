"""An epoch's loss terms summed on the training device and read once, at the end of the epoch.

Reading a term per step (``float(loss)``) makes the host wait for the device at every step. Here each
step adds its terms to one float64 vector on the device, and notes the first step at which a term was
not finite; :meth:`LossSums.means` reads both once. A diverged epoch still stops the run, naming the
term that went first (the earliest step; within a step, the first in the order the terms came in).
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch
from torch import Tensor

from unihead.errors import TrainingDiverged

SUM, FIRST_BAD_STEP, FIRST_BAD_VALUE = range(3)
"""Rows of :attr:`LossSums.state`: each term's sum (times the batch's images), the first step at which it
was not finite (``inf``: none), and its value at that step."""


class LossSums:
    def __init__(self) -> None:
        self.names: list[str] = []
        self.steps = 0
        self.state: Tensor | None = None

    def add(self, terms: Mapping[str, Tensor], images: int) -> None:
        """Add one step's terms (scalars of any float type, e.g. bfloat16 under autocast), weighted by the
        step's ``images``: float64 sums of the values, as Python's ``float(value) * images`` summed them."""
        values = torch.stack([value.detach().double() for value in terms.values()])
        if self.state is None:
            self.names = list(terms)
            self.state = torch.zeros(3, len(values), dtype=torch.float64, device=values.device)
            self.state[FIRST_BAD_STEP] = math.inf
        elif list(terms) != self.names:
            raise ValueError(f"step {self.steps + 1} has loss terms {list(terms)}, the epoch's first step {self.names}")
        bad = ~torch.isfinite(values)
        first = bad & torch.isinf(self.state[FIRST_BAD_STEP])
        self.state[SUM] += values * images
        self.state[FIRST_BAD_VALUE] = torch.where(first, values, self.state[FIRST_BAD_VALUE])
        self.state[FIRST_BAD_STEP] = torch.where(first, float(self.steps), self.state[FIRST_BAD_STEP])
        self.steps += 1

    def means(self, images: int, where: str, lr: float) -> dict[str, float]:
        """Each term's mean over the epoch's ``images``, ``loss`` first, the others by name.

        Raises :class:`TrainingDiverged` (``where`` names the stage and epoch) if a term was not finite at
        some step.
        """
        if self.state is None:
            raise ValueError(f"{where}: the epoch had no training step")
        sums, first_steps, first_values = self.state.tolist()
        diverged = [(step, position) for position, step in enumerate(first_steps) if math.isfinite(step)]
        if diverged:
            step, position = min(diverged)
            raise TrainingDiverged(f"{where}: loss term '{self.names[position]}' is {first_values[position]} at "
                                   f"step {int(step) + 1} of {self.steps} (learning rate {lr:.3g}); the run is stopped")
        total = dict(zip(self.names, sums, strict=True))
        return {name: total[name] / images for name in ["loss", *sorted(name for name in total if name != "loss")]}
