"""`unihead compare`: provenance before numbers, tolerances (floor, 2 std over seeds), missing numbers, exit codes."""

from __future__ import annotations

import gzip
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from constant_records import write_constant_records
from unihead.cli import main
from unihead.config import config_from_dict
from unihead.forgetting import Verdict, write_tables
from unihead.results import PER_IMAGE_FILE
from unihead.schema import ConfigError

REPO = Path(__file__).resolve().parents[1]
PROVENANCE = {"packages": {"torch": "2.14.1", "numpy": "2.4.6"}, "python": "3.11.7",
              "device": "cpu: x86_64, 2 threads", "git_commit": "0123abc"}
NUMBERS_PER_SEED = 10
"""metrics.json numbers of one seed: ewc 2 finals + R 2x2; each baseline 1 final + R 1x1."""


def write_run(folder: Path, name: str, seed: int, tasks: list[str], R: list[list[float]],
              records: list[dict] | None = None) -> None:
    """One run's metrics.json and per-image records (by default records whose every image scores R itself)."""
    metric = {"seg": "miou", "cls": "top1"}
    metrics = {"run": {"name": name, "seed": seed, "tasks": tasks}, "eval_tasks": tasks,
               "primary_metric": {t: metric[t] for t in tasks}, "R": R,
               "chance": [{"seg": 0.05, "cls": 0.1}[t] for t in tasks],
               "final": {t: {metric[t]: R[-1][i]} for i, t in enumerate(tasks)}, "provenance": PROVENANCE}
    run = folder / "runs" / name / f"seed{seed}"
    run.mkdir(parents=True)
    (run / "metrics.json").write_text(json.dumps(metrics))
    if records is None:
        write_constant_records(run, tasks, R)
    else:
        (run / PER_IMAGE_FILE).write_bytes(gzip.compress(json.dumps(records).encode()))


def write_results(folder: Path, finals: dict[int, tuple[float, float]]) -> Path:
    """An experiment's results: per seed an 'ewc' run over seg -> cls ending at (seg, cls) = finals[seed], the
    two single-task baselines, the forgetting tables made from them and a data manifest."""
    for seed, (seg, cls) in finals.items():
        write_run(folder, "ewc", seed, ["seg", "cls"], [[0.6, 0.1], [seg, cls]])
        write_run(folder, "baseline-seg", seed, ["seg"], [[0.62]])
        write_run(folder, "baseline-cls", seed, ["cls"], [[0.7]])
    write_tables(folder / "runs", folder / "tables", Verdict())
    (folder / "data").mkdir()
    manifest = {"source": "synthetic", "root": "data/x",
                "files": {f"imagenette_160/val/{i}.JPEG": {"bytes": 3, "sha256": f"{i:064x}"} for i in range(3)}}
    (folder / "data" / "manifest.json").write_text(json.dumps(manifest))
    return folder


def edit_json(path: Path, change) -> None:
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


@pytest.fixture
def pair(tmp_path: Path) -> tuple[Path, Path]:
    reference = write_results(tmp_path / "reference", {0: (0.5, 0.6)})
    return reference, Path(shutil.copytree(reference, tmp_path / "mine"))


def compare(reference: Path, mine: Path, capsys, *options: str) -> tuple[int, str, pd.DataFrame]:
    out = mine.parent / "comparison"
    code = main(["compare", str(reference), str(mine), "--out", str(out), *options])
    table = pd.read_csv(out / "comparison.csv", keep_default_na=False, na_values=[""])
    return code, capsys.readouterr().out, table


def test_a_side_of_one_seed_is_a_warning_that_its_noise_lacks_the_seeds(pair, capsys):
    _, out, _ = compare(*pair, capsys)
    assert "WARNING  seeds: a run of one seed in the reference and in mine: the statistical test's noise holds " \
           "the validation images' only" in out


def test_identical_folders_are_reproduced_and_bit_identical(pair, capsys):
    code, out, table = compare(*pair, capsys)
    assert code == 0
    assert (table["status"] == "reproduced").all() and table["identical"].all()
    assert (table["table"] == "metrics.json").sum() == NUMBERS_PER_SEED
    assert f"REPRODUCED, bit-identical: {len(table)} of {len(table)} numbers bit-identical" in out
    # verdicts are compared as text: 'n/a' (no baseline for the task trained last) is a verdict, not a gap
    na = table[(table["quantity"] == "verdict_stage") & (table["task"] == "cls")]
    assert list(na["table"]) == ["forgetting_per_seed.csv", "forgetting_summary.csv"]
    assert list(na["reference"]) == ["n/a", "n/a"] and list(na["mine"]) == ["n/a", "n/a"]
    markdown = (pair[1].parent / "comparison" / "comparison.md").read_text()
    assert "**REPRODUCED" in markdown
    assert re.search(r"\| ewc +\| 0 +\| cls +\| top1 +\| final +\| 0\.6 +\| 0\.6 +\| \+0 +\| 0\.02 \(floor\) +\| yes ",
                     markdown)


def test_the_default_output_folder_is_beside_my_report(pair, capsys):
    assert main(["compare", str(pair[0]), str(pair[1])]) == 0
    assert (pair[1] / "compare" / "comparison.md").is_file() and (pair[1] / "compare" / "comparison.csv").is_file()


def perturb(folder: Path, run: str, seed: int, task: str, value: float) -> None:
    """Set ``task``'s final score of one run (its final metric, last row of R and per-image records) to
    ``value``, as a run that ended there would have written them."""
    path = folder / "runs" / run / f"seed{seed}" / "metrics.json"
    metrics = json.loads(path.read_text())
    column = metrics["eval_tasks"].index(task)
    metrics["R"][-1][column] = value
    metrics["final"][task][metrics["primary_metric"][task]] = value
    path.write_text(json.dumps(metrics))
    write_constant_records(path.parent, metrics["eval_tasks"], metrics["R"])


def test_one_perturbed_number_fails_naming_run_seed_task_metric_and_difference(pair, capsys):
    perturb(pair[1], "ewc", 0, "cls", 0.65)
    code, out, table = compare(*pair, capsys)
    assert code == 1
    # one seed whose images all score alike: no noise, so any difference is beyond it
    assert re.search(r"differs: ewc cls final: reference 0\.6, mine 0\.65, difference \+0\.05 \(standard error "
                     r"[0-9.e-]+, p 0\)", out)
    assert "NOT REPRODUCED: 2 quantities beyond noise (ewc cls rel_drop_single, ewc cls final)" in out
    # the detail names the number, its difference and its per-number tolerance
    assert "not reproduced: run ewc seed 0 task cls metric top1: final (metrics.json): reference 0.6, mine 0.65, " \
           "difference +0.05, tolerance 0.02 (floor)" in out
    failed = table[(table["status"] != "reproduced") & (table["table"] == "metrics.json")]
    assert len(failed) == 2 and failed["difference"].tolist() == pytest.approx([0.05, 0.05])  # final and R


def test_a_verdict_that_flips_between_pass_and_fail_is_not_reproduced(pair, capsys):
    path = pair[1] / "tables" / "forgetting_summary.csv"
    table = pd.read_csv(path, keep_default_na=False, na_values=[""])
    assert table.loc[0, "verdict_single"] == "fail"  # seg: 0.5 final from a 0.62 baseline
    table.loc[0, "verdict_single"] = "pass"
    table.to_csv(path, index=False)
    code, out, _ = compare(*pair, capsys)
    assert code == 1
    assert "verdict pass vs fail: ewc seg verdict_single: fail (reference) vs pass (mine)" in out
    assert "not reproduced: run ewc seed all task seg metric miou: verdict_single (forgetting_summary.csv): " \
           "reference fail, mine pass (must be equal)" in out


def test_different_data_are_reported_before_the_numbers_and_fail(pair, capsys):
    edit_json(pair[1] / "data" / "manifest.json",
              lambda m: m["files"]["imagenette_160/val/1.JPEG"].update(sha256="f" * 64))
    code, out, table = compare(*pair, capsys)
    assert code == 1 and (table["status"] == "reproduced").all()
    lines = out.splitlines()
    data = next(i for i, line in enumerate(lines) if "ERROR    data: 1 file(s) with another sha256" in line)
    assert "imagenette_160/val/1.JPEG" in lines[data]
    assert data < next(i for i, line in enumerate(lines) if line.startswith("numbers (detail):"))
    assert "NOT REPRODUCED: data differ" in out


def test_different_versions_are_a_warning_and_the_numbers_decide(pair, capsys):
    for path in (pair[1] / "runs").glob("*/seed*/metrics.json"):
        edit_json(path, lambda m: m["provenance"]["packages"].update(torch="2.15.0"))
    code, out, _ = compare(*pair, capsys)
    assert code == 0
    assert "WARNING  versions: torch 2.14.1 (reference) vs 2.15.0 (mine)" in out
    assert out.index("WARNING") < out.index("numbers (detail):")


def test_a_missing_run_is_named(pair, capsys):
    shutil.rmtree(pair[1] / "runs" / "baseline-cls" / "seed0")
    code, out, table = compare(*pair, capsys)
    assert code == 1
    assert "ERROR    runs: in the reference but not in mine: baseline-cls seed 0" in out
    assert "missing in mine: run baseline-cls seed 0 task cls metric top1: final (metrics.json) = 0.7" in out
    missing = table[table["status"] == "missing in mine"]
    assert set(missing["run"]) == {"baseline-cls"} and len(missing) == 2


def test_a_number_missing_in_the_reference_is_named(pair, capsys):
    edit_json(pair[1] / "runs" / "ewc" / "seed0" / "metrics.json",
              lambda m: m["final"]["cls"].update(top5=0.9))
    code, out, _ = compare(*pair, capsys)
    assert code == 1
    assert "missing in the reference: run ewc seed 0 task cls metric top5: final (metrics.json) = 0.9" in out


def test_with_three_reference_seeds_the_tolerance_is_two_standard_deviations(tmp_path, capsys):
    # ewc's final cls top1 over seeds 0.5, 0.6, 0.7: sample std 0.1, tolerance 0.2; its seg mIoU 0.400, 0.401,
    # 0.402: std 0.001, 2 std = 0.002 is below the floor, which applies
    reference = write_results(tmp_path / "reference", {0: (0.400, 0.5), 1: (0.401, 0.6), 2: (0.402, 0.7)})
    mine = Path(shutil.copytree(reference, tmp_path / "mine"))
    edit_json(mine / "runs" / "ewc" / "seed0" / "metrics.json", lambda m: m["final"]["cls"].update(top1=0.69))
    edit_json(mine / "runs" / "ewc" / "seed1" / "metrics.json", lambda m: m["final"]["cls"].update(top1=0.39))
    code, out, table = compare(reference, mine, capsys)
    # the numbers' detail flags seed 1, but the reviewer's quantities come from R and the per-image records,
    # which the edit of 'final' alone left as they were
    assert code == 0 and "REPRODUCED within noise" in out and "outside the per-number tolerance (detail)" in out
    finals = table[(table["table"] == "metrics.json") & (table["quantity"] == "final") & (table["run"] == "ewc")]
    cls = finals[finals["task"] == "cls"].set_index("seed")
    assert cls["tolerance"].tolist() == pytest.approx([0.2, 0.2, 0.2])
    assert set(cls["tolerance_basis"]) == {"2 std over 3 seeds"}
    assert cls["status"].tolist() == ["reproduced", "not reproduced", "reproduced"]  # +0.19, -0.21, 0
    assert "run ewc seed 1 task cls metric top1: final (metrics.json): reference 0.6, mine 0.39, difference " \
           "-0.21, tolerance 0.2 (2 std over 3 seeds)" in out
    seg = finals[finals["task"] == "seg"]
    assert seg["tolerance"].tolist() == [0.02] * 3 and set(seg["tolerance_basis"]) == {"floor"}
    # the summary's mean over seeds gets the same tolerance, from the table's own final_std
    summary = table[(table["table"] == "forgetting_summary.csv") & (table["quantity"] == "final_mean")
                    & (table["task"] == "cls")]
    assert summary["tolerance"].tolist() == pytest.approx([0.2]) and summary["seed"].tolist() == ["all"]
    # absolute drops are in points: their floor is 100 times the metrics'
    points = table[(table["quantity"] == "abs_drop_single") & (table["task"] == "seg") & (table["seed"] != "all")]
    assert points["tolerance"].tolist() == [2.0] * 3


def test_a_result_folder_without_its_tables_is_an_error_naming_the_file(pair, capsys):
    (pair[1] / "tables" / "forgetting_summary.csv").unlink()
    assert main(["compare", str(pair[0]), str(pair[1])]) == 2
    assert f"{pair[1] / 'tables' / 'forgetting_summary.csv'}: not found" in capsys.readouterr().err


def test_the_reference_key_takes_only_the_name_placeholder():
    assert config_from_dict({"name": "x"}).workflow.reference == "results/{name}-reference"
    assert config_from_dict({"workflow": {"reference": None}}).workflow.reference is None
    with pytest.raises(ConfigError, match="config key 'workflow.reference': expected a folder path whose only "
                                          "placeholder is {name}"):
        config_from_dict({"workflow": {"reference": "results/{nmae}-reference"}})


SNAKEMAKE = shutil.which("snakemake") or str(Path(sys.executable).with_name("snakemake"))


@pytest.mark.slow
@pytest.mark.skipif(not Path(SNAKEMAKE).exists(), reason="snakemake is not installed")
def test_the_workflow_compares_only_when_the_reference_exists(tmp_path):
    def dry_run() -> str:
        proc = subprocess.run([SNAKEMAKE, "-n", "-p", "--snakefile", str(REPO / "Snakefile"), "--directory",
                               str(tmp_path), "--configfile", str(REPO / "workflow" / "config" / "test.yaml")],
                              capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr[-3000:]
        return proc.stdout

    assert "unihead compare" not in dry_run()
    write_results(tmp_path / "results" / "test-reference", {0: (0.5, 0.6)})
    listing = dry_run()
    assert "python -m unihead compare results/test-reference results/test --out results/test/compare" in listing
