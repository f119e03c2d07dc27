"""The forgetting verdict: per strategy and task, the drops from both baselines and whether the task kept
what it learned; and the continual-learning summaries (average final score, BWT, average forgetting).

Drops and pass/fail are decided here and nowhere else: the engine writes measurements only. Each task is
judged against two baselines: ``stage``, its score right after its own stage (the challenge's definition;
none for the task trained last, whose drop from its own stage is 0 by construction), and ``single``, the
final score of the ``baseline-<task>`` run of the same seed. A baseline that is not at least
``learned_margin`` above the task's chance score gives "not learned", never "pass": a task that was never
learned cannot show that it kept what it learned. Over seeds the scores are averaged before dividing.

Reads the runs' ``metrics.json`` files (``runs/<name>/seed<N>/metrics.json``, or
``runs/<variant>/<name>/seed<N>/metrics.json`` for an experiment with variants), each checked for what the
tables read; a run folder without one (an unfinished run) is an error, and so, given the experiment, is a
run it lists that is absent, so that no table has a silent gap. With variants, every table gains a
``variant`` column, and each variant's runs are judged against that variant's own baselines (a variant that
changes the model has its own single-task baselines). Imports no torch, so the workflow's host side can use
it.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from unihead.config import THRESHOLD_RULES, ExperimentConfig
from unihead.errors import InputError
from unihead.files import atomic_write_text
from unihead.runs import BASELINE_PREFIX, run_names

REQUIRED_KEYS = ("run", "eval_tasks", "primary_metric", "R", "chance")
RUN_KEYS = ("name", "seed", "tasks")
"""The keys of ``run`` that the tables need."""
METRICS_FILE = "metrics.json"
RUN_FOLDER = re.compile(r"seed\d+")
"""The name of a run's folder for one seed, under the run's own: ``<run>/seed<N>`` (``<variant>/<run>/seed<N>``)."""
VARIANT = "variant"
"""The column naming a run's variant, in the tables of an experiment with variants (and only there)."""
PER_SEED_CSV = "forgetting_per_seed.csv"
SUMMARY_CSV = "forgetting_summary.csv"


def _run_files(folder: Path) -> list[Path]:
    """The ``metrics.json`` of every ``<run>/seed<N>`` (or ``<variant>/<run>/seed<N>``) folder under ``folder``; a
    run folder without one is an unfinished (or never started) run, which would leave a silent gap in the
    tables."""
    runs = sorted(path for pattern in ("*/seed*", "*/*/seed*") for path in folder.glob(pattern)
                  if path.is_dir() and RUN_FOLDER.fullmatch(path.name))
    unfinished = [run for run in runs if not (run / METRICS_FILE).is_file()]
    if unfinished:
        more = f" (and {len(unfinished) - 1} more run folder(s) like it)" if len(unfinished) > 1 else ""
        raise InputError(f"unfinished run: {unfinished[0]} holds no {METRICS_FILE}{more}; finish it with "
                         "`unihead train`, or move it out of the folder")
    return [run / METRICS_FILE for run in runs]


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_bytes())
    except FileNotFoundError as err:
        raise InputError(f"{path}: run results not found") from err
    except OSError as err:
        raise InputError(f"{path}: cannot be read ({err.strerror})") from err
    except ValueError as err:  # not JSON, or not text at all (UnicodeDecodeError)
        raise InputError(f"{path}: not valid JSON ({err})") from err


def _short(value: Any) -> str:
    """A value as JSON writes it, cut to fit in a message."""
    text = json.dumps(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _is_number(value: Any) -> bool:
    """A score as ``metrics.json`` holds it: a number, or null for an undefined metric."""
    return value is None or (isinstance(value, (int, float)) and not isinstance(value, bool))


def _check_list(path: Path, key: str, value: Any, length: int, per: str) -> None:
    """``value`` is a list of ``length`` scores, one per entry of ``per``."""
    if not isinstance(value, list):
        raise InputError(f"{path}: key {key!r} is {_short(value)}; expected a list with one score per {per}")
    if len(value) != length:
        raise InputError(f"{path}: key {key!r} has {len(value)} values; expected one per {per}")
    for i, score in enumerate(value):
        if not _is_number(score):
            raise InputError(f"{path}: key '{key}[{i}]' is {_short(score)}; expected a number or null")


def _check_run(path: Path, run: Any) -> None:
    """``run`` names the run, its seed and the tasks it trained, in order."""
    if not isinstance(run, dict):
        raise InputError(f"{path}: key 'run' is {_short(run)}; expected an object with the keys {list(RUN_KEYS)}")
    missing = [f"run.{key}" for key in RUN_KEYS if key not in run]
    if missing:
        raise InputError(f"{path}: missing key(s) {missing}; expected the run's {list(RUN_KEYS)}")
    if not isinstance(run["name"], str) or not run["name"]:
        raise InputError(f"{path}: key 'run.name' is {_short(run['name'])}; expected the run's name")
    if not isinstance(run["seed"], int) or isinstance(run["seed"], bool):
        raise InputError(f"{path}: key 'run.seed' is {_short(run['seed'])}; expected an integer")
    if run.get(VARIANT) is not None and (not isinstance(run[VARIANT], str) or not run[VARIANT]):
        raise InputError(f"{path}: key 'run.variant' is {_short(run[VARIANT])}; expected the name of the "
                         "experiment's variant, or null")
    tasks = run["tasks"]
    if not isinstance(tasks, list) or not tasks or not all(isinstance(t, str) for t in tasks) \
            or len(set(tasks)) < len(tasks):
        raise InputError(f"{path}: key 'run.tasks' is {_short(tasks)}; expected the distinct tasks the run "
                         "trained, in order")


def _check_tasks(path: Path, metrics: dict[str, Any]) -> None:
    """``eval_tasks`` are tasks the run trained (a baseline's is its own task), each with a primary metric."""
    run, tasks = metrics["run"], metrics["eval_tasks"]
    if not isinstance(tasks, list) or not tasks or not all(isinstance(t, str) and t in run["tasks"] for t in tasks) \
            or len(set(tasks)) < len(tasks):
        raise InputError(f"{path}: key 'eval_tasks' is {_short(tasks)}; expected distinct tasks of 'run.tasks' "
                         f"{run['tasks']}")
    if run["name"].startswith(BASELINE_PREFIX) and tasks != [run["name"][len(BASELINE_PREFIX):]]:
        raise InputError(f"{path}: key 'eval_tasks' of baseline run {run['name']!r} is {tasks}; expected "
                         f"{[run['name'][len(BASELINE_PREFIX):]]}")
    primary = metrics["primary_metric"]
    if not isinstance(primary, dict) or any(not isinstance(primary.get(t), str) for t in tasks):
        raise InputError(f"{path}: key 'primary_metric' is {_short(primary)}; expected a metric name for each "
                         f"task of 'eval_tasks' {tasks}")


def _check_scores(path: Path, metrics: dict[str, Any]) -> None:
    """``R`` has a row per stage and ``chance`` a value, each row a score per task of ``eval_tasks``."""
    stages, tasks, R = metrics["run"]["tasks"], metrics["eval_tasks"], metrics["R"]
    if not isinstance(R, list):
        raise InputError(f"{path}: key 'R' is {_short(R)}; expected a list with one row per stage of 'run.tasks'")
    if len(R) != len(stages):
        raise InputError(f"{path}: key 'R' has {len(R)} rows; expected one per stage of 'run.tasks' {stages}")
    for stage, row in enumerate(R):
        _check_list(path, f"R[{stage}]", row, len(tasks), f"task of 'eval_tasks' {tasks}")
    _check_list(path, "chance", metrics["chance"], len(tasks), f"task of 'eval_tasks' {tasks}")


def _check_metrics(path: Path, metrics: Any) -> None:
    """Everything the tables read from one ``metrics.json``, checked so that a malformed file is an error that
    names it and the key, never a traceback or a wrong number."""
    if not isinstance(metrics, dict):
        raise InputError(f"{path}: holds {_short(metrics)}; expected a JSON object with the keys "
                         f"{list(REQUIRED_KEYS)} that `unihead train` writes")
    missing = [key for key in REQUIRED_KEYS if key not in metrics]
    if missing:
        raise InputError(f"{path}: missing key(s) {missing}; expected the keys {list(REQUIRED_KEYS)} that "
                         "`unihead train` writes (results from before 'chance' was recorded need a rerun)")
    _check_run(path, metrics["run"])
    _check_tasks(path, metrics)
    _check_scores(path, metrics)


def variant_of(run: dict[str, Any]) -> str | None:
    """The variant a run belongs to (``run.variant`` of its ``metrics.json``), None without variants."""
    return run["run"].get(VARIANT)


def qualified_name(variant: str | None, name: str) -> str:
    """A run's name with its variant, as its folders are named: ``<run>``, or ``<variant>/<run>``."""
    return name if variant is None else f"{variant}/{name}"


def has_variants(runs: list[dict[str, Any]]) -> bool:
    """Whether the runs belong to variants (then every one does: a table mixing both would leave the runs
    without a variant unplaced)."""
    without = [run for run in runs if variant_of(run) is None]
    if without and len(without) < len(runs):
        with_one = next(run for run in runs if variant_of(run) is not None)
        raise InputError(f"{without[0]['path']} belongs to no variant but {with_one['path']} to variant "
                         f"{variant_of(with_one)!r}: give the runs of one experiment, all with variants or all "
                         "without")
    return not without


def _check_listed(runs: list[dict[str, Any]], experiment: ExperimentConfig, sources: str) -> None:
    """Every run the experiment lists, for every variant and seed, is among ``runs``."""
    present = {(variant_of(run), run["run"]["name"], run["run"]["seed"]) for run in runs}
    variants = list(experiment.workflow.variants) or [None]
    absent = [f"{qualified_name(variant, name)}/seed{seed}" for variant in variants
              for name in run_names(experiment) for seed in experiment.workflow.seeds
              if (variant, name, seed) not in present]
    if absent:
        each = "every variant of workflow.variants, " if experiment.workflow.variants else ""
        folder = "<variant>/<run>" if experiment.workflow.variants else "<run>"
        raise InputError(f"{sources}: no results for run(s) {', '.join(absent)} that experiment "
                         f"{experiment.name!r} lists (workflow.strategies and baseline-<task> for "
                         f"workflow.baselines, each for {each}every seed of workflow.seeds); expected "
                         f"{folder}/seed<N>/{METRICS_FILE} for each")


def load_runs(sources: Path | Iterable[Path], experiment: ExperimentConfig | None = None) -> list[dict[str, Any]]:
    """Run results from ``metrics.json`` files, or from every ``<run>/seed<N>/metrics.json`` under a folder
    (where a ``<run>/seed<N>`` folder without one is an unfinished run: an error); each is checked for
    everything the tables read. With ``experiment``, every run it lists must be among them."""
    given = [sources] if isinstance(sources, (str, Path)) else list(sources)
    named = ", ".join(map(str, given))
    paths: list[Path] = []
    for source in map(Path, given):
        if source.is_dir():
            paths += _run_files(source)
        elif source.suffix == ".json":
            paths.append(source)
        else:
            raise InputError(f"{source}: neither a folder of runs nor a metrics.json file")
    if not paths:
        raise InputError(f"{named}: no run results (expected <run>/seed<N>/{METRICS_FILE})")
    runs = []
    for path in paths:
        metrics = _read_json(path)
        _check_metrics(path, metrics)
        metrics["path"] = str(path)
        runs.append(metrics)
    has_variants(runs)
    seen: dict[tuple[str | None, str, int], str] = {}
    for run in runs:
        key = (variant_of(run), run["run"]["name"], run["run"]["seed"])
        if key in seen:
            of = "" if variant_of(run) is None else f" of variant {variant_of(run)!r}"
            raise InputError(f"{run['path']} and {seen[key]}: both are run {run['run']['name']!r} seed "
                             f"{run['run']['seed']}{of}; give each run once")
        seen[key] = run["path"]
    if experiment is not None:
        _check_listed(runs, experiment, named)
    return runs


PASS, FAIL, NOT_LEARNED, NO_BASELINE = "pass", "fail", "not learned", "n/a"
"""The values of a ``verdict_*`` column."""
DEFINITIONS = ("stage", "single")
"""The baseline definitions, the suffix of their columns."""
RULE_DROP = {"relative": "rel_drop", "relative_to_chance": "chance_drop", "absolute": "abs_drop"}
"""The drop column each ``threshold_rule`` compares with the threshold."""
TOLERANCE = 1e-12
"""Slack in the comparisons, so that a drop of exactly the threshold passes despite rounding."""


def _ratio(numerator: float, denominator: float) -> float:
    return numerator / denominator if denominator > 0 else math.nan


def drops(base: float, final: float, chance: float) -> dict[str, float]:
    """The drop of ``final`` from ``base`` three ways: ``rel_drop`` = (base - final) / base,
    ``chance_drop`` = (base - final) / (base - chance) (each NaN where its denominator is not positive),
    and ``abs_drop`` = base - final in points (x100)."""
    lost = base - final
    return {"rel_drop": _ratio(lost, base), "chance_drop": _ratio(lost, base - chance), "abs_drop": 100.0 * lost}


@dataclass(frozen=True)
class Verdict:
    """How a task is judged: the config's ``threshold``, ``threshold_rule`` and ``learned_margin``."""

    threshold: float = ExperimentConfig.threshold
    rule: str = ExperimentConfig.threshold_rule
    learned_margin: float = ExperimentConfig.learned_margin

    def __post_init__(self) -> None:
        if self.rule not in THRESHOLD_RULES:
            raise InputError(f"threshold rule {self.rule!r}: expected one of {list(THRESHOLD_RULES)}")

    @classmethod
    def from_config(cls, config: ExperimentConfig) -> Verdict:
        return cls(config.threshold, config.threshold_rule, config.learned_margin)

    def columns(self) -> dict[str, Any]:
        """The verdict's settings as the columns every forgetting table carries, so that a reader of a table
        (the report's captions) learns how it was judged from the table itself."""
        return {"threshold": self.threshold, "threshold_rule": self.rule, "learned_margin": self.learned_margin}

    @classmethod
    def from_table(cls, table: pd.DataFrame, source: Path) -> Verdict:
        """The settings a forgetting table was judged with (its :meth:`columns`), one value each."""
        values = {}
        for column in cls().columns():
            found = table[column].unique() if column in table else []
            if len(found) != 1:
                raise InputError(f"{source}: expected one value in column {column!r} (written by `unihead "
                                 f"forgetting`), found {list(found)}")
            values[column] = found[0]
        return cls(float(values["threshold"]), str(values["threshold_rule"]), float(values["learned_margin"]))

    def judge(self, base: float, final: float, chance: float) -> str:
        """``n/a`` without a baseline (NaN); ``not learned`` when the baseline is not at least
        ``learned_margin`` above chance; otherwise ``pass`` when the rule's drop is at most the threshold
        (an undefined final score fails)."""
        if math.isnan(base):
            return NO_BASELINE
        if not base - chance >= self.learned_margin - TOLERANCE:
            return NOT_LEARNED
        drop = drops(base, final, chance)[RULE_DROP[self.rule]]
        if self.rule == "absolute":
            drop /= 100.0  # the column is in points, the threshold on the metric's 0..1 scale
        return PASS if drop <= self.threshold + TOLERANCE else FAIL


def _judged(definition: str, base: float, final: float, chance: float, verdict: Verdict) -> dict[str, Any]:
    """The drops and the verdict from one baseline definition, as columns suffixed with its name."""
    row: dict[str, Any] = {f"{name}_{definition}": value for name, value in drops(base, final, chance).items()}
    row[f"verdict_{definition}"] = verdict.judge(base, final, chance)
    return row


def _nan(value: Any) -> float:
    return math.nan if value is None else float(value)


def _single_baselines(runs: list[dict]) -> dict[tuple[str | None, str, int], float]:
    """Final score of each ``baseline-<task>`` run, by (variant, task, seed)."""
    scores = {}
    for run in runs:
        if run["run"]["name"].startswith(BASELINE_PREFIX):
            (task,) = run["eval_tasks"]
            scores[(variant_of(run), task, run["run"]["seed"])] = _nan(run["R"][-1][0])
    return scores



def forgetting_table(runs: list[dict], verdict: Verdict, require_single_baseline: bool = True) -> pd.DataFrame:
    """One row per (strategy, seed, task): final score, chance score, both baselines, intransigence, and per
    baseline definition the three drops (see :func:`drops`) and the verdict.

    ``base_stage`` is NaN for the task trained last; ``intransigence`` = single-task baseline minus the score
    right after the task's own stage (how much less the sequence learned it), in the metric's scale.
    """
    singles = _single_baselines(runs)
    if all(run["run"]["name"].startswith(BASELINE_PREFIX) for run in runs):
        raise InputError(f"only single-task baseline runs ({', '.join(sorted({r['path'] for r in runs})[:3])}, ...): "
                         "the forgetting tables need at least one strategy run over the task sequence")
    with_variants, rows = has_variants(runs), []
    for run in runs:
        name, seed, variant = run["run"]["name"], run["run"]["seed"], variant_of(run)
        if name.startswith(BASELINE_PREFIX):
            continue
        R = [[_nan(v) for v in row] for row in run["R"]]
        stages = run["run"]["tasks"]
        for i, task in enumerate(run["eval_tasks"]):
            own_stage = stages.index(task)
            final, chance = R[-1][i], _nan(run["chance"][i])
            base_stage = math.nan if own_stage == len(R) - 1 else R[own_stage][i]
            if (variant, task, seed) not in singles and require_single_baseline:
                of = "" if variant is None else f" of variant {variant!r}"
                raise InputError(f"no single-task baseline for {task} seed {seed}{of}: expected "
                                 f"{Path(run['path']).parents[2] / (BASELINE_PREFIX + task) / f'seed{seed}'}")
            base_single = singles.get((variant, task, seed), math.nan)
            row = {**({VARIANT: variant} if with_variants else {}), "strategy": name, "seed": seed, "task": task,
                   "metric": run["primary_metric"][task],
                   "final": final, "chance": chance, "base_stage": base_stage, "base_single": base_single,
                   "intransigence": base_single - R[own_stage][i]}
            for definition, base in zip(DEFINITIONS, (base_stage, base_single), strict=True):
                row |= _judged(definition, base, final, chance, verdict)
            rows.append(row)
    return pd.DataFrame(rows)


def sequence_summaries(run: dict) -> dict[str, float]:
    """Average final score, BWT and average forgetting of one sequence run.

    With T stages and task i trained at stage s_i: BWT = mean over tasks not trained last of
    R[T-1][i] - R[s_i][i]; forgetting = mean over the same tasks of max_{s_i <= t < T-1} R[t][i] - R[T-1][i].
    (No forward transfer: with a separate head per task, a task's score before its own stage is the noise
    of an untrained head, not transfer.)
    """
    R = np.array([[_nan(v) for v in row] for row in run["R"]])
    stages = run["run"]["tasks"]
    own = [stages.index(task) for task in run["eval_tasks"]]
    last = len(R) - 1
    earlier = [i for i, s in enumerate(own) if s < last]
    return {
        "avg_final": float(R[last].mean()),
        "bwt": float(np.mean([R[last, i] - R[own[i], i] for i in earlier])) if earlier else math.nan,
        "avg_forgetting": float(np.mean([R[own[i]:last, i].max() - R[last, i] for i in earlier]))
        if earlier else math.nan,
    }


def summary_table(runs: list[dict], verdict: Verdict, require_single_baseline: bool = True) -> pd.DataFrame:
    """Per (strategy, task) over seeds, and per strategy the sequence summaries (task ``all``); with variants,
    per (variant, strategy, task) and (variant, strategy).

    Every number of the per-seed table gets ``<column>_mean`` and ``<column>_std`` (ddof=1, so a single
    seed gives NaN). The verdict is that of the seed-averaged scores: ``rel_drop_stage`` (without suffix)
    = (mean base_stage - mean final) / mean base_stage, and so on, judged like one seed's, gated by the
    mean baseline against the mean chance score; seeds are averaged before dividing, so one seed with a
    tiny baseline cannot dominate. ``pass_rate_*`` is the fraction of seeds whose own verdict is pass.
    """
    table = forgetting_table(runs, verdict, require_single_baseline)
    variant = [VARIANT] if has_variants(runs) else []
    numbers = [column for column in table.columns if column not in (*variant, "strategy", "seed", "task", "metric")
               and not column.startswith("verdict_")]
    grouped = table.groupby([*variant, "strategy", "task", "metric"], sort=False)
    summary = grouped[numbers].agg(["mean", "std"])
    summary.columns = [f"{column}_{stat}" for column, stat in summary.columns]
    summary["seeds"] = grouped.size()
    for definition in DEFINITIONS:
        judged = [_judged(definition, base, final, chance, verdict) for base, final, chance in
                  zip(summary[f"base_{definition}_mean"], summary["final_mean"], summary["chance_mean"], strict=True)]
        summary = summary.join(pd.DataFrame(judged, index=summary.index))
        summary[f"pass_rate_{definition}"] = grouped[f"verdict_{definition}"].agg(
            lambda verdicts: float((verdicts == PASS).mean()))
    summary = summary.reset_index()
    per_run = pd.DataFrame([{**({VARIANT: variant_of(run)} if variant else {}), "strategy": run["run"]["name"],
                             **sequence_summaries(run)} for run in runs
                            if not run["run"]["name"].startswith(BASELINE_PREFIX)])
    overall = per_run.groupby([*variant, "strategy"], sort=False).agg(["mean", "std"])
    overall.columns = [f"{column}_{stat}" for column, stat in overall.columns]
    overall["seeds"] = per_run.groupby([*variant, "strategy"], sort=False).size()
    overall = overall.reset_index().assign(task="all", metric="")
    return pd.concat([summary, overall], ignore_index=True)


def read_summary(path: Path) -> tuple[pd.DataFrame, Verdict]:
    """The summary table that :func:`write_tables` wrote, with the verdict settings it was judged with (for the
    report, which shows these verdicts rather than computing its own)."""
    if not path.is_file():
        raise InputError(f"{path}: forgetting summary not found; `unihead forgetting` writes it")
    # only empty cells are missing values: "n/a" and "none" are a verdict and a strategy's name; a variant's
    # name is text even where it spells a number
    table = pd.read_csv(path, keep_default_na=False, na_values=[""], dtype={VARIANT: str})
    missing = [column for column in ("strategy", "task", "seeds") if column not in table]
    if missing:
        raise InputError(f"{path}: missing column(s) {missing}; expected the summary `unihead forgetting` writes")
    table["metric"] = table["metric"].fillna("")
    return table, Verdict.from_table(table, path)


def write_tables(sources: Path | Iterable[Path], out_dir: Path, verdict: Verdict,
                 require_single_baseline: bool = True, experiment: ExperimentConfig | None = None) -> list[Path]:
    """Write the per-seed and summary tables as CSV (atomically) and return their paths; with ``experiment``,
    every run it lists must be among the sources (see :func:`load_runs`)."""
    runs = load_runs(sources, experiment)
    tables = {PER_SEED_CSV: forgetting_table(runs, verdict, require_single_baseline),
              SUMMARY_CSV: summary_table(runs, verdict, require_single_baseline)}
    paths = []
    for name, table in tables.items():
        path = Path(out_dir) / name
        atomic_write_text(path, table.assign(**verdict.columns()).to_csv(index=False))
        paths.append(path)
    return paths
