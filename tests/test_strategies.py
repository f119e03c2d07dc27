"""The forgetting strategies: EWC's Fisher and penalty, distillation losses, the replay reservoir, the
optimiser's state at stage boundaries, and every strategy's terms reaching the update."""

from __future__ import annotations

import copy
import math
from functools import partial

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Subset

from unihead.config import ModelConfig
from unihead.data import build_dataset, collate
from unihead.detection_codecs import DET_CODECS
from unihead.engine import run as engine
from unihead.engine.run import Run, execute
from unihead.engine.train import train_one_epoch
from unihead.likelihood import BOX_SIGMA, sampled_log_likelihood
from unihead.losses import task_loss
from unihead.models import FEATURES, build_model
from unihead.runs import strategy_components
from unihead.schema import ConfigError
from unihead.scopes import run_config
from unihead.strategies import STRATEGIES, StageContext, create_strategy
from unihead.strategies import ewc as ewc_module
from unihead.strategies.distill import output_distillation, softmax_kl
from unihead.strategies.ewc import ElasticWeightConsolidation, accumulate, fisher_diagonal, normalised
from unihead.strategies.kd import feature_distillation, relative_mse
from unihead.strategies.replay import ReservoirBuffer
from unihead.strategy_options import STRATEGY_NAMES, EWCOptions, KDOptions, ReplayOptions
from unihead.tasks import NUM_DET_CLASSES, TASKS

SMALL_MODEL = ModelConfig(pretrained=False, det_head="logits", levels={"seg": 8, "det": 16, "cls": 32})
"""The real architecture, with heads on three FPN levels, as the 64 px tests run it."""


def test_registry_holds_the_strategies_runs_combine():
    assert sorted(STRATEGIES) == ["ewc", "kd", "lwf", "replay"]
    assert [tuple(create_strategy(name).components) for name in STRATEGY_NAMES] == \
        [(), ("ewc",), ("lwf",), ("replay",), ("kd",), ("kd", "replay")]


def test_unknown_strategy_and_bad_options_name_the_key():
    with pytest.raises(ConfigError, match=r"strategy 'si': expected 'none', a strategy \['ewc', 'lwf', 'replay', "
                                          r"'kd'\], an alias \['kd_replay'\] or strategies joined by '\+'"):
        create_strategy("si")
    with pytest.raises(ConfigError, match="unknown config key 'strategies.ewc.lambda'"):
        create_strategy("ewc", {"ewc": {"lambda": 3.0}})
    with pytest.raises(ConfigError, match="'strategies.replay.capacity': expected int"):
        create_strategy("kd_replay", {"replay": {"capacity": "fifty"}})


def test_a_combination_holds_one_instance_per_strategy_each_with_its_own_options():
    """lwf and kd both have a temperature: each reads its own, never the other's."""
    options = {"kd": {"temperature": 4.0}, "replay": {"capacity": 7}, "lwf": {"temperature": 3.0}}
    kd_replay = create_strategy("kd_replay", options)
    assert kd_replay.components["kd"].options == KDOptions(temperature=4.0)
    assert kd_replay.components["replay"].options == ReplayOptions(capacity=7)
    lwf_kd = create_strategy("lwf+kd", options)
    assert [c.options.temperature for c in lwf_kd.components.values()] == [3.0, 4.0]
    assert create_strategy("kd+lwf", {"lwf": {"temperature": 3.0}}).components["kd"].options.temperature == 2.0
    assert lwf_kd.needs_features and not create_strategy("lwf+replay").needs_features


def test_ewc_penalty_is_zero_at_the_anchor_and_quadratic_in_the_distance():
    model = torch.nn.Linear(3, 2)
    ewc = ElasticWeightConsolidation(EWCOptions(penalty_weight=2.0))
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


@pytest.mark.parametrize("det_head", list(DET_CODECS))
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


class SoftmaxLayer(nn.Module):
    """cls logits = W x + b with W = 0 and b = log p: every input gets the class probabilities p."""

    def __init__(self, probabilities: list[float]) -> None:
        super().__init__()
        self.linear = nn.Linear(2, len(probabilities))
        with torch.no_grad():
            self.linear.weight.zero_()
            self.linear.bias.copy_(torch.tensor(probabilities).log())

    def forward(self, images: torch.Tensor, tasks: list[str]) -> dict[str, torch.Tensor]:
        return {"cls": self.linear(images)}


def test_fisher_of_a_softmax_layer_is_its_closed_form():
    """F_b[k] = p_k (1 - p_k) and F_W[k, j] = p_k (1 - p_k) E[x_j^2], labels drawn from p, not the data's."""
    inputs = [torch.tensor([1.0, 2.0]), torch.tensor([3.0, -1.0])]  # E[x^2] = (5, 2.5)
    data = [(inputs[i % 2], 0) for i in range(4000)]  # every dataset label is class 0
    stage = StageContext(index=0, task="cls", train_data={"cls": data}, previous_tasks=[],
                         loss_fn=lambda task, output, target: {"total": F.cross_entropy(output, target)},
                         collate=collate, batch_size=1, seed=0)
    fisher = fisher_diagonal(SoftmaxLayer([0.5, 0.3, 0.2]), stage, samples=4000)
    # p_k (1 - p_k) = 0.25, 0.21, 0.16; for p = 0.5 the squared score (1[y=k] - 0.5)^2 is 0.25 for every draw
    assert fisher["linear.bias"][0].item() == pytest.approx(0.25, rel=1e-6)
    assert fisher["linear.weight"][0].tolist() == pytest.approx([1.25, 0.625], rel=1e-6)
    # the others are means of 4,000 draws (standard errors 1.4% and 2.4%); the data's labels would give 0.09, 0.04
    assert fisher["linear.bias"][1:].tolist() == pytest.approx([0.21, 0.16], rel=0.05)
    assert fisher["linear.weight"][1:].flatten().tolist() == pytest.approx([1.05, 0.525, 0.8, 0.4], rel=0.05)


@pytest.mark.parametrize("det_head", list(DET_CODECS))
def test_detection_score_is_that_of_bernoulli_objectness_gaussian_box_and_class(det_head):
    """A 32 x 32 grid of raw outputs 0: objectness p = 0.5, box (cx, cy, w, h) with sigmoid 0.5 each, class
    p = 0.1 each (or index 0). Per cell, the score (gradient times the 1024 cells of the mean):

    objectness o - 0.5, squared 0.25 at every draw. Box and class count where o = 1 (half the draws):
    box (s - b) / sigma^2 * db/dt with db/dt = sigmoid'(0) = 0.25 (divided by 32 for cx, cy), so
    E = 0.5 * (0.25 / 32)^2 / sigma^2 for tx, ty and 0.5 * 0.25^2 / sigma^2 for tw, th; class logit
    E = 0.5 * E[(1[y=k] - 0.1)^2] = 0.5 * 0.09; paper's class index, a unit Gaussian: 0.5 * 1.
    """
    channels, grid, draws = DET_CODECS[det_head].channels(NUM_DET_CLASSES), 32, 100
    raw = torch.zeros(1, channels, grid, grid, requires_grad=True)
    generator = torch.Generator().manual_seed(0)
    squares = torch.zeros(channels)
    for _ in range(draws):
        (grad,) = torch.autograd.grad(sampled_log_likelihood("det", raw, generator), raw)
        squares += (grad * grid**2).pow(2).sum(dim=(0, 2, 3))
    fisher = squares / (draws * grid**2)  # standard errors: 0.5% (box), 1.2% (class logits), 0.4% (index)
    assert fisher[4].item() == pytest.approx(0.25, rel=1e-5)
    size = 0.5 * 0.25**2 / BOX_SIGMA**2  # 3.125
    assert fisher[:4].tolist() == pytest.approx([size / grid**2, size / grid**2, size, size], rel=0.03)
    label = {"logits": [0.5 * 0.09] * 10, "paper": [0.5]}[det_head]
    assert fisher[5:].tolist() == pytest.approx(label, rel=0.05)


def test_segmentation_draws_one_label_per_pixel_and_averages_over_pixels():
    """The score of pixel logits is (onehot(y) - p) / pixels, so pixels * score + p recovers the drawn labels."""
    probabilities = torch.tensor([0.5, 0.3, 0.2])
    logits = probabilities.log().view(1, 3, 1, 1).expand(1, 3, 40, 50).clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(sampled_log_likelihood("seg", logits, torch.Generator().manual_seed(0)), logits)
    onehot = grad * 2000 + probabilities.view(1, 3, 1, 1)
    assert torch.allclose(onehot.sum(dim=1), torch.ones(1, 40, 50), atol=1e-5)
    assert torch.allclose(onehot, onehot.round(), atol=1e-4)
    assert onehot.mean(dim=(0, 2, 3)).tolist() == pytest.approx([0.5, 0.3, 0.2], abs=0.03)


def test_normalised_fisher_has_mean_one_and_accumulation_drops_all_zero_entries():
    fisher = normalised({"a": torch.tensor([1.0, 3.0]), "b": torch.tensor([0.0, 0.0, 2.0, 2.0])})
    # mean 8 / 6 over the six entries
    assert fisher["a"].tolist() == pytest.approx([0.75, 2.25])
    assert fisher["b"].tolist() == pytest.approx([0, 0, 1.5, 1.5])
    old = {"a": torch.tensor([2.0, 4.0]), "head": torch.tensor([0.0])}
    total = accumulate(old, {"a": torch.tensor([1.0, 1.0]), "head": torch.tensor([0.0])}, decay=0.5)
    assert list(total) == ["a"] and total["a"].tolist() == [2.0, 3.0]
    with pytest.raises(ValueError, match="the Fisher is zero everywhere"):
        normalised({"a": torch.zeros(2)})


@pytest.fixture(scope="module")
def small_data(synthetic_root):
    """Four 64 px training samples per task, without augmentation (so repeated passes see the same batches)."""
    return {t: Subset(build_dataset(t, synthetic_root, "train", 64, train=False), range(4)) for t in TASKS}


def _stage(index: int, data) -> StageContext:
    return StageContext(index=index, task=TASKS[index], train_data=data, previous_tasks=list(TASKS[:index]),
                        loss_fn=partial(task_loss, det_head="logits", num_classes=NUM_DET_CLASSES),
                        collate=collate, batch_size=2, seed=0)


def test_ewc_fishers_are_normalised_per_task_and_anchor_only_the_weights_tasks_use(small_data):
    torch.manual_seed(0)
    model = build_model(SMALL_MODEL)
    weights = sum(p.numel() for p in model.parameters())
    ewc = ElasticWeightConsolidation(EWCOptions(fisher_samples=2, decay=0.5))
    ewc.after_stage(model, _stage(0, small_data))
    assert (sum(f.sum() for f in ewc.fisher.values()) / weights).item() == pytest.approx(1.0, rel=1e-5)
    assert "heads.seg.conv.weight" in ewc.fisher and set(ewc.anchor) == set(ewc.fisher)
    assert not [name for name in ewc.fisher if name.startswith(("heads.det", "heads.cls"))]
    ewc.after_stage(model, _stage(1, small_data))
    # 0.5 * (mean 1) + (mean 1) over all weights
    assert (sum(f.sum() for f in ewc.fisher.values()) / weights).item() == pytest.approx(1.5, rel=1e-5)
    assert "heads.det.conv.weight" in ewc.fisher
    assert not [name for name in ewc.fisher if name.startswith("heads.cls")]


def test_a_later_tasks_head_is_untouched_by_an_adamw_step_under_the_ewc_penalty(small_data):
    """With a zero Fisher entry the penalty would give the cls head a zero gradient, which AdamW decays."""
    torch.manual_seed(0)
    model = build_model(SMALL_MODEL)
    ewc = ElasticWeightConsolidation(EWCOptions(fisher_samples=2))
    ewc.after_stage(model, _stage(0, small_data))
    stage = _stage(1, small_data)
    with torch.no_grad():  # away from the anchor, so the penalty has a gradient
        for p in model.parameters():
            p.add_(0.01)
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.1)
    images, targets = collate([small_data["det"][i] for i in range(2)])
    outputs = model(images, tasks=["det"])
    extra = ewc.extra_loss(model, images, outputs, stage)
    assert extra["penalty"].item() > 0
    (stage.loss_fn("det", outputs["det"], targets)["total"] + extra["penalty"]).backward()
    optimizer.step()
    after = dict(model.named_parameters())
    assert all(torch.equal(after[name], before[name]) for name in ("heads.cls.fc.weight", "heads.cls.fc.bias"))
    assert not torch.equal(after["heads.det.conv.weight"], before["heads.det.conv.weight"])
    assert not torch.equal(after["heads.seg.conv.weight"], before["heads.seg.conv.weight"])


TWO_STAGES = {"tasks": ["seg", "det"], "batch_size": 2, "limit_train": 4, "limit_val": 2}
"""The tiny config's train section for two stages (seg, det) of 4 training images in batches of 2, so each epoch
takes 2 optimiser steps."""


@pytest.mark.slow
@pytest.mark.parametrize("reset", [True, False])
def test_the_optimiser_state_is_reset_at_each_stage_or_carried_over(tiny_config, tmp_path, monkeypatch, reset):
    """Stage 1 (seg) takes 2 steps; stage 2 starts with no moments, or with those of the 2 steps."""
    real = engine.train_one_epoch
    seen = {}

    def recording(model, loader, optimizer, strategy, stage, *args, **kwargs):
        names = {id(p): name for name, p in model.named_parameters()}
        seen[stage.index] = {names[id(p)]: state["step"].item() for p, state in optimizer.state.items()}
        return real(model, loader, optimizer, strategy, stage, *args, **kwargs)

    monkeypatch.setattr(engine, "train_one_epoch", recording)
    config = tiny_config(train={**TWO_STAGES, "reset_optimizer": reset})
    execute(Run(run_config(config, "none", 0), tmp_path, log=lambda line: None))
    assert seen[0] == {}
    if reset:
        assert seen[1] == {}
    else:
        assert "heads.seg.conv.weight" in seen[1] and set(seen[1].values()) == {2.0}
        assert not [name for name in seen[1] if name.startswith(("heads.det", "heads.cls"))]


@pytest.mark.slow
def test_ewc_computes_no_fisher_after_the_last_stage(tiny_config, tmp_path, monkeypatch):
    """Two stages: the Fisher of the first is the second's penalty; the second's would serve no stage."""
    real, stages = ewc_module.fisher_diagonal, []

    def counting(model, stage, samples):
        stages.append((stage.index, stage.is_last))
        return real(model, stage, samples)

    monkeypatch.setattr(ewc_module, "fisher_diagonal", counting)
    config = tiny_config(train=TWO_STAGES, strategies={"ewc": {"fisher_samples": 2}})
    metrics = execute(Run(run_config(config, "ewc", 0), tmp_path, log=lambda line: None))
    assert stages == [(0, False)] and [stage["task"] for stage in metrics.stages] == ["seg", "det"]


@pytest.fixture(scope="module")
def uninterrupted(tiny_config, tmp_path_factory):
    """The weights at the end of an uninterrupted 2-stage, 2-epoch run that resets the optimiser."""
    config = tiny_config(train={**TWO_STAGES, "epochs": 2, "reset_optimizer": True})
    out = tmp_path_factory.mktemp("uninterrupted")
    execute(Run(run_config(config, "none", 0), out, log=lambda line: None))
    return torch.load(out / "model.pt", weights_only=True)


@pytest.mark.slow
@pytest.mark.parametrize("killed_after", [3, 4], ids=["at-the-stage-boundary", "inside-stage-2"])
def test_a_resumed_run_with_optimiser_resets_ends_like_an_uninterrupted_one(tiny_config, tmp_path, uninterrupted,
                                                                           killed_after):
    """Killed before the checkpoint of epoch 3 (resumes at stage 2's start: reset) or of epoch 4 (resumes
    inside stage 2, whose moments the checkpoint holds: no reset)."""
    config = tiny_config(train={**TWO_STAGES, "epochs": 2, "reset_optimizer": True})
    lines = []

    def killing(line):
        lines.append(line)
        if len(lines) == killed_after:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        execute(Run(run_config(config, "none", 0), tmp_path, log=killing))
    execute(Run(run_config(config, "none", 0), tmp_path, log=lambda line: None))
    resumed = torch.load(tmp_path / "model.pt", weights_only=True)
    assert all(torch.equal(value, resumed[key]) for key, value in uninterrupted.items())


@pytest.mark.slow
@pytest.mark.parametrize("name", [*STRATEGY_NAMES[1:], "lwf+replay"])
def test_every_strategys_extra_terms_change_the_update(small_data, name):
    """After stage 1 (seg), two AdamW steps on stage 2 (det) batches, with the strategy's terms and with them
    times 0: only the terms give the seg head a gradient, so it must end elsewhere."""
    torch.manual_seed(0)
    model = build_model(SMALL_MODEL)
    strategy = create_strategy(name, {"ewc": {"fisher_samples": 2}, "replay": {"batch_size": 2}})
    first, second = _stage(0, small_data), _stage(1, small_data)
    strategy.before_stage(model, first)
    strategy.after_stage(model, first)
    strategy.before_stage(model, second)

    def trained(zeroed: bool) -> dict[str, torch.Tensor]:
        student, copied = copy.deepcopy(model), copy.deepcopy(strategy)
        if zeroed:
            terms = copied.extra_loss
            copied.extra_loss = lambda *args: {k: v * 0.0 for k, v in terms(*args).items()}
        optimizer = torch.optim.AdamW(student.parameters(), lr=8e-4, weight_decay=1e-4)
        loader = DataLoader(small_data["det"], batch_size=2, shuffle=False, collate_fn=collate)
        row = train_one_epoch(student, loader, optimizer, copied, second, torch.device("cpu"), "test")
        for component in strategy_components(name):
            logged = [value for key, value in row.items() if key.startswith(f"{component}_")]
            assert logged and (max(logged) == 0.0) == zeroed
        return dict(student.named_parameters())

    with_terms, without = trained(zeroed=False), trained(zeroed=True)
    assert not torch.equal(with_terms["heads.seg.conv.weight"], without["heads.seg.conv.weight"])


def test_kd_replay_gives_exactly_the_terms_of_kd_and_of_replay_on_a_batch(small_data):
    """At stage 3 (cls), kd_replay's terms are those that kd and replay, each alone with the same options and
    seed, give on the same batch: the same names (history.csv's columns) and the same values, bit for bit."""
    torch.manual_seed(0)
    model = build_model(SMALL_MODEL)
    options = {"replay": {"batch_size": 2}}
    combined, kd, replay = (create_strategy(name, options, seed=3) for name in ("kd_replay", "kd", "replay"))
    for index in (0, 1):
        for strategy in (combined, kd, replay):
            strategy.after_stage(model, _stage(index, small_data))
    with torch.no_grad():  # the student moves away from the teachers, so the distillation terms are not 0
        for parameter in model.parameters():
            parameter.add_(torch.randn(parameter.shape, generator=torch.Generator().manual_seed(1)), alpha=0.01)
    stage = _stage(2, small_data)
    images, _ = collate([small_data["cls"][i] for i in range(2)])
    assert combined.output_tasks(stage) == kd.output_tasks(stage) == ["seg", "det"]
    outputs = model(images, tasks=["cls", "seg", "det"], return_features=combined.needs_features)
    terms = combined.extra_loss(model, images, outputs, stage)
    alone = {**kd.extra_loss(model, images, outputs, stage), **replay.extra_loss(model, images, outputs, stage)}
    assert list(terms) == ["kd_logits", "kd_features", "kd_attention", "replay_seg", "replay_det"]
    assert set(alone) == set(terms) and all(torch.equal(terms[name], alone[name]) for name in terms)
    assert all(value.item() > 0 for value in terms.values())
    state = combined.state_dict()
    assert set(state) == {"kd", "replay"} and state["replay"]["buffers"]["seg"]["items"] == \
        replay.state_dict()["replay"]["buffers"]["seg"]["items"]
