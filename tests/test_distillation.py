"""Distillation from the frozen teacher: detection terms weighted by the teacher's objectness, and a teacher
that runs in the student's BatchNorm mode so that the terms vanish for identical weights."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from unihead.config import ModelConfig
from unihead.detection_codecs import DET_CODECS
from unihead.engine.train import set_train_mode
from unihead.models import batchnorm_layers, build_model
from unihead.strategies import StageContext, create_strategy
from unihead.strategies.distill import output_distillation
from unihead.strategies.kd import feature_distillation
from unihead.tasks import NUM_DET_CLASSES

TERMS = {"lwf": {"lwf_kl"}, "kd": {"kd_logits", "kd_features", "kd_attention"}}


def _det(objectness: list[float], channels: int) -> torch.Tensor:
    """Raw detection output of one image on a 1x2 grid: zeros but the given objectness logits."""
    raw = torch.zeros(1, channels, 1, 2)
    raw[0, 4, 0] = torch.tensor(objectness)
    return raw


@pytest.mark.parametrize("codec", DET_CODECS.values(), ids=lambda codec: codec.name)
def test_box_and_class_differences_of_a_background_cell_do_not_count(codec):
    channels = codec.channels(NUM_DET_CLASSES)
    teacher = _det([-30.0, 30.0], channels)  # cell 0 background (p ~ 1e-13), cell 1 an object (p ~ 1)
    student = teacher.clone()
    student[0, :4, 0, 0] = 5.0
    student[0, 5:, 0, 0] = torch.linspace(-3.0, 3.0, channels - 5)
    assert output_distillation("det", teacher.clone(), teacher, 1.0).item() == 0.0
    assert output_distillation("det", student, teacher, 1.0).item() == pytest.approx(0.0, abs=1e-9)


def test_box_and_class_differences_of_a_foreground_cell_count_in_full():
    teacher = _det([-30.0, 30.0], 15)
    student = teacher.clone()
    student[0, :4, 0, 1] = math.log(3.0)  # sigmoid 0.75 against 0.5: squared error 1/16 on each box channel
    student[0, 5, 0, 1] = math.log(11.0)  # teacher uniform over 10 classes, student (11, 1, ..., 1) / 20
    # KL(uniform || student) = -ln 10 - (1/10) sum ln s_i = ln 20 - ln 10 - ln(11) / 10
    expected = 1 / 16 + math.log(2.0) - math.log(11.0) / 10
    assert output_distillation("det", student, teacher, 1.0).item() == pytest.approx(expected, rel=1e-6)


def test_box_term_is_a_mean_weighted_by_the_teachers_objectness():
    teacher = _det([math.log(3.0), -math.log(3.0)], 6)  # weights 3/4 and 1/4
    student = teacher.clone()
    student[0, :4, 0, 1] = math.log(3.0)
    # (3/4 * 0 + 1/4 * 1/16) / (3/4 + 1/4); an unweighted mean over the cells would give 1/32
    assert output_distillation("det", student, teacher, 2.0).item() == pytest.approx(1 / 64, rel=1e-6)


def _objectness_only(teacher_logits: list[float]) -> tuple[torch.Tensor, torch.Tensor]:
    """Student and teacher on a 1x3 grid, equal but for the objectness: the student's is 0 (p = 1/2)."""
    teacher = torch.zeros(1, 15, 1, 3)
    teacher[0, 4, 0] = torch.tensor(teacher_logits)
    student = teacher.clone()
    student[0, 4] = 0.0
    return student, teacher


def test_objectness_distillation_is_normalised_by_the_teachers_expected_object_count():
    student, teacher = _objectness_only([math.log(3.0), math.log(3.0), -math.log(3.0)])  # p = 3/4, 3/4, 1/4
    per_cell = 0.75 * math.log(1.5) + 0.25 * math.log(0.5)  # KL(3/4 || 1/2) = KL(1/4 || 1/2)
    # summed over the 3 cells, divided by 3/4 + 3/4 + 1/4 = 7/4 expected objects; a mean over cells gives per_cell
    assert output_distillation("det", student, teacher, 1.0).item() == pytest.approx(3 * per_cell / 1.75, rel=1e-6)


def test_objectness_distillation_of_a_teacher_seeing_no_object_is_a_sum_over_cells():
    student, teacher = _objectness_only([-30.0, -30.0, -30.0])  # the expected count ~1e-13 is floored at 1
    # KL(0 || 1/2) = ln 2 on each cell, summed: three cells the student thinks half likely objects count in full
    assert output_distillation("det", student, teacher, 1.0).item() == pytest.approx(3 * math.log(2.0), rel=1e-6)


def _one_hot_features(size: int, cell: int, batch: int = 2) -> torch.Tensor:
    """One channel on a size x size map: 1 at ``cell`` (row-major) of the first image, 0 elsewhere; the other
    images all 1 at the first cell."""
    features = torch.zeros(batch, 1, size * size)
    features[0, 0, cell] = 1.0
    features[1:, 0, 0] = 1.0
    return features.view(batch, 1, size, size)


def test_attention_transfer_is_half_the_norm_of_the_normalised_maps_difference_summed_over_levels():
    """Zagoruyko & Komodakis' beta/2 sum_j ||Q_s/||Q_s|| - Q_t/||Q_t||||_2 (beta = attention_weight, 1 here),
    averaged over the batch: two different one-hot maps are sqrt(2) apart at every resolution."""
    teacher = {"p3": _one_hot_features(2, 0), "p4": _one_hot_features(4, 0)}
    student = {"p3": _one_hot_features(2, 3), "p4": _one_hot_features(4, 15)}
    # the first image: sqrt(2) on each level, the second: 0; a mean of squares would give 2/4 and 2/16 per image
    expected = 0.5 * (math.sqrt(2.0) / 2 + math.sqrt(2.0) / 2)
    assert feature_distillation(student, teacher)[1].item() == pytest.approx(expected, rel=1e-6)


def _stage(index: int, task: str, previous: list[str]) -> StageContext:
    return StageContext(index=index, task=task, train_data={}, previous_tasks=previous, loss_fn=None,
                        collate=None, batch_size=4, seed=0)


AFTER_DET = _stage(1, "det", ["seg"])
CLS_STAGE = _stage(2, "cls", ["seg", "det"])


@pytest.fixture
def model() -> nn.Module:
    torch.manual_seed(0)
    return build_model(ModelConfig(pretrained=False, det_head="logits", levels={"seg": 8, "det": 16, "cls": 32}))


@pytest.fixture
def images() -> torch.Tensor:
    return torch.randn(4, 3, 64, 64, generator=torch.Generator().manual_seed(1))


def _terms(strategy, model: nn.Module, images: torch.Tensor) -> dict[str, float]:
    tasks = [CLS_STAGE.task, *strategy.output_tasks(CLS_STAGE)]
    outputs = model(images, tasks=tasks, return_features=strategy.needs_features)
    return {name: value.item() for name, value in strategy.extra_loss(model, images, outputs, CLS_STAGE).items()}


@pytest.mark.parametrize("name", ["lwf", "kd"])
@pytest.mark.parametrize("mode", ["train", "eval", "frozen_batchnorm"])
def test_distillation_vanishes_for_identical_weights_in_every_student_mode(model, images, name, mode):
    strategy = create_strategy(name)
    strategy.after_stage(model, AFTER_DET)
    if mode == "eval":
        model.eval()
    else:  # frozen_batchnorm: what the engine's train.bn freeze_after_first does from stage 2 on
        set_train_mode(model, freeze_batchnorm=mode == "frozen_batchnorm")
    terms = _terms(strategy, model, images)
    assert set(terms) == TERMS[name]
    assert all(abs(value) < 1e-6 for value in terms.values()), terms


def test_a_train_mode_teacher_keeps_its_running_statistics(model, images):
    strategy = create_strategy("kd").components["kd"]
    strategy.after_stage(model, AFTER_DET)
    teacher_norms = batchnorm_layers(strategy.teacher)
    assert teacher_norms and all(m.momentum == 0.0 for m in teacher_norms)
    assert all(m.momentum == 0.1 for m in batchnorm_layers(model))
    before = [(m.running_mean.clone(), m.running_var.clone()) for m in teacher_norms]
    model.train()
    strategy.teacher_outputs(model, images, CLS_STAGE, features=True)
    assert all(m.training for m in teacher_norms)
    for m, (mean, var) in zip(teacher_norms, before, strict=True):
        assert torch.equal(m.running_mean, mean) and torch.equal(m.running_var, var)


def test_a_resumed_teacher_is_rebuilt_with_frozen_statistics(model, images):
    strategy = create_strategy("lwf")
    strategy.after_stage(model, AFTER_DET)
    resumed = create_strategy("lwf")
    resumed.load_state_dict(strategy.state_dict(), model)
    assert all(m.momentum == 0.0 for m in batchnorm_layers(resumed.components["lwf"].teacher))
    model.train()
    assert abs(_terms(resumed, model, images)["lwf_kl"]) < 1e-6


def _backbone_gradient_norm(model: nn.Module, loss: torch.Tensor) -> float:
    model.zero_grad()
    loss.backward(retain_graph=True)
    return torch.cat([p.grad.flatten() for p in model.backbone.parameters() if p.grad is not None]).norm().item()


@pytest.mark.slow
@pytest.mark.parametrize("size", [64, 512])
def test_every_kd_term_moves_the_backbone_about_as_much_as_the_logits_term(model, size):
    """At weights 0.01 away from the teacher's, no KD term's gradient on the backbone is more than 100 times
    another's (so each is within two orders of magnitude of the logits term's), at the tests' 64 px and the
    paper's 512 px. A mean of squares over the attention map shrank as 1/(H*W): 315 times below the features'
    at 512 px."""
    strategy = create_strategy("kd")
    strategy.after_stage(model, AFTER_DET)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(torch.randn(parameter.shape, generator=torch.Generator().manual_seed(1)), alpha=0.01)
    model.train()
    images = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(1))
    outputs = model(images, tasks=[CLS_STAGE.task, *strategy.output_tasks(CLS_STAGE)], return_features=True)
    terms = strategy.extra_loss(model, images, outputs, CLS_STAGE)
    norms = {name: _backbone_gradient_norm(model, value) for name, value in terms.items()}
    assert set(norms) == TERMS["kd"] and min(norms.values()) > 0, norms
    assert max(norms.values()) / min(norms.values()) < 100, norms


def test_kd_gradients_are_finite_for_identical_weights(model, images):
    """The first step of a stage: the attention term's norm of a zero difference has a zero (not NaN) gradient."""
    strategy = create_strategy("kd")
    strategy.after_stage(model, AFTER_DET)
    model.train()
    outputs = model(images, tasks=[CLS_STAGE.task, *strategy.output_tasks(CLS_STAGE)], return_features=True)
    sum(strategy.extra_loss(model, images, outputs, CLS_STAGE).values()).backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
