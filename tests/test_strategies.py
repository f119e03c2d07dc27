"""The forgetting strategies' own pieces: EWC penalty, distillation losses, the replay reservoir."""

from __future__ import annotations

import copy
import math

import pytest
import torch

from unihead.config import ConfigError, ModelConfig
from unihead.models import FEATURES, build_model
from unihead.strategies import STRATEGIES, StageContext, create_strategy
from unihead.strategies.distill import output_distillation, softmax_kl
from unihead.strategies.kd import feature_distillation, relative_mse
from unihead.strategies.replay import ReservoirBuffer


def test_registry_holds_the_papers_strategies():
    assert {"none", "ewc", "lwf", "replay", "kd", "kd_replay"} <= set(STRATEGIES)


def test_unknown_strategy_and_bad_options_name_the_key():
    with pytest.raises(ConfigError, match=r"unknown strategy 'si' \(config key 'strategies.si' or the run name\); "
                                          r"registered strategies: .*'ewc'"):
        create_strategy("si")
    with pytest.raises(ConfigError, match="unknown config key 'strategies.ewc.lambda'"):
        create_strategy("ewc", {"lambda": 3.0})
    with pytest.raises(ConfigError, match="'strategies.kd_replay.capacity': expected int"):
        create_strategy("kd_replay", {"capacity": "50"})


def test_kd_replay_has_the_options_of_both_parents():
    strategy = create_strategy("kd_replay", {"capacity": 7, "temperature": 4.0})
    assert (strategy.options.capacity, strategy.options.temperature, strategy.options.feature_weight) == (7, 4.0, 1.0)


def test_ewc_penalty_is_zero_at_the_anchor_and_quadratic_in_the_distance():
    model = torch.nn.Linear(3, 2)
    ewc = create_strategy("ewc", {"penalty_weight": 2.0})
    ewc.fisher = {name: torch.full_like(p, 0.5) for name, p in model.named_parameters()}
    ewc.anchor = {name: p.detach().clone() for name, p in model.named_parameters()}
    assert ewc.penalty(model).item() == 0.0
    with torch.no_grad():
        model.weight += 0.1
    # lambda/2 * sum F d^2 = 1.0 * 6 weights * 0.5 * 0.01
    assert ewc.penalty(model).item() == pytest.approx(0.03, rel=1e-5)
    with torch.no_grad():
        model.weight += 0.1
    assert ewc.penalty(model).item() == pytest.approx(0.12, rel=1e-5)


def test_softened_kl_matches_hand_computation_and_scales_with_t_squared():
    student, teacher = torch.tensor([[0.0, 0.0]]), torch.tensor([[math.log(3.0), 0.0]])
    # T = 1: teacher (3/4, 1/4), student (1/2, 1/2): KL = 3/4 log(3/2) + 1/4 log(1/2)
    expected = 0.75 * math.log(1.5) + 0.25 * math.log(0.5)
    assert softmax_kl(student, teacher, 1.0).item() == pytest.approx(expected, rel=1e-5)
    assert softmax_kl(teacher, teacher, 3.0).item() == pytest.approx(0.0, abs=1e-7)


@pytest.mark.parametrize("det_head", ["paper", "logits"])
def test_distillation_is_zero_when_student_equals_teacher(det_head):
    torch.manual_seed(0)
    model = build_model(ModelConfig(det_head=det_head)).eval()
    with torch.no_grad():
        out = model(torch.randn(2, 3, 64, 64), return_features=True)
    for task in ("seg", "det", "cls"):
        assert output_distillation(task, out[task], out[task].clone(), 2.0).item() == pytest.approx(0.0, abs=1e-6)
        assert output_distillation(task, out[task] + torch.randn_like(out[task]), out[task], 2.0).item() > 1e-3
    feature, attention = feature_distillation(out[FEATURES], copy.deepcopy(out[FEATURES]))
    assert (feature.item(), attention.item()) == (0.0, 0.0)


@pytest.mark.parametrize("name", ["lwf", "kd"])
def test_teacher_losses_vanish_right_after_the_snapshot(name):
    torch.manual_seed(0)
    model = build_model().eval()
    strategy = create_strategy(name)
    stage = StageContext(index=0, task="seg", train_data={}, previous_tasks=[], loss_fn=None, collate=None,
                         batch_size=2, seed=0)
    strategy.after_stage(model, stage)
    next_stage = StageContext(index=1, task="det", train_data={}, previous_tasks=["seg"], loss_fn=None,
                              collate=None, batch_size=2, seed=0)
    images = torch.randn(2, 3, 64, 64)
    tasks = ["det", *strategy.output_tasks(next_stage)]
    assert tasks == ["det", "seg"]
    outputs = model(images, tasks=tasks, return_features=strategy.needs_features)
    terms = strategy.extra_loss(model, images, outputs, next_stage)
    assert terms and all(abs(v.item()) < 1e-6 for v in terms.values())


def test_reservoir_keeps_at_most_its_capacity():
    buffer = ReservoirBuffer(capacity=50, seed=0)
    for item in range(30):
        buffer.offer(item)
    assert buffer.items == list(range(30))
    for item in range(30, 1000):
        buffer.offer(item)
    assert len(buffer.items) == 50 and len(set(buffer.items)) == 50 and buffer.seen == 1000


def test_reservoir_keeps_every_item_with_equal_probability():
    """Chi-square test of the inclusion counts over 2,000 seeded streams of 20 items into 5 slots."""
    streams, items, capacity = 2000, 20, 5
    counts = torch.zeros(items)
    for seed in range(streams):
        buffer = ReservoirBuffer(capacity, seed)
        for item in range(items):
            buffer.offer(item)
        counts[buffer.items] += 1
    expected = streams * capacity / items  # 500 each
    chi2 = ((counts - expected) ** 2 / expected).sum().item()
    assert chi2 < 36.19  # 99th percentile of chi-square with 19 degrees of freedom


def test_reservoir_round_trips_through_its_state():
    buffer = ReservoirBuffer(capacity=4, seed=3)
    for item in range(10):
        buffer.offer(item)
    clone = ReservoirBuffer.from_state_dict(copy.deepcopy(buffer.state_dict()))
    assert clone.sample(8) == buffer.sample(8)


def test_feature_term_is_relative_to_the_teachers_scale():
    teacher = torch.full((1, 2, 3, 3), 100.0)
    assert relative_mse(torch.zeros_like(teacher), teacher).item() == pytest.approx(1.0)
    assert relative_mse(teacher * 1.1, teacher).item() == pytest.approx(0.01)
    assert relative_mse(teacher / 100 * 1.1, teacher / 100).item() == pytest.approx(0.01)
