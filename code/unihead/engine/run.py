"""One run of the protocol: a strategy over the task sequence, or a single-task baseline.

The run measures each task's chance score (the metric of a model that learned nothing, which the
forgetting verdict needs) and evaluates the untrained model, then trains the stages in order,
evaluating every task of the run after each stage (the accuracy matrix R). After every epoch it
saves a checkpoint (model, optimiser, scheduler, strategy state, history), so the same command
restarts an interrupted run from its last completed epoch. Each dataset is decoded and resized once,
when the run starts, and held on the training device (:class:`unihead.data.decoded.DecodedDataset`).
Randomness (shuffling, augmentation) is
reseeded from the run's seed and the epoch number at the start of each epoch, so a resumed run draws
exactly what an uninterrupted one would. The run reads its run config only (:class:`RunConfig`: model,
data, train, eval, its own strategies' options, seed). Checkpoints: :mod:`unihead.engine.checkpoint`;
outputs: :mod:`unihead.engine.outputs`. While the run trains, its folder is locked (``run.lock``, see
:mod:`unihead.engine.lock`), so a second run on the same folder stops at once.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader

from unihead.config import RunConfig, TrainConfig, config_to_dict
from unihead.data import collate
from unihead.data.decoded import DecodedDataset, Holdout
from unihead.engine.checkpoint import load_checkpoint, save_checkpoint
from unihead.engine.device import configure_backends, make_optimizer, prepare_model
from unihead.engine.evaluate import Evaluation, chance_score, evaluate_task
from unihead.engine.finished import refuse_another_config
from unihead.engine.forward_count import ForwardCount
from unihead.engine.lock import locked
from unihead.engine.outputs import write_outputs
from unihead.engine.progress import Progress
from unihead.engine.provenance import provenance
from unihead.engine.schedule import make_scheduler
from unihead.engine.train import EPOCH_COUNTS, train_one_epoch
from unihead.losses import task_loss
from unihead.models import build_model
from unihead.results import RunResult
from unihead.runs import run_spec
from unihead.schema import ConfigError
from unihead.sources.manifest import MANIFEST
from unihead.strategies import StageContext, create_strategy
from unihead.tasks import DET, NUM_DET_CLASSES, PRIMARY_METRIC


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"config key 'train.device' is {name!r} but no CUDA device is visible")
    return device


PRINT_FLUSHED = partial(print, flush=True)
"""A run's default log: each line reaches the job's log (and the terminal) as it is written."""


def _epoch_seed(seed: int, epoch: int) -> int:
    return seed * 100_003 + epoch


class Run:
    """Everything one run needs, built from its run config."""

    def __init__(self, config: RunConfig, out_dir: Path, log: Callable[[str], None] = PRINT_FLUSHED,
                 manifest: Path | None = None) -> None:
        spec = run_spec(config, config.run, config.seed)
        self.config, self.spec, self.out_dir, self.log = config, spec, out_dir, log
        self.device = resolve_device(config.train.device)
        self.data_root = Path(config.data.root)
        self.manifest = manifest or self.data_root / MANIFEST
        size = config.data.image_size
        train = config.train
        decoded = partial(DecodedDataset, data_root=self.data_root, size=size, device=self.device,
                          num_workers=train.num_workers)
        # with train.holdout (EWC's sweep) scored on held-out training images, never on the val split
        kept, held = (Holdout(train.holdout, held_out=False), Holdout(train.holdout, held_out=True)) \
            if train.holdout else (None, None)
        val_split, val_limit = ("train", train.limit_train) if held else ("val", train.limit_val)
        self.scored_on = "held-out" if held else "val"
        """What the log calls the images each epoch is scored on."""
        self.train_sets = {t: decoded(t, split="train", train=True, limit=train.limit_train, holdout=kept)
                           for t in spec.tasks}
        val_sets = {t: decoded(t, split=val_split, train=False, limit=val_limit, holdout=held) for t in spec.tasks}
        self.val_loaders = {t: DataLoader(d, batch_size=config.eval.batch_size, shuffle=False, collate_fn=collate)
                            for t, d in val_sets.items()}
        self.num_classes = {t: d.reader.num_classes for t, d in val_sets.items()}
        if self.num_classes.get(DET, NUM_DET_CLASSES) != NUM_DET_CLASSES:
            raise ConfigError(f"{self.data_root}: the detection data has {self.num_classes[DET]} categories, "
                              f"the model's detection head {NUM_DET_CLASSES}")
        torch.manual_seed(spec.seed)
        self.model = prepare_model(build_model(config.model), self.device)
        self.optimizer = make_optimizer(self.model.parameters(), train.lr, train.weight_decay, self.device)
        self.scheduler = make_scheduler(self.optimizer, train, spec.first_stage)
        self.strategy = create_strategy(spec.strategy, config.strategies, seed=spec.seed)
        self.loss_fn = partial(self._loss, det_head=config.model.det_head)

    def state_dict(self) -> dict[str, Any]:
        """What a checkpoint restores: the model's, optimiser's, scheduler's and strategy's state."""
        return {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(), "strategy": self.strategy.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.strategy.load_state_dict(state["strategy"], self.model)

    def record(self, progress: Progress) -> RunResult:
        """The finished run's record, with its provenance."""
        spec, config = self.spec, self.config
        run = {"name": spec.name, "kind": spec.kind, "strategy": spec.strategy, "seed": spec.seed, "tasks": spec.tasks,
               "experiment": config.experiment, "variant": config.variant}
        return progress.record(run, provenance(config_to_dict(config), spec.seed, self.data_root, self.manifest,
                                               self.device))

    def _loss(self, task: str, output: torch.Tensor, target: Any, det_head: str) -> dict:
        return task_loss(task, output, target, det_head=det_head, num_classes=self.num_classes[task])

    def stage_context(self, index: int) -> StageContext:
        return StageContext(index=index, task=self.spec.tasks[index], train_data=self.train_sets,
                            previous_tasks=self.spec.tasks[:index], loss_fn=self.loss_fn, collate=collate,
                            batch_size=self.config.train.batch_size, seed=self.spec.seed,
                            is_last=index == len(self.spec.tasks) - 1)

    def evaluate_all(self, scored: dict[str, Evaluation] | None = None) -> dict[str, Evaluation]:
        """The evaluation of every task of the run, in order; those in ``scored`` (the stage's task, evaluated
        after its last epoch with the same weights) are taken from there rather than evaluated again."""
        scored = scored or {}
        return {t: scored[t] if t in scored else evaluate_task(self.model, t, self.val_loaders[t], self.device,
                                                               self.config.model.det_head, self.config.eval)
                for t in self.spec.tasks}

    def train_loader(self, task: str, epoch: int) -> DataLoader:
        generator = torch.Generator().manual_seed(_epoch_seed(self.spec.seed, epoch))
        return DataLoader(self.train_sets[task], batch_size=self.config.train.batch_size, shuffle=True,
                          generator=generator, collate_fn=collate)


def frozen_batchnorm(train: TrainConfig, task: str) -> bool:
    """Whether ``task`` trains with its BatchNorm layers frozen: under ``bn: freeze_after_first``, every task but
    the first of ``train.tasks``, in the sequence and in the task's single-task baseline alike, so that a
    baseline trains in the BatchNorm mode its task has in the sequence (a baseline's one stage is always its
    run's first, so judging by the run's stage index would leave every baseline unfrozen)."""
    return train.bn == "freeze_after_first" and task in train.tasks and train.tasks.index(task) > 0


def execute(run: Run, overwrite: bool = False) -> RunResult:
    """Train and evaluate the run (resuming from its checkpoint), write its outputs, return its record; the run
    folder is locked meanwhile (:class:`unihead.engine.lock.RunFolderLocked` if another run holds it). A finished
    run of another run config in the folder is refused, or with ``overwrite`` replaced (:mod:`.finished`)."""
    run.out_dir.mkdir(parents=True, exist_ok=True)
    with locked(run.out_dir, run.log):
        refuse_another_config(run.out_dir, config_to_dict(run.config), overwrite)
        return _train_and_write(run)


def _resume(run: Run) -> Progress | None:
    """The run's state and progress restored from its checkpoint, or None without one."""
    state = load_checkpoint(run.out_dir, run.config, run.spec, run.device)
    if state is None:
        return None
    run.load_state_dict(state)
    progress = Progress(**state["progress"])
    run.log(f"[{run.spec.name} seed{run.spec.seed}] resuming after epoch {progress.epochs_done}")
    return progress


def _train_and_write(run: Run) -> RunResult:
    spec, train = run.spec, run.config.train
    configure_backends(run.device, train.deterministic)
    progress = _resume(run) or Progress(
        initial={task: evaluation.metrics for task, evaluation in run.evaluate_all().items()},
        chance=[chance_score(t, run.val_loaders[t], run.num_classes[t]) for t in spec.tasks])
    epochs = train.epochs
    started = progress.epochs_done
    for epoch in range(started, epochs * len(spec.tasks)):  # global epochs: stage after stage
        index, stage_epoch = divmod(epoch, epochs)
        task = spec.tasks[index]
        if stage_epoch == 0 or epoch == started:  # the stage starts, or the run resumes inside it
            stage = run.stage_context(index)
            if train.reset_optimizer and index > 0 and stage_epoch == 0:
                # the stage starts now (a run resumed inside it has the stage's own moments from the checkpoint);
                # the learning rate lives in param_groups, which the scheduler keeps setting
                run.optimizer.state.clear()
            run.strategy.before_stage(run.model, stage)
        where = f"[{spec.name} seed{spec.seed}] stage {index + 1}/{len(spec.tasks)} ({task}), " \
                f"epoch {stage_epoch + 1}/{epochs}"
        torch.manual_seed(_epoch_seed(spec.seed, epoch))
        lr = run.optimizer.param_groups[0]["lr"]
        row = train_one_epoch(run.model, run.train_loader(task, epoch), run.optimizer, run.strategy, stage,
                              run.device, where, freeze_batchnorm=frozen_batchnorm(train, task),
                              precision=train.precision)
        val = evaluate_task(run.model, task, run.val_loaders[task], run.device, run.config.model.det_head,
                            run.config.eval)
        metric = PRIMARY_METRIC[task]
        losses = "  ".join(f"{k} {v:.4f}" for k, v in row.items() if k not in EPOCH_COUNTS)
        run.log(f"{where}  {losses}  {run.scored_on} {metric} {val.metrics[metric]:.4f}  lr {lr:.2e}  "
                f"{row['images_per_s']:.1f} img/s  {row['seconds']:.1f} s")
        progress.history.append({"stage": index, "task": task, "epoch": epoch, "lr": lr, **row,
                                 f"val_{metric}": val.metrics[metric]})
        if stage_epoch == epochs - 1:
            start = time.perf_counter()
            with ForwardCount() as stage_end:
                run.strategy.after_stage(run.model, stage)
            evaluations = run.evaluate_all(scored={task: val})
            metrics = {t: evaluation.metrics for t, evaluation in evaluations.items()}
            progress.per_image.append({t: evaluation.per_image for t, evaluation in evaluations.items()})
            epoch_rows = [r for r in progress.history if r["stage"] == index]
            train_seconds = sum(r["seconds"] for r in epoch_rows)
            progress.stages.append({"task": task, "epochs": epochs, "metrics": metrics,
                                    "forwarded": sum(r["forwarded"] for r in epoch_rows) + stage_end.forwarded,
                                    "backpropagated": sum(r["backpropagated"] for r in epoch_rows)
                                    + stage_end.backpropagated,
                                    "train_seconds": train_seconds,
                                    "seconds": train_seconds + time.perf_counter() - start})
        run.scheduler.step()
        progress.epochs_done = epoch + 1
        save_checkpoint(run.out_dir, {**run.state_dict(), "progress": dataclasses.asdict(progress)}, run.config,
                        spec)
    record = run.record(progress)
    write_outputs(run.out_dir, record, progress.history, progress.per_image, run.model.state_dict())
    return record
