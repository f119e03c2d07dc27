"""Distillation from a frozen previous-stage teacher, shared by ``lwf`` and ``kd``."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor, nn

from unihead.detection import OBJECTNESS
from unihead.detection_codecs import codec_for_output
from unihead.distributions import softmax_kl_per_position
from unihead.models import batchnorm_layers
from unihead.strategies.base import StageContext, Strategy
from unihead.tasks import DET

BOX_CHANNELS = slice(0, OBJECTNESS)


def softmax_kl(student: Tensor, teacher: Tensor, temperature: float, dim: int = 1) -> Tensor:
    """:func:`softmax_kl_per_position` averaged over every position (pixels, grid cells, images), so the
    scale does not depend on the output's resolution."""
    return softmax_kl_per_position(student, teacher, temperature, dim).mean()


def bernoulli_kl_per_cell(student_logits: Tensor, teacher_logits: Tensor, temperature: float) -> Tensor:
    """KL(teacher || student) of independent sigmoid outputs (objectness), times T^2, at every cell."""
    two_class = lambda z: torch.stack([z, torch.zeros_like(z)], dim=-1)  # noqa: E731  sigmoid = 2-way softmax
    return softmax_kl_per_position(two_class(student_logits), two_class(teacher_logits), temperature, dim=-1)


def objectness_distillation(student_logits: Tensor, teacher_logits: Tensor, temperature: float) -> Tensor:
    """:func:`bernoulli_kl_per_cell` summed over the batch's cells and divided by the teacher's expected number of
    object cells (the sum of its objectness probabilities, at least 1).

    The detection loss divides its objectness term by the batch's positive cells (:func:`unihead.losses.
    detection_loss`); the teacher's expected object count is its counterpart without labels. A mean over all
    cells gave one object 1/256 of a 16x16 grid's weight, so the channel that matters most for mAP was kept
    weakly.
    """
    count = teacher_logits.sigmoid().sum().clamp(min=1.0)
    return bernoulli_kl_per_cell(student_logits, teacher_logits, temperature).sum() / count


def weighted_mean(values: Tensor, weights: Tensor, eps: float = 1e-6) -> Tensor:
    """``sum(weights * values) / sum(weights)``; near 0 rather than NaN when every weight is near 0."""
    return (weights * values).sum() / weights.sum().clamp(min=eps)


def output_distillation(task: str, student: Tensor, teacher: Tensor, temperature: float) -> Tensor:
    """Distillation loss between one head's outputs of student and teacher (zero when they are equal).

    Classification and segmentation: softened KL over classes. Detection: Bernoulli KL on the
    objectness summed over every cell and normalised like the task loss (:func:`objectness_distillation`);
    on the box (MSE of the sigmoid offsets/sizes) and class channels (the head type's
    :meth:`~unihead.detection_codecs.DetectionCodec.class_distillation`) a mean over cells weighted
    by the teacher's objectness probability: a background cell's box and class outputs are never used, and
    matching them would only pull the student towards noise.
    """
    if task != DET:
        return softmax_kl(student, teacher, temperature)
    weights = teacher[:, OBJECTNESS].sigmoid()
    loss = objectness_distillation(student[:, OBJECTNESS], teacher[:, OBJECTNESS], temperature)
    box = (student[:, BOX_CHANNELS].sigmoid() - teacher[:, BOX_CHANNELS].sigmoid()).pow(2).mean(dim=1)
    cls = codec_for_output(student).class_distillation(student, teacher, temperature)
    return loss + weighted_mean(box, weights) + weighted_mean(cls, weights)


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
        return [t for t in self.old_tasks if t != stage.task]

    def teacher_outputs(self, model: nn.Module, images: Tensor, stage: StageContext,
                        features: bool = False) -> dict[str, Any]:
        """The teacher's outputs of the old tasks on ``images``, each of its modules in the mode of the
        student ``model``'s (see :func:`_mirror_modes`)."""
        if self.teacher is None:
            return {}
        tasks = [t for t in self.old_tasks if t != stage.task]
        _mirror_modes(model, self.teacher)
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
        self.teacher = _frozen_copy(model)
        self.old_tasks = [*stage.previous_tasks, stage.task]

    def state_dict(self) -> dict[str, Any]:
        return {"teacher": None if self.teacher is None else self.teacher.state_dict(),
                "old_tasks": list(self.old_tasks)}

    def load_state_dict(self, state: dict[str, Any], model: nn.Module) -> None:
        self.old_tasks = list(state["old_tasks"])
        self.teacher = None
        if state["teacher"] is not None:
            self.teacher = _frozen_copy(model)
            self.teacher.load_state_dict(state["teacher"])


def _frozen_copy(model: nn.Module) -> nn.Module:
    """A copy without gradients whose BatchNorm layers never update their running statistics
    (momentum 0: in train mode they normalise with the batch's statistics and keep their own)."""
    teacher = copy.deepcopy(model).eval()
    for parameter in teacher.parameters():
        parameter.requires_grad_(False)
    for layer in batchnorm_layers(teacher):
        layer.momentum = 0.0
    return teacher


def _mirror_modes(student: nn.Module, teacher: nn.Module) -> None:
    """Put every teacher module in the train/eval mode of the student's module of the same name.

    A student in train mode normalises with the batch's BatchNorm statistics; a teacher in eval mode
    would use its running ones, and the distillation terms would not vanish for identical weights.
    Mirroring also follows a student whose BatchNorm layers are kept in eval mode.
    """
    for (name, module), (teacher_name, teacher_module) in zip(student.named_modules(), teacher.named_modules(),
                                                              strict=True):
        if name != teacher_name:
            raise ValueError(f"the teacher's module {teacher_name!r} does not match the student's {name!r}")
        teacher_module.training = module.training
