"""The forgetting table on hand-made metrics, with every number worked out by hand."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd
import pytest

from unihead.cli import main
from unihead.forgetting import drop, forgetting_table, load_runs, summary_table, write_tables

TASKS = ["seg", "det", "cls"]
PRIMARY = {"seg": "miou", "det": "map_50", "cls": "top1"}
R = [[0.40, 0.00, 0.10],
     [0.20, 0.30, 0.10],
     [0.10, 0.27, 0.70]]
R_INITIAL = [0.01, 0.02, 0.10]
SINGLE = {"seg": 0.50, "det": 0.30, "cls": 0.735}


def _write(runs_dir: Path, name: str, seed: int, R, tasks, initial=None) -> None:
    folder = runs_dir / name / f"seed{seed}"
    folder.mkdir(parents=True)
    kind = "baseline" if name.startswith("baseline-") else "sequence"
    metrics = {"run": {"name": name, "kind": kind, "seed": seed, "tasks": tasks}, "eval_tasks": tasks,
               "primary_metric": {t: PRIMARY[t] for t in tasks}, "R": R, "R_initial": initial}
    (folder / "metrics.json").write_text(json.dumps(metrics))


def _runs_dir(tmp_path: Path, seeds=(0,), seg_final=(0.10,)) -> Path:
    runs = tmp_path / "runs"
    for seed, final in zip(seeds, seg_final, strict=True):
        matrix = [row[:] for row in R]
        matrix[2][0] = final
        _write(runs, "none", seed, matrix, TASKS, R_INITIAL)
        for task, score in SINGLE.items():
            _write(runs, f"baseline-{task}", seed, [[score]], [task], [0.0])
    return runs


def test_drops_from_both_baselines(tmp_path):
    table = forgetting_table(load_runs(_runs_dir(tmp_path))).set_index("task")
    # seg: 0.40 after its stage -> 0.10 at the end: 75% relative, 30 points; single baseline 0.50: 80%, 40 points
    assert table.loc["seg", ["final", "base_stage", "base_single"]].tolist() == [0.10, 0.40, 0.50]
    assert table.loc["seg", "rel_drop_stage"] == pytest.approx(0.75)
    assert table.loc["seg", "abs_drop_stage"] == pytest.approx(30.0)
    assert table.loc["seg", "rel_drop_single"] == pytest.approx(0.80)
    # det: 0.30 -> 0.27: 10%, 3 points, fails both
    assert table.loc["det", "rel_drop_stage"] == pytest.approx(0.10)
    assert table.loc["det", "abs_drop_single"] == pytest.approx(3.0)
    # cls: trained last, no drop from its stage; single baseline 0.735 -> 0.70 is 4.76%: passes
    assert table.loc["cls", "rel_drop_stage"] == 0.0
    assert table.loc["cls", "rel_drop_single"] == pytest.approx(0.035 / 0.735)
    assert table["pass_stage"].tolist() == [False, False, True]
    assert table["pass_single"].tolist() == [False, False, True]


def test_threshold_boundary():
    assert drop(0.80, 0.76, 0.05)[2]  # exactly 5% (0.04 / 0.80) passes
    assert not drop(1.0, 0.9499, 0.05)[2]  # 5.01% fails
    relative, absolute, passed = drop(0.0, 0.0, 0.05)
    assert math.isnan(relative) and absolute == 0.0 and not passed  # never learned: no relative drop, fails


def test_bwt_forgetting_forward_transfer_and_seed_statistics(tmp_path):
    runs = load_runs(_runs_dir(tmp_path, seeds=(0, 1), seg_final=(0.10, 0.20)))
    summary = summary_table(runs).set_index(["strategy", "task"])
    overall = summary.loc[("none", "all")]
    # seed 0: BWT = mean(0.10-0.40, 0.27-0.30) = -0.165; seed 1: mean(0.20-0.40, -0.03) = -0.115
    assert overall["bwt_mean"] == pytest.approx(-0.14)
    assert overall["bwt_std"] == pytest.approx(math.sqrt(2 * 0.025**2))
    # forgetting: seed 0: mean(0.40-0.10, 0.30-0.27) = 0.165; seed 1: mean(0.20, 0.03) = 0.115
    assert overall["avg_forgetting_mean"] == pytest.approx(0.14)
    # forward transfer: det R[0][1] - 0.02 = -0.02, cls R[1][2] - 0.10 = 0 -> -0.01 for both seeds
    assert overall["forward_transfer_mean"] == pytest.approx(-0.01)
    assert overall["forward_transfer_std"] == pytest.approx(0.0)
    assert overall["avg_final_mean"] == pytest.approx(((0.10 + 0.27 + 0.70) + (0.20 + 0.27 + 0.70)) / 6)
    seg = summary.loc[("none", "seg")]
    # relative drops from the stage baseline 0.75 and 0.50: mean 0.625, std (ddof 1) 0.125 * sqrt(2)
    assert seg["rel_drop_stage_mean"] == pytest.approx(0.625)
    assert seg["rel_drop_stage_std"] == pytest.approx(0.125 * math.sqrt(2))
    assert seg["seeds"] == 2 and not seg["pass_stage"] and seg["pass_rate_stage"] == 0.0
    assert summary.loc[("none", "cls"), "pass_rate_single"] == 1.0


def test_single_seed_std_is_nan(tmp_path):
    summary = summary_table(load_runs(_runs_dir(tmp_path))).set_index(["strategy", "task"])
    assert math.isnan(summary.loc[("none", "seg"), "final_std"])


def test_missing_single_baseline_names_the_folder(tmp_path):
    runs = _runs_dir(tmp_path)
    (runs / "baseline-det" / "seed0" / "metrics.json").unlink()
    (runs / "baseline-det" / "seed0").rmdir()
    with pytest.raises(ValueError, match=r"no single-task baseline for det seed 0: expected .*runs/baseline-det/seed0"):
        forgetting_table(load_runs(runs))
    table = forgetting_table(load_runs(runs), require_single_baseline=False).set_index("task")
    assert math.isnan(table.loc["det", "base_single"]) and not table.loc["det", "pass_single"]


def test_malformed_metrics_name_the_file(tmp_path):
    runs = _runs_dir(tmp_path)
    path = runs / "none" / "seed0" / "metrics.json"
    metrics = json.loads(path.read_text())
    del metrics["R"]
    path.write_text(json.dumps(metrics))
    with pytest.raises(ValueError, match=r"none/seed0/metrics.json: missing key\(s\) \['R'\]"):
        load_runs(runs)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match=r"empty: no run results"):
        load_runs(tmp_path / "empty")
    with pytest.raises(ValueError, match=r"missing: neither a folder of runs nor a metrics.json file"):
        load_runs(tmp_path / "missing")
    with pytest.raises(ValueError, match=r"seed7/metrics.json: run results not found"):
        load_runs([tmp_path / "seed7" / "metrics.json"])
    assert len(load_runs(sorted(runs.glob("baseline-*/seed0/metrics.json")))) == 3


def test_baselines_alone_and_a_run_given_twice_are_errors(tmp_path):
    runs = _runs_dir(tmp_path)
    baselines = sorted(runs.glob("baseline-*/seed0/metrics.json"))
    with pytest.raises(ValueError, match=r"only single-task baseline runs .*need at least one strategy run"):
        summary_table(load_runs(baselines))
    copy = tmp_path / "copy.json"
    copy.write_text((runs / "none" / "seed0" / "metrics.json").read_text())
    with pytest.raises(ValueError, match=r"copy.json and .*none/seed0/metrics.json: both are run 'none' seed 0"):
        load_runs([runs, copy])


def test_cli_writes_both_tables(tmp_path, capsys):
    runs = _runs_dir(tmp_path)
    assert main(["forgetting", str(runs), "--out", str(tmp_path / "tables")]) == 0
    per_seed = pd.read_csv(tmp_path / "tables" / "forgetting_per_seed.csv")
    assert per_seed["rel_drop_stage"].round(6).tolist() == [0.75, 0.1, 0.0]
    summary = pd.read_csv(tmp_path / "tables" / "forgetting_summary.csv")
    assert set(summary["task"]) == {"seg", "det", "cls", "all"}
    assert write_tables(runs, tmp_path / "again") == [tmp_path / "again" / "forgetting_per_seed.csv",
                                                      tmp_path / "again" / "forgetting_summary.csv"]
