"""The runs an experiment lists: the one definition that the workflow (its ``RUNS``) and
``unihead forgetting --config`` share.

A run is a strategy over the task sequence, named by its registry name, or a single-task baseline,
``baseline-<task>``; each is run once per seed of ``workflow.seeds``. Imports no torch, so the
Snakefile can use it.
"""

from __future__ import annotations

from unihead.config import ExperimentConfig

BASELINE_PREFIX = "baseline-"
"""Name prefix of a single-task baseline run: ``baseline-<task>``."""


def run_names(config: ExperimentConfig) -> list[str]:
    """Every run the experiment lists: ``workflow.strategies``, then ``baseline-<task>`` for each task of
    ``workflow.baselines`` (each run once per seed of ``workflow.seeds``)."""
    return [*config.workflow.strategies, *(BASELINE_PREFIX + task for task in config.workflow.baselines)]


def strategy_components(run: str) -> tuple[str, ...]:
    """The registered strategies whose options a run reads: none for a baseline, else the run's strategy."""
    return () if run.startswith(BASELINE_PREFIX) else (run,)
