"""Is a rerun the same experiment, within noise? The statistical verdict of ``unihead compare``.

It is judged at the level a reader of the paper reads: per strategy (and variant) and task, the final score
averaged over seeds and the drops the verdicts read (from the single-task baseline and from the task's own
stage), and per task the single-task baseline's mean final score. Each quantity's standard error on each side
comes from the same hierarchical bootstrap as the forgetting intervals (:mod:`unihead.intervals`: seeds, then
validation images), so it holds both the seeds' and the images' noise, scaled by sqrt(n / (n - 1)) for n seeds
(:attr:`Estimate.standard_error`: drawing few seeds with replacement understates their spread); a run of one
seed has no seeds' noise to estimate, which ``compare`` warns of. The two sides are independent runs, so
the difference's standard error is the root of the sum of both variances (the sqrt(2) of two replicates), and
each difference gets a two-sided z-test. The family of tests is held to a false-alarm rate of
:data:`FAMILY_ALPHA` with Holm's step-down correction: a rerun of the same experiment is called "not
reproduced" by chance in at most 5% of comparisons, however many quantities there are. A verdict that is pass
on one side and fail on the other is not reproduced; a flip to or from "inconclusive" (an interval that
straddles the threshold) is within noise. Imports no torch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from unihead.forgetting import (
    DEFINITIONS,
    FAIL,
    PASS,
    RULE_DROP,
    Verdict,
    forgetting_table,
    rule_drops,
)
from unihead.intervals import Pair, Resampler, over_seeds
from unihead.results import RunResult, qualified_name

FAMILY_ALPHA = 0.05
"""The chance that a rerun of the same experiment is called "not reproduced", over all its tests together."""
BIT_IDENTICAL, WITHIN_NOISE, NOT_REPRODUCED = "bit-identical", "reproduced within noise", "not reproduced"
"""The outcomes of a comparison."""


@dataclass(frozen=True)
class Estimate:
    """One quantity of one side: its point value, its values on the bootstrap's resamples, and the number of
    seeds it is a mean over."""

    value: float
    resampled: np.ndarray
    seeds: int

    @property
    def standard_error(self) -> float:
        """The resamples' standard deviation, scaled by sqrt(n / (n - 1)) for n seeds. Drawing n seeds with
        replacement gives a mean whose variance is (n - 1) / n of the unbiased s^2 / n: half of it for two
        seeds, where the seeds' noise is most of the noise. The scale corrects the seeds' part exactly and
        widens the images' part a little (conservative). One seed has no seeds' noise to scale: its error
        holds the images' noise only."""
        defined = self.resampled[np.isfinite(self.resampled)]
        if len(defined) < 2:
            return math.nan
        return float(defined.std(ddof=1)) * (math.sqrt(self.seeds / (self.seeds - 1)) if self.seeds > 1 else 1.0)


def estimates(runs: list[RunResult], verdict: Verdict) -> dict[tuple[str, str, str], Estimate]:
    """Every quantity of one side, by (run, task, quantity): each strategy's mean final score and the rule's
    drop from each baseline, and each single-task baseline's mean final score."""
    resampler = Resampler(runs, verdict.resamples, verdict.bootstrap_seed)
    pairs: dict[tuple[Any, ...], list[Pair | None]] = {}
    table = forgetting_table(runs, verdict, require_single_baseline=False, resampler=resampler, pairs=pairs)
    found: dict[tuple[str, str, str], Estimate] = {}
    variant = "variant" in table
    for (variant_name, strategy, task, definition), seeds in pairs.items():
        rows = table[(table["strategy"] == strategy) & (table["task"] == task)]
        if variant:
            rows = rows[rows["variant"] == variant_name]
        pair = over_seeds(seeds, verdict.resamples, verdict.bootstrap_seed)
        if pair is None:
            continue
        base, final = pair
        name = qualified_name(variant_name, strategy)
        chance = float(rows["chance"].mean())
        base_mean, final_mean = float(rows[f"base_{definition}"].mean()), float(rows["final"].mean())
        drop = f"{RULE_DROP[verdict.rule]}_{definition}"
        point = float(rule_drops(verdict.rule, np.array([base_mean]), np.array([final_mean]), chance)[0])
        n = len(seeds)
        found[(name, task, drop)] = Estimate(point, rule_drops(verdict.rule, base, final, chance), n)
        found[(name, task, "final")] = Estimate(final_mean, final, n)
        if definition == "single":
            found[(qualified_name(variant_name, f"baseline-{task}"), task, "final")] = Estimate(base_mean, base, n)
    return found


def _p_value(difference: float, standard_error: float) -> float:
    """Two-sided p-value of a z-test of ``difference`` = 0; a difference with no noise at all is either
    certain (0) or nothing (1)."""
    if math.isnan(difference):
        return math.nan
    if not standard_error > 0:
        return 1.0 if difference == 0 else 0.0
    return math.erfc(abs(difference) / standard_error / math.sqrt(2.0))


def holm(p_values: list[float], alpha: float = FAMILY_ALPHA) -> list[bool]:
    """Holm's step-down test: which hypotheses are rejected at family-wise error rate ``alpha``."""
    order = sorted(range(len(p_values)), key=lambda i: p_values[i])
    rejected = [False] * len(p_values)
    for rank, i in enumerate(order):
        if not p_values[i] <= alpha / (len(p_values) - rank):
            break
        rejected[i] = True
    return rejected


def tested_quantities(reference: dict[tuple[str, str, str], Estimate],
                    mine: dict[tuple[str, str, str], Estimate]) -> pd.DataFrame:
    """One row per quantity both sides have: both values and standard errors, the difference, its z-test's
    p-value and whether Holm's correction rejects it (``differs``)."""
    rows = []
    for key in (key for key in reference if key in mine):
        ref, own = reference[key], mine[key]
        standard_error = math.sqrt(np.nansum([ref.standard_error ** 2, own.standard_error ** 2]))
        difference = own.value - ref.value
        rows.append({"run": key[0], "task": key[1], "quantity": key[2], "reference": ref.value, "mine": own.value,
                     "difference": difference, "standard_error": standard_error,
                     "p_value": _p_value(difference, standard_error)})
    table = pd.DataFrame(rows, columns=["run", "task", "quantity", "reference", "mine", "difference",
                                        "standard_error", "p_value"])
    tested = table["p_value"].notna()
    table["differs"] = False
    table.loc[tested, "differs"] = holm(table.loc[tested, "p_value"].tolist())
    return table


def verdict_flips(reference: pd.DataFrame, mine: pd.DataFrame) -> list[str]:
    """The summary verdicts that are pass on one side and fail on the other, named."""
    keys = [key for key in ("variant", "strategy", "task") if key in reference]
    both = reference.merge(mine, on=keys, suffixes=("_reference", "_mine"))
    flips = []
    for definition in DEFINITIONS:
        column = f"verdict_{definition}"
        for row in both.to_dict("records"):
            if {row[f"{column}_reference"], row[f"{column}_mine"]} == {PASS, FAIL}:
                name = qualified_name(row.get("variant"), row["strategy"])
                flips.append(f"{name} {row['task']} {column}: {row[f'{column}_reference']} (reference) vs "
                             f"{row[f'{column}_mine']} (mine)")
    return flips
