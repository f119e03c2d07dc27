"""The images a run pushes through its networks while it trains: the compute a strategy costs, as a count.

Replay forwards its replayed samples through the student, LwF and KD forward the batch through a teacher too,
EWC forwards its Fisher samples after a stage: a :class:`ForwardCount` sees all of them through one global
forward pre-hook, so no strategy reports its own (and a new strategy is counted without a line of its own).
An image forwarded while gradients are on is one a backward pass follows (the student's batch, the replayed
samples, EWC's per-sample gradients); one forwarded without (a teacher's) costs a forward pass only.
"""

from __future__ import annotations

from types import TracebackType
from typing import Any

import torch
from torch import nn
from torch.nn.modules.module import register_module_forward_pre_hook

from unihead.models import UniHeadModel


class ForwardCount:
    """While active (``with ForwardCount() as count:``), counts the images every network of the model's class
    (:class:`UniHeadModel`: a student or a teacher) is called on: ``forwarded`` all of them, ``backpropagated``
    those forwarded with gradients enabled."""

    def __init__(self) -> None:
        self.forwarded = 0
        self.backpropagated = 0
        self._handle: Any = None

    def __enter__(self) -> ForwardCount:
        self._handle = register_module_forward_pre_hook(self._count)
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self._handle.remove()

    def _count(self, module: nn.Module, args: tuple[Any, ...]) -> None:
        if isinstance(module, UniHeadModel):
            images = args[0].shape[0]
            self.forwarded += images
            if torch.is_grad_enabled():
                self.backpropagated += images
