"""The tests' tiny experiment, as a mapping a test can write to a config file or override (the fixture
``tiny_config`` in conftest.py builds its config on the synthetic data)."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

TINY = {"name": "test", "data": {"image_size": 64},
        "train": {"epochs": 1, "batch_size": 4, "limit_train": 8, "limit_val": 6, "device": "cpu"}}
"""The tests' tiny experiment: 64 px, one epoch per stage of 8 training and 6 validation images on the CPU; a
baseline's run of it takes seconds."""


def tiny_values(root: Path | None, **overrides: Any) -> dict[str, Any]:
    """TINY's mapping with the data root ``root`` (no root when None) and ``overrides``: a dict for a section that
    TINY has ("data", "train") changes that section's keys, any other value replaces its key or adds it."""
    values = copy.deepcopy(TINY)
    if root is not None:
        values["data"] = {"root": str(root), **values["data"]}
    for key, value in overrides.items():
        values[key] = {**values[key], **value} if isinstance(value, dict) and key in values else value
    return values
