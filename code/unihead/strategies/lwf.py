"""Learning without Forgetting: keep the old heads' outputs on new-task inputs close to the teacher's."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from torch import Tensor, nn

from unihead.config import bounded, check_fields
from unihead.strategies.base import StageContext, register_strategy
from unihead.strategies.distill import TeacherStrategy


@register_strategy("lwf")
class LearningWithoutForgetting(TeacherStrategy):
    """Temperature-scaled KL (times T^2) between the student's and the frozen previous-stage model's
    outputs of every earlier task, computed on the current task's images."""

    @dataclass(frozen=True)
    class Options:
        temperature: float = field(default=2.0, metadata=bounded(0, low_open=True))
        weight: float = field(default=1.0, metadata=bounded(0))

        def __post_init__(self) -> None:
            check_fields(self)

    def extra_loss(self, model: nn.Module, images: Tensor, outputs: Mapping[str, Any],
                   stage: StageContext) -> dict[str, Tensor]:
        terms = super().extra_loss(model, images, outputs, stage)
        loss = self.distil_outputs(outputs, self.teacher_outputs(model, images, stage), stage, self.options.temperature)
        if loss is not None:
            terms["lwf_kl"] = self.options.weight * loss
        return terms
