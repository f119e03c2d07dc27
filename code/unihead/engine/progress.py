"""How far a run got, which its checkpoint carries beside the run's state, and the record it becomes when the
run ends (:class:`~unihead.results.RunResult`)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from unihead.metrics.per_image import PerImage
from unihead.results import Metrics, RunResult
from unihead.tasks import PRIMARY_METRIC


def json_safe(value: Any) -> Any:
    """NaN and infinities as null, since JSON has no such numbers (a metric is NaN when undefined)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value


def primary_scores(metrics: Metrics, tasks: list[str]) -> list[float | None]:
    """Each task's primary metric (a row of R)."""
    return [metrics[t][PRIMARY_METRIC[t]] for t in tasks]


@dataclass(kw_only=True)
class Progress:
    """A run's measurements so far; saved in every checkpoint as a plain dict (its fields)."""

    epochs_done: int = 0
    """Epochs trained over all stages: the run's global epoch to train next."""
    history: list[dict[str, Any]] = field(default_factory=list)
    """One row per epoch: stage, task, global epoch, lr, losses, timing, the stage task's validation score."""
    stages: list[dict[str, Any]] = field(default_factory=list)
    """One entry per finished stage: its task, epochs, every task's metrics after it, the images its networks were
    called on while it trained (``forwarded``, ``backpropagated``: :class:`~unihead.engine.forward_count.ForwardCount`)
    and its seconds."""
    per_image: list[dict[str, PerImage]] = field(default_factory=list)
    """One entry per finished stage: every task's per-image record after it (:mod:`unihead.metrics.per_image`)."""
    initial: Metrics
    """Every task's metrics of the untrained model."""
    chance: list[float]
    """Each task's chance score, in the run's task order."""

    def record(self, run: dict[str, Any], provenance: dict[str, Any]) -> RunResult:
        """The finished run's record: ``run`` names it (:class:`~unihead.results.RunInfo`'s keys); every task of
        the run is evaluated, undefined (NaN) metrics are null."""
        tasks = run["tasks"]
        values = {
            "run": run,
            "eval_tasks": tasks,
            "primary_metric": {t: PRIMARY_METRIC[t] for t in tasks},
            "R_initial": primary_scores(self.initial, tasks),
            "R": [primary_scores(stage["metrics"], tasks) for stage in self.stages],
            "chance": self.chance,
            "initial": self.initial,
            "stages": self.stages,
            "final": self.stages[-1]["metrics"],
            "train_seconds": sum(s["train_seconds"] for s in self.stages),
            "images_per_s": sum(r["images"] for r in self.history) / max(sum(r["seconds"] for r in self.history), 1e-9),
            "images_forwarded": sum(s["forwarded"] for s in self.stages),
            "images_backpropagated": sum(s["backpropagated"] for s in self.stages),
            "provenance": provenance,
        }
        return RunResult.from_dict(json_safe(values))
