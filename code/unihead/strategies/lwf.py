"""Learning without Forgetting: keep the old heads' outputs on new-task inputs close to the teacher's."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from torch import Tensor, nn

from unihead.strategies.base import StageContext, register_strategy
from unihead.strategies.distill import TeacherStrategy
from unihead.strategy_options import LwFOptions


@register_strategy("lwf")
class LearningWithoutForgetting(TeacherStrategy):
    """Temperature-scaled KL (times T^2) between the student's and the frozen previous-stage model's
    outputs of every earlier task, computed on the current task's images."""

    options: LwFOptions

    def extra_loss(self, model: nn.Module, images: Tensor, outputs: Mapping[str, Any],
                   stage: StageContext) -> dict[str, Tensor]:
        loss = self.distil_outputs(outputs, self.teacher_outputs(model, images, stage), stage, self.options.temperature)
        return {} if loss is None else {"kl": self.options.weight * loss}
