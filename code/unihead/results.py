"""One run's record, ``metrics.json``: what the engine writes and what forgetting, compare and report read.

A :class:`RunResult` holds measurements only (the accuracy matrix R, chance scores, per-stage and final metrics,
timing, provenance), never a verdict. Reading one is parsing it with the config's validator
(:func:`unihead.schema.build_section`: every key typed, every number finite, none unknown) and then checking
what ties its keys together (R has a row per stage and a score per task of ``eval_tasks``), so that a
malformed file is a one-line error naming it and the key, never a traceback or a wrong number. An undefined
metric (NaN in the engine) is recorded as null; a NaN or infinity in the file is refused. Imports no torch, so
the workflow's host side can use it.
"""

from __future__ import annotations

import dataclasses
import gzip
import json
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from unihead.config import VARIANT_PATTERN, ExperimentConfig
from unihead.errors import InputError
from unihead.metrics.per_image import PerImage, images_of, score
from unihead.runs import BASELINE_PREFIX, run_names
from unihead.schema import bounded, build_section, matching

METRICS_FILE = "metrics.json"
"""The name of a run's record in its folder; its presence means the run is complete."""
HISTORY_FILE = "history.csv"
"""A finished run's training history, one row per epoch."""
WEIGHTS_FILE = "model.pt"
"""A finished run's weights."""
PER_IMAGE_FILE = "per_image.json.gz"
"""A finished run's per-image evaluation records: a list with one entry per stage, ``{task: record}`` for every
task of ``eval_tasks`` (:mod:`unihead.metrics.per_image`), which the bootstrap intervals resample."""
PER_IMAGE_TOLERANCE = 1e-9
"""How far a score recomputed from the per-image records may be from the one ``metrics.json`` holds."""
RUN_FOLDER = re.compile(r"seed\d+")
"""The name of a run's folder for one seed, under the run's own: ``<run>/seed<N>`` (``<variant>/<run>/seed<N>``)."""
Scores = list[float | None]
"""One score per task of ``eval_tasks`` (null: undefined)."""
Metrics = dict[str, dict[str, float | None]]
"""Every metric of every task: ``{task: {metric: value}}``."""


def short(value: Any) -> str:
    """A value as JSON writes it, cut to fit in a message."""
    text = json.dumps(value)
    return text if len(text) <= 60 else text[:57] + "..."


@dataclass(frozen=True, kw_only=True)
class RunInfo:
    """Which run this is: ``metrics.json``'s ``run``."""

    name: str
    kind: str | None = None
    """``sequence`` or ``baseline``."""
    strategy: str | None = None
    seed: int = field(metadata=bounded(0))
    tasks: list[str]
    """The tasks the run trained, in order: one stage each."""
    experiment: str | None = None
    variant: str | None = field(default=None, metadata=matching(VARIANT_PATTERN))
    """The experiment's variant the run belongs to, or null for an experiment without variants."""

    def __post_init__(self) -> None:
        if not self.name:
            raise InputError("key 'run.name' is \"\"; expected the run's name")
        if not self.tasks or len(set(self.tasks)) < len(self.tasks):
            raise InputError(f"key 'run.tasks' is {short(self.tasks)}; expected the distinct tasks the run trained, "
                             "in order")


@dataclass(frozen=True, kw_only=True)
class Provenance:
    """What made the run: package versions, Python, device and code commit (and the config and data)."""

    config: dict[str, Any] | None = None
    seed: int | None = None
    git_commit: str | None
    packages: dict[str, str | None]
    """Each package's version, null where it is not installed."""
    python: str
    data_root: str | None = None
    data_manifest: str | None = None
    data_manifest_sha256: str | None = None
    device: str
    cpu_capability: str | None = None
    """The CPU kernels PyTorch picked (e.g. AVX2, AVX512): other kernels may round differently."""
    host: str | None = None
    finished_utc: str | None = None


@dataclass(frozen=True, kw_only=True)
class RunResult:
    """A finished run's ``metrics.json``, its keys in the order they are written."""

    run: RunInfo
    eval_tasks: list[str]
    """The tasks evaluated, the columns of R (a baseline's is its own task)."""
    primary_metric: dict[str, str]
    """The metric of each task of ``eval_tasks`` that R holds."""
    R_initial: Scores | None = None
    """The untrained model's scores."""
    R: list[Scores]
    """``R[stage][task]``: each task's primary metric after each stage."""
    chance: Scores
    """Each task's score of a model that learned nothing."""
    initial: Metrics | None = None
    stages: list[dict[str, Any]] | None = None
    """Per stage: its task, epochs, every metric after it, the images forwarded and backpropagated while it
    trained (``forwarded``, ``backpropagated``), and its seconds."""
    final: Metrics | None = None
    train_seconds: float | None = None
    images_per_s: float | None = None
    images_forwarded: int | None = field(default=None, metadata=bounded(0))
    """Images the run's networks were called on while it trained (student and teachers, replayed samples, EWC's
    Fisher samples; not evaluation): what the strategy cost (:mod:`unihead.engine.forward_count`). Null in a
    record written before runs counted them."""
    images_backpropagated: int | None = field(default=None, metadata=bounded(0))
    """Those of ``images_forwarded`` forwarded with gradients on, each followed by a backward pass."""
    provenance: Provenance | None = None
    path: Path | None = field(default=None, compare=False)
    """The file the record was read from (not part of it)."""

    def __post_init__(self) -> None:
        stages, tasks = self.run.tasks, self.eval_tasks
        if not tasks or not all(task in stages for task in tasks) or len(set(tasks)) < len(tasks):
            raise InputError(f"key 'eval_tasks' is {short(tasks)}; expected distinct tasks of 'run.tasks' {stages}")
        if self.is_baseline and tasks != [self.name[len(BASELINE_PREFIX):]]:
            raise InputError(f"key 'eval_tasks' of baseline run {self.name!r} is {tasks}; expected "
                             f"{[self.name[len(BASELINE_PREFIX):]]}")
        if any(task not in self.primary_metric for task in tasks):
            raise InputError(f"key 'primary_metric' is {short(self.primary_metric)}; expected a metric name for each "
                             f"task of 'eval_tasks' {tasks}")
        if len(self.R) != len(stages):
            raise InputError(f"key 'R' has {len(self.R)} rows; expected one per stage of 'run.tasks' {stages}")
        per_task = f"task of 'eval_tasks' {tasks}"
        for key, scores in (*((f"R[{i}]", row) for i, row in enumerate(self.R)), ("chance", self.chance)):
            if len(scores) != len(tasks):
                raise InputError(f"key '{key}' has {len(scores)} values; expected one per {per_task}")

    @property
    def name(self) -> str:
        return self.run.name

    @property
    def seed(self) -> int:
        return self.run.seed

    @property
    def variant(self) -> str | None:
        """The variant the run belongs to, None without variants."""
        return self.run.variant

    @property
    def qualified_name(self) -> str:
        """The run's name with its variant, as its folders are named: ``<run>``, or ``<variant>/<run>``."""
        return qualified_name(self.variant, self.name)

    @property
    def is_baseline(self) -> bool:
        return self.name.startswith(BASELINE_PREFIX)

    def chance_of(self, task: str) -> float | None:
        """The chance score of a task of ``eval_tasks``."""
        return self.chance[self.eval_tasks.index(task)]

    def to_dict(self) -> dict[str, Any]:
        """The record as ``metrics.json`` holds it."""
        values = dataclasses.asdict(self)
        del values["path"]
        return values

    @classmethod
    def from_dict(cls, values: Any, path: Path | None = None) -> RunResult:
        """A record parsed and checked; errors name ``path`` (when given) and the key."""
        where = f"{path}: " if path is not None else ""
        if not isinstance(values, Mapping):
            raise InputError(f"{where}holds {short(values)}; expected a JSON object with the keys "
                             f"{[f.name for f in dataclasses.fields(cls) if f.name != 'path']} that `unihead train` "
                             "writes")
        try:
            record = build_section(cls, dict(values), "")
        except InputError as err:  # the validator's ConfigError, or what ties the keys together
            raise InputError(f"{where}{err}") from err
        return dataclasses.replace(record, path=path)


def qualified_name(variant: str | None, name: str) -> str:
    """A run's name with its variant, as its folders are named: ``<run>``, or ``<variant>/<run>``."""
    return name if variant is None else f"{variant}/{name}"


def read_run(path: Path) -> RunResult:
    """The record in ``path``, checked (see :class:`RunResult`)."""
    try:
        values = json.loads(path.read_bytes())
    except FileNotFoundError as err:
        raise InputError(f"{path}: run results not found") from err
    except OSError as err:
        raise InputError(f"{path}: cannot be read ({err.strerror})") from err
    except ValueError as err:  # not JSON, or not text at all (UnicodeDecodeError)
        raise InputError(f"{path}: not valid JSON ({err})") from err
    return RunResult.from_dict(values, path)


def read_per_image(run: RunResult) -> list[dict[str, PerImage]]:
    """The per-image records beside ``run``'s ``metrics.json``, checked against it: one entry per stage with every
    task of ``eval_tasks``, the same images at every stage, and each record giving back the score R holds."""
    path = Path(run.path).parent / PER_IMAGE_FILE
    try:
        records = json.loads(gzip.decompress(path.read_bytes()))
    except FileNotFoundError as err:
        raise InputError(f"{path}: per-image records not found (`unihead train` writes them beside "
                         f"{METRICS_FILE}; a run made before they existed must be rerun for intervals, or set "
                         "bootstrap.resamples: 0 for verdicts without them)") from err
    except (OSError, EOFError, ValueError) as err:  # not gzip, truncated, not JSON
        raise InputError(f"{path}: not readable per-image records ({type(err).__name__}: {err})") from err
    if not isinstance(records, list) or len(records) != len(run.R) or \
            not all(isinstance(stage, dict) and list(stage) == run.eval_tasks for stage in records):
        raise InputError(f"{path}: expected a list of {len(run.R)} stage(s), each with the records of "
                         f"{run.eval_tasks}, as `unihead train` writes them")
    for i, task in enumerate(run.eval_tasks):
        counts = set()
        for stage, (row, stage_records) in enumerate(zip(run.R, records, strict=True)):
            try:
                counts.add(images_of(stage_records[task], task))
                recomputed = score(stage_records[task], task)
            except (KeyError, TypeError, ValueError) as err:
                raise InputError(f"{path}: stage {stage} {task}: malformed record ({type(err).__name__}: "
                                 f"{err})") from err
            held = math.nan if row[i] is None else row[i]
            if not (abs(recomputed - held) <= PER_IMAGE_TOLERANCE or (math.isnan(recomputed) and math.isnan(held))):
                raise InputError(f"{path}: stage {stage} {task}: the per-image record gives {recomputed!r} but "
                                 f"{run.path} holds R[{stage}][{i}] = {held!r}; the two files are not of one run")
        if len(counts) > 1:
            raise InputError(f"{path}: {task}'s records hold {sorted(counts)} images at different stages; "
                             "expected the same validation images at every stage")
    return records


def _run_files(folder: Path) -> list[Path]:
    """The ``metrics.json`` of every ``<run>/seed<N>`` (or ``<variant>/<run>/seed<N>``) folder under ``folder``; a
    run folder without one is an unfinished (or never started) run, which would leave a silent gap in the
    tables."""
    runs = sorted(path for pattern in ("*/seed*", "*/*/seed*") for path in folder.glob(pattern)
                  if path.is_dir() and RUN_FOLDER.fullmatch(path.name))
    unfinished = [run for run in runs if not (run / METRICS_FILE).is_file()]
    if unfinished:
        more = f" (and {len(unfinished) - 1} more run folder(s) like it)" if len(unfinished) > 1 else ""
        raise InputError(f"unfinished run: {unfinished[0]} holds no {METRICS_FILE}{more}; finish it with "
                         "`unihead train`, or move it out of the folder")
    return [run / METRICS_FILE for run in runs]


def has_variants(runs: list[RunResult]) -> bool:
    """Whether the runs belong to variants (then every one does: a table mixing both would leave the runs
    without a variant unplaced)."""
    without = [run for run in runs if run.variant is None]
    if without and len(without) < len(runs):
        with_one = next(run for run in runs if run.variant is not None)
        raise InputError(f"{without[0].path} belongs to no variant but {with_one.path} to variant "
                         f"{with_one.variant!r}: give the runs of one experiment, all with variants or all without")
    return not without


def _check_listed(runs: list[RunResult], experiment: ExperimentConfig, sources: str) -> None:
    """Every run the experiment lists, for every variant and seed, is among ``runs``."""
    present = {(run.variant, run.name, run.seed) for run in runs}
    variants = list(experiment.workflow.variants) or [None]
    absent = [f"{qualified_name(variant, name)}/seed{seed}" for variant in variants
              for name in run_names(experiment) for seed in experiment.workflow.seeds
              if (variant, name, seed) not in present]
    if absent:
        each = "every variant of workflow.variants, " if experiment.workflow.variants else ""
        folder = "<variant>/<run>" if experiment.workflow.variants else "<run>"
        raise InputError(f"{sources}: no results for run(s) {', '.join(absent)} that experiment "
                         f"{experiment.name!r} lists (workflow.strategies and baseline-<task> for "
                         f"workflow.baselines, each for {each}every seed of workflow.seeds); expected "
                         f"{folder}/seed<N>/{METRICS_FILE} for each")


def read_runs(sources: Path | Iterable[Path]) -> list[RunResult]:
    """The records of ``metrics.json`` files, and of every ``<run>/seed<N>/metrics.json`` under a folder (where a
    ``<run>/seed<N>`` folder without one is an unfinished run: an error), each checked on its own."""
    given = [sources] if isinstance(sources, (str, Path)) else list(sources)
    paths: list[Path] = []
    for source in map(Path, given):
        if source.is_dir():
            paths += _run_files(source)
        elif source.suffix == ".json":
            paths.append(source)
        else:
            raise InputError(f"{source}: neither a folder of runs nor a {METRICS_FILE} file")
    if not paths:
        raise InputError(f"{', '.join(map(str, given))}: no run results (expected <run>/seed<N>/{METRICS_FILE})")
    return [read_run(path) for path in paths]


def require_keys(runs: list[RunResult], keys: Iterable[str]) -> list[RunResult]:
    """``runs``, each of which has every one of ``keys`` (optional in a record, which hand-made ones may lack, but
    needed by the reader: a report, a comparison); a missing one is an error naming the file and the key."""
    for run in runs:
        for key in keys:
            if not getattr(run, key):
                raise InputError(f"{run.path}: missing key {key!r}; expected the results `unihead train` writes")
    return runs


def load_runs(sources: Path | Iterable[Path], experiment: ExperimentConfig | None = None) -> list[RunResult]:
    """Run records from ``metrics.json`` files, or from every ``<run>/seed<N>/metrics.json`` under a folder
    (where a ``<run>/seed<N>`` folder without one is an unfinished run: an error), each checked. With
    ``experiment``, every run it lists must be among them."""
    given = [sources] if isinstance(sources, (str, Path)) else list(sources)
    runs = read_runs(given)
    has_variants(runs)
    seen: dict[tuple[str | None, str, int], Path | None] = {}
    for run in runs:
        key = (run.variant, run.name, run.seed)
        if key in seen:
            of = "" if run.variant is None else f" of variant {run.variant!r}"
            raise InputError(f"{run.path} and {seen[key]}: both are run {run.name!r} seed {run.seed}{of}; give each "
                             "run once")
        seen[key] = run.path
    if experiment is not None:
        _check_listed(runs, experiment, ", ".join(map(str, given)))
    return runs

