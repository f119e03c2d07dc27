"""The checkpoint a run saves after every epoch and resumes from: model, optimiser, scheduler, strategy
state and progress, with the run config it was made with (torchvision references' habit: one dict)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from unihead.config import ConfigError, config_differences, config_to_dict
from unihead.errors import InputError
from unihead.files import atomic_open

if TYPE_CHECKING:
    from unihead.engine.run import Run

CHECKPOINT = "checkpoint.pt"


def _config_key(run: Run) -> str:
    return json.dumps(config_to_dict(run.config), sort_keys=True)


def save_checkpoint(run: Run, progress: dict[str, Any]) -> None:
    """Write ``checkpoint.pt`` atomically (a kill during the write leaves the previous one)."""
    state = {"model": run.model.state_dict(), "optimizer": run.optimizer.state_dict(),
             "scheduler": run.scheduler.state_dict(), "strategy": run.strategy.state_dict(),
             "config": _config_key(run), "spec": dataclasses.asdict(run.spec), "progress": progress}
    with atomic_open(checkpoint_path(run.out_dir), "wb") as handle:
        torch.save(state, handle)


def checkpoint_path(out_dir: Path) -> Path:
    return out_dir / CHECKPOINT


def load_checkpoint(run: Run) -> dict[str, Any] | None:
    """Restore the run's state from its checkpoint and return the progress, or None without one. The
    checkpoint must come from the same run config (what the run reads: a change elsewhere in the
    experiment leaves it valid)."""
    path = checkpoint_path(run.out_dir)
    if not path.is_file():
        return None
    try:
        state = torch.load(path, map_location=run.device, weights_only=True)
        recorded, spec = json.loads(state["config"]), state["spec"]
    except Exception as err:  # truncated, empty or another file: torch, pickle, zip or JSON errors of all kinds
        why = " ".join(str(err).split())[:200]
        raise InputError(f"{path}: not a readable checkpoint of unihead (truncated, empty or another file: "
                         f"{type(err).__name__}: {why}); delete it to start the run afresh") from err
    if state["config"] != _config_key(run) or spec != dataclasses.asdict(run.spec):
        differing = ", ".join(config_differences(recorded, json.loads(_config_key(run)))) or "the run's spec"
        raise ConfigError(f"{path}: this checkpoint was made by a run with another run config (model, data, train, "
                          f"eval, strategy options or seed), differing in {differing}; delete it to start afresh, or "
                          "run the command that made it")
    run.model.load_state_dict(state["model"])
    run.optimizer.load_state_dict(state["optimizer"])
    run.scheduler.load_state_dict(state["scheduler"])
    run.strategy.load_state_dict(state["strategy"], run.model)
    return state["progress"]
