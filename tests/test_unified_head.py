"""The unified head (``model.head: unified``): one branch whose one output tensor holds every task's output,
its parameter count, its read-outs, and every strategy's three stages on it."""

from __future__ import annotations

import csv
import json
import math

import pytest
import torch
import torch.nn.functional as F
from torch.utils.data import Subset

from unihead.cli import main
from unihead.config import HEAD_DESIGNS, ModelConfig
from unihead.data import build_dataset, collate
from unihead.engine.run import Run, execute
from unihead.engine.train import EPOCH_COUNTS
from unihead.models import FEATURES, NETWORKS, UnifiedHeadModel, build_model, parameter_breakdown
from unihead.models.heads import OBJECTNESS_PRIOR
from unihead.scopes import run_config
from unihead.strategies import STRATEGIES, StageContext, create_strategy
from unihead.strategies.ewc import fisher_diagonal
from unihead.tasks import TASKS

UNIFIED = ModelConfig(head="unified")
UNIFIED_TOTAL = 4_212_065
"""The paper's backbone and neck (3,595,388 + 503,552) and the branch (113,125)."""
SEG_ROWS, DET_ROWS, CLS_ROWS = slice(0, 21), slice(21, 27), slice(27, 37)
"""Channels of the branch's output with the paper's detection head: 21 seg logits, 6 det, 10 cls logits."""


@pytest.fixture(scope="module")
def unified_model() -> UnifiedHeadModel:
    torch.manual_seed(0)
    return build_model(UNIFIED).eval()


def test_every_head_design_of_the_config_has_a_network():
    assert set(NETWORKS) == set(HEAD_DESIGNS)
    assert isinstance(build_model(UNIFIED), UnifiedHeadModel)


def test_default_unified_model_has_this_many_parameters_under_the_challenges_8_million(unified_model):
    assert parameter_breakdown(unified_model) == {
        "backbone": 3_595_388,
        "neck": 503_552,
        # 3x3 conv 128 -> 64, 3x3 conv 64 -> 64 (with biases), 1x1 conv 64 -> 21 + 6 + 10
        "head.unified": (128 * 9 * 64 + 64) + (64 * 9 * 64 + 64) + (64 * 37 + 37),
        "total": UNIFIED_TOTAL,
    }
    assert UNIFIED_TOTAL < 8_000_000


def test_logits_detection_head_widens_only_the_output_layer():
    counts = parameter_breakdown(build_model(ModelConfig(head="unified", det_head="logits")))
    assert counts["total"] == UNIFIED_TOTAL + 64 * 9 + 9  # 15 det channels instead of 6


@pytest.mark.parametrize("size", [64, 128])
def test_output_shapes_at_the_branchs_stride(unified_model, size):
    with torch.no_grad():
        out = unified_model(torch.randn(2, 3, size, size), return_features=True)
    assert out["seg"].shape == (2, 21, size, size)
    assert out["det"].shape == (2, 6, size // 32, size // 32)
    assert out["cls"].shape == (2, 10)
    assert set(out) == {*TASKS, FEATURES}


def test_the_level_of_every_task_is_the_one_configured():
    model = build_model(ModelConfig(head="unified", levels={"seg": 16, "det": 16, "cls": 16})).eval()
    with torch.no_grad():
        out = model(torch.randn(1, 3, 128, 128))
    assert out["det"].shape == (1, 6, 8, 8)  # stride-16 grid
    assert out["seg"].shape == (1, 21, 128, 128)
    assert parameter_breakdown(model)["total"] == UNIFIED_TOTAL  # the level changes no weights


def test_one_output_tensor_is_split_into_upsampled_seg_the_det_grid_and_pooled_cls():
    """With a zero output weight, every position of the branch's output is its bias: seg is the first 21 bias
    values at every pixel, det the next 6 at every cell, cls the last 10; with a weight, cls is the mean over
    the grid of the cls channels, det the det channels and seg the seg channels bilinearly upsampled."""
    torch.manual_seed(0)
    model = build_model(UNIFIED).eval()
    bias = torch.arange(37, dtype=torch.float32)
    with torch.no_grad():
        model.head.out.weight.zero_()
        model.head.out.bias.copy_(bias)
        out = model(torch.randn(1, 3, 64, 64))
    assert torch.equal(out["seg"], bias[SEG_ROWS].view(1, 21, 1, 1).expand(1, 21, 64, 64))
    assert torch.equal(out["det"], bias[DET_ROWS].view(1, 6, 1, 1).expand(1, 6, 2, 2))
    assert torch.equal(out["cls"], bias[CLS_ROWS].view(1, 10))
    model = build_model(UNIFIED).eval()
    with torch.no_grad():
        images = torch.randn(1, 3, 64, 64)
        raw = model.head.out(model.head.hidden(model.extract_features(images)["p5"]))
        out = model(images)
    torch.testing.assert_close(out["cls"], raw[:, CLS_ROWS].mean(dim=(2, 3)))
    torch.testing.assert_close(out["det"], raw[:, DET_ROWS])
    torch.testing.assert_close(out["seg"], F.interpolate(raw[:, SEG_ROWS], size=(64, 64), mode="bilinear",
                                                         align_corners=False))


def test_every_cell_starts_at_the_objectness_prior(unified_model):
    objectness = unified_model.head.out.bias[DET_ROWS.start + 4]
    assert torch.sigmoid(objectness).item() == pytest.approx(OBJECTNESS_PRIOR, rel=1e-5)


def test_one_task_forward_matches_the_full_one_and_trains_the_whole_branch_but_only_its_channels():
    torch.manual_seed(0)
    model = build_model(UNIFIED).train()
    images = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    det_only = model(images, tasks=["det"])
    assert set(det_only) == {"det"}
    with torch.no_grad():
        torch.testing.assert_close(det_only["det"], model(images)["det"])
    det_only["det"].pow(2).sum().backward()
    weight = model.head.out.weight.grad
    assert weight[DET_ROWS].abs().sum() > 0
    assert weight[SEG_ROWS].abs().sum() == 0 and weight[CLS_ROWS].abs().sum() == 0
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.head.hidden.parameters())


def test_ewc_fisher_of_a_task_covers_the_branch_and_only_that_tasks_output_channels(synthetic_root):
    data = {t: Subset(build_dataset(t, synthetic_root, "train", 64, train=False), range(2)) for t in TASKS}
    stage = StageContext(index=0, task="seg", train_data=data, previous_tasks=[], loss_fn=None, collate=collate,
                         batch_size=2, seed=0)
    torch.manual_seed(0)
    fisher = fisher_diagonal(build_model(UNIFIED), stage, samples=2)
    out = fisher["head.out.weight"]
    assert out[SEG_ROWS].sum() > 0 and out[DET_ROWS].sum() == 0 and out[CLS_ROWS].sum() == 0
    assert fisher["head.hidden.0.weight"].sum() > 0


@pytest.mark.parametrize("name", ["lwf", "kd"])
def test_distillation_compares_the_old_tasks_channels_and_vanishes_right_after_the_snapshot(name):
    torch.manual_seed(0)
    model = build_model(UNIFIED).eval()
    strategy = create_strategy(name)
    first = StageContext(index=0, task="seg", train_data={}, previous_tasks=[], loss_fn=None, collate=None,
                         batch_size=2, seed=0)
    strategy.after_stage(model, first)
    second = StageContext(index=1, task="det", train_data={}, previous_tasks=["seg"], loss_fn=None, collate=None,
                          batch_size=2, seed=0)
    images = torch.randn(2, 3, 64, 64)
    outputs = model(images, tasks=["det", *strategy.output_tasks(second)], return_features=strategy.needs_features)
    terms = strategy.extra_loss(model, images, outputs, second)
    assert terms and all(abs(v.item()) < 1e-6 for v in terms.values())
    with torch.no_grad():
        model.head.out.bias[SEG_ROWS.start] += 1.0  # one seg logit moves: the old task's channels differ
    outputs = model(images, tasks=["det", *strategy.output_tasks(second)], return_features=strategy.needs_features)
    logit_term = next(v for k, v in strategy.extra_loss(model, images, outputs, second).items()
                      if k in ("lwf_kl", "kd_logits"))
    assert logit_term.item() > 1e-4


def test_params_prints_the_unified_breakdown(tmp_path, capsys):
    config = tmp_path / "unified.yaml"
    config.write_text("model:\n  head: unified\n")
    assert main(["params", "--config", str(config)]) == 0
    out = capsys.readouterr().out
    assert "head=unified" in out.splitlines()[0]
    lines = {line.split()[0]: line.split()[1] for line in out.splitlines()[1:]}
    assert lines == {"backbone": "3,595,388", "neck": "503,552", "head.unified": "113,125", "total": "4,212,065"}


FORWARDED_BACKPROPAGATED = {
    "none": (6, 6),  # 2 images a stage, 3 stages
    "ewc": (8, 8),  # + 1 Fisher sample (with its gradient) after each of the first two stages
    "lwf": (10, 6),  # + the teacher's 2 (no gradient) in stages 2 and 3
    "kd": (10, 6),  # as LwF: one teacher pass gives logits and features
    "replay": (9, 9),  # + 1 replayed sample per old task per step: 1 in stage 2, 2 in stage 3
    "kd_replay": (13, 9),  # KD's and replay's extra images
}
"""Images forwarded and backpropagated by a run of 2 training images a stage, batch 2, one epoch per stage, worked
out by hand for every registered strategy (a new one adds its line)."""


def test_every_registered_strategy_has_its_worked_out_count():
    assert set(STRATEGIES) <= set(FORWARDED_BACKPROPAGATED)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(FORWARDED_BACKPROPAGATED))
def test_every_strategy_runs_three_stages_on_the_unified_head(tiny_config, tmp_path, name):
    config = tiny_config(name="unified", model={"head": "unified"},
                         train={"batch_size": 2, "limit_train": 2, "limit_val": 1},
                         strategies={"ewc": {"fisher_samples": 1}, "replay": {"batch_size": 1}})
    execute(Run(run_config(config, name, 0), tmp_path, log=lambda line: None))
    with (tmp_path / "history.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert [row["task"] for row in rows] == list(TASKS)
    losses = [float(value) for row in rows for key, value in row.items()
              if value and key not in ("stage", "task", "epoch", "lr", *EPOCH_COUNTS)
              and not key.startswith("val_")]
    assert losses and all(math.isfinite(value) for value in losses)
    prefix = name.split("_")[0]
    if name != "none":  # the strategy's own terms are logged in the later stages
        assert any(key.startswith(f"{prefix}_") and rows[2][key] for key in rows[2])
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert len(metrics["R"]) == 3 and all(len(row) == 3 for row in metrics["R"])
    counted = (metrics["images_forwarded"], metrics["images_backpropagated"])
    assert counted == FORWARDED_BACKPROPAGATED[name]
