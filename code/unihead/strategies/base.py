"""The strategy interface: hooks the engine calls at fixed points, and the registry.

A forgetting strategy is one file in this package that subclasses :class:`Strategy`, overrides two
or three hooks and registers itself with ``@register_strategy("name")``; the package imports every
module in it. Its options are the dataclass that :data:`unihead.strategy_options.STRATEGY_OPTIONS` names for
it (the keys accepted under ``strategies.<name>`` in an experiment config, checked when the config is read).
A run combines any of them (:mod:`unihead.strategies.composed`), so a strategy never builds on another's hooks.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from torch import Tensor, nn
from torch.utils.data import Dataset

from unihead.strategy_options import STRATEGY_OPTIONS

LossFn = Callable[[str, Tensor, Any], dict[str, Tensor]]
"""``loss_fn(task, output, target)`` -> named loss terms with ``"total"``, as the engine computes them."""


@dataclass
class StageContext:
    """What a strategy may look at around one training stage."""

    index: int
    """Position of the stage in the run (0 for the first task)."""
    task: str
    train_data: Mapping[str, Dataset]
    """Training set of every task of the run (with training augmentation), by task: the engine's are
    :class:`unihead.data.decoded.DecodedDataset` (samples on the training device)."""
    previous_tasks: list[str]
    """Tasks trained in earlier stages, in order."""
    loss_fn: LossFn
    collate: Callable[[list[Any]], tuple[Tensor, Any]]
    batch_size: int
    seed: int
    is_last: bool = False
    """Whether this is the run's last stage (no later stage uses what ``after_stage`` keeps of it)."""


class Strategy:
    """Base class: every hook is a no-op.

    Hooks are called in this order for each stage: ``before_stage`` once; then per training batch
    ``extra_loss`` after the model's forward pass on the batch and before the backward pass;
    ``after_stage`` once after the stage's last epoch, before every task is evaluated.
    """

    name: ClassVar[str] = ""

    def __init__(self, options: Any, seed: int = 0) -> None:
        self.options = options
        self.seed = seed

    @property
    def needs_features(self) -> bool:
        """Whether ``extra_loss`` needs the FPN features in ``outputs`` (the engine then asks the model for them)."""
        return False

    def output_tasks(self, stage: StageContext) -> list[str]:
        """Heads, besides the stage's own, whose outputs on the batch ``extra_loss`` needs in ``outputs``."""
        return []

    def before_stage(self, model: nn.Module, stage: StageContext) -> None:
        """Called once before the first epoch of ``stage`` (also when a run resumes inside it)."""

    def extra_loss(self, model: nn.Module, images: Tensor, outputs: Mapping[str, Any],
                   stage: StageContext) -> dict[str, Tensor]:
        """Extra loss terms for the current batch, added to the task's own loss, by term name; the run
        logs each as ``<strategy>_<term>``.

        ``outputs`` is the model's output on ``images`` for the stage's task (with ``features`` when
        :attr:`needs_features`).
        """
        return {}

    def after_stage(self, model: nn.Module, stage: StageContext) -> None:
        """Called once after the last epoch of ``stage``, with the trained model, which it must leave as it is
        (weights and buffers): the engine scores the stage's task once, before this hook, for both the
        epoch's validation curve and the stage's row of R."""

    def state_dict(self) -> dict[str, Any]:
        """Tensors and plain data to restore the strategy on resume (buffers, Fisher, teacher weights)."""
        return {}

    def load_state_dict(self, state: dict[str, Any], model: nn.Module) -> None:
        """Restore :meth:`state_dict`'s output; ``model`` is the (already restored) student."""


STRATEGIES: dict[str, type[Strategy]] = {}


def register_strategy(name: str) -> Callable[[type[Strategy]], type[Strategy]]:
    """Class decorator adding a strategy to the registry under ``name``, a key of ``STRATEGY_OPTIONS``."""

    def decorate(cls: type[Strategy]) -> type[Strategy]:
        if name not in STRATEGY_OPTIONS:
            raise ValueError(f"strategy {name!r} ({cls.__module__}) has no options class in "
                             "unihead.strategy_options.STRATEGY_OPTIONS: add one there (the Snakefile checks names "
                             "and options against it)")
        if name in STRATEGIES:
            raise ValueError(f"strategy {name!r} is registered twice ({STRATEGIES[name].__module__}, {cls.__module__})")
        cls.name = name
        STRATEGIES[name] = cls
        return cls

    return decorate
