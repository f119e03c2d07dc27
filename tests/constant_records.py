"""Per-image records for hand-written runs: every image scores the run's R value itself, so a bootstrap
interval has no width and a verdict is that of the point estimate (the forgetting tests' hand-worked cases)."""

from __future__ import annotations

import gzip
import json
import math
from pathlib import Path

from unihead.results import PER_IMAGE_FILE

IMAGES = 5


def constant_record(task: str, value: float | None) -> dict:
    """A record of ``IMAGES`` identical images whose score is ``value`` (undefined for None)."""
    if task == "cls":
        return {"correct": [math.nan if value is None else value] * IMAGES}
    if task == "seg":  # one class: intersection value, union 1 (gt 1, prediction value); none: no pixels at all
        counts = [0.0, 0.0, 0.0] if value is None else [value, 1.0, value]
        return {name: [[count] for _ in range(IMAGES)] for name, count in zip(("tp", "gt", "pred"), counts,
                                                                              strict=True)}
    # detection: one box and one detection per image, matched with weight value: precision value up to recall
    # value / value = 1; with value 0, nothing matched: AP 0; none: no box at all
    if value is None:
        return {"gt": [[0]] * IMAGES, "detections": []}
    return {"gt": [[value if value > 0 else 1.0]] * IMAGES,
            "detections": [[i, 0, 0.5, value, 0] for i in range(IMAGES)]}


def write_constant_records(folder: Path, tasks: list[str], R: list[list[float | None]]) -> None:
    records = [{task: constant_record(task, value) for task, value in zip(tasks, row, strict=True)} for row in R]
    (folder / PER_IMAGE_FILE).write_bytes(gzip.compress(json.dumps(records).encode()))
