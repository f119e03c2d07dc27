# Paths and run lists of the experiment, derived from the validated config (EXPERIMENT). Every path in a
# shell command is quoted there ({input:q}, {params.out:q}): report_dir and the checkout's folder may
# hold spaces or shell syntax; the name cannot (config.py's NAME_PATTERN), but is quoted all the same.

import re
import shlex

EXP = EXPERIMENT.name
RESULTS = f"results/{EXP}"
MANIFEST = f"{RESULTS}/data/manifest.json"
SEEDS = EXPERIMENT.workflow.seeds
RUNS = run_names(EXPERIMENT)
# With variants (workflow.variants) every run, baselines included, is run once per variant, in a folder of
# the variant's; without, the runs' folders sit directly under runs/.
VARIANTS = list(EXPERIMENT.workflow.variants)
RUN_ID = "{variant}/{run}" if VARIANTS else "{run}"
RUN_DIR = f"{RESULTS}/runs/{RUN_ID}/seed{{seed}}"
RUN_METRICS = expand(f"{RUN_DIR}/metrics.json", **({"variant": VARIANTS} if VARIANTS else {}), run=RUNS, seed=SEEDS)
# each run's per-image records beside its metrics.json, which the forgetting intervals resample
RUN_PER_IMAGE = [str(Path(path).with_name("per_image.json.gz")) for path in RUN_METRICS]
REPORT_DIR = EXPERIMENT.workflow.report_dir.format(name=EXP)
# The id lists an official build reads: editing one rebuilds the data (and everything after it).
SUBSET_FILES = (
    sorted(str(p) for p in Path(EXPERIMENT.data.official.subsets).glob("*") if p.suffix in (".txt", ".json"))
    if EXPERIMENT.data.source == "official"
    else []
)

# The files one rule writes and another reads, here so that every rule file sees them whatever the include order.
# Each job's slice of the config (workflow/rules/config.smk writes them).
JOB_CONFIG = f"{RESULTS}/config/{{job}}.yaml"
RUN_CONFIG = f"{RUN_DIR}/run.yaml"
# The forgetting tables (workflow/rules/evaluate.smk), read by the report and the comparison.
FORGETTING_SUMMARY = f"{RESULTS}/tables/forgetting_summary.csv"
FORGETTING_TABLES = [f"{RESULTS}/tables/forgetting_per_seed.csv", FORGETTING_SUMMARY]
# With variants, each variant's model is measured (a variant may change the heads), from its own config slice.
BENCHMARK_JOB = "benchmark/{variant}" if VARIANTS else "benchmark"
BENCHMARK_CONFIG = f"{RESULTS}/config/{BENCHMARK_JOB}.yaml"
BENCHMARK = f"{RESULTS}/compute/{{variant}}/benchmark.json" if VARIANTS else f"{RESULTS}/compute/benchmark.json"
BENCHMARKS = expand(BENCHMARK, variant=VARIANTS) if VARIANTS else [BENCHMARK]
# The report's tables and figures (workflow/rules/report.smk), read by the paper and the default target.
REPORT_TABLES = expand(
    f"{REPORT_DIR}/tables/{{name}}.{{ext}}",
    name=["final_metrics", "forgetting", "continual", "r_matrices", "compute"],
    ext=["csv", "md", "tex"],
)
FIGURES = ["final_metrics", "drops", "stages", "r_matrices", "training_curves", "qualitative"]
REPORT_FILES = REPORT_TABLES + expand(f"{REPORT_DIR}/figures/{{name}}.{{ext}}", name=FIGURES, ext=["pdf", "png"])
# EWC's penalty weight swept on held-out training images (workflow/rules/ewc_sweep.smk), when ewc_sweep lists
# weights: every run with EWC reads the choice.
SWEEP = EXPERIMENT.ewc_sweep
SWEEP_DIR = f"{RESULTS}/ewc_sweep"
SWEEP_RUN_DIR = f"{SWEEP_DIR}/lambda{{weight}}/seed{{seed}}"
SWEEP_METRICS = expand(f"{SWEEP_RUN_DIR}/metrics.json", weight=[f"{w:g}" for w in SWEEP.penalty_weights],
                       seed=SWEEP.seeds)
EWC_CHOICE = f"{SWEEP_DIR}/{CHOICE_FILE}" if SWEEP.penalty_weights else None
# the table is written beside the choice, then copied into the report: moving the report (workflow.report_dir)
# must not make a new choice, which every EWC run reads
SWEEP_TABLES = [f"{SWEEP_DIR}/ewc_sweep.{ext}" for ext in ("csv", "md", "tex")] if SWEEP.penalty_weights else []
SWEEP_FILES = [f"{REPORT_DIR}/tables/{Path(path).name}" for path in SWEEP_TABLES]
# The comparison with the committed reference (workflow/rules/compare.smk), when that folder exists.
REFERENCE = EXPERIMENT.workflow.reference.format(name=EXP) if EXPERIMENT.workflow.reference else None
COMPARISON = (
    [f"{RESULTS}/compare/comparison.md", f"{RESULTS}/compare/comparison.csv"]
    if REFERENCE and Path(REFERENCE).is_dir()
    else []
)

# Jobs run the package from the checkout's code/ (inside the container too), so code edits need
# no image rebuild.
CODE_DIR = Path(workflow.basedir) / "code"


def shell_word(text):
    """``text`` as one shell word, its braces escaped for Snakemake's formatting of the command."""
    return shlex.quote(str(text)).replace("{", "{{").replace("}", "}}")


shell.prefix(f"set -euo pipefail; export PYTHONPATH={shell_word(CODE_DIR)}${{{{PYTHONPATH:+:$PYTHONPATH}}}}; ")


def write_yaml(path, values, log):
    """``values`` as a YAML file (a job's config), and a line saying so in the rule's log."""
    import yaml

    Path(path).write_text(yaml.safe_dump(values, sort_keys=False))
    Path(log).write_text(f"wrote {path}\n")


def run_values(wildcards, choice):
    """What one run reads, the EWC sweep's choice (``choice``, a list of at most one file) replacing the config's
    penalty weight, so that a new choice reruns the run. It is computed here, not written into params.values:
    Snakemake records params after the job, and a record holding the choice would differ from the next
    evaluation and rerun the job on every invocation."""
    weight = read_choice(Path(choice[0])) if choice else None
    return run_scope(EXPERIMENT, wildcards.run, int(wildcards.seed), wildcards.get("variant"), weight)


def copy_files(sources, targets, log):
    """Each of ``sources`` copied to the target in its place, and a line saying so in the rule's log."""
    for source, target in zip(sources, targets, strict=True):
        shutil.copyfile(source, target)
    Path(log).write_text(f"copied {list(sources)} to {list(targets)}\n")


def figure(name):
    """A figure's PNG, marked for `snakemake --report` with its caption from workflow/report/."""
    return report(
        f"{REPORT_DIR}/figures/{name}.png",
        caption=f"../report/{name}.rst",
        category="Figures",
        labels={"figure": name},
    )


wildcard_constraints:
    run="|".join(map(re.escape, RUNS)),  # a combination's name holds "+"
    seed=r"\d+",
    variant="|".join(map(re.escape, VARIANTS)),
    weight="|".join(re.escape(f"{w:g}") for w in SWEEP.penalty_weights),


def another_experiments_paper(wildcards):
    """Planning `snakemake paper` under another experiment stops here, naming the experiment that has it."""
    raise WorkflowError(
        f"`snakemake paper` builds paper/main.pdf from the report of the experiment whose "
        f"workflow.report_dir is 'paper' (workflow/config/paper.yaml); experiment {EXP!r} reports into "
        f"{REPORT_DIR!r}. Run `snakemake --cores 1 paper` without --configfile (or with the paper's config)."
    )
