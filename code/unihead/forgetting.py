"""The forgetting verdict: per strategy and task, the drops from both baselines and whether the task kept
what it learned; and the continual-learning summaries (average final score, BWT, average forgetting).

Drops and pass/fail are decided here and nowhere else: the engine writes measurements only. Each task is
judged against two baselines: ``stage``, its score right after its own stage (the challenge's definition;
none for the task trained last, whose drop from its own stage is 0 by construction), and ``single``, the
final score of the ``baseline-<task>`` run of the same seed. A baseline that is not at least
``learned_margin`` above the task's chance score gives "not learned", never "pass": a task that was never
learned cannot show that it kept what it learned. Over seeds the scores are averaged before dividing.

Each verdict carries the interval of its drop (:mod:`unihead.intervals`: a paired bootstrap over validation
images, seeds resampled first where they are averaged): a learned task passes when the whole interval lies at or
below the threshold, fails when it lies wholly above, and is "inconclusive" when it straddles the threshold, so
that a verdict never claims more than the 60 or so validation images and the seeds can tell. With
``bootstrap.resamples: 0`` there are no intervals and the point estimate decides (pass/fail).

Reads the runs' records (:func:`unihead.results.load_runs`: a run folder without one, an unfinished run, is an
error, and so, given the experiment, is a run it lists that is absent, so that no table has a silent gap).
With variants, every table gains a
``variant`` column, and each variant's runs are judged against that variant's own baselines (a variant that
changes the model has its own single-task baselines). Imports no torch, so the workflow's host side can use
it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from unihead.config import THRESHOLD_RULES, BootstrapConfig, ExperimentConfig
from unihead.errors import InputError
from unihead.files import atomic_write_text
from unihead.intervals import Pair, Resampler, over_seeds, percentile_interval
from unihead.results import RunResult, has_variants, load_runs
from unihead.runs import BASELINE_PREFIX

VARIANT = "variant"
"""The column naming a run's variant, in the tables of an experiment with variants (and only there)."""
PER_SEED_CSV = "forgetting_per_seed.csv"
SUMMARY_CSV = "forgetting_summary.csv"


PASS, FAIL, INCONCLUSIVE, NOT_LEARNED, NO_BASELINE = "pass", "fail", "inconclusive", "not learned", "n/a"
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


def rule_drops(rule: str, base: np.ndarray, final: np.ndarray, chance: float) -> np.ndarray:
    """:func:`drops`' ``rule`` column, resample by resample."""
    lost = base - final
    if rule == "absolute":
        return 100.0 * lost
    denominator = base if rule == "relative" else base - chance
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(denominator > 0, lost / denominator, np.nan)


@dataclass(frozen=True)
class Verdict:
    """How a task is judged: the config's ``threshold``, ``threshold_rule`` and ``learned_margin``."""

    threshold: float = ExperimentConfig.threshold
    rule: str = ExperimentConfig.threshold_rule
    learned_margin: float = ExperimentConfig.learned_margin
    resamples: int = BootstrapConfig.resamples
    bootstrap_seed: int = BootstrapConfig.seed
    confidence: float = BootstrapConfig.confidence

    def __post_init__(self) -> None:
        if self.rule not in THRESHOLD_RULES:
            raise InputError(f"threshold rule {self.rule!r}: expected one of {list(THRESHOLD_RULES)}")

    @classmethod
    def from_config(cls, config: ExperimentConfig) -> Verdict:
        bootstrap = config.bootstrap
        return cls(config.threshold, config.threshold_rule, config.learned_margin, bootstrap.resamples,
                   bootstrap.seed, bootstrap.confidence)

    def columns(self) -> dict[str, Any]:
        """The verdict's settings as the columns every forgetting table carries, so that a reader of a table
        (the report's captions) learns how it was judged from the table itself."""
        return {"threshold": self.threshold, "threshold_rule": self.rule, "learned_margin": self.learned_margin,
                "bootstrap_resamples": self.resamples, "bootstrap_seed": self.bootstrap_seed,
                "confidence": self.confidence}

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
        return cls(float(values["threshold"]), str(values["threshold_rule"]), float(values["learned_margin"]),
                   int(values["bootstrap_resamples"]), int(values["bootstrap_seed"]), float(values["confidence"]))

    def _passes(self, drop: float) -> bool:
        if self.rule == "absolute":
            drop /= 100.0  # the column is in points, the threshold on the metric's 0..1 scale
        return drop <= self.threshold + TOLERANCE

    def judge(self, base: float, final: float, chance: float,
              interval: tuple[float, float] | None = None) -> str:
        """``n/a`` without a baseline (NaN); ``not learned`` when the baseline is not at least
        ``learned_margin`` above chance; otherwise, with the rule's drop's ``interval``, ``pass`` when all of it
        is at most the threshold, ``fail`` when none of it is, ``inconclusive`` when it straddles the threshold;
        without an interval (or an undefined one), ``pass`` when the drop itself is at most the threshold (an
        undefined final score fails)."""
        if math.isnan(base):
            return NO_BASELINE
        if not base - chance >= self.learned_margin - TOLERANCE:
            return NOT_LEARNED
        if interval is not None and all(math.isfinite(end) for end in interval):
            low, high = interval
            return PASS if self._passes(high) else FAIL if not self._passes(low) else INCONCLUSIVE
        return PASS if self._passes(drops(base, final, chance)[RULE_DROP[self.rule]]) else FAIL


def _judged(definition: str, base: float, final: float, chance: float, verdict: Verdict,
            interval: tuple[float, float] | None = None) -> dict[str, Any]:
    """The drops and the verdict from one baseline definition, as columns suffixed with its name; with the
    ``interval`` of the rule's drop, that too, as ``<drop>_<definition>_low`` and ``_high``."""
    row: dict[str, Any] = {f"{name}_{definition}": value for name, value in drops(base, final, chance).items()}
    if interval is not None:
        drop = f"{RULE_DROP[verdict.rule]}_{definition}"
        row[f"{drop}_low"], row[f"{drop}_high"] = interval
    row[f"verdict_{definition}"] = verdict.judge(base, final, chance, interval)
    return row


def _nan(value: float | None) -> float:
    return math.nan if value is None else float(value)


def _interval(verdict: Verdict, pair: Pair | None, chance: float) -> tuple[float, float]:
    """The interval of the rule's drop from resampled (base, final) scores; undefined without a base."""
    if pair is None:
        return math.nan, math.nan
    return percentile_interval(rule_drops(verdict.rule, *pair, chance), verdict.confidence)


def _single_baselines(runs: list[RunResult]) -> dict[tuple[str | None, str, int], float]:
    """Final score of each ``baseline-<task>`` run, by (variant, task, seed)."""
    scores = {}
    for run in runs:
        if run.is_baseline:
            (task,) = run.eval_tasks
            scores[(run.variant, task, run.seed)] = _nan(run.R[-1][0])
    return scores


def _resampler(runs: list[RunResult], verdict: Verdict) -> Resampler | None:
    return Resampler(runs, verdict.resamples, verdict.bootstrap_seed) if verdict.resamples > 0 else None


def forgetting_table(runs: list[RunResult], verdict: Verdict, require_single_baseline: bool = True,
                     resampler: Resampler | None = None,
                     pairs: dict[tuple[Any, ...], list[Pair | None]] | None = None) -> pd.DataFrame:
    """One row per (strategy, seed, task): final score, chance score, both baselines, intransigence, and per
    baseline definition the three drops (see :func:`drops`), the interval of the rule's drop and the verdict.

    ``base_stage`` is NaN for the task trained last; ``intransigence`` = single-task baseline minus the score
    right after the task's own stage (how much less the sequence learned it), in the metric's scale. With
    ``verdict.resamples`` > 0 the intervals come from ``resampler`` (made here when not given); ``pairs``, when
    given, collects each row's resampled (base, final) scores by (variant, strategy, task, definition), seed
    after seed, for the intervals over seeds.
    """
    singles = _single_baselines(runs)
    if all(run.is_baseline for run in runs):
        raise InputError(f"only single-task baseline runs ({', '.join(sorted({str(r.path) for r in runs})[:3])}, ...): "
                         "the forgetting tables need at least one strategy run over the task sequence")
    if resampler is None:
        resampler = _resampler(runs, verdict)
    with_variants, rows = has_variants(runs), []
    for run in runs:
        name, seed, variant = run.name, run.seed, run.variant
        if run.is_baseline:
            continue
        R = [[_nan(v) for v in row] for row in run.R]
        for i, task in enumerate(run.eval_tasks):
            own_stage = run.run.tasks.index(task)
            final, chance = R[-1][i], _nan(run.chance[i])
            base_stage = math.nan if own_stage == len(R) - 1 else R[own_stage][i]
            if (variant, task, seed) not in singles and require_single_baseline:
                of = "" if variant is None else f" of variant {variant!r}"
                raise InputError(f"no single-task baseline for {task} seed {seed}{of}: expected "
                                 f"{Path(run.path).parents[2] / (BASELINE_PREFIX + task) / f'seed{seed}'}")
            base_single = singles.get((variant, task, seed), math.nan)
            row = {**({VARIANT: variant} if with_variants else {}), "strategy": name, "seed": seed, "task": task,
                   "metric": run.primary_metric[task],
                   "final": final, "chance": chance, "base_stage": base_stage, "base_single": base_single,
                   "intransigence": base_single - R[own_stage][i]}
            for definition, base in zip(DEFINITIONS, (base_stage, base_single), strict=True):
                pair = None
                if resampler is not None and not math.isnan(base):
                    base_run = (variant, name, seed) if definition == "stage" else \
                        (variant, BASELINE_PREFIX + task, seed)
                    base_at = own_stage if definition == "stage" else -1
                    pair = (resampler(base_run, base_at, task), resampler((variant, name, seed), -1, task))
                if pairs is not None:
                    pairs.setdefault((variant, name, task, definition), []).append(pair)
                interval = None if resampler is None else _interval(verdict, pair, chance)
                row |= _judged(definition, base, final, chance, verdict, interval)
            rows.append(row)
    return pd.DataFrame(rows)


def sequence_summaries(run: RunResult) -> dict[str, float]:
    """Average final score, BWT and average forgetting of one sequence run.

    With T stages and task i trained at stage s_i: BWT = mean over tasks not trained last of
    R[T-1][i] - R[s_i][i]; forgetting = mean over the same tasks of max_{s_i <= t < T-1} R[t][i] - R[T-1][i].
    (No forward transfer: with a separate head per task, a task's score before its own stage is the noise
    of an untrained head, not transfer.)
    """
    R = np.array([[_nan(v) for v in row] for row in run.R])
    own = [run.run.tasks.index(task) for task in run.eval_tasks]
    last = len(R) - 1
    earlier = [i for i, s in enumerate(own) if s < last]
    return {
        "avg_final": float(R[last].mean()),
        "bwt": float(np.mean([R[last, i] - R[own[i], i] for i in earlier])) if earlier else math.nan,
        "avg_forgetting": float(np.mean([R[own[i]:last, i].max() - R[last, i] for i in earlier]))
        if earlier else math.nan,
    }


def _check_seeds(table: pd.DataFrame, variant: list[str], runs: list[RunResult]) -> None:
    """Every strategy has every seed of the runs, and no score a mean is taken of is undefined: pandas would
    leave a missing or NaN seed out of the mean without a word."""
    every = sorted({run.seed for run in runs})
    for key, rows in table.groupby([*variant, "strategy"], sort=False):
        missing = sorted(set(every) - set(rows["seed"]))
        if missing:
            raise InputError(f"strategy {key[-1]!r}{'' if not variant else f' of variant {key[0]!r}'} has no run of "
                             f"seed(s) {missing}, which other runs have: its mean would be over fewer seeds")
    for key, rows in table.groupby([*variant, "strategy", "task"], sort=False):
        for column in ("final", "base_stage", "base_single"):
            undefined = rows[rows[column].isna()]
            if len(undefined) and len(undefined) < len(rows):
                raise InputError(f"run {key[-2]!r} seed {undefined['seed'].iloc[0]}: its {column} {key[-1]} score is "
                                 "undefined (null in a metrics.json) while other seeds' are not; a mean over seeds "
                                 "would silently leave it out")


def summary_table(runs: list[RunResult], verdict: Verdict, require_single_baseline: bool = True,
                  resampler: Resampler | None = None) -> pd.DataFrame:
    """Per (strategy, task) over seeds, and per strategy the sequence summaries (task ``all``); with variants,
    per (variant, strategy, task) and (variant, strategy).

    Every number of the per-seed table gets ``<column>_mean`` and ``<column>_std`` (ddof=1, so a single
    seed gives NaN). The verdict is that of the seed-averaged scores: ``rel_drop_stage`` (without suffix)
    = (mean base_stage - mean final) / mean base_stage, and so on, judged like one seed's, gated by the
    mean baseline against the mean chance score; seeds are averaged before dividing, so one seed with a
    tiny baseline cannot dominate. Its interval resamples seeds, then images (:mod:`unihead.intervals`).
    ``pass_rate_*`` is the fraction of seeds whose own verdict is pass. A strategy without every seed, or a
    seed whose score is undefined, is an error rather than a mean over fewer seeds.
    """
    return _tables(runs, verdict, require_single_baseline, resampler or _resampler(runs, verdict))[1]


def _tables(runs: list[RunResult], verdict: Verdict, require_single_baseline: bool,
            resampler: Resampler | None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The per-seed table (:func:`forgetting_table`) and the summary over seeds (:func:`summary_table`)."""
    pairs: dict[tuple[Any, ...], list[Pair | None]] = {}
    table = forgetting_table(runs, verdict, require_single_baseline, resampler, pairs)
    variant = [VARIANT] if has_variants(runs) else []
    _check_seeds(table, variant, runs)
    numbers = [column for column in table.columns if column not in (*variant, "strategy", "seed", "task", "metric")
               and not column.startswith("verdict_") and not column.endswith(("_low", "_high"))]
    grouped = table.groupby([*variant, "strategy", "task", "metric"], sort=False)
    summary = grouped[numbers].agg(["mean", "std"])
    summary.columns = [f"{column}_{stat}" for column, stat in summary.columns]
    summary["seeds"] = grouped.size()
    for definition in DEFINITIONS:
        judged = []
        for key, base, final, chance in zip(summary.index, summary[f"base_{definition}_mean"],
                                            summary["final_mean"], summary["chance_mean"], strict=True):
            interval = None
            if resampler is not None:
                seeds = pairs[(key[0] if variant else None, key[-3], key[-2], definition)]
                interval = _interval(verdict, over_seeds(seeds, verdict.resamples, verdict.bootstrap_seed), chance)
            judged.append(_judged(definition, base, final, chance, verdict, interval))
        summary = summary.join(pd.DataFrame(judged, index=summary.index))
        summary[f"pass_rate_{definition}"] = grouped[f"verdict_{definition}"].agg(
            lambda verdicts: float((verdicts == PASS).mean()))
    summary = summary.reset_index()
    per_run = pd.DataFrame([{**({VARIANT: run.variant} if variant else {}), "strategy": run.name,
                             **sequence_summaries(run)} for run in runs if not run.is_baseline])
    overall = per_run.groupby([*variant, "strategy"], sort=False).agg(["mean", "std"])
    overall.columns = [f"{column}_{stat}" for column, stat in overall.columns]
    overall["seeds"] = per_run.groupby([*variant, "strategy"], sort=False).size()
    overall = overall.reset_index().assign(task="all", metric="")
    return table, pd.concat([summary, overall], ignore_index=True)


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
    per_seed, summary = _tables(runs, verdict, require_single_baseline, _resampler(runs, verdict))
    tables = {PER_SEED_CSV: per_seed, SUMMARY_CSV: summary}
    paths = []
    for name, table in tables.items():
        path = Path(out_dir) / name
        atomic_write_text(path, table.assign(**verdict.columns()).to_csv(index=False))
        paths.append(path)
    return paths
