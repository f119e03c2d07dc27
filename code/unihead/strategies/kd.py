"""Knowledge distillation from the previous-stage checkpoint: logits, FPN features and attention maps."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from unihead.models import FEATURES
from unihead.strategies.base import StageContext, register_strategy
from unihead.strategies.distill import TeacherStrategy
from unihead.strategy_options import KDOptions


def attention_map(features: Tensor) -> Tensor:
    """Spatial attention of a feature map (Zagoruyko & Komodakis): channel mean of squares, L2-normalised."""
    return F.normalize(features.pow(2).mean(dim=1).flatten(1), dim=1)


def attention_transfer(student: Mapping[str, Tensor], teacher: Mapping[str, Tensor]) -> Tensor:
    """Zagoruyko & Komodakis' attention transfer (2017, eq. 2, p = 2) with beta = 1:
    1/2 sum over levels of ||Q_s/||Q_s||_2 - Q_t/||Q_t||_2||_2, the norm of the difference of the normalised,
    vectorised maps of each image, averaged over the batch.

    The norm of a difference of unit vectors lies in [0, 2] at any resolution; a mean of its squares over the
    map's H*W cells shrank as 1/(H*W) (at 512 px, about 1/300 of the feature term's backbone gradient). Their beta of
    1000 goes with their code's mean over the map's elements (the paper: "10^3 divided by number of elements in
    attention map and batch size"); on the per-image norm, beta 1 (``kd.attention_weight``, which plays beta's
    part) moves the backbone about as much as the logit and feature terms (test_distillation.py measures it).
    """
    levels = sorted(teacher)
    return sum(torch.linalg.vector_norm(attention_map(student[k]) - attention_map(teacher[k]), dim=1).mean()
               for k in levels) / 2


def relative_mse(student: Tensor, teacher: Tensor, eps: float = 1e-8) -> Tensor:
    """MSE divided by the teacher's mean squared activation: 0 when equal, 1 for a zero student.

    Raw FPN activations reach magnitudes where a plain MSE is thousands of times the task losses
    (seen on the real mini data); this keeps the term's scale independent of them.
    """
    return F.mse_loss(student, teacher) / (teacher.pow(2).mean() + eps)


def feature_distillation(student: Mapping[str, Tensor], teacher: Mapping[str, Tensor]) -> tuple[Tensor, Tensor]:
    """Mean over FPN levels of the relative feature MSE, and the :func:`attention_transfer` (relational term)."""
    levels = sorted(teacher)
    feature = sum(relative_mse(student[k], teacher[k]) for k in levels) / len(levels)
    return feature, attention_transfer(student, teacher)


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
