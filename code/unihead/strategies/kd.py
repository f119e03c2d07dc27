"""Knowledge distillation from the previous-stage checkpoint: logits, FPN features and attention maps."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch.nn.functional as F
from torch import Tensor, nn

from unihead.config import KDOptions
from unihead.models import FEATURES
from unihead.strategies.base import StageContext, register_strategy
from unihead.strategies.distill import TeacherStrategy


def attention_map(features: Tensor) -> Tensor:
    """Spatial attention of a feature map (Zagoruyko & Komodakis): channel mean of squares, L2-normalised."""
    return F.normalize(features.pow(2).mean(dim=1).flatten(1), dim=1)


def relative_mse(student: Tensor, teacher: Tensor, eps: float = 1e-8) -> Tensor:
    """MSE divided by the teacher's mean squared activation: 0 when equal, 1 for a zero student.

    Raw FPN activations reach magnitudes where a plain MSE is thousands of times the task losses
    (seen on the real mini data); this keeps the term's scale independent of them.
    """
    return F.mse_loss(student, teacher) / (teacher.pow(2).mean() + eps)


def feature_distillation(student: Mapping[str, Tensor], teacher: Mapping[str, Tensor]) -> tuple[Tensor, Tensor]:
    """Mean over FPN levels of the relative feature MSE and of the attention-map MSE (relational term)."""
    levels = sorted(teacher)
    feature = sum(relative_mse(student[k], teacher[k]) for k in levels) / len(levels)
    attention = sum(F.mse_loss(attention_map(student[k]), attention_map(teacher[k])) for k in levels) / len(levels)
    return feature, attention


@register_strategy("kd")
class KnowledgeDistillation(TeacherStrategy):
    """Logit KL on the old tasks' heads plus FPN-feature and attention-map matching, each weighted."""

    options: KDOptions

    @property
    def needs_features(self) -> bool:
        return True

    def extra_loss(self, model: nn.Module, images: Tensor, outputs: Mapping[str, Any],
                   stage: StageContext) -> dict[str, Tensor]:
        if self.teacher is None:
            return {}
        terms: dict[str, Tensor] = {}
        teacher = self.teacher_outputs(model, images, stage, features=True)
        logits = self.distil_outputs(outputs, teacher, stage, self.options.temperature)
        if logits is not None:
            terms["logits"] = self.options.logit_weight * logits
        feature, attention = feature_distillation(outputs[FEATURES], teacher[FEATURES])
        terms["features"] = self.options.feature_weight * feature
        terms["attention"] = self.options.attention_weight * attention
        return terms
