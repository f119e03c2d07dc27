"""The forgetting strategies' options, names and aliases: which strategy names a run may have and which options
each strategy accepts under ``strategies.<name>``.

Without torch, so that the Snakefile checks them when it is parsed; each strategy in unihead/strategies/ is
registered under a name of :data:`STRATEGY_OPTIONS`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from unihead.schema import ConfigError, bounded, build_section, check_fields


@dataclass(frozen=True)
class EWCOptions:
    """``strategies.ewc``: Elastic Weight Consolidation."""

    penalty_weight: float = field(default=1.0, metadata=bounded(0))
    """lambda in lambda/2 * sum F (theta - theta*)^2 (F has mean 1 per task over all weights). In the workflow an
    experiment with ``ewc_sweep`` replaces it with the sweep's choice (on held-out training images)."""
    fisher_samples: int = field(default=200, metadata=bounded(1))
    """Training inputs of each finished task whose squared scores make its Fisher."""
    decay: float = field(default=1.0, metadata=bounded(0, 1))
    """Online EWC: F <- decay * F_old + F_new (1.0 sums the tasks' normalised Fishers)."""

    def __post_init__(self) -> None:
        check_fields(self)


@dataclass(frozen=True)
class LwFOptions:
    """``strategies.lwf``: Learning without Forgetting."""

    temperature: float = field(default=2.0, metadata=bounded(0, low_open=True))
    weight: float = field(default=1.0, metadata=bounded(0))

    def __post_init__(self) -> None:
        check_fields(self)


@dataclass(frozen=True)
class ReplayOptions:
    """``strategies.replay``: experience replay."""

    capacity: int = field(default=50, metadata=bounded(1))
    """Samples kept per previous task (the paper: 50)."""
    batch_size: int = field(default=4, metadata=bounded(1))
    """Replayed samples per previous task in each training step."""
    weight: float = field(default=1.0, metadata=bounded(0))

    def __post_init__(self) -> None:
        check_fields(self)


@dataclass(frozen=True)
class KDOptions:
    """``strategies.kd``: knowledge distillation of logits, FPN features and attention maps."""

    temperature: float = field(default=2.0, metadata=bounded(0, low_open=True))
    logit_weight: float = field(default=1.0, metadata=bounded(0))
    feature_weight: float = field(default=1.0, metadata=bounded(0))
    attention_weight: float = field(default=1.0, metadata=bounded(0))
    """Zagoruyko & Komodakis' beta of the attention transfer beta/2 sum_levels ||q_s - q_t||_2 (per-image norm of
    the normalised maps' difference; their beta 1000 went with a mean over the map's elements)."""

    def __post_init__(self) -> None:
        check_fields(self)


STRATEGY_OPTIONS: dict[str, type] = {"ewc": EWCOptions, "lwf": LwFOptions, "replay": ReplayOptions, "kd": KDOptions}
"""The strategies a run combines, by registry name, with the options each accepts under ``strategies.<name>``."""
NO_STRATEGY = "none"
"""Plain sequential fine-tuning: the strategy of no components (as a single-task baseline trains)."""
STRATEGY_ALIASES: dict[str, tuple[str, ...]] = {"kd_replay": ("kd", "replay")}
"""Run names that stand for a combination (the paper's tables name it ``kd_replay``); ``kd_replay`` is
``kd+replay``, with the options of ``strategies.kd`` and ``strategies.replay``."""
COMBINE = "+"
"""Joins strategies into one run's combination: ``lwf+replay``."""
STRATEGY_NAMES = (NO_STRATEGY, *STRATEGY_OPTIONS, *STRATEGY_ALIASES)
"""The strategy names of the paper's runs (the default of ``workflow.strategies``)."""
STRATEGY_NAME_RULE = (f"'{NO_STRATEGY}', a strategy {list(STRATEGY_OPTIONS)}, an alias {list(STRATEGY_ALIASES)} "
                      f"or strategies joined by '{COMBINE}' (such as 'lwf+replay')")


def _alias_options() -> str:
    """Where each alias's options are: ``'kd_replay' reads 'strategies.kd' and 'strategies.replay'``."""
    return "; ".join(f"{alias!r} reads " + " and ".join(f"'strategies.{name}'" for name in names)
                     for alias, names in STRATEGY_ALIASES.items())


def resolve_strategy(name: str, where: str) -> tuple[str, ...]:
    """The strategies a strategy name combines, in the order their hooks run: none for ``none``, an alias's
    (``kd_replay``: kd, replay), the parts of a name joined by ``+`` (``lwf+replay``: lwf, replay), or the
    strategy itself. Any other name raises a :class:`ConfigError` that begins with ``where``."""
    if name == NO_STRATEGY:
        return ()
    if name in STRATEGY_ALIASES:
        return STRATEGY_ALIASES[name]
    parts = tuple(name.split(COMBINE))
    unknown = [part for part in parts if part not in STRATEGY_OPTIONS]
    repeated = [part for i, part in enumerate(parts) if part in parts[:i]]
    if unknown or repeated:
        why = ""
        if len(parts) > 1:
            why = f" ({unknown[0]!r} is not a strategy)" if unknown else f" ({repeated[0]!r} is named twice)"
        raise ConfigError(f"{where}: expected {STRATEGY_NAME_RULE}, got {name!r}{why}")
    return parts


def check_strategy_options(strategies: Mapping[str, Any]) -> None:
    """Every key of a ``strategies`` section names a strategy of :data:`STRATEGY_OPTIONS`, and its options are
    valid for it (errors name ``strategies.<name>.<key>``)."""
    unknown = sorted(set(strategies) - set(STRATEGY_OPTIONS))
    if unknown:
        names = ", ".join(f"'strategies.{name}'" for name in unknown)
        raise ConfigError(f"unknown config key {names}; valid keys at 'strategies' (the registered strategies): "
                          f"{list(STRATEGY_OPTIONS)}; a combination has no options of its own, each of its "
                          f"strategies reads its own ({_alias_options()})")
    for name, options in strategies.items():
        build_section(STRATEGY_OPTIONS[name], options, f"strategies.{name}")
