"""A run's strategy: the strategies its name combines, one instance each (``kd_replay``: kd, replay).

Every hook is called on each strategy in turn, in the order of the name; each reads its own options
(``strategies.kd``, ``strategies.replay``) and keeps its own state, so two strategies never share an
option or a buffer. A strategy's loss terms are logged as ``<strategy>_<term>``, which keeps the terms of
different strategies apart.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from torch import Tensor, nn

from unihead.schema import build_section
from unihead.strategies.base import STRATEGIES, StageContext, Strategy
from unihead.strategy_options import STRATEGY_OPTIONS, resolve_strategy


class ComposedStrategy:
    """The hooks of :class:`Strategy`, each called on every component in order."""

    def __init__(self, name: str, components: list[Strategy]) -> None:
        self.name = name
        self.components = {component.name: component for component in components}

    @property
    def needs_features(self) -> bool:
        return any(component.needs_features for component in self.components.values())

    def output_tasks(self, stage: StageContext) -> list[str]:
        """Every component's output tasks, each once, in the order they are first named."""
        return list(dict.fromkeys(task for component in self.components.values()
                                  for task in component.output_tasks(stage)))

    def before_stage(self, model: nn.Module, stage: StageContext) -> None:
        for component in self.components.values():
            component.before_stage(model, stage)

    def extra_loss(self, model: nn.Module, images: Tensor, outputs: Mapping[str, Any],
                   stage: StageContext) -> dict[str, Tensor]:
        """Every component's terms, named ``<component>_<term>``."""
        return {f"{name}_{term}": value for name, component in self.components.items()
                for term, value in component.extra_loss(model, images, outputs, stage).items()}

    def after_stage(self, model: nn.Module, stage: StageContext) -> None:
        for component in self.components.values():
            component.after_stage(model, stage)

    def state_dict(self) -> dict[str, Any]:
        return {name: component.state_dict() for name, component in self.components.items()}

    def load_state_dict(self, state: dict[str, Any], model: nn.Module) -> None:
        for name, component in self.components.items():
            component.load_state_dict(state[name], model)


def create_strategy(name: str, options: Mapping[str, Mapping[str, Any] | None] | None = None,
                    seed: int = 0) -> ComposedStrategy:
    """The strategy called ``name`` (see :func:`unihead.strategy_options.resolve_strategy`), each component built
    with its options ``options[<component>]`` (an experiment's ``strategies`` section; errors name
    ``strategies.<component>.<key>``)."""
    options = options or {}
    components = [STRATEGIES[component](build_section(STRATEGY_OPTIONS[component], options.get(component),
                                                      f"strategies.{component}"), seed=seed)
                  for component in resolve_strategy(name, f"strategy {name!r}")]
    return ComposedStrategy(name, components)
