"""Distillation from a frozen previous-stage teacher, shared by ``lwf``, ``kd`` and ``kd_replay``."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from unihead.strategies.base import StageContext, Strategy
from unihead.tasks import DET

BOX_CHANNELS = slice(0, 4)
OBJECTNESS_CHANNEL = 4
PAPER_DET_CHANNELS = 6


def softmax_kl(student: Tensor, teacher: Tensor, temperature: float, dim: int = 1) -> Tensor:
    """Hinton's KL(teacher || student) of the temperature-softened distributions, times T^2.

    Averaged over every position other than ``dim`` (pixels, grid cells, images), so the scale does
    not depend on the output's resolution.
    """
    classes = student.shape[dim]
    s = student.movedim(dim, -1).reshape(-1, classes) / temperature
    t = teacher.movedim(dim, -1).reshape(-1, classes) / temperature
    kl = F.kl_div(F.log_softmax(s, dim=1), F.log_softmax(t, dim=1), log_target=True, reduction="batchmean")
    return kl * temperature**2


def bernoulli_kl(student_logits: Tensor, teacher_logits: Tensor, temperature: float) -> Tensor:
    """KL(teacher || student) of independent sigmoid outputs (objectness), times T^2, averaged."""
    two_class = lambda z: torch.stack([z, torch.zeros_like(z)], dim=-1)  # noqa: E731  sigmoid = 2-way softmax
    return softmax_kl(two_class(student_logits), two_class(teacher_logits), temperature, dim=-1)


def output_distillation(task: str, student: Tensor, teacher: Tensor, temperature: float) -> Tensor:
    """Distillation loss between one head's outputs of student and teacher (zero when they are equal).

    Classification and segmentation: softened KL over classes. Detection: Bernoulli KL on the
    objectness, MSE on the sigmoid box offsets/sizes, and on the class channels either softened KL
    (``logits`` head) or MSE of the regressed class index (``paper`` head).
    """
    if task != DET:
        return softmax_kl(student, teacher, temperature)
    loss = bernoulli_kl(student[:, OBJECTNESS_CHANNEL], teacher[:, OBJECTNESS_CHANNEL], temperature)
    loss = loss + F.mse_loss(student[:, BOX_CHANNELS].sigmoid(), teacher[:, BOX_CHANNELS].sigmoid())
    if student.shape[1] > PAPER_DET_CHANNELS:
        return loss + softmax_kl(student[:, OBJECTNESS_CHANNEL + 1:], teacher[:, OBJECTNESS_CHANNEL + 1:], temperature)
    return loss + F.mse_loss(student[:, OBJECTNESS_CHANNEL + 1:], teacher[:, OBJECTNESS_CHANNEL + 1:])


class TeacherStrategy(Strategy):
    """Keeps a frozen copy of the model as it was at the end of the previous stage.

    The copy is taken in ``after_stage`` (not ``before_stage``) and saved in the strategy's state, so a
    run resumed in the middle of a stage distils from the same teacher as an uninterrupted one.
    """

    def __init__(self, options: Any, seed: int = 0) -> None:
        super().__init__(options, seed)
        self.teacher: nn.Module | None = None
        self.old_tasks: list[str] = []

    def output_tasks(self, stage: StageContext) -> list[str]:
        return [*super().output_tasks(stage), *(t for t in self.old_tasks if t != stage.task)]

    def teacher_outputs(self, images: Tensor, stage: StageContext, features: bool = False) -> dict[str, Any]:
        if self.teacher is None:
            return {}
        tasks = [t for t in self.old_tasks if t != stage.task]
        with torch.no_grad():
            return self.teacher(images, tasks=tasks, return_features=features)

    def distil_outputs(self, outputs: Mapping[str, Any], teacher: Mapping[str, Any], stage: StageContext,
                       temperature: float) -> Tensor | None:
        """Sum of :func:`output_distillation` over the old tasks' heads; None without a teacher."""
        tasks = [t for t in self.old_tasks if t != stage.task]
        if self.teacher is None or not tasks:
            return None
        return sum(output_distillation(t, outputs[t], teacher[t], temperature) for t in tasks)

    def after_stage(self, model: nn.Module, stage: StageContext) -> None:
        super().after_stage(model, stage)
        self.teacher = _frozen_copy(model)
        self.old_tasks = [*stage.previous_tasks, stage.task]

    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        state["teacher"] = None if self.teacher is None else self.teacher.state_dict()
        state["old_tasks"] = list(self.old_tasks)
        return state

    def load_state_dict(self, state: dict[str, Any], model: nn.Module) -> None:
        super().load_state_dict(state, model)
        self.old_tasks = list(state["old_tasks"])
        self.teacher = None
        if state["teacher"] is not None:
            self.teacher = _frozen_copy(model)
            self.teacher.load_state_dict(state["teacher"])


def _frozen_copy(model: nn.Module) -> nn.Module:
    teacher = copy.deepcopy(model).eval()
    for parameter in teacher.parameters():
        parameter.requires_grad_(False)
    return teacher
