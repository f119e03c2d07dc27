"""The checkpoint a run saves after every epoch and resumes from: one plain dict (torchvision references'
habit) of the run's state (model, optimiser, scheduler, strategy) and progress, with the run config and spec it
was made with, which a resumed run must share."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import torch

from unihead.config import RunConfig, config_to_dict
from unihead.errors import InputError
from unihead.files import atomic_open
from unihead.runs import RunSpec
from unihead.schema import ConfigError, config_differences

CHECKPOINT = "checkpoint.pt"


def checkpoint_path(out_dir: Path) -> Path:
    return out_dir / CHECKPOINT


def _made_by(config: RunConfig, spec: RunSpec) -> dict[str, Any]:
    """What a checkpoint records of the run that made it: its run config and spec."""
    return {"config": json.dumps(config_to_dict(config), sort_keys=True), "spec": dataclasses.asdict(spec)}


def save_checkpoint(out_dir: Path, state: dict[str, Any], config: RunConfig, spec: RunSpec) -> None:
    """Write ``state`` with the run config and spec into ``checkpoint.pt`` atomically (a kill during the write
    leaves the previous one)."""
    with atomic_open(checkpoint_path(out_dir), "wb") as handle:
        torch.save({**state, **_made_by(config, spec)}, handle)


def load_checkpoint(out_dir: Path, config: RunConfig, spec: RunSpec, device: torch.device) -> dict[str, Any] | None:
    """The state saved in the run folder's checkpoint, or None without one. The checkpoint must come from the
    same run config (what the run reads: a change elsewhere in the experiment leaves it valid)."""
    path = checkpoint_path(out_dir)
    if not path.is_file():
        return None
    try:
        state = torch.load(path, map_location=device, weights_only=True)
        recorded = json.loads(state["config"])
    except Exception as err:  # truncated, empty or another file: torch, pickle, zip or JSON errors of all kinds
        why = " ".join(str(err).split())[:200]
        raise InputError(f"{path}: not a readable checkpoint of unihead (truncated, empty or another file: "
                         f"{type(err).__name__}: {why}); delete it to start the run afresh") from err
    made_by = _made_by(config, spec)
    if any(state.get(key) != value for key, value in made_by.items()):
        differing = ", ".join(config_differences(recorded, json.loads(made_by["config"]))) or "the run's spec"
        raise ConfigError(f"{path}: this checkpoint was made by a run with another run config (model, data, train, "
                          f"eval, strategy options or seed), differing in {differing}; delete it to start afresh, or "
                          "run the command that made it")
    return state
