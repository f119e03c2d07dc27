"""EWC's penalty weight chosen on held-out training images: the sweep's table and its choice.

For each weight of ``ewc_sweep.penalty_weights`` and each seed of ``ewc_sweep.seeds`` the workflow trains the
experiment's ``ewc`` run on its training images but a held-out fraction (``train.holdout``) and scores it on that
fraction (``results/<name>/ewc_sweep/lambda<weight>/seed<N>/``), so the val images the tables report take no part
in the choice. The choice is the weight of the highest average final score: the mean over tasks of each task's
score after the last stage (the accuracy of Lopez-Paz & Ranzato's GEM), then over seeds; a tie goes to the smaller
weight. The average forgetting is shown beside it, not used: a weight that forgets less by learning less would
win on it alone. The table is :mod:`unihead.report.ewc_sweep`'s; the workflow reads the choice with
:func:`unihead.scopes.read_choice`.
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd

from unihead.config import ExperimentConfig
from unihead.errors import InputError
from unihead.files import atomic_write_text
from unihead.forgetting import sequence_summaries
from unihead.results import RunResult
from unihead.scopes import SweepChoice

SWEEP_NAME = "ewc_sweep"
"""The name of the sweep's folder under ``results/<name>/`` and of its table."""
CRITERION = "avg_final"
"""The summary (:func:`unihead.forgetting.sequence_summaries`) the choice maximises."""


def _run_settings(run: RunResult) -> tuple[float, float]:
    """The penalty weight and held-out fraction a sweep run was trained with, from its recorded config."""
    try:
        config = run.provenance.config
        return float(config["strategies"]["ewc"]["penalty_weight"]), float(config["train"]["holdout"])
    except (AttributeError, KeyError, TypeError) as err:
        raise InputError(f"{run.path}: no 'provenance.config' with strategies.ewc.penalty_weight and train.holdout; "
                         "expected an ewc run of the sweep (unihead train writes them)") from err


def sweep_scores(runs: list[RunResult], config: ExperimentConfig) -> pd.DataFrame:
    """One row per sweep run: its weight, seed, each task's final score on the held-out images and the run's
    summaries. Every run must be the experiment's ``ewc`` run scored on ``ewc_sweep.holdout`` of its training
    images, and every weight and seed of ``ewc_sweep`` present once; anything else is an error naming the run."""
    sweep = config.ewc_sweep
    rows = []
    for run in runs:
        weight, holdout = _run_settings(run)
        if run.name != "ewc" or run.run.kind != "sequence":
            raise InputError(f"{run.path}: run {run.name!r}; the sweep trains the sequence run 'ewc'")
        if holdout != sweep.holdout:
            raise InputError(f"{run.path}: scored with train.holdout {holdout:g}, not ewc_sweep.holdout "
                             f"{sweep.holdout:g}: the choice must rest on held-out training images")
        finals = dict(zip(run.eval_tasks, run.R[-1], strict=True))
        rows.append({"penalty_weight": weight, "seed": run.seed,
                     **{task: math.nan if score is None else score for task, score in finals.items()},
                     **sequence_summaries(run)})
    scores = pd.DataFrame(rows)
    expected = {(w, s) for w in sweep.penalty_weights for s in sweep.seeds}
    found = list(zip(scores.get("penalty_weight", []), scores.get("seed", []), strict=True))
    missing, extra = sorted(expected - set(found)), sorted(set(found) - expected)
    twice = sorted({key for key in found if found.count(key) > 1})
    if missing or extra or twice:
        raise InputError(f"the sweep's runs do not match ewc_sweep (weights {sweep.penalty_weights}, seeds "
                         f"{sweep.seeds}): missing (weight, seed) {missing}, not in the config {extra}, given twice "
                         f"{twice}")
    undefined = scores[scores[CRITERION].isna()]
    if len(undefined):
        first = undefined.iloc[0]
        raise InputError(f"the sweep's run of weight {first['penalty_weight']:g}, seed {int(first['seed'])} has an "
                         f"undefined final score: the choice would rest on fewer seeds")
    return scores.sort_values(["penalty_weight", "seed"], ignore_index=True)


def sweep_summary(scores: pd.DataFrame) -> pd.DataFrame:
    """Per weight: the mean and standard deviation over seeds of each column of :func:`sweep_scores`, and
    ``chosen`` (true on the one row of the choice)."""
    columns = [c for c in scores.columns if c not in ("penalty_weight", "seed")]
    grouped = scores.groupby("penalty_weight", sort=True)[columns]
    summary = grouped.mean().add_suffix("_mean").join(grouped.std(ddof=1).add_suffix("_std"))
    summary.insert(0, "seeds", grouped.size())
    summary = summary.reset_index()
    best = summary[f"{CRITERION}_mean"].to_numpy()
    summary["chosen"] = np.arange(len(summary)) == int(np.argmax(best))  # the first maximum: the smaller weight
    return summary


def write_choice(summary: pd.DataFrame, config: ExperimentConfig, path: Path) -> float:
    """Write the chosen weight of :func:`sweep_summary`, with what it rests on, as ``path`` (:data:`CHOICE_FILE`,
    read by the workflow's EWC run configs); returns it."""
    chosen = summary[summary["chosen"]].iloc[0]
    choice = SweepChoice(penalty_weight=float(chosen["penalty_weight"]), criterion=CRITERION,
                         score=float(chosen[f"{CRITERION}_mean"]), seeds=config.ewc_sweep.seeds,
                         holdout=config.ewc_sweep.holdout)
    atomic_write_text(path, json.dumps(dataclasses.asdict(choice), indent=2) + "\n")
    return choice.penalty_weight
