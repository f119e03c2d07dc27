"""What a finished run writes: ``metrics.json`` (its :class:`~unihead.results.RunResult`: measurements only, no
verdict), ``history.csv`` (one row per epoch), ``per_image.json.gz`` (each evaluation's per-image record, for the
bootstrap intervals) and ``model.pt`` (weights). ``metrics.json`` is written last and
atomically: its presence means the run is complete; the checkpoint is removed after it."""

from __future__ import annotations

import csv
import gzip
import io
import json
from pathlib import Path
from typing import Any

import torch

from unihead.engine.checkpoint import checkpoint_path
from unihead.files import atomic_open, atomic_write_text
from unihead.metrics.per_image import PerImage
from unihead.results import HISTORY_FILE, METRICS_FILE, PER_IMAGE_FILE, WEIGHTS_FILE, RunResult


def history_csv(rows: list[dict[str, Any]]) -> str:
    columns = list(dict.fromkeys(key for row in rows for key in row))
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return text.getvalue()


def write_outputs(out_dir: Path, record: RunResult, history: list[dict[str, Any]],
                  per_image: list[dict[str, PerImage]], weights: dict[str, torch.Tensor]) -> None:
    """Write the run's weights, history, per-image records and record, then remove its checkpoint."""
    with atomic_open(out_dir / WEIGHTS_FILE, "wb") as handle:
        torch.save(weights, handle)
    atomic_write_text(out_dir / HISTORY_FILE, history_csv(history))
    with atomic_open(out_dir / PER_IMAGE_FILE, "wb") as handle:  # mtime 0: the same records, the same bytes
        handle.write(gzip.compress(json.dumps(per_image, separators=(",", ":")).encode(), mtime=0))
    atomic_write_text(out_dir / METRICS_FILE, json.dumps(record.to_dict(), indent=2, allow_nan=False) + "\n")
    checkpoint_path(out_dir).unlink()
