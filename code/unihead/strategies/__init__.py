"""Forgetting strategies: every module in this package is imported so that its strategy registers."""

import importlib
import pkgutil

from unihead.strategies.base import STRATEGIES, StageContext, Strategy, create_strategy, register_strategy

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")

__all__ = ["STRATEGIES", "StageContext", "Strategy", "create_strategy", "register_strategy"]
