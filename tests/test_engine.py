"""The training engine: every strategy runs the 3-stage protocol; resume, determinism, divergence."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from torch.utils.data import DataLoader

from tiny import tiny_values
from unihead.config import config_from_dict
from unihead.engine import run as engine
from unihead.engine.evaluate import chance_score
from unihead.engine.run import Run, execute, frozen_batchnorm
from unihead.errors import TrainingDiverged
from unihead.runs import run_spec
from unihead.schema import ConfigError
from unihead.scopes import run_config
from unihead.strategy_options import STRATEGY_NAMES

OPTIONS = {"ewc": {"fisher_samples": 4}, "replay": {"batch_size": 2}}
"""The strategy options of the tiny runs here (``tiny_config(strategies=OPTIONS)``)."""


def _run(config, name, out, seed=0, log=lambda line: None):
    return execute(Run(run_config(config, name, seed), out, log=log))


@pytest.mark.slow
@pytest.mark.parametrize("name", STRATEGY_NAMES)
def test_every_strategy_runs_the_three_stage_protocol(tiny_config, tmp_path, name):
    metrics = _run(tiny_config(strategies=OPTIONS), name, tmp_path)
    assert metrics.run.tasks == ["seg", "det", "cls"]
    assert len(metrics.R) == 3 and all(len(row) == 3 for row in metrics.R)
    assert [s["task"] for s in metrics.stages] == ["seg", "det", "cls"]
    assert metrics.R[-1] == [metrics.final[t][m] for t, m in metrics.primary_metric.items()]
    assert json.loads((tmp_path / "metrics.json").read_text())["R"] == metrics.R
    history = (tmp_path / "history.csv").read_text().splitlines()
    assert len(history) == 1 + 3 and history[0].startswith("stage,task,epoch,lr,loss")
    assert not (tmp_path / "checkpoint.pt").exists()
    state = torch.load(tmp_path / "model.pt", weights_only=True)
    assert "heads.seg.conv.weight" in state


@pytest.mark.slow
def test_a_combination_without_a_file_of_its_own_runs_the_three_stages(tiny_config, tmp_path):
    metrics = _run(tiny_config(strategies=OPTIONS), "lwf+replay", tmp_path)
    assert metrics.run.strategy == "lwf+replay" and len(metrics.R) == 3
    header = (tmp_path / "history.csv").read_text().splitlines()[0].split(",")
    assert {"lwf_kl", "replay_seg", "replay_det"} <= set(header)


@pytest.mark.slow
def test_baseline_trains_one_task_and_evaluates_it(tiny_config, tmp_path):
    metrics = _run(tiny_config(strategies=OPTIONS), "baseline-det", tmp_path)
    assert metrics.run.kind == "baseline" and metrics.eval_tasks == ["det"]
    assert len(metrics.R) == 1 and set(metrics.final) == {"det"}
    assert set(metrics.final["det"]) == {"map_50", "map_50_95"}


@pytest.mark.slow
def test_metrics_record_provenance_and_chance_but_no_verdict(tiny_config, tmp_path):
    config = tiny_config(strategies=OPTIONS)
    run = Run(run_config(config, "none", 0), tmp_path, log=lambda line: None)
    metrics = execute(run)
    provenance = metrics.to_dict()["provenance"]
    assert provenance["seed"] == 0 and provenance["config"]["train"]["epochs"] == 1
    assert provenance["packages"]["torch"] == torch.__version__.split("+")[0]
    assert provenance["device"].startswith("cpu")
    # chance per eval task: background-everywhere mIoU on the val masks, mAP 0, top-1 1 / 10 classes
    seg_chance = chance_score("seg", run.val_loaders["seg"], run.num_classes["seg"])
    assert 0.0 < seg_chance < 0.5
    assert metrics.chance == [seg_chance, 0.0, 0.1]
    assert json.loads((tmp_path / "metrics.json").read_text())["chance"] == metrics.chance
    assert not {"threshold", "drops_from_own_stage", "all_pass"} & set(metrics.to_dict())  # the verdict is forgetting's


def test_segmentation_chance_is_the_miou_of_background_everywhere():
    # image 1: top half background, bottom half class 1; image 2: background with 4 ignored (255) pixels.
    # Background everywhere: IoU_bg = 20 background pixels / 28 scored = 5/7, class 1 IoU 0 -> mIoU 5/14
    first = torch.zeros(4, 4, dtype=torch.int64)
    first[2:] = 1
    second = torch.zeros(4, 4, dtype=torch.int64)
    second[0] = 255
    loader = DataLoader([(torch.zeros(3, 4, 4), first), (torch.zeros(3, 4, 4), second)], batch_size=1)
    assert chance_score("seg", loader, num_classes=21) == pytest.approx(5 / 14)
    assert chance_score("cls", loader, num_classes=10) == 0.1
    assert chance_score("det", loader, num_classes=10) == 0.0


@pytest.mark.slow
@pytest.mark.parametrize("name", ["ewc", "kd_replay"])
def test_a_resumed_run_ends_like_an_uninterrupted_one(tiny_config, tmp_path, name):
    config = tiny_config(train={"epochs": 2}, strategies=OPTIONS)
    whole = _run(config, name, tmp_path / "whole")

    class Killed(Exception):
        pass

    lines = []

    def kill_after_three_epochs(line):
        lines.append(line)
        if len(lines) == 3:  # killed after stage 2's first epoch was logged, before its checkpoint
            raise Killed

    with pytest.raises(Killed):
        _run(config, name, tmp_path / "resumed", log=kill_after_three_epochs)
    assert (tmp_path / "resumed" / "checkpoint.pt").exists()
    assert not (tmp_path / "resumed" / "metrics.json").exists()
    messages = []
    resumed = _run(config, name, tmp_path / "resumed", log=messages.append)
    assert messages[0].endswith("resuming after epoch 2")
    assert resumed.R == whole.R and resumed.R_initial == whole.R_initial
    assert resumed.chance == whole.chance
    weights_whole = torch.load(tmp_path / "whole" / "model.pt", weights_only=True)
    weights_resumed = torch.load(tmp_path / "resumed" / "model.pt", weights_only=True)
    for key, value in weights_whole.items():
        assert torch.equal(value, weights_resumed[key]), key


@pytest.mark.slow
def test_two_runs_with_one_seed_are_identical_and_another_seed_differs(tiny_config, tmp_path):
    config = tiny_config(strategies=OPTIONS)
    first = _run(config, "lwf", tmp_path / "a", seed=1)
    second = _run(config, "lwf", tmp_path / "b", seed=1)
    other = _run(config, "lwf", tmp_path / "c", seed=2)
    assert (tmp_path / "a" / "history.csv").read_text().split("seconds")[0] == \
        (tmp_path / "b" / "history.csv").read_text().split("seconds")[0]
    assert first.R == second.R and first.final == second.final
    losses = lambda path: [line.split(",")[4] for line in path.read_text().splitlines()[1:]]  # noqa: E731
    assert losses(tmp_path / "a" / "history.csv") == losses(tmp_path / "b" / "history.csv")
    assert losses(tmp_path / "a" / "history.csv") != losses(tmp_path / "c" / "history.csv")
    assert other.seed == 2


@pytest.mark.slow
def test_a_diverging_loss_stops_the_run_naming_stage_epoch_and_term(tiny_config, tmp_path, monkeypatch):
    real_loss = engine.task_loss

    def nan_detection_box(task, *args, **kwargs):
        terms = real_loss(task, *args, **kwargs)
        if task == "det":
            terms["det_box"] = terms["det_box"] * float("nan")
            terms["total"] = terms["total"] + terms["det_box"]
        return terms

    monkeypatch.setattr(engine, "task_loss", nan_detection_box)
    with pytest.raises(TrainingDiverged, match=r"\[none seed0\] stage 2/3 \(det\), epoch 1/1: loss term 'det_box' "
                                               r"is nan"):
        _run(tiny_config(strategies=OPTIONS), "none", tmp_path)
    assert not (tmp_path / "metrics.json").exists()


@pytest.mark.slow
def test_each_stage_ends_with_one_evaluation_of_every_task(tiny_config, tmp_path, monkeypatch):
    """Two stages of two epochs: the untrained model (2 tasks), each epoch (the stage's task), the end of
    each stage (the other task: the stage's own task has its last epoch's score in R)."""
    real, evaluated = engine.evaluate_task, []

    def counting(model, task, *args, **kwargs):
        evaluated.append(task)
        return real(model, task, *args, **kwargs)

    monkeypatch.setattr(engine, "evaluate_task", counting)
    metrics = _run(tiny_config(train={"tasks": ["seg", "det"], "epochs": 2}, strategies=OPTIONS), "none", tmp_path)
    assert evaluated == ["seg", "det", "seg", "seg", "det", "det", "det", "seg"]
    history = (tmp_path / "history.csv").read_text().splitlines()
    columns = history[0].split(",")
    last_epochs = [dict(zip(columns, line.split(","), strict=True)) for line in (history[2], history[4])]
    assert [float(row["val_miou"]) for row in last_epochs[:1]] == [metrics.R[0][0]]
    assert [float(row["val_map_50"]) for row in last_epochs[1:]] == [metrics.R[1][1]]


def _interrupt_after_first_epoch(config, out):
    """Run ``none`` under ``config`` and stop it during its second epoch (the first epoch's checkpoint saved)."""
    lines = []

    def stop_at_second_epoch(line):
        lines.append(line)
        if len(lines) == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        _run(config, "none", out, log=stop_at_second_epoch)
    assert (out / "checkpoint.pt").exists()


@pytest.mark.slow
def test_a_checkpoint_of_another_config_is_not_resumed(tiny_config, tmp_path):
    _interrupt_after_first_epoch(tiny_config(train={"epochs": 2}, strategies=OPTIONS), tmp_path)
    with pytest.raises(ConfigError, match=r"checkpoint.pt: this checkpoint was made by a run with another run "
                                          r"config \(model, data, train, eval, strategy options or seed\)"):
        _run(tiny_config(train={"epochs": 3}, strategies=OPTIONS), "none", tmp_path)


@pytest.mark.slow
def test_a_checkpoint_stays_valid_when_a_key_outside_the_run_config_changes(tiny_config, tmp_path):
    """The threshold, another strategy's options and the workflow's seeds are not read by the run: its
    checkpoint resumes under the edited experiment."""
    config = tiny_config(train={"epochs": 2}, strategies=OPTIONS)
    _interrupt_after_first_epoch(config, tmp_path)
    edited = dataclasses.replace(config, threshold=0.2, strategies={"ewc": {"fisher_samples": 2}},
                                 workflow=dataclasses.replace(config.workflow, seeds=[0, 1]))
    lines = []
    _run(edited, "none", tmp_path, log=lines.append)
    assert lines[0] == "[none seed0] resuming after epoch 1" and (tmp_path / "metrics.json").exists()


def test_unknown_run_names_are_rejected(tiny_config):
    config = tiny_config(strategies=OPTIONS)
    with pytest.raises(ConfigError, match=r"unknown run 'si' \(a baseline is one of \['baseline-seg', .*\]\): "
                                          r"expected 'none', a strategy \['ewc', .*got 'si'"):
        run_spec(config, "si", 0)
    with pytest.raises(ConfigError, match=r"unknown run 'lwf\+si' .*got 'lwf\+si' \('si' is not a strategy\)"):
        run_spec(config, "lwf+si", 0)
    with pytest.raises(ConfigError, match=r"unknown baseline 'baseline-depth'"):
        run_spec(config, "baseline-depth", 0)



@pytest.mark.slow
def test_a_run_does_not_depend_on_pythons_hash_seed(synthetic_root, tmp_path):
    """Two processes with different PYTHONHASHSEED train kd_replay (heads on two FPN levels, every task's output
    in the last stage) to the same weights, bit for bit: nothing iterates a set where the order reaches the
    numbers (it did: the shared layer's levels, whose gradients autograd sums in the forward's order)."""
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(tiny_values(
        synthetic_root, name="hash", model={"det_head": "logits", "levels": {"seg": 8, "det": 8, "cls": 32}},
        train={"limit_val": 4}, strategies={"replay": {"capacity": 4, "batch_size": 2}})))
    code = str(Path(__file__).resolve().parents[1] / "code")
    runs = []
    for hash_seed in ("1", "3"):  # two seeds that order the two levels' names differently (checked by hand)
        out = tmp_path / f"seed{hash_seed}"
        env = {**os.environ, "PYTHONHASHSEED": hash_seed, "OMP_NUM_THREADS": "1", "PYTHONPATH": code}
        subprocess.run([sys.executable, "-m", "unihead", "train", "--config", str(config), "--run", "kd_replay",
                        "--out", str(out)], env=env, check=True, capture_output=True)
        runs.append(torch.load(out / "model.pt", weights_only=True))
    assert runs[0].keys() == runs[1].keys()
    assert all(torch.equal(runs[0][name], runs[1][name]) for name in runs[0])


def test_a_baseline_trains_in_the_batchnorm_mode_its_task_has_in_the_sequence():
    """Under freeze_after_first every task but the sequence's first trains with frozen BatchNorm, in the sequence
    and in its single-task baseline, whose one stage is its run's first (issue 21: matched baselines)."""
    frozen = config_from_dict({"train": {"bn": "freeze_after_first", "tasks": ["det", "seg", "cls"]}}).train
    assert [frozen_batchnorm(frozen, task) for task in ("det", "seg", "cls")] == [False, True, True]
    assert not any(frozen_batchnorm(config_from_dict({}).train, task) for task in ("seg", "det", "cls"))
