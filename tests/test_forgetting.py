"""The forgetting verdict on hand-made metrics, with every number worked out by hand."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import pandas as pd
import pytest

from constant_records import write_constant_records
from unihead.cli import main
from unihead.config import load_config
from unihead.errors import InputError
from unihead.forgetting import Verdict, forgetting_table, summary_table, write_tables
from unihead.report.tables import forgetting_caption, forgetting_display
from unihead.results import load_runs
from unihead.runs import run_names

TASKS = ["seg", "det", "cls"]
PRIMARY = {"seg": "miou", "det": "map_50", "cls": "top1"}
R = [[0.40, 0.00, 0.10],
     [0.20, 0.30, 0.10],
     [0.10, 0.27, 0.70]]
R_INITIAL = [0.01, 0.02, 0.10]
SINGLE = {"seg": 0.50, "det": 0.30, "cls": 0.735}
CHANCE = {"seg": 0.02, "det": 0.0, "cls": 0.10}
"""Background-everywhere mIoU, mAP of no detections, 1 / 10 classes."""


def write_run(runs_dir: Path, name: str, seed: int, R, tasks, initial=None) -> None:
    folder = runs_dir / name / f"seed{seed}"
    folder.mkdir(parents=True)
    kind = "baseline" if name.startswith("baseline-") else "sequence"
    metrics = {"run": {"name": name, "kind": kind, "seed": seed, "tasks": tasks}, "eval_tasks": tasks,
               "primary_metric": {t: PRIMARY[t] for t in tasks}, "R": R, "R_initial": initial,
               "chance": [CHANCE[t] for t in tasks]}
    (folder / "metrics.json").write_text(json.dumps(metrics))
    write_constant_records(folder, tasks, R)


def runs_folder(tmp_path: Path, seeds=(0,), seg_final=(0.10,), seg_base=None, matrix=R, single=SINGLE) -> Path:
    """A ``none`` sequence run and the three single-task baselines per seed; ``seg_base``/``seg_final``
    replace seg's score after its own stage / at the end, seed by seed."""
    runs = tmp_path / "runs"
    for k, (seed, final) in enumerate(zip(seeds, seg_final, strict=True)):
        scores = [row[:] for row in matrix]
        scores[2][0] = final
        if seg_base is not None:
            scores[0][0] = seg_base[k]
        write_run(runs, "none", seed, scores, TASKS, R_INITIAL)
        for task, score in single.items():
            write_run(runs, f"baseline-{task}", seed, [[score]], [task], [0.0])
    return runs


def test_drops_from_both_baselines_intransigence_and_verdicts(tmp_path):
    table = forgetting_table(load_runs(runs_folder(tmp_path)), Verdict()).set_index("task")
    # seg: 0.40 after its stage -> 0.10 at the end: 75% relative, 30 points, 0.30 / (0.40 - 0.02) of the
    # margin over chance; single baseline 0.50: 80%, 40 points
    assert table.loc["seg", ["final", "chance", "base_stage", "base_single"]].tolist() == [0.10, 0.02, 0.40, 0.50]
    assert table.loc["seg", "rel_drop_stage"] == pytest.approx(0.75)
    assert table.loc["seg", "abs_drop_stage"] == pytest.approx(30.0)
    assert table.loc["seg", "chance_drop_stage"] == pytest.approx(0.30 / 0.38)
    assert table.loc["seg", "rel_drop_single"] == pytest.approx(0.80)
    # det: 0.30 -> 0.27: 10%, 3 points, fails both
    assert table.loc["det", "rel_drop_stage"] == pytest.approx(0.10)
    assert table.loc["det", "abs_drop_single"] == pytest.approx(3.0)
    # cls: trained last, so no drop from its own stage (n/a, not a 0% pass); single baseline 0.735 -> 0.70
    # is 4.76%: passes
    assert math.isnan(table.loc["cls", "base_stage"]) and math.isnan(table.loc["cls", "rel_drop_stage"])
    assert table.loc["cls", "rel_drop_single"] == pytest.approx(0.035 / 0.735)
    assert table["verdict_stage"].tolist() == ["fail", "fail", "n/a"]
    assert table["verdict_single"].tolist() == ["fail", "fail", "pass"]
    # intransigence = single baseline - score right after the own stage: 0.50 - 0.40, 0.30 - 0.30, 0.735 - 0.70
    assert table["intransigence"].tolist() == pytest.approx([0.10, 0.0, 0.035])


def test_other_threshold_rules_on_a_worked_case(tmp_path):
    runs = load_runs(runs_folder(tmp_path))
    # relative to chance: cls single 0.035 / (0.735 - 0.10) = 5.51% fails at 5%, passes at 6%;
    # seg 0.30 / 0.38 and det 0.03 / 0.30 fail
    to_chance = forgetting_table(runs, Verdict(0.05, "relative_to_chance")).set_index("task")
    assert to_chance.loc["cls", "chance_drop_single"] == pytest.approx(0.035 / 0.635)
    assert to_chance["verdict_single"].tolist() == ["fail", "fail", "fail"]
    assert forgetting_table(runs, Verdict(0.06, "relative_to_chance"))["verdict_single"].tolist() == \
        ["fail", "fail", "pass"]
    # absolute: seg drops 0.30 (stage) / 0.40 (single), det 0.03 / 0.03, cls - / 0.035, against 0.05
    absolute = forgetting_table(runs, Verdict(0.05, "absolute"))
    assert absolute["verdict_stage"].tolist() == ["fail", "pass", "n/a"]
    assert absolute["verdict_single"].tolist() == ["fail", "pass", "pass"]


def test_verdict_boundaries():
    verdict = Verdict()
    assert verdict.judge(0.80, 0.76, 0.0) == "pass"  # exactly 5% (0.04 / 0.80)
    assert verdict.judge(1.0, 0.9499, 0.0) == "fail"  # 5.01%
    assert Verdict(0.05, "absolute").judge(0.80, 0.75, 0.0) == "pass"  # exactly 0.05 below the baseline
    assert verdict.judge(0.15, 0.15, 0.10) == "pass"  # exactly learned_margin above chance counts as learned
    assert verdict.judge(0.149, 0.149, 0.10) == "not learned"
    assert verdict.judge(0.0, 0.0, 0.0) == "not learned"  # never learned: nothing to keep
    assert verdict.judge(math.nan, 0.5, 0.0) == "n/a"
    assert verdict.judge(0.80, math.nan, 0.0) == "fail"  # an undefined final score does not pass
    with pytest.raises(ValueError, match=r"threshold rule 'relativ': expected one of \['relative', "):
        Verdict(0.05, "relativ")


def test_a_baseline_near_zero_is_not_learned_not_a_huge_negative_drop_that_passes(tmp_path):
    # det's mAP 0.001 after its own stage and alone, 0.05 at the end: a relative drop of -4900%, which the
    # old rule passed; the baseline is not learned_margin (0.05) above chance (0.0), so nothing was kept
    matrix = [row[:] for row in R]
    matrix[1][1], matrix[2][1] = 0.001, 0.05
    table = forgetting_table(load_runs(runs_folder(tmp_path, matrix=matrix, single={**SINGLE, "det": 0.001})),
                             Verdict()).set_index("task")
    assert table.loc["det", "rel_drop_stage"] == pytest.approx(-49.0)
    assert table.loc["det", ["verdict_stage", "verdict_single"]].tolist() == ["not learned", "not learned"]


def test_a_classifier_at_chance_trained_last_does_not_pass(tmp_path):
    # cls at 0.10 with 10 classes, after its stage and alone: drop 0 from both, which the old rule passed
    matrix = [row[:] for row in R]
    matrix[2][2] = 0.10
    table = forgetting_table(load_runs(runs_folder(tmp_path, matrix=matrix, single={**SINGLE, "cls": 0.10})),
                             Verdict()).set_index("task")
    assert table.loc["cls", ["verdict_stage", "verdict_single"]].tolist() == ["n/a", "not learned"]


def test_seeds_are_averaged_before_dividing(tmp_path):
    # seg after its stage 0.10 and 0.90, at the end 0.088 and 0.90: per-seed drops 12% and 0%, whose mean 6%
    # fails; the seed-averaged scores 0.50 -> 0.494 drop 1.2%: pass by the point estimate (one seed in two
    # passes on its own)
    runs = load_runs(runs_folder(tmp_path, seeds=(0, 1), seg_base=(0.10, 0.90), seg_final=(0.088, 0.90)))
    seg = summary_table(runs, Verdict(resamples=0)).set_index(["strategy", "task"]).loc[("none", "seg")]
    assert seg["rel_drop_stage_mean"] == pytest.approx(0.06)
    assert seg["rel_drop_stage"] == pytest.approx(0.012)
    assert seg["verdict_stage"] == "pass" and seg["pass_rate_stage"] == 0.5
    # resampling the seeds (the images score alike here) draws seed 0 twice (12%), seed 1 twice (0%) or both
    # (1.2%): the interval runs from 0 to 12%, across the 5% threshold: inconclusive
    seg = summary_table(runs, Verdict()).set_index(["strategy", "task"]).loc[("none", "seg")]
    assert (seg["rel_drop_stage_low"], seg["rel_drop_stage_high"]) == pytest.approx((0.0, 0.12))
    assert seg["verdict_stage"] == "inconclusive"
    # gated by the averaged baseline: bases 0.02 and 0.10 (chance 0.02) average 0.06, less than 0.05 above chance
    runs = load_runs(runs_folder(tmp_path / "low", seeds=(0, 1), seg_base=(0.02, 0.10), seg_final=(0.02, 0.10)))
    seg = summary_table(runs, Verdict()).set_index(["strategy", "task"]).loc[("none", "seg")]
    assert seg["verdict_stage"] == "not learned" and seg["pass_rate_stage"] == 0.5


def test_bwt_forgetting_and_seed_statistics(tmp_path):
    runs = load_runs(runs_folder(tmp_path, seeds=(0, 1), seg_final=(0.10, 0.20)))
    summary = summary_table(runs, Verdict()).set_index(["strategy", "task"])
    overall = summary.loc[("none", "all")]
    # seed 0: BWT = mean(0.10-0.40, 0.27-0.30) = -0.165; seed 1: mean(0.20-0.40, -0.03) = -0.115
    assert overall["bwt_mean"] == pytest.approx(-0.14)
    assert overall["bwt_std"] == pytest.approx(math.sqrt(2 * 0.025**2))
    # forgetting: seed 0: mean(0.40-0.10, 0.30-0.27) = 0.165; seed 1: mean(0.20, 0.03) = 0.115
    assert overall["avg_forgetting_mean"] == pytest.approx(0.14)
    assert overall["avg_final_mean"] == pytest.approx(((0.10 + 0.27 + 0.70) + (0.20 + 0.27 + 0.70)) / 6)
    assert not any("forward" in column for column in summary.columns)
    seg = summary.loc[("none", "seg")]
    # relative drops from the stage baseline 0.75 and 0.50: mean 0.625, std (ddof 1) 0.125 * sqrt(2);
    # from the averaged scores (0.40 - 0.15) / 0.40 = 0.625 too
    assert seg["rel_drop_stage_mean"] == pytest.approx(0.625)
    assert seg["rel_drop_stage_std"] == pytest.approx(0.125 * math.sqrt(2))
    assert seg["rel_drop_stage"] == pytest.approx(0.625)
    assert seg["seeds"] == 2 and seg["verdict_stage"] == "fail" and seg["pass_rate_stage"] == 0.0
    assert summary.loc[("none", "cls"), "verdict_stage"] == "n/a"
    assert summary.loc[("none", "cls"), "pass_rate_single"] == 1.0


def test_single_seed_std_is_nan_and_the_report_shows_no_nan(tmp_path):
    summary = summary_table(load_runs(runs_folder(tmp_path)), Verdict())
    assert math.isnan(summary.set_index(["strategy", "task"]).loc[("none", "seg"), "final_std"])
    display = forgetting_display(summary, Verdict())
    assert display.columns.tolist() == ["Strategy", "Task", "Final", "Chance", "Drop/stage (%)", "Verdict (stage)",
                                        "Drop/single (%)", "Verdict (single)", "Intransigence"]
    # each drop with its interval, which has no width where every image scores alike
    assert display.iloc[0, 2:].tolist() == ["10.0", "2.0", "75.0 [75.0, 75.0]", "fail", "80.0 [80.0, 80.0]", "fail",
                                            "10.0"]
    assert "nan" not in display.to_markdown()
    display = forgetting_display(summary_table(load_runs(tmp_path / "runs"), Verdict(resamples=0)),
                                 Verdict(resamples=0))
    assert display.iloc[0, 2:].tolist() == ["10.0", "2.0", "75.0", "fail", "80.0", "fail", "10.0"]
    assert display.iloc[2, 2:].tolist() == ["70.0", "10.0", "n/a", "n/a", "4.8", "pass", "3.5"]
    assert "nan" not in display.to_markdown()
    absolute = forgetting_display(summary, Verdict(0.05, "absolute", resamples=0))
    assert absolute.loc[0, "Drop/stage (points)"] == "30.0"
    assert "at most 5 points" in forgetting_caption(Verdict(0.05, "absolute"), 3)
    assert "'not learned': the baseline is less than 5 points above" in forgetting_caption(Verdict(), 3)
    assert "(scores x100, mean ± std over 3 seeds)" in forgetting_caption(Verdict(), 3)
    assert "seed-averaged scores (± the std of the per-seed drops); it decides" in \
        forgetting_caption(Verdict(resamples=0), 3)
    assert "seed-averaged scores, with its 95% interval in brackets, from 1000 bootstrap resamples of the seeds, " \
           "then validation images" in forgetting_caption(Verdict(), 3)
    one_seed = forgetting_caption(Verdict(), 1)
    assert "(scores x100, one seed, so no std)" in one_seed and "±" not in one_seed


def test_without_a_single_baseline_when_allowed_its_columns_are_empty(tmp_path):
    # (without --no-single-baseline, a missing baseline is an error: see test_bad_input_runs.py)
    runs = runs_folder(tmp_path)
    shutil.rmtree(runs / "baseline-det" / "seed0")
    table = forgetting_table(load_runs(runs), Verdict(), require_single_baseline=False).set_index("task")
    assert math.isnan(table.loc["det", "base_single"]) and math.isnan(table.loc["det", "intransigence"])
    assert table.loc["det", "verdict_single"] == "n/a"


def test_cli_writes_both_tables(tmp_path, capsys):
    runs = runs_folder(tmp_path)
    assert main(["forgetting", str(runs), "--out", str(tmp_path / "tables")]) == 0
    per_seed = pd.read_csv(tmp_path / "tables" / "forgetting_per_seed.csv", keep_default_na=False, na_values=[""])
    assert per_seed["rel_drop_stage"].tolist()[:2] == pytest.approx([0.75, 0.1])
    assert per_seed["verdict_stage"].tolist() == ["fail", "fail", "n/a"]
    summary = pd.read_csv(tmp_path / "tables" / "forgetting_summary.csv")
    assert set(summary["task"]) == {"seg", "det", "cls", "all"}
    assert write_tables(runs, tmp_path / "again", Verdict()) == [tmp_path / "again" / "forgetting_per_seed.csv",
                                                                 tmp_path / "again" / "forgetting_summary.csv"]
    # the rule and the margin from the command line: with a margin of 0.5 only cls (0.735, chance 0.10) counts
    # as learned, and its absolute drop 0.035 passes
    assert main(["forgetting", str(runs), "--out", str(tmp_path / "absolute"), "--threshold-rule", "absolute",
                 "--learned-margin", "0.5"]) == 0
    per_seed = pd.read_csv(tmp_path / "absolute" / "forgetting_per_seed.csv", keep_default_na=False, na_values=[""])
    assert per_seed["verdict_single"].tolist() == ["not learned", "not learned", "pass"]


def test_the_experiment_lists_the_runs_and_sets_the_verdict(tmp_path):
    runs = runs_folder(tmp_path, seeds=(0, 1), seg_final=(0.10, 0.20))
    config = tmp_path / "exp.yaml"
    config.write_text("name: exp\nthreshold_rule: absolute\nlearned_margin: 0.5\n"
                      "workflow:\n  strategies: [none]\n  seeds: [0, 1]\n")
    assert run_names(load_config(config)) == ["none", "baseline-seg", "baseline-det", "baseline-cls"]
    assert main(["forgetting", str(runs), "--config", str(config), "--out", str(tmp_path / "tables")]) == 0
    per_seed = pd.read_csv(tmp_path / "tables" / "forgetting_per_seed.csv", keep_default_na=False, na_values=[""])
    # the experiment's rule and margin: only cls (0.735, chance 0.10) counts as learned; its drop 0.035 passes
    assert per_seed["verdict_single"].tolist() == ["not learned", "not learned", "pass"] * 2
    # an option overrides the experiment's value: with no margin, seg's drop of 0.40 (0.30) fails, det's 0.03 passes
    assert main(["forgetting", str(runs), "--config", str(config), "--out", str(tmp_path / "margin"),
                 "--learned-margin", "0"]) == 0
    per_seed = pd.read_csv(tmp_path / "margin" / "forgetting_per_seed.csv", keep_default_na=False, na_values=[""])
    assert per_seed["verdict_single"].tolist() == ["fail", "pass", "pass"] * 2


def test_a_missing_or_undefined_seed_is_an_error_not_a_mean_over_fewer(tmp_path):
    runs = runs_folder(tmp_path, seeds=(0, 1), seg_final=(0.10, 0.20))
    shutil.rmtree(runs / "none" / "seed1")
    with pytest.raises(InputError, match=r"strategy 'none' has no run of seed\(s\) \[1\], which other runs have"):
        summary_table(load_runs(runs), Verdict())
    runs = runs_folder(tmp_path / "undefined", seeds=(0, 1), seg_final=(0.10, None))
    with pytest.raises(InputError, match=r"run 'none' seed 1: its final seg score is undefined \(null in a "
                                         r"metrics.json\) while other seeds' are not"):
        summary_table(load_runs(runs), Verdict())


def test_another_task_order_measures_each_drop_from_the_tasks_own_stage(tmp_path):
    """The order ablation's runs (workflow/config/ablations-order.yaml): cls, seg, det in that order."""
    order = ["cls", "seg", "det"]
    runs = tmp_path / "runs"
    write_run(runs, "none", 0, [[0.70, 0.00, 0.00],
                                [0.50, 0.40, 0.00],
                                [0.35, 0.30, 0.25]], order)
    for task, score in SINGLE.items():
        write_run(runs, f"baseline-{task}", 0, [[score]], [task])
    table = forgetting_table(load_runs(runs), Verdict()).set_index("task")
    # cls: 0.70 after its own (first) stage -> 0.35: 50%; seg: 0.40 -> 0.30: 25%; det trained last: n/a
    assert table.loc["cls", "rel_drop_stage"] == pytest.approx(0.5)
    assert table.loc["seg", "rel_drop_stage"] == pytest.approx(0.25)
    assert math.isnan(table.loc["det", "rel_drop_stage"])
    # against the single-task baselines: det 0.30 -> 0.25 is 1/6
    assert table.loc["det", "rel_drop_single"] == pytest.approx(0.05 / 0.30)
