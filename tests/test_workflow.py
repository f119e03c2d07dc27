"""The Snakemake workflow: lint, the paper's job list, config errors, and the tiny config end to end."""

from __future__ import annotations

import gzip
import hashlib
import itertools
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml
from PIL import Image

from unihead.config import load_config
from unihead.scopes import run_scope

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = shutil.which("snakemake") or str(Path(sys.executable).with_name("snakemake"))
STRATEGIES = ["none", "ewc", "lwf", "replay", "kd", "kd_replay"]
RUNS = STRATEGIES + ["baseline-seg", "baseline-det", "baseline-cls"]

pytestmark = [pytest.mark.slow, pytest.mark.skipif(not Path(SNAKEMAKE).exists(), reason="snakemake is not installed")]


STAND_IN = REPO / "tests" / "stand_in"
"""Holds a stand-in `apptainer` that logs its calls and runs the jobs' commands on the host."""


def snakemake(*args: str, cwd: Path = REPO, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([SNAKEMAKE, *args], cwd=cwd, capture_output=True, text=True, timeout=1500,
                          env={**os.environ, **(env or {})})


def with_stand_in_apptainer(log: Path) -> dict[str, str]:
    return {"PATH": f"{STAND_IN}{os.pathsep}{os.environ['PATH']}", "STAND_IN_APPTAINER_LOG": str(log)}


@pytest.mark.parametrize("config", [None, "workflow/config/demo.yaml", "workflow/config/test.yaml"])
def test_lint_is_clean(config):
    proc = snakemake("--lint", *(["--configfile", config] if config else []))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Congratulations, your workflow is in a good condition!" in proc.stdout + proc.stderr


def test_paper_dry_run_lists_every_baseline_and_strategy_for_every_seed():
    proc = snakemake("-n", "--quiet", "rules")
    assert proc.returncode == 0, proc.stderr
    counts = dict(line.split()[:2] for line in proc.stdout.splitlines() if line.split()[1:2] and
                  line.split()[1].isdigit())
    assert counts["train"] == str(len(RUNS) * 3)
    listing = snakemake("-n").stdout
    for run in RUNS:
        for seed in range(3):
            assert f"results/paper/runs/{run}/seed{seed}/metrics.json" in listing
    assert "paper/figures/r_matrices.pdf" in listing and "paper/main.pdf" not in listing


def test_the_slurm_profile_runs_the_paper_in_the_container_with_gpus(tmp_path):
    """`snakemake -n` with the cluster profile: the image is resolved for the jobs, training and timing
    jobs ask SLURM for a GPU and their runtime, and Apptainer is told to pass the GPUs in (--nv)."""
    calls = tmp_path / "apptainer.jsonl"
    proc = snakemake("-n", "--workflow-profile", "workflow/profiles/slurm", env=with_stand_in_apptainer(calls))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Singularity image docker://ghcr.io/unihead/unihead:0.1.0 will be pulled." in proc.stdout
    jobs = proc.stdout.split("\nrule ")[1:]
    train = [job for job in jobs if job.startswith("train:")]
    assert len(train) == 27 and all("runtime=240, gpu=1" in job for job in train)
    prepare = next(job for job in jobs if job.startswith("prepare_data:"))
    assert "gpu=" not in prepare
    assert all(json.loads(line)["env"].get("APPTAINER_NV") == "1" for line in calls.read_text().splitlines())


def test_runs_per_gpu_training_jobs_share_the_workstations_gpu_and_the_benchmark_has_it_alone(tmp_path):
    """The default profile offers one GPU as GPU_SHARE units of gpu_share; a training job takes its share."""
    from unihead.config import GPU_SHARE

    profile = yaml.safe_load((REPO / "workflow/profiles/default/config.yaml").read_text())
    assert profile["resources"] == [f"gpu_share={GPU_SHARE}"]
    proc = snakemake("-n", "--workflow-profile", "workflow/profiles/default",
                     "--config", 'workflow={"runs_per_gpu": 3}', env=with_stand_in_apptainer(tmp_path / "calls.jsonl"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    jobs = proc.stdout.split("\nrule ")[1:]
    train = [job for job in jobs if job.startswith("train:")]
    assert len(train) == 27 and all("gpu=1, gpu_share=333," in job for job in train)
    benchmark = next(job for job in jobs if job.startswith("benchmark:"))
    assert "gpu=1, gpu_share=1000" in benchmark


def test_the_gpu_check_stops_naming_the_data_folder_when_it_holds_no_mini_datasets(tmp_path):
    proc = subprocess.run(["bash", "workflow/scripts/gpu_check.sh", str(tmp_path / "nothing")], cwd=REPO,
                          capture_output=True, text=True, env={**os.environ, "OUT": str(tmp_path / "out")})
    assert proc.returncode == 2
    assert f"no mini datasets at {tmp_path / 'nothing'} (run gpu_check_pack.sh" in proc.stdout
    assert (tmp_path / "out" / "results" / "paper-lite0" / "summary.txt").read_text() == proc.stdout


def test_the_paper_pdf_is_built_only_from_the_papers_own_report():
    assert "latexmk -pdf" in snakemake("-n", "-p", "paper").stdout
    for dry_run in (["-n"], []):
        other = snakemake(*dry_run, "paper", "--cores", "1", "--configfile", "workflow/config/demo.yaml")
        output = other.stdout + other.stderr
        assert other.returncode != 0 and "Job stats" not in output and "MissingRule" not in output
        assert ("`snakemake paper` builds paper/main.pdf from the report of the experiment whose "
                "workflow.report_dir is 'paper' (workflow/config/paper.yaml); experiment 'demo' reports into "
                "'results/demo/report'") in output


def test_a_bad_config_key_stops_the_workflow_naming_it(tmp_path):
    config = tmp_path / "bad.yaml"
    config.write_text((REPO / "workflow/config/test.yaml").read_text().replace("epochs: 2", "epoch: 2"))
    proc = snakemake("-n", "--configfile", str(config))
    assert proc.returncode != 0
    assert "invalid config: unknown config key 'train.epoch'" in proc.stderr + proc.stdout


ALIAS_BOMB = "".join(f"{chr(97 + i)}: &{chr(97 + i)} [{', '.join([f'*{chr(96 + i)}'] * 9)}]\n" for i in range(1, 9))


@pytest.mark.parametrize(("edit", "message"), [
    (lambda text: text.replace("epochs: 2", "epochs: 2\n  epochs: 50"),
     "invalid config: {config}: line 15: key 'epochs' is given twice in one mapping (first on line 14)"),
    (lambda text: "a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n" + ALIAS_BOMB + text
     + "  variants:\n    v: {train: {epochs: *i}}\n",
     "invalid config: {config}: the config holds more than 10,000 values once its YAML aliases are expanded"),
], ids=["key-given-twice", "alias-bomb"])
def test_a_config_file_that_yaml_reads_wrongly_stops_the_workflow(tmp_path, edit, message):
    """Snakemake reads the config file itself: a key given twice would keep its last value, and an alias bomb would
    hang the Snakefile; the Snakefile reads the file again and stops, naming it."""
    config = tmp_path / "bad.yaml"
    config.write_text(edit((REPO / "workflow/config/test.yaml").read_text()))
    proc = snakemake("-n", "--configfile", str(config))
    assert proc.returncode != 0
    assert message.format(config=config) in proc.stderr + proc.stdout, proc.stderr[-2000:]


def readme_config_examples() -> list[str]:
    """The README's `snakemake ... --config '...'` command lines, as written (comments dropped)."""
    lines = (REPO / "README.md").read_text().splitlines()
    return [line.split("  #")[0].strip() for line in lines if line.startswith("snakemake ") and "--config '" in line]


def test_the_readme_has_config_examples():
    assert any("workflow={" in line for line in readme_config_examples())


@pytest.mark.parametrize("line", readme_config_examples())
def test_the_readmes_config_overrides_dry_run(tmp_path, line):
    """Snakemake hands nested --config values over as strings ("0" for 0); the schema reads them as numbers."""
    args = shlex.split(line)[1:]
    proc = snakemake(*args, *([] if "-n" in args else ["-n"]), env=with_stand_in_apptainer(tmp_path / "calls.jsonl"))
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    if "seeds" in line:
        # the runs of seed 0 only (EWC's sweep has seeds of its own, ewc_sweep.seeds)
        assert "results/paper/runs/ewc/seed0/metrics.json" in proc.stdout
        assert not re.search(r"/runs/\S*/seed1/", proc.stdout)


def test_a_name_with_shell_syntax_is_refused_when_the_snakefile_is_parsed(tmp_path):
    marker = tmp_path / "X"
    name = f"a$(touch {marker})b"
    proc = snakemake("-n", "--config", f"name={name}")
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "invalid config: config key 'name': expected letters, digits, '.', '_' and '-'" in output
    assert "[A-Za-z0-9._-]{1,100}" in output and not marker.exists()


@pytest.mark.parametrize(("override", "message"), [
    ('workflow={"strategies": ["ewk"]}',
     "config key 'workflow.strategies[0]': expected 'none', a strategy ['ewc', 'lwf', 'replay', 'kd'], an alias "
     "['kd_replay'] or strategies joined by '+' (such as 'lwf+replay'), got 'ewk'"),
    ('workflow={"strategies": ["none", "lwf+ewk"]}',
     "config key 'workflow.strategies[1]': expected 'none', a strategy "),
    ('strategies={"ewk": {"fisher_samples": 8}}', "unknown config key 'strategies.ewk'"),
    ('strategies={"ewc": {"fisher_samples": 0}}',
     "config key 'strategies.ewc.fisher_samples': expected at least 1, got 0"),
])
def test_an_unknown_strategy_name_or_a_bad_option_stops_the_dry_run_naming_it(override, message):
    proc = snakemake("-n", "--config", override)
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0 and "Job stats" not in output
    assert f"invalid config: {message}" in output


def planned_train_jobs(output: str) -> list[str]:
    """The metrics.json of every training job a dry run (`-n`) plans."""
    return [m.group(1) for m in re.finditer(r"^\s+output: (\S+/metrics\.json)", output, flags=re.MULTILINE)]


def test_a_misspelt_key_in_a_variant_stops_the_dry_run_naming_it(tmp_path):
    config = tmp_path / "ablations-demo.yaml"
    config.write_text((REPO / "workflow/config/ablations-demo.yaml").read_text().replace("det_head: logits",
                                                                                         "det_haed: logits"))
    proc = snakemake("-n", "--configfile", str(config))
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0 and "Job stats" not in output
    assert "invalid config: unknown config key 'workflow.variants.det-logits.model.det_haed'" in output


def test_the_ablation_demo_runs_every_run_of_every_variant_with_its_own_config():
    """Each variant's runs and baselines land in runs/<variant>/, each with a run config built from the variant."""
    proc = snakemake("-n", "--configfile", "workflow/config/ablations-demo.yaml")
    assert proc.returncode == 0, proc.stderr[-3000:]
    variants = ["paper", "unified", "det-logits", "fine-levels", "bn-frozen"]
    runs = ["none", "replay", "kd_replay", "baseline-seg", "baseline-det", "baseline-cls"]
    assert sorted(planned_train_jobs(proc.stdout)) == sorted(
        f"results/ablations-demo/runs/{variant}/{run}/seed0/metrics.json" for variant in variants for run in runs)
    for variant in variants:
        assert f"results/ablations-demo/compute/{variant}/benchmark.json" in proc.stdout


def test_a_config_without_variants_keeps_the_runs_directly_under_runs():
    proc = snakemake("-n", "--configfile", "workflow/config/test.yaml")
    assert proc.returncode == 0, proc.stderr[-3000:]
    planned = [path for path in planned_train_jobs(proc.stdout) if "/ewc_sweep/" not in path]  # test.yaml's sweep
    assert sorted(planned) == sorted(f"results/test/runs/{run}/seed0/metrics.json" for run in RUNS)
    assert "results/test/compute/benchmark.json" in proc.stdout


def test_the_ablation_dry_run_plans_every_variant_run_and_baseline_for_three_seeds():
    proc = snakemake("-n", "--configfile", "workflow/config/ablations.yaml")
    assert proc.returncode == 0, proc.stderr[-3000:]
    planned = planned_train_jobs(proc.stdout)
    # 5 variants x (6 strategies and 3 baselines) x 3 seeds, and EWC's sweep: 5 weights x 2 seeds
    assert len([path for path in planned if "/runs/" in path]) == 5 * 9 * 3 == 135
    assert len([path for path in planned if "/ewc_sweep/" in path]) == 5 * 2 == len(planned) - 135
    assert "results/ablations/runs/unified/baseline-det/seed2/metrics.json" in proc.stdout
    assert "paper/ablations/tables/continual.tex" in proc.stdout


def test_the_order_dry_run_plans_every_task_order_and_the_restarted_schedule():
    proc = snakemake("-n", "--configfile", "workflow/config/ablations-order.yaml")
    assert proc.returncode == 0, proc.stderr[-3000:]
    # 7 variants (6 orders, cosine_stage) x (none, kd_replay and 3 baselines) x 3 seeds
    assert len(planned_train_jobs(proc.stdout)) == 7 * 5 * 3 == 105
    experiment = load_config(REPO / "workflow" / "config" / "ablations-order.yaml")
    orders = {tuple(run_scope(experiment, "none", 0, variant)["train"]["tasks"]) for variant in
              experiment.workflow.variants}
    assert orders == set(itertools.permutations(["seg", "det", "cls"]))
    assert run_scope(experiment, "none", 0, "cosine-stage")["train"]["schedule"] == "cosine_stage"
    assert run_scope(experiment, "none", 0, "seg-det-cls")["train"]["schedule"] == "cosine_total"


def test_a_combination_of_strategies_is_one_run_of_the_workflow():
    proc = snakemake("-n", "--config", 'workflow={"strategies": ["lwf+replay", "kd_replay"]}')
    assert proc.returncode == 0, proc.stderr[-3000:]
    runs = {line.split("/runs/")[1].split("/")[0] for line in proc.stdout.split() if "/runs/" in line}
    assert runs == {"lwf+replay", "kd_replay", "baseline-seg", "baseline-det", "baseline-cls"}


def test_paths_from_the_config_are_quoted_in_the_shell_commands(tmp_path):
    """A report_dir with a space and shell syntax reaches the report job's command line as one quoted word."""
    marker = tmp_path / "X"
    report_dir = f"my report/$(touch {marker})"
    proc = snakemake("-n", "-p", "--configfile", "workflow/config/test.yaml",
                     "--config", f"workflow={json.dumps({'report_dir': report_dir})}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"--out {shlex.quote(report_dir)} > " in proc.stdout
    assert f"--out {report_dir}" not in proc.stdout and not marker.exists()


@pytest.fixture(scope="module")
def tiny_workflow(tmp_path_factory) -> tuple[Path, Path]:
    """A fresh copy of the workflow after a complete run of the tiny config in the container (a stand-in
    engine runs the commands on the host): the copy's folder and the engine's call log."""
    root = tmp_path_factory.mktemp("tiny")
    work = root / "unihead"
    for part in ("Snakefile", "workflow", "code"):
        source = REPO / part
        if source.is_dir():
            shutil.copytree(source, work / part, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            work.mkdir(exist_ok=True)
            shutil.copy(source, work / part)
    calls = root / "apptainer.jsonl"
    proc = snakemake("--cores", "2", "--configfile", "workflow/config/test.yaml", "--use-singularity", cwd=work,
                     env=with_stand_in_apptainer(calls))
    assert proc.returncode == 0, proc.stderr[-5000:]
    return work, calls


def test_the_tiny_workflow_end_to_end_in_the_container(tiny_workflow):
    """The copy ran data -> every run -> forgetting table -> report, every shell job through `apptainer exec`
    of the configured image."""
    work, calls = tiny_workflow
    results = work / "results" / "test"

    image = "docker://ghcr.io/unihead/unihead:0.1.0"
    logged = [json.loads(line)["args"] for line in calls.read_text().splitlines()]
    assert [args[-1] for args in logged if args[0] == "pull"] == [image]
    local_image = f"{hashlib.md5(image.encode()).hexdigest()}.simg"
    jobs = [args for args in logged if "exec" in args]
    assert all(Path(args[-4]).name == local_image for args in jobs)
    subcommands = sorted(args[-1].split("python -m unihead ")[1].split()[0] for args in jobs)
    sweep = [0.1, 10]  # test.yaml's ewc_sweep: one seed
    assert subcommands == ["benchmark", "ewc-sweep", "forgetting", "prepare", "report",
                           *["train"] * (len(RUNS) + len(sweep))]

    manifest = json.loads((results / "data" / "manifest.json").read_text())
    assert manifest["source"] == "synthetic" and len(manifest["files"]) == 3 * 26 + 26 + 2
    for run in RUNS:
        metrics = json.loads((results / "runs" / run / "seed0" / "metrics.json").read_text())
        assert metrics["run"]["name"] == run and metrics["provenance"]["data_manifest_sha256"]
        assert (results / "runs" / run / "seed0" / "model.pt").stat().st_size > 1_000_000

    summary = pd.read_csv(results / "tables" / "forgetting_summary.csv")
    assert set(summary["strategy"]) == set(STRATEGIES)
    per_task = summary[summary["task"] != "all"]
    assert len(per_task) == 3 * len(STRATEGIES) and per_task["base_single_mean"].notna().all()

    report = results / "report"
    for name in ("final_metrics", "forgetting", "continual", "r_matrices", "compute"):
        for ext in ("csv", "md", "tex"):
            assert (report / "tables" / f"{name}.{ext}").stat().st_size > 0
    forgetting_md = (report / "tables" / "forgetting.md").read_text()
    assert all(f"| {name} " in forgetting_md for name in STRATEGIES)
    assert "SYNTHETIC data" in forgetting_md and "64 px" in forgetting_md
    assert "\\toprule" in (report / "tables" / "final_metrics.tex").read_text()
    forgetting_tex = (report / "tables" / "forgetting.tex").read_text()
    assert "kd\\_replay" in forgetting_tex and "\\label{tab:forgetting}" in forgetting_tex
    for name in ("final_metrics", "drops", "stages", "r_matrices", "training_curves", "qualitative"):
        with Image.open(report / "figures" / f"{name}.png") as image:
            assert image.width > 300 and image.height > 150
        assert (report / "figures" / f"{name}.pdf").read_bytes().startswith(b"%PDF")
    benchmark = json.loads((results / "compute" / "benchmark.json").read_text())
    assert benchmark["forward_ms"]["eager"]["median_ms"] > 0 and benchmark["conditions"]["image_size"] == 64
    assert set(benchmark["data"]["tasks"]) == {"seg", "det", "cls"}
    assert "Inference eager / fast (ms)" in (report / "tables" / "compute.md").read_text()
    assert (results / "benchmarks" / "train" / "ewc-seed0.tsv").exists()

    choice = json.loads((results / "ewc_sweep" / "choice.json").read_text())
    sweep_table = pd.read_csv(report / "tables" / "ewc_sweep.csv")
    assert list(sweep_table["penalty_weight"]) == sweep and sweep_table["chosen"].sum() == 1
    assert choice["penalty_weight"] == sweep_table.loc[sweep_table["chosen"], "penalty_weight"].item()
    for run in ("ewc", "kd"):  # the choice reaches every run with EWC, and only those
        strategies = yaml.safe_load((results / "runs" / run / "seed0" / "run.yaml").read_text())["strategies"]
        assert strategies.get("ewc", {}).get("penalty_weight") == (choice["penalty_weight"] if run == "ewc" else None)
    for weight in sweep:  # the sweep's runs were scored on a quarter of the training images, never on val
        swept = json.loads((results / "ewc_sweep" / f"lambda{weight:g}" / "seed0" / "metrics.json").read_text())
        assert swept["provenance"]["config"]["train"]["holdout"] == 0.25
        assert swept["provenance"]["config"]["strategies"]["ewc"]["penalty_weight"] == weight
        with gzip.open(results / "ewc_sweep" / f"lambda{weight:g}" / "seed0" / "per_image.json.gz") as f:
            scored = json.load(f)[-1]["cls"]["correct"]
        assert len(scored) == 4  # a quarter of the 16 training images
        epochs = [line for line in (results / "logs" / "ewc_sweep" / f"lambda{weight:g}-seed0.log").read_text()
                  .splitlines() if " epoch " in line]
        assert epochs and all(" held-out " in line and " val " not in line for line in epochs)

    again = snakemake("-n", "--configfile", "workflow/config/test.yaml", "--use-singularity", cwd=work,
                      env=with_stand_in_apptainer(calls))
    assert "Nothing to be done" in again.stdout + again.stderr


def planned_jobs(work: Path, *config: str) -> list[str]:
    """The jobs a dry run of the tiny config (with ``--config`` overrides) plans after the complete run, as
    ``rule`` or ``rule[wildcard=value,...]``, sorted (the ``all`` target left out). Like the run, it uses the
    container: without ``--use-singularity`` every job's software environment would count as changed."""
    proc = snakemake("-n", "--configfile", "workflow/config/test.yaml", "--use-singularity",
                     *(["--config", *config] if config else []), cwd=work,
                     env=with_stand_in_apptainer(work.parent / "dry-run-apptainer.jsonl"))
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    jobs = []
    for block in re.split(r"^(?:local)?rule ", proc.stdout, flags=re.MULTILINE)[1:]:
        name, _, body = block.partition(":")
        found = re.search(r"^\s+wildcards: (.*)$", body, flags=re.MULTILINE)
        wildcards = found.group(1).replace(" ", "") if found else ""
        if name != "all":
            jobs.append(f"{name}[{wildcards}]" if wildcards else name)
    return sorted(jobs)


def training(runs: list[str], seeds: list[int]) -> list[str]:
    """A run's config job and its training job, for each run and seed."""
    return [f"{rule}[run={run},seed={seed}]" for run in runs for seed in seeds for rule in ("run_config", "train")]


TABLES = ["forgetting", "job_config[job=forgetting]", "report"]
"""The forgetting tables, their config, and the report after them."""
SWEEP = ["ewc_sweep", "ewc_sweep_report", *[f"{rule}[weight={weight},seed=0]" for weight in ("0.1", "10")
                                            for rule in ("sweep_run_config", "sweep_train")]]
"""test.yaml's EWC sweep: its two runs, its table and choice, the table's copy into the report."""


@pytest.mark.parametrize(("edit", "expected"), [
    pytest.param([], [], id="nothing"),
    pytest.param(["threshold=0.1"], TABLES, id="threshold"),
    pytest.param(["threshold_rule=absolute"], TABLES, id="threshold-rule"),
    pytest.param(['workflow={"report_dir": "results/test/report-2"}'], ["ewc_sweep_report", "report"],
                 id="report-dir"),
    pytest.param(['workflow={"seeds": [0, 1]}'], sorted(TABLES + training(RUNS, [1])), id="new-seed"),
    pytest.param(['strategies={"ewc": {"fisher_samples": 4}}'],
                 sorted(["forgetting", "report"] + training(["ewc"], [0]) + SWEEP), id="one-strategys-options"),
    pytest.param(['train={"epochs": 3}'], sorted(["forgetting", "job_config[job=report]", "report"] +
                                                 ["job_config[job=ewc_sweep]"] + SWEEP + training(RUNS, [0])),
                 id="epochs"),
])
def test_an_edit_plans_only_the_jobs_that_read_it(tiny_workflow, edit, expected):
    """After a complete run, a dry run with one config edit plans exactly the jobs whose inputs it changes:
    each job reads its own slice of the config (code/unihead/scopes.py)."""
    work, _ = tiny_workflow
    assert planned_jobs(work, *edit) == expected

