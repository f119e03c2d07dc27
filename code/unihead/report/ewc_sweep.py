"""The EWC sweep's table (:mod:`unihead.ewc_sweep`): per penalty weight, each task's final score on the held-out
training images, the average final score that decides, and the average forgetting."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from unihead.config import ExperimentConfig
from unihead.ewc_sweep import SWEEP_NAME, sweep_scores, sweep_summary, write_choice
from unihead.report.tables import TASK_LABELS, cell, write_table
from unihead.results import RunResult


def _display(summary: pd.DataFrame, tasks: list[str]) -> pd.DataFrame:
    def column(name: str) -> list[str]:
        return [cell(m, s) for m, s in zip(summary[f"{name}_mean"], summary[f"{name}_std"], strict=True)]

    return pd.DataFrame({
        "λ": [f"{w:g}" + (" (chosen)" if chosen else "") for w, chosen in zip(summary["penalty_weight"],
                                                                            summary["chosen"], strict=True)],
        **{TASK_LABELS[task]: column(task) for task in tasks},
        "Avg. final": column("avg_final"),
        "Avg. forgetting": column("avg_forgetting"),
    })


def sweep_caption(config: ExperimentConfig, provenance_line: str) -> str:
    sweep = config.ewc_sweep
    return (f"EWC's penalty weight λ swept on held-out training images: each run trained on its training images but "
            f"a fraction {sweep.holdout:g} of each task's (one fixed draw) and was scored on that fraction after "
            f"the last stage (x100; mean ± std over seeds {sweep.seeds}). The chosen λ has the highest average "
            "final score and is the one every EWC run of the other tables uses; the val images those tables report "
            f"took no part in the choice. {provenance_line}")


def write_sweep(runs: list[RunResult], config: ExperimentConfig, table_stem: Path, choice_file: Path,
                provenance_line: str) -> list[Path]:
    """The sweep's table (``<table_stem>.csv``: per weight, ``.md``, ``.tex``) and ``choice_file``
    (:func:`unihead.ewc_sweep.write_choice`); returns the paths."""
    scores = sweep_scores(runs, config)
    summary = sweep_summary(scores)
    tasks = [task for task in TASK_LABELS if task in scores.columns]
    paths = write_table(table_stem, summary, _display(summary, tasks), sweep_caption(config, provenance_line),
                        f"tab:{config.name}-{SWEEP_NAME}")
    write_choice(summary, config, choice_file)
    return [*paths, choice_file]
