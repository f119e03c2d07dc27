"""Forgetting strategies: every module in this package is imported so that its strategy registers."""

import importlib
import pkgutil

from unihead.config import STRATEGY_NAMES
from unihead.strategies.base import (
    STRATEGIES,
    StageContext,
    Strategy,
    check_strategy_options,
    create_strategy,
    register_strategy,
)

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")
if set(STRATEGIES) != set(STRATEGY_NAMES):
    raise ImportError(f"registered strategies {sorted(STRATEGIES)} differ from unihead.config.STRATEGY_NAMES "
                      f"{sorted(STRATEGY_NAMES)}: add a new strategy's name there (the Snakefile checks against it)")

__all__ = ["STRATEGIES", "StageContext", "Strategy", "check_strategy_options", "create_strategy", "register_strategy"]
