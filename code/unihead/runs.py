"""Runs by name: the runs an experiment lists (the one definition that the workflow's ``RUNS`` and
``unihead forgetting --config`` share), what a run trains, and the strategies it combines.

A run is a strategy over the task sequence, named as :func:`unihead.strategy_options.resolve_strategy` reads
it (``none``, ``ewc``, the alias ``kd_replay``, a combination ``lwf+replay``), or a single-task baseline,
``baseline-<task>``; each is run once per seed of ``workflow.seeds``. Imports no torch, so the
Snakefile can use it.
"""

from __future__ import annotations

from dataclasses import dataclass

from unihead.config import ExperimentConfig
from unihead.schema import ConfigError
from unihead.strategy_options import NO_STRATEGY, resolve_strategy
from unihead.tasks import TASKS

BASELINE_PREFIX = "baseline-"
"""Name prefix of a single-task baseline run: ``baseline-<task>``."""
BASELINES = [BASELINE_PREFIX + task for task in TASKS]


@dataclass(frozen=True)
class RunSpec:
    name: str
    """``<strategy>`` for a sequence run, ``baseline-<task>`` for a single-task baseline."""
    strategy: str
    tasks: list[str]
    seed: int
    first_stage: int = 0
    """Position of the run's first task in ``train.tasks``: a baseline follows the learning-rate
    schedule of the sequence from there, so it trains with exactly the segment its task gets inside
    the sequence (matched conditions for "drop from the single-task baseline")."""

    @property
    def kind(self) -> str:
        return "baseline" if self.name.startswith(BASELINE_PREFIX) else "sequence"


def run_names(config: ExperimentConfig) -> list[str]:
    """Every run the experiment lists: ``workflow.strategies``, then ``baseline-<task>`` for each task of
    ``workflow.baselines`` (each run once per seed of ``workflow.seeds``)."""
    return [*config.workflow.strategies, *(BASELINE_PREFIX + task for task in config.workflow.baselines)]


def strategy_components(run_name: str) -> tuple[str, ...]:
    """The registered strategies the run ``run_name`` trains with, in the order their hooks run, each reading
    its options from ``strategies.<component>``: ``kd_replay`` -> (kd, replay), ``lwf+replay`` -> (lwf,
    replay), ``ewc`` -> (ewc). ``none`` and a baseline train with no strategy: (). An unknown run name
    raises a :class:`ConfigError`."""
    if run_name.startswith(BASELINE_PREFIX):
        if run_name not in BASELINES:
            raise ConfigError(f"unknown baseline {run_name!r}; expected one of {BASELINES}")
        return ()
    return resolve_strategy(run_name, f"unknown run {run_name!r} (a baseline is one of {BASELINES})")


def run_spec(config: ExperimentConfig, name: str, seed: int) -> RunSpec:
    """The run called ``name``: a strategy (see :func:`strategy_components`), or ``baseline-<task>`` (that task
    alone, no strategy)."""
    strategy_components(name)
    if not name.startswith(BASELINE_PREFIX):
        return RunSpec(name, name, list(config.train.tasks), seed)
    task = name[len(BASELINE_PREFIX):]
    if task not in config.train.tasks:
        raise ConfigError(f"baseline {name!r}: task {task!r} is not in config key 'train.tasks' "
                          f"{list(config.train.tasks)}, so no sequence stage gives it a schedule to match")
    return RunSpec(name, NO_STRATEGY, [task], seed, first_stage=config.train.tasks.index(task))
