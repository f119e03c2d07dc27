"""What a finished run writes: ``metrics.json`` (measurements only, no verdict: the accuracy matrix R,
chance scores, per-stage and final metrics, timing, provenance), ``history.csv`` (one row per epoch) and
``model.pt`` (weights). ``metrics.json`` is written last and atomically: its presence means the run is
complete; the checkpoint is removed after it."""

from __future__ import annotations

import csv
import io
import json
import math
from typing import TYPE_CHECKING, Any

import torch

from unihead.config import config_to_dict
from unihead.engine.checkpoint import checkpoint_path
from unihead.engine.provenance import provenance
from unihead.files import atomic_open, atomic_write_text
from unihead.tasks import PRIMARY_METRIC

if TYPE_CHECKING:
    from unihead.engine.run import Run

METRICS = "metrics.json"
HISTORY = "history.csv"
WEIGHTS = "model.pt"


def json_safe(value: Any) -> Any:
    """NaN and infinities as null, since JSON has no such numbers (a metric is NaN when undefined)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value


def primary_scores(metrics: dict[str, dict[str, float]], tasks: list[str]) -> list[float]:
    """Each task's primary metric (a row of R)."""
    return [metrics[t][PRIMARY_METRIC[t]] for t in tasks]


def history_csv(rows: list[dict[str, Any]]) -> str:
    columns = list(dict.fromkeys(key for row in rows for key in row))
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return text.getvalue()


def write_outputs(run: Run, progress: dict[str, Any]) -> dict[str, Any]:
    """Write the run's outputs from its progress, remove its checkpoint, return the metrics."""
    spec, tasks = run.spec, run.spec.tasks
    metrics = {
        "run": {"name": spec.name, "kind": spec.kind, "strategy": spec.strategy, "seed": spec.seed,
                "tasks": tasks, "experiment": run.config.experiment, "variant": run.config.variant},
        "eval_tasks": tasks,
        "primary_metric": {t: PRIMARY_METRIC[t] for t in tasks},
        "R_initial": primary_scores(progress["initial"], tasks),
        "R": [primary_scores(stage["metrics"], tasks) for stage in progress["stages"]],
        "chance": progress["chance"],
        "initial": progress["initial"],
        "stages": progress["stages"],
        "final": progress["stages"][-1]["metrics"],
        "train_seconds": sum(s["train_seconds"] for s in progress["stages"]),
        "images_per_s": sum(r["images"] for r in progress["history"]) /
        max(sum(r["seconds"] for r in progress["history"]), 1e-9),
        "provenance": provenance(config_to_dict(run.config), spec.seed, run.data_root, run.manifest, run.device),
    }
    with atomic_open(run.out_dir / WEIGHTS, "wb") as handle:
        torch.save(run.model.state_dict(), handle)
    atomic_write_text(run.out_dir / HISTORY, history_csv(progress["history"]))
    atomic_write_text(run.out_dir / METRICS, json.dumps(json_safe(metrics), indent=2, allow_nan=False) + "\n")
    checkpoint_path(run.out_dir).unlink()
    return metrics
