"""One run of the protocol: a strategy over the task sequence, or a single-task baseline.

The run measures each task's chance score (the metric of a model that learned nothing, which the
forgetting verdict needs) and evaluates the untrained model, then trains the stages in order,
evaluating every task of the run after each stage (the accuracy matrix R). After every epoch it
saves a checkpoint (model, optimiser, scheduler, strategy state, history), so the same command
restarts an interrupted run from its last completed epoch. Randomness (shuffling, augmentation) is
reseeded from the run's seed and the epoch number at the start of each epoch, so a resumed run draws
exactly what an uninterrupted one would. Outputs: ``metrics.json`` (written last, atomically),
``history.csv`` and ``model.pt`` (weights only). While the run trains, its folder is locked
(``run.lock``, see :mod:`unihead.engine.lock`), so a second run on the same folder stops at once.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import math
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset, Subset

from unihead.config import ConfigError, ExperimentConfig, config_to_dict
from unihead.data import build_dataset, collate
from unihead.engine.evaluate import chance_score, evaluate_task
from unihead.engine.lock import locked
from unihead.engine.provenance import provenance
from unihead.engine.train import train_one_epoch
from unihead.files import atomic_open, atomic_write_text
from unihead.losses import task_loss
from unihead.models import build_model
from unihead.runs import RunSpec
from unihead.sources.manifest import MANIFEST
from unihead.strategies import StageContext, create_strategy
from unihead.tasks import DET, NUM_DET_CLASSES, PRIMARY_METRIC

CHECKPOINT = "checkpoint.pt"
METRICS = "metrics.json"
HISTORY = "history.csv"
WEIGHTS = "model.pt"


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"config key 'train.device' is {name!r} but no CUDA device is visible")
    return device


def lr_factor(schedule: str, epoch: int, epochs_per_stage: int, stages: int) -> float:
    """Learning-rate multiplier at the start of global epoch ``epoch`` of the task sequence
    (CosineAnnealingLR with eta_min 0)."""
    if schedule == "cosine_total":
        return 0.5 * (1.0 + math.cos(math.pi * epoch / (epochs_per_stage * stages)))
    if schedule == "cosine_stage":
        return 0.5 * (1.0 + math.cos(math.pi * (epoch % epochs_per_stage) / epochs_per_stage))
    return 1.0


def _limited(dataset: Dataset, limit: int | None) -> Dataset:
    return dataset if limit is None or limit >= len(dataset) else Subset(dataset, range(limit))


def _epoch_seed(seed: int, epoch: int) -> int:
    return seed * 100_003 + epoch


class Run:
    """Everything one run needs, built from a config and a :class:`RunSpec`."""

    def __init__(self, config: ExperimentConfig, spec: RunSpec, out_dir: Path,
                 log: Callable[[str], None] = print, manifest: Path | None = None) -> None:
        self.config, self.spec, self.out_dir, self.log = config, spec, out_dir, log
        self.device = resolve_device(config.train.device)
        self.data_root = Path(config.data.root)
        self.manifest = manifest or self.data_root / MANIFEST
        size = config.data.image_size
        train = config.train
        self.train_sets = {t: _limited(build_dataset(t, self.data_root, "train", size, train=True), train.limit_train)
                           for t in spec.tasks}
        val_sets = {t: _limited(build_dataset(t, self.data_root, "val", size, train=False), train.limit_val)
                    for t in spec.tasks}
        self.val_loaders = {t: DataLoader(d, batch_size=train.batch_size, shuffle=False, collate_fn=collate,
                                          num_workers=train.num_workers) for t, d in val_sets.items()}
        self.num_classes = {t: getattr(d, "dataset", d).num_classes for t, d in val_sets.items()}
        if self.num_classes.get(DET, NUM_DET_CLASSES) != NUM_DET_CLASSES:
            raise ConfigError(f"{self.data_root}: the detection data has {self.num_classes[DET]} categories, "
                              f"the model's detection head {NUM_DET_CLASSES}")
        torch.manual_seed(spec.seed)
        self.model = build_model(config.model).to(self.device)
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=train.lr, weight_decay=train.weight_decay)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda epoch: lr_factor(train.schedule, epoch + spec.first_stage * train.epochs,
                                                    epochs_per_stage=train.epochs, stages=len(train.tasks)))
        self.strategy = create_strategy(spec.strategy, config.strategies, seed=spec.seed)
        self.loss_fn = partial(self._loss, det_head=config.model.det_head, image_size=size)

    def _loss(self, task: str, output: torch.Tensor, target: Any, det_head: str, image_size: int) -> dict:
        return task_loss(task, output, target, det_head=det_head, image_size=image_size,
                         num_classes=self.num_classes[task])

    def stage_context(self, index: int) -> StageContext:
        return StageContext(index=index, task=self.spec.tasks[index], train_data=self.train_sets,
                            previous_tasks=self.spec.tasks[:index], loss_fn=self.loss_fn, collate=collate,
                            batch_size=self.config.train.batch_size, seed=self.spec.seed)

    def evaluate_all(self) -> dict[str, dict[str, float]]:
        return {t: evaluate_task(self.model, t, self.val_loaders[t], self.device, self.config.model.det_head,
                                 self.config.eval) for t in self.spec.tasks}

    def train_loader(self, task: str, epoch: int) -> DataLoader:
        generator = torch.Generator().manual_seed(_epoch_seed(self.spec.seed, epoch))
        return DataLoader(self.train_sets[task], batch_size=self.config.train.batch_size, shuffle=True,
                          generator=generator, collate_fn=collate, num_workers=self.config.train.num_workers)


def _checkpoint_state(run: Run, progress: dict[str, Any]) -> dict[str, Any]:
    return {"model": run.model.state_dict(), "optimizer": run.optimizer.state_dict(),
            "scheduler": run.scheduler.state_dict(), "strategy": run.strategy.state_dict(),
            "config": json.dumps(config_to_dict(run.config), sort_keys=True),
            "spec": dataclasses.asdict(run.spec), "progress": progress}


def _save_checkpoint(run: Run, progress: dict[str, Any]) -> None:
    with atomic_open(run.out_dir / CHECKPOINT, "wb") as handle:
        torch.save(_checkpoint_state(run, progress), handle)


def _load_checkpoint(run: Run) -> dict[str, Any] | None:
    path = run.out_dir / CHECKPOINT
    if not path.is_file():
        return None
    state = torch.load(path, map_location=run.device, weights_only=True)
    if state["config"] != json.dumps(config_to_dict(run.config), sort_keys=True) or \
            state["spec"] != dataclasses.asdict(run.spec):
        raise ConfigError(f"{path}: this checkpoint was made by a run with another config or seed; "
                          "delete it to start afresh, or run the command that made it")
    run.model.load_state_dict(state["model"])
    run.optimizer.load_state_dict(state["optimizer"])
    run.scheduler.load_state_dict(state["scheduler"])
    run.strategy.load_state_dict(state["strategy"], run.model)
    return state["progress"]


def _primary(metrics: dict[str, dict[str, float]], tasks: list[str]) -> list[float]:
    return [metrics[t][PRIMARY_METRIC[t]] for t in tasks]


def _history_csv(rows: list[dict[str, Any]]) -> str:
    columns = list(dict.fromkeys(key for row in rows for key in row))
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return text.getvalue()


def execute(run: Run) -> dict[str, Any]:
    """Train and evaluate the run (resuming from its checkpoint), write its outputs, return the metrics; the run
    folder is locked meanwhile (:class:`unihead.engine.lock.RunFolderLocked` if another run holds it)."""
    run.out_dir.mkdir(parents=True, exist_ok=True)
    with locked(run.out_dir, run.log):
        return _train_and_write(run)


def _train_and_write(run: Run) -> dict[str, Any]:
    spec, train = run.spec, run.config.train
    torch.use_deterministic_algorithms(True, warn_only=True)
    progress = _load_checkpoint(run)
    if progress is None:
        progress = {"epochs_done": 0, "history": [], "stages": [], "initial": run.evaluate_all(),
                    "chance": [chance_score(t, run.val_loaders[t], run.num_classes[t]) for t in spec.tasks]}
    else:
        run.log(f"[{spec.name} seed{spec.seed}] resuming after epoch {progress['epochs_done']}")
    epochs = train.epochs
    for index, task in enumerate(spec.tasks):
        if progress["epochs_done"] >= (index + 1) * epochs:
            continue
        stage = run.stage_context(index)
        if train.reset_optimizer and index > 0 and progress["epochs_done"] == index * epochs:
            # the stage starts now (a run resumed inside it has the stage's own moments from the checkpoint);
            # the learning rate lives in param_groups, which the scheduler keeps setting
            run.optimizer.state.clear()
        run.strategy.before_stage(run.model, stage)
        for epoch in range(max(progress["epochs_done"], index * epochs), (index + 1) * epochs):
            where = f"[{spec.name} seed{spec.seed}] stage {index + 1}/{len(spec.tasks)} ({task}), " \
                    f"epoch {epoch - index * epochs + 1}/{epochs}"
            torch.manual_seed(_epoch_seed(spec.seed, epoch))
            lr = run.optimizer.param_groups[0]["lr"]
            row = train_one_epoch(run.model, run.train_loader(task, epoch), run.optimizer, run.strategy, stage,
                                  run.device, where, freeze_batchnorm=train.bn == "freeze_after_first" and index > 0)
            val = evaluate_task(run.model, task, run.val_loaders[task], run.device, run.config.model.det_head,
                                run.config.eval)
            metric = PRIMARY_METRIC[task]
            losses = "  ".join(f"{k} {v:.4f}" for k, v in row.items() if k not in ("images", "seconds", "images_per_s"))
            run.log(f"{where}  {losses}  val {metric} {val[metric]:.4f}  lr {lr:.2e}  "
                    f"{row['images_per_s']:.1f} img/s  {row['seconds']:.1f} s")
            progress["history"].append({"stage": index, "task": task, "epoch": epoch, "lr": lr, **row,
                                        f"val_{metric}": val[metric]})
            if epoch == (index + 1) * epochs - 1:
                start = time.perf_counter()
                run.strategy.after_stage(run.model, stage)
                metrics = run.evaluate_all()
                train_seconds = sum(r["seconds"] for r in progress["history"] if r["stage"] == index)
                progress["stages"].append({"task": task, "epochs": epochs, "metrics": metrics,
                                           "train_seconds": train_seconds,
                                           "seconds": train_seconds + time.perf_counter() - start})
            run.scheduler.step()
            progress["epochs_done"] = epoch + 1
            _save_checkpoint(run, progress)
    return _write_outputs(run, progress)


def json_safe(value: Any) -> Any:
    """NaN and infinities as null, since JSON has no such numbers (a metric is NaN when undefined)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value


def _write_outputs(run: Run, progress: dict[str, Any]) -> dict[str, Any]:
    spec, tasks = run.spec, run.spec.tasks
    R = [_primary(stage["metrics"], tasks) for stage in progress["stages"]]
    final = progress["stages"][-1]["metrics"]
    metrics = {
        "run": {"name": spec.name, "kind": spec.kind, "strategy": spec.strategy, "seed": spec.seed,
                "tasks": tasks, "experiment": run.config.name},
        "eval_tasks": tasks,
        "primary_metric": {t: PRIMARY_METRIC[t] for t in tasks},
        "R_initial": _primary(progress["initial"], tasks),
        "R": R,
        "chance": progress["chance"],
        "initial": progress["initial"],
        "stages": progress["stages"],
        "final": final,
        "train_seconds": sum(s["train_seconds"] for s in progress["stages"]),
        "images_per_s": sum(r["images"] for r in progress["history"]) /
        max(sum(r["seconds"] for r in progress["history"]), 1e-9),
        "provenance": provenance(config_to_dict(run.config), spec.seed, run.data_root, run.manifest, run.device),
    }
    with atomic_open(run.out_dir / WEIGHTS, "wb") as handle:
        torch.save(run.model.state_dict(), handle)
    atomic_write_text(run.out_dir / HISTORY, _history_csv(progress["history"]))
    atomic_write_text(run.out_dir / METRICS, json.dumps(json_safe(metrics), indent=2, allow_nan=False) + "\n")
    (run.out_dir / CHECKPOINT).unlink()
    return metrics
