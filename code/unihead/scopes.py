"""What each job of the workflow reads: the slice of the experiment config it depends on.

The workflow writes each slice into the file its job reads (Snakemake reruns a job when the slice it
carries as ``params`` changes, see ``workflow/rules/config.smk``), so a job reruns only when something
it reads changes: editing ``threshold`` reruns the forgetting tables and the report, not the data or a
training run; adding a seed trains only that seed's runs; editing one strategy's options retrains only
the runs that use that strategy. Each slice is itself a valid config file: the experiment YAML
restricted to the keys the job reads (a :class:`~unihead.config.RunConfig` for a training job). Imports
no torch, so the Snakefile can use it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from unihead.config import ExperimentConfig, RunConfig, apply_variant, config_to_dict
from unihead.errors import InputError
from unihead.runs import strategy_components
from unihead.schema import ConfigError, bounded, build_section, load_section
from unihead.strategy_options import STRATEGY_OPTIONS


def data_scope(config: ExperimentConfig) -> dict[str, Any]:
    """What ``unihead prepare`` reads: the data section (source, root, synthetic and official settings)."""
    return {"data": dataclasses.asdict(config.data)}


CHOICE_FILE = "choice.json"
"""The EWC sweep's chosen penalty weight (:class:`SweepChoice`), which every EWC run of the workflow reads."""


@dataclass(frozen=True)
class SweepChoice:
    """What :data:`CHOICE_FILE` holds (:func:`unihead.ewc_sweep.write_choice`): the chosen weight and what it
    rests on."""

    penalty_weight: float = field(metadata=bounded(0))
    criterion: str
    """The sweep's score (:data:`unihead.ewc_sweep.CRITERION`)."""
    score: float
    """The chosen weight's criterion, averaged over the sweep's seeds."""
    seeds: list[int]
    holdout: float = field(metadata=bounded(0, 0.5, low_open=True))


def read_choice(path: Path) -> float:
    """The chosen weight of a :data:`CHOICE_FILE`; an unreadable or malformed file is an error naming it."""
    try:
        return load_section(path, SweepChoice, "EWC sweep choice").penalty_weight
    except ConfigError as err:
        raise InputError(f"{err}; expected the EWC sweep's choice as `unihead ewc-sweep` writes it") from err


def run_config(config: ExperimentConfig, run: str, seed: int, variant: str | None = None,
               penalty_weight: float | None = None) -> RunConfig:
    """What ``unihead train`` reads for one run and seed (of the experiment's ``variant``, whose overrides are
    applied first): the model, data, train and eval sections, the options of the run's own strategies
    (defaults filled in, so spelling out a default changes nothing), the seed and the variant's name.
    ``penalty_weight`` (the EWC sweep's choice) replaces ``strategies.ewc.penalty_weight`` in a run with EWC."""
    if variant is not None:
        config = apply_variant(config, variant)
    strategies = {name: dataclasses.asdict(build_section(STRATEGY_OPTIONS[name], config.strategies.get(name),
                                                         f"strategies.{name}"))
                  for name in strategy_components(run)}
    if penalty_weight is not None and "ewc" in strategies:
        strategies["ewc"]["penalty_weight"] = penalty_weight
    return RunConfig(experiment=config.name, run=run, seed=seed, variant=variant, model=config.model,
                     data=config.data, train=config.train, eval=config.eval, strategies=strategies)


def run_scope(config: ExperimentConfig, run: str, seed: int, variant: str | None = None,
              penalty_weight: float | None = None) -> dict[str, Any]:
    """:func:`run_config` as the plain data of the run's config file."""
    return config_to_dict(run_config(config, run, seed, variant, penalty_weight))


def sweep_scope(config: ExperimentConfig, penalty_weight: float, seed: int) -> dict[str, Any]:
    """What one run of the EWC sweep reads: the experiment's ``ewc`` run with ``penalty_weight``, trained on its
    training images but ``ewc_sweep.holdout`` of them and scored on those (``train.holdout``)."""
    held_out = dataclasses.replace(config, train=dataclasses.replace(config.train, holdout=config.ewc_sweep.holdout))
    return run_scope(held_out, "ewc", seed, penalty_weight=penalty_weight)


def sweep_table_scope(config: ExperimentConfig) -> dict[str, Any]:
    """What ``unihead ewc-sweep`` reads: the sweep's settings, and what its caption says about the experiment."""
    return {**report_scope(config), "ewc_sweep": dataclasses.asdict(config.ewc_sweep)}


def _variants(config: ExperimentConfig) -> dict[str, Any]:
    """The variants' overrides as a slice's ``workflow`` section; nothing (the slice as without variants) when
    the experiment has none."""
    return {"workflow": {"variants": config.workflow.variants}} if config.workflow.variants else {}


def forgetting_scope(config: ExperimentConfig) -> dict[str, Any]:
    """What ``unihead forgetting`` reads: how a drop is judged (and its interval drawn), and which variants, runs
    and seeds must be present (the variants' names: their overrides are the training jobs' concern, and a config
    slice without the sections they override could not validate them)."""
    workflow = config.workflow
    names = {"variants": {name: {} for name in workflow.variants}} if workflow.variants else {}
    return {"name": config.name, "threshold": config.threshold, "threshold_rule": config.threshold_rule,
            "learned_margin": config.learned_margin, "bootstrap": dataclasses.asdict(config.bootstrap),
            "workflow": {"seeds": workflow.seeds, "strategies": workflow.strategies, "baselines": workflow.baselines,
                         **names}}


def report_scope(config: ExperimentConfig) -> dict[str, Any]:
    """What ``unihead report`` reads besides the runs and the forgetting tables: what the captions say about
    the data, resolution, weights and schedule, and the model (its size, the qualitative panel); with
    variants, their overrides (each variant's model and caption)."""
    return {"name": config.name, "model": dataclasses.asdict(config.model), "data": dataclasses.asdict(config.data),
            "train": dataclasses.asdict(config.train), "eval": dataclasses.asdict(config.eval),
            **_variants(config)}


def benchmark_scope(config: ExperimentConfig, variant: str | None = None) -> dict[str, Any]:
    """What ``unihead benchmark`` reads: the model, the image size, and how training batches and computes; for a
    variant's benchmark, that variant's overrides alone (editing another variant reruns no benchmark of this
    one)."""
    train = config.train
    variants = {"workflow": {"variants": {variant: config.workflow.variants[variant]}}} if variant else {}
    return {"model": dataclasses.asdict(config.model), "data": {"image_size": config.data.image_size},
            "train": {"batch_size": train.batch_size, "device": train.device, "precision": train.precision,
                      "deterministic": train.deterministic}, **variants}


def readme_scope(config: ExperimentConfig) -> dict[str, Any]:
    """What ``unihead readme`` reads: the experiment's name (it selects the README's markers)."""
    return {"name": config.name}
