"""Forgetting strategies: every module in this package is imported so that its strategy registers."""

import importlib
import pkgutil

from unihead.strategies.base import STRATEGIES, StageContext, Strategy, register_strategy
from unihead.strategies.composed import ComposedStrategy, create_strategy
from unihead.strategy_options import STRATEGY_OPTIONS

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")
if set(STRATEGIES) != set(STRATEGY_OPTIONS):
    raise ImportError(f"no strategy is registered for {sorted(set(STRATEGY_OPTIONS) - set(STRATEGIES))}, which "
                      "unihead.strategy_options.STRATEGY_OPTIONS names")

__all__ = ["STRATEGIES", "ComposedStrategy", "StageContext", "Strategy", "create_strategy", "register_strategy"]
