"""Bad run outputs, and a run folder in use, given to the command line: each is a one-line error with
status 2 that names the file or folder and what was expected; never a traceback, never tables with a
silent gap.

This is the run-outputs surface of the bad-input suite: ``BAD_INPUTS`` is its table, one row per bad
input (``unihead forgetting`` on missing or malformed run results, ``unihead train`` on a run folder that
another run holds). Below it, the rest of the run folder's lock: a stale lock is replaced, the holder's
lock is left alone, and the lock is gone when a run ends, also when it fails.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import signal
import socket
import subprocess
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import torch

from test_compare import edit_json, write_results
from test_ewc_sweep import write_sweep_run
from test_forgetting import runs_folder
from tiny import tiny_values
from unihead.cli import main
from unihead.config import config_from_dict
from unihead.engine import run as engine
from unihead.engine.run import Run, execute
from unihead.errors import InputError, TrainingDiverged
from unihead.scopes import run_config
from unwritable import FULL, READ_ONLY, make_unwritable

Build = Callable[[Path, Path], list[str]]
"""Makes a bad input in a temporary folder (given the synthetic data root); returns the command's arguments."""
LOCK = "run.lock"


def _forgetting(runs: Path, *options: str) -> list[str]:
    return ["forgetting", str(runs), "--out", str(runs.parent / "tables"), *options]


def _reported(tmp: Path, data_root: Path) -> list[str]:
    """The report of the forgetting tests' hand-made records, which hold no final metrics."""
    runs = runs_folder(tmp)
    assert main(["forgetting", str(runs), "--out", str(tmp / "summary")]) == 0
    (tmp / "experiment.yaml").write_text("name: test\n")
    return ["report", "--config", str(tmp / "experiment.yaml"), str(runs), "--forgetting",
            str(tmp / "summary" / "forgetting_summary.csv"), "--out", str(tmp / "report")]


def _edited(change: Callable[[dict[str, Any]], object], run: str = "none") -> Build:
    """The runs of test_forgetting.py, with ``change`` made to one run's metrics.json."""
    def build(tmp: Path, data_root: Path) -> list[str]:
        runs = runs_folder(tmp)
        path = runs / run / "seed0" / "metrics.json"
        metrics = json.loads(path.read_text())
        change(metrics)
        path.write_text(json.dumps(metrics))
        return _forgetting(runs)
    return build


def _written(content: bytes) -> Build:
    """The runs, with ``content`` as none's metrics.json."""
    def build(tmp: Path, data_root: Path) -> list[str]:
        runs = runs_folder(tmp)
        (runs / "none" / "seed0" / "metrics.json").write_bytes(content)
        return _forgetting(runs)
    return build


def _unfinished(*files: str) -> Build:
    """The runs, plus an ewc run folder holding only ``files``: a run that has not finished."""
    def build(tmp: Path, data_root: Path) -> list[str]:
        runs = runs_folder(tmp)
        folder = runs / "ewc" / "seed0"
        folder.mkdir(parents=True)
        for name in files:
            (folder / name).write_bytes(b"\0")
        return _forgetting(runs)
    return build


def _listed(workflow: str, removed: str | None = None, *options: str) -> Build:
    """The runs (less the ``removed`` run) against an experiment whose ``workflow`` section is given."""
    def build(tmp: Path, data_root: Path) -> list[str]:
        runs = runs_folder(tmp)
        if removed:
            shutil.rmtree(runs / removed)
        config = tmp / "exp.yaml"
        config.write_text(f"name: exp\nworkflow:\n{workflow}")
        return _forgetting(runs, "--config", str(config), *options)
    return build


def _files(pick: Callable[[Path, Path], list[Path]]) -> Build:
    """``unihead forgetting`` on the files that ``pick`` chooses, given the runs and the temporary folder."""
    def build(tmp: Path, data_root: Path) -> list[str]:
        return ["forgetting", *map(str, pick(runs_folder(tmp), tmp)), "--out", str(tmp / "tables")]
    return build


def _copy_of_none(runs: Path, tmp: Path) -> list[Path]:
    copy = tmp / "copy.json"
    shutil.copy(runs / "none" / "seed0" / "metrics.json", copy)
    return [runs, copy]


def _without_baseline_det(runs: Path, tmp: Path) -> list[Path]:
    shutil.rmtree(runs / "baseline-det")
    return [runs]


def _empty_folder(runs: Path, tmp: Path) -> list[Path]:
    (tmp / "empty").mkdir()
    return [tmp / "empty"]


def _compared(*options: str) -> Build:
    """``unihead compare`` of the results of test_compare.py with a copy whose ewc seg mIoU is 0.5 higher."""
    def build(tmp: Path, data_root: Path) -> list[str]:
        reference = write_results(tmp / "reference", {0: (0.3, 0.6)})
        mine = shutil.copytree(reference, tmp / "mine")
        edit_json(mine / "runs" / "ewc" / "seed0" / "metrics.json", lambda m: m["final"]["seg"].update(miou=0.8))
        return ["compare", str(reference), str(mine), *options]
    return build


def _lock_text(pid: int) -> str:
    return json.dumps({"host": socket.gethostname(), "pid": pid, "started": "2026-01-01T00:00:00+00:00"})


def _train_in_a_locked_folder(tmp: Path, data_root: Path) -> list[str]:
    """A lock held by a live run (this process) in the run folder of ``unihead train``."""
    config = tmp / "exp.yaml"
    config.write_text(json.dumps(tiny_values(data_root)))
    out = tmp / "run"
    out.mkdir()
    (out / LOCK).write_text(_lock_text(os.getpid()))
    return ["train", "--config", str(config), "--run", "baseline-cls", "--out", str(out)]


METRICS = r"runs/none/seed0/metrics\.json: "
EVAL_TASKS = r"task of 'eval_tasks' \['seg', 'det', 'cls'\]"
NEW_DEFECTS = [
    pytest.param(_unfinished("checkpoint.pt"), r"unfinished run: \S*runs/ewc/seed0 holds no metrics\.json",
                 id="run-folder-with-only-a-checkpoint"),
    pytest.param(_unfinished(), r"unfinished run: \S*runs/ewc/seed0 holds no metrics\.json", id="empty-run-folder"),
    pytest.param(_listed("  strategies: [none, ewc]\n"),
                 r"runs: no results for run\(s\) ewc/seed0 that experiment 'exp' lists", id="listed-strategy-absent"),
    pytest.param(_listed("  strategies: [none]\n  seeds: [0, 1]\n"),
                 r"no results for run\(s\) none/seed1, baseline-seg/seed1, baseline-det/seed1, baseline-cls/seed1 ",
                 id="listed-seed-absent"),
    pytest.param(_listed("  strategies: [none]\n", "baseline-det", "--no-single-baseline"),
                 r"no results for run\(s\) baseline-det/seed0 that experiment", id="listed-baseline-absent"),
    pytest.param(_written(b"null"), METRICS + r"holds null; expected a JSON object with the keys", id="json-null"),
    pytest.param(_written(b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR"), METRICS + "not valid JSON", id="binary-garbage"),
    pytest.param(_edited(lambda m: m.update(R=m["R"][:2])),
                 METRICS + r"key 'R' has 2 rows; expected one per stage of 'run.tasks' \['seg', 'det', 'cls'\]",
                 id="R-fewer-rows-than-stages"),
    pytest.param(_edited(lambda m: m["R"][1].pop()), METRICS + r"key 'R\[1\]' has 2 values; expected one per "
                 + EVAL_TASKS, id="R-row-shorter-than-eval-tasks"),
    pytest.param(_edited(lambda m: m["R"][2].__setitem__(0, "n/a")),
                 METRICS + r"config key 'R\[2\]\[0\]': expected float, got 'n/a'", id="R-score-a-string"),
    pytest.param(_edited(lambda m: m["R"][2].__setitem__(2, True)),
                 METRICS + r"config key 'R\[2\]\[2\]': expected float, got True", id="R-score-a-boolean"),
    pytest.param(_edited(lambda m: m.update(R={"seg": [0.4]})),
                 METRICS + r"config key 'R': expected a list, got \{'seg': \[0.4\]\}", id="R-not-a-list"),
    pytest.param(_edited(lambda m: m["run"].pop("tasks")), METRICS + r"missing config key 'run.tasks'$",
                 id="missing-run-tasks"),
    pytest.param(_edited(lambda m: m["run"].pop("name")), METRICS + r"missing config key 'run.name'$",
                 id="missing-run-name"),
    pytest.param(_edited(lambda m: m["run"].pop("seed")), METRICS + r"missing config key 'run.seed'$",
                 id="missing-run-seed"),
    pytest.param(_edited(lambda m: m["run"].update(seed="first")),
                 METRICS + r"config key 'run.seed': expected int, got 'first'", id="seed-a-string"),
    pytest.param(_edited(lambda m: m.update(chance=0.1)),
                 METRICS + r"config key 'chance': expected a list, got 0.1$",
                 id="chance-not-a-list"),
    pytest.param(_edited(lambda m: m.update(eval_tasks=["seg", "det", "depth"])),
                 METRICS + r"key 'eval_tasks' is \[\"seg\", \"det\", \"depth\"\]; expected distinct tasks of "
                 r"'run.tasks'", id="eval-task-not-trained"),
    pytest.param(_edited(lambda m: m["primary_metric"].pop("det")),
                 METRICS + r"key 'primary_metric' is .*; expected a metric name for each " + EVAL_TASKS,
                 id="primary-metric-missing-a-task"),
    pytest.param(_edited(lambda m: m.update(eval_tasks=["seg"], run={**m["run"], "tasks": ["seg"]}), "baseline-det"),
                 r"baseline-det/seed0/metrics\.json: key 'eval_tasks' of baseline run 'baseline-det' is \['seg'\]; "
                 r"expected \['det'\]", id="baseline-of-another-task"),
    pytest.param(_train_in_a_locked_folder,
                 rf"run/run\.lock: the run folder is in use by PID {os.getpid()} on host \S+ \(started "
                 r"2026-01-01T00:00:00\+00:00\); wait for that run to end", id="run-folder-locked-by-a-live-run"),
    # an error already, but one that named "[PosixPath('.../empty')]" when given on the command line
    pytest.param(_files(_empty_folder), r"error: \S*/empty: no run results \(expected <run>/seed<N>/metrics\.json\)",
                 id="folder-without-runs"),
    # judged with status 0 before: an infinite chance score gave "not learned", a NaN final score "fail"
    pytest.param(_edited(lambda m: m["chance"].__setitem__(2, math.inf)),
                 METRICS + r"config key 'chance\[2\]': expected a finite number, got inf",
                 id="chance-infinite"),
    pytest.param(_edited(lambda m: m["R"][2].__setitem__(0, math.nan)),
                 METRICS + r"config key 'R\[2\]\[0\]': expected a finite number, got nan", id="final-R-score-NaN"),
    pytest.param(_edited(lambda m: m.update(final={"cls": {"top1": -math.inf}})),
                 METRICS + r"config key 'final.cls.top1': expected a finite number, got -inf",
                 id="final-metric-infinite"),
    # a floor this large reported the +0.5 mIoU change as REPRODUCED
    pytest.param(_compared("--floor", "inf"), r"error: --floor inf: expected a number in \[0, 0.1\], the smallest "
                 r"tolerance on the metrics' 0..1 scale", id="compare-floor-infinite"),
    pytest.param(_compared("--floor", "1e9"), r"error: --floor 1e\+09: expected a number in \[0, 0.1\]",
                 id="compare-floor-huge"),
    # a traceback (TypeError in the final-metrics table) before
    pytest.param(_reported, r"seed0/metrics\.json: missing key 'final'; expected the results `unihead train` writes",
                 id="report-of-records-without-final-metrics"),
]
"""Bad inputs that gave a traceback, or tables with a silent gap or a wrong number, before they were checked."""
ALREADY_CHECKED = [
    pytest.param(_written(b'{"run": '), METRICS + "not valid JSON", id="not-json"),
    pytest.param(_edited(lambda m: m.pop("R")), METRICS + r"missing config key 'R'$", id="missing-R"),
    pytest.param(_edited(lambda m: m.pop("chance")), METRICS + r"missing config key 'chance'$",
                 id="missing-chance-results-from-before-chance"),
    pytest.param(_edited(lambda m: m.update(chance=[0.02, 0.0])),
                 METRICS + "key 'chance' has 2 values; expected one per " + EVAL_TASKS, id="chance-too-short"),
    pytest.param(_files(_copy_of_none), r"copy\.json and \S*runs/none/seed0/metrics\.json: both are run 'none' seed 0",
                 id="same-run-given-twice"),
    pytest.param(_files(lambda runs, tmp: sorted(runs.glob("baseline-*/seed0/metrics.json"))),
                 r"only single-task baseline runs .*need at least one strategy run", id="only-baselines"),
    pytest.param(_files(_without_baseline_det),
                 r"no single-task baseline for det seed 0: expected \S*runs/baseline-det/seed0",
                 id="single-baseline-missing"),
    pytest.param(_files(lambda runs, tmp: [tmp / "missing"]), r"missing: neither a folder of runs nor a metrics\.json",
                 id="neither-folder-nor-json"),
    pytest.param(_compared("--floor", "-0.01"), r"error: --floor -0.01: expected a number in \[0, 0.1\]",
                 id="compare-floor-negative"),
    pytest.param(_compared("--floor", "nan"), r"error: --floor nan: expected a number in \[0, 0.1\]",
                 id="compare-floor-nan"),
    pytest.param(_files(lambda runs, tmp: [tmp / "seed7" / "metrics.json"]), r"seed7/metrics\.json: run results "
                 "not found", id="metrics-file-not-found"),
]
"""Bad inputs that were already errors naming the file."""
BAD_INPUTS = NEW_DEFECTS + ALREADY_CHECKED


@pytest.mark.parametrize(("build", "message"), BAD_INPUTS)
def test_a_bad_input_is_a_one_line_error_that_names_it(build: Build, message: str, tmp_path, synthetic_root,
                                                       capsys):
    argv = build(tmp_path, synthetic_root)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("unihead: error: ") and err.count("\n") == 1, err
    assert re.search(message, err), err
    assert not (tmp_path / "tables").exists()


def _baseline_run(data_root: Path, out: Path, log: Callable[[str], None]) -> Run:
    config = config_from_dict(tiny_values(data_root))
    return Run(run_config(config, "baseline-cls", 0), out, log=log)


def test_a_refused_run_leaves_the_holders_lock_and_the_folder_alone(synthetic_root, tmp_path):
    lock = tmp_path / LOCK
    lock.write_text(_lock_text(os.getpid()))
    with pytest.raises(InputError, match=rf"{re.escape(str(lock))}: the run folder is in use by PID {os.getpid()}"):
        execute(_baseline_run(synthetic_root, tmp_path, log=lambda line: None))
    assert lock.read_text() == _lock_text(os.getpid())
    assert sorted(path.name for path in tmp_path.iterdir()) == [LOCK]


@pytest.mark.slow
def test_a_stale_lock_is_reported_and_replaced_and_the_lock_is_gone_after_the_run(synthetic_root, tmp_path):
    dead = subprocess.Popen(["true"])
    dead.wait()
    lock = tmp_path / LOCK
    lock.write_text(_lock_text(dead.pid))
    lines, holders = [], []

    def log(line: str) -> None:
        lines.append(line)
        if "epoch" in line:
            holders.append(json.loads(lock.read_text()))

    execute(_baseline_run(synthetic_root, tmp_path, log))
    assert lines[0] == (f"{lock}: removed the stale lock of PID {dead.pid} on host {socket.gethostname()} (started "
                        "2026-01-01T00:00:00+00:00), which is no longer running; taking over the run folder")
    # while training, the lock names this process and when it started
    (holder,) = holders
    assert (holder["host"], holder["pid"]) == (socket.gethostname(), os.getpid())
    assert datetime.fromisoformat(holder["started"]).tzinfo is not None
    assert (tmp_path / "metrics.json").is_file() and not lock.exists()
    assert not list(tmp_path.glob("run.lock*"))


def test_the_lock_is_gone_after_a_diverged_run(synthetic_root, tmp_path, monkeypatch):
    held = []

    def diverge(*args: Any, **kwargs: Any) -> None:
        held.append((tmp_path / LOCK).is_file())
        raise TrainingDiverged("[baseline-cls seed0] stage 1/1 (cls), epoch 1/1: loss term 'cls' is nan")

    monkeypatch.setattr(engine, "train_one_epoch", diverge)
    with pytest.raises(TrainingDiverged):
        execute(_baseline_run(synthetic_root, tmp_path, log=lambda line: None))
    assert held == [True] and not (tmp_path / LOCK).exists()


# `unihead train` into a run folder that holds a finished run, a killed run's leftovers or a broken checkpoint, on a
# full disk, or stopped by SIGTERM, and the commands that write results into a folder that cannot be written: a row
# arranges it (given the temporary folder, the data root and monkeypatch) and returns the command's arguments; the
# command must end with the status given (and a one-line error matching the row's pattern), leave no lock and no
# temporary file, and pass the row's check afterwards (given the temporary folder and the command): nothing lost,
# nothing partial, and a rerun works once the cause is gone.
RUN = "run"
Arrange = Callable[[Path, Path, pytest.MonkeyPatch], list[str]]
Check = Callable[[Path, list[str]], None]


def _train_argv(tmp: Path, data_root: Path, *options: str, **train: Any) -> list[str]:
    """``unihead train`` of the tiny config's baseline-cls run (``train`` changes its train section) into
    ``tmp/run``."""
    config = tmp / f"exp{len(list(tmp.glob('exp*.yaml')))}.yaml"
    config.write_text(json.dumps(tiny_values(data_root, train=train)))
    return ["train", "--config", str(config), "--run", "baseline-cls", "--out", str(tmp / RUN), *options]


def _tree(folder: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in sorted(folder.iterdir())}


def _finished_then(*options: str, **train: Any) -> Arrange:
    """A finished run in ``tmp/run`` (kept as ``tmp/before``); then train into it with ``train`` changed."""
    def arrange(tmp: Path, data_root: Path, monkeypatch: pytest.MonkeyPatch) -> list[str]:
        assert main(_train_argv(tmp, data_root)) == 0
        shutil.copytree(tmp / RUN, tmp / "before")
        return _train_argv(tmp, data_root, *options, **train)
    return arrange


def _nothing_lost(tmp: Path, argv: list[str]) -> None:
    assert _tree(tmp / RUN) == _tree(tmp / "before")


def _replaced_with_batch_size_2(tmp: Path, argv: list[str]) -> None:
    metrics = json.loads((tmp / RUN / "metrics.json").read_text())
    assert metrics["provenance"]["config"]["train"]["batch_size"] == 2
    assert sorted(_tree(tmp / RUN)) == ["history.csv", "metrics.json", "model.pt", "per_image.json.gz"]


def _checkpoint(content: Callable[[Path], bytes]) -> Arrange:
    """A run folder holding a checkpoint.pt of ``content`` (given the temporary folder); kept as ``tmp/before``."""
    def arrange(tmp: Path, data_root: Path, monkeypatch: pytest.MonkeyPatch) -> list[str]:
        (tmp / RUN).mkdir()
        (tmp / RUN / "checkpoint.pt").write_bytes(content(tmp))
        shutil.copytree(tmp / RUN, tmp / "before")
        return _train_argv(tmp, data_root)
    return arrange


def _truncated_checkpoint(tmp: Path) -> bytes:
    path = tmp / "whole.pt"
    torch.save({"config": "{}", "model": {"w": torch.zeros(1000)}}, path)
    return path.read_bytes()[:1500]


def _killed_run_left_a_temporary_file(tmp: Path, data_root: Path, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """What SIGKILL during a checkpoint write leaves: the dead run's lock and a fresh, empty temporary file."""
    dead = subprocess.Popen(["true"])
    dead.wait()
    (tmp / RUN).mkdir()
    (tmp / RUN / LOCK).write_text(_lock_text(dead.pid))
    (tmp / RUN / ".checkpoint.pt.0123456789ab.tmp").write_bytes(b"")
    return _train_argv(tmp, data_root)


def _full_disk(*modes: str) -> Arrange:
    """The disk is full for files that ``os.fdopen`` opens in ``modes`` (the lock "w", the checkpoint "wb")."""
    def arrange(tmp: Path, data_root: Path, monkeypatch: pytest.MonkeyPatch) -> list[str]:
        fdopen = os.fdopen

        def full(fd: int, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
            if mode not in modes:
                return fdopen(fd, mode, *args, **kwargs)
            os.close(fd)
            return open("/dev/full", mode, *args, **kwargs)  # every write: ENOSPC

        monkeypatch.setattr(os, "fdopen", full)
        return _train_argv(tmp, data_root)
    return arrange


def _sigterm_during_the_checkpoint_write(tmp: Path, data_root: Path, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """SIGTERM arrives while torch.save writes the checkpoint (its handler runs inside torch's write callback)."""
    save = torch.save

    class Terminated:
        def __init__(self, handle: Any) -> None:
            self.handle, self.writes = handle, 0

        def write(self, data: bytes) -> int:
            self.writes += 1
            if self.writes == 2:
                os.kill(os.getpid(), signal.SIGTERM)
            return self.handle.write(data)

        def flush(self) -> None:
            self.handle.flush()

    monkeypatch.setattr(torch, "save", lambda obj, handle: save(obj, Terminated(handle)))
    return _train_argv(tmp, data_root)


def _a_rerun_finishes(tmp: Path, argv: list[str]) -> None:
    assert main(argv) == 0 and (tmp / RUN / "metrics.json").is_file()
    assert not list((tmp / RUN).glob(".*.tmp")) and not (tmp / RUN / LOCK).exists()


def _finished(tmp: Path, argv: list[str]) -> None:
    assert (tmp / RUN / "metrics.json").is_file()


def _unwritable(reason: int, folder: str, then: Arrange) -> Arrange:
    """``then``, with ``tmp/<folder>`` unwritable for ``reason`` (a full disk or a read-only file system)."""
    def arrange(tmp: Path, data_root: Path, monkeypatch: pytest.MonkeyPatch) -> list[str]:
        argv = then(tmp, data_root, monkeypatch)
        make_unwritable(monkeypatch, tmp / folder, reason)
        return argv
    return arrange


def _unwritable_both_ways(folder: str, then: Arrange, written: str, check: Check, name: str) -> list[Any]:
    """Two rows: ``then`` with ``tmp/<folder>`` on a full disk, and read-only; each an error naming the file that
    matches ``written``."""
    return [pytest.param(_unwritable(FULL, folder, then), 2, rf"{written}: cannot write it: No space left on device",
                         check, id=f"{name}-on-a-full-disk"),
            pytest.param(_unwritable(READ_ONLY, folder, then), 2, rf"{written}: cannot write it: Read-only file system",
                         check, id=f"{name}-into-a-read-only-folder")]


def _train_into_a_new_folder(tmp: Path, data_root: Path, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    return _train_argv(tmp, data_root)


def _train_into_a_folder(tmp: Path, data_root: Path, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    (tmp / RUN).mkdir()
    return _train_argv(tmp, data_root)


def _forgetting_tables(tmp: Path, data_root: Path, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    (tmp / "tables").mkdir()
    return _forgetting(runs_folder(tmp))


def _comparison(tmp: Path, data_root: Path, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    reference = write_results(tmp / "reference", {0: (0.5, 0.6)})
    mine = shutil.copytree(reference, tmp / "mine")
    (tmp / "out").mkdir()
    return ["compare", str(reference), str(mine), "--out", str(tmp / "out")]


def _as_trained(path: Path) -> None:
    """A hand-made record with the keys `unihead train` writes and the report's tables read (its figures also read
    a sequence run's weights, which these have not: the rows below fail at the first table)."""
    record = json.loads(path.read_text())
    record |= {"final": {task: {metric: row} for task, metric, row in zip(record["eval_tasks"],
                                                                          record["primary_metric"].values(),
                                                                          record["R"][-1], strict=True)},
               "train_seconds": 60.0, "images_per_s": 10.0,
               "provenance": {"git_commit": None, "packages": {}, "python": "3", "device": "cpu"}}
    path.write_text(json.dumps(record))


def _report(tmp: Path, data_root: Path, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    runs = runs_folder(tmp)
    assert main(_forgetting(runs)) == 0
    for path in runs.glob("*/seed*/metrics.json"):
        _as_trained(path)
    (tmp / "experiment.yaml").write_text("name: test\n")
    (tmp / "report").mkdir()
    return ["report", "--config", str(tmp / "experiment.yaml"), str(runs), "--forgetting",
            str(tmp / "tables" / "forgetting_summary.csv"), "--out", str(tmp / "report")]


def _ewc_sweep(tmp: Path, data_root: Path, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    sweep = {"penalty_weights": [0.1, 1.0], "seeds": [0], "holdout": 0.25}
    for weight in sweep["penalty_weights"]:
        write_sweep_run(tmp / "sweep", weight, 0, [0.1, 0.2, 0.3])
    (tmp / "experiment.yaml").write_text(json.dumps({"name": "test", "ewc_sweep": sweep}))
    (tmp / "out").mkdir()
    return ["ewc-sweep", str(tmp / "sweep"), "--config", str(tmp / "experiment.yaml"), "--table",
            str(tmp / "out" / "ewc_sweep"), "--choice", str(tmp / "out" / "choice.json")]


def _nothing_written(folder: str) -> Check:
    def check(tmp: Path, argv: list[str]) -> None:
        assert not [path for path in (tmp / folder).rglob("*") if path.is_file()]
    return check


def _empty_until_a_rerun(folder: str) -> Check:
    def check(tmp: Path, argv: list[str]) -> None:
        assert not list((tmp / folder).iterdir())
        assert main(argv) == 0 and list((tmp / folder).iterdir())
    return check


SLOW = pytest.mark.slow
"""The rows that train the tiny config's baseline-cls run to its end."""
UNREADABLE = r"run/checkpoint\.pt: not a readable checkpoint of unihead \(truncated, empty or another file: .*\); " \
             r"delete it to start the run afresh"
OUTPUT_FOLDERS = [
    pytest.param(_finished_then(batch_size=2), 2,
                 r"run/metrics\.json: the run folder holds a finished run of another run config \(differing keys: "
                 r"train\.batch_size \(4, now 2\)\); give another --out, or --overwrite to replace that run's results",
                 _nothing_lost, id="finished-run-of-another-batch-size", marks=SLOW),
    pytest.param(_finished_then("--overwrite", batch_size=2), 0, None, _replaced_with_batch_size_2,
                 id="finished-run-replaced-when-asked", marks=SLOW),
    pytest.param(_checkpoint(lambda tmp: b""), 2, UNREADABLE, _nothing_lost, id="empty-checkpoint"),
    pytest.param(_checkpoint(lambda tmp: b"not a checkpoint\n" * 10), 2, UNREADABLE, _nothing_lost,
                 id="garbage-checkpoint"),
    pytest.param(_checkpoint(_truncated_checkpoint), 2, UNREADABLE, _nothing_lost, id="truncated-checkpoint"),
    pytest.param(_killed_run_left_a_temporary_file, 0, None, _finished, id="rerun-after-sigkill-removes-its-temp-file",
                 marks=SLOW),
    pytest.param(_full_disk("w"), 2, r"run/run\.lock: cannot write it: No space left on device; free some space",
                 _a_rerun_finishes, id="disk-full-at-the-lock", marks=SLOW),
    pytest.param(_full_disk("wb"), 2, r"run/checkpoint\.pt: cannot write it: No space left on device",
                 _a_rerun_finishes, id="disk-full-at-the-checkpoint", marks=SLOW),
    pytest.param(_sigterm_during_the_checkpoint_write, 128 + signal.SIGTERM, None, _a_rerun_finishes,
                 id="sigterm-during-the-checkpoint-write", marks=SLOW),
    # results into a folder that cannot be written (issue 22: 13)
    pytest.param(_unwritable(READ_ONLY, RUN, _train_into_a_folder), 2,
                 r"run/run\.lock: cannot write it: Read-only file system; free some space or make the folder writable",
                 _a_rerun_finishes, id="train-into-a-read-only-folder", marks=SLOW),
    pytest.param(_unwritable(READ_ONLY, ".", _train_into_a_new_folder), 2, r"error: \S+/run: Read-only file system$",
                 _a_rerun_finishes, id="train-into-a-new-folder-of-a-read-only-one", marks=SLOW),
    *_unwritable_both_ways("tables", _forgetting_tables, r"tables/forgetting_\w+\.csv", _empty_until_a_rerun("tables"),
                           "forgetting-tables"),
    *_unwritable_both_ways("out", _comparison, r"out/comparison\.\w+", _empty_until_a_rerun("out"), "comparison"),
    *_unwritable_both_ways("report", _report, r"report/tables/\w+\.csv", _nothing_written("report"), "report"),
    *_unwritable_both_ways("out", _ewc_sweep, r"out/ewc_sweep\.csv", _empty_until_a_rerun("out"), "ewc-sweep"),
]


@pytest.mark.parametrize(("arrange", "status", "error", "check"), OUTPUT_FOLDERS)
def test_written_results_lose_nothing_and_leave_nothing_partial(
        arrange: Arrange, status: int, error: str | None, check: Check, tmp_path, synthetic_root, monkeypatch,
        capsys):
    argv = arrange(tmp_path, synthetic_root, monkeypatch)
    capsys.readouterr()
    try:
        code = main(argv)
    except SystemExit as exit_:
        code = exit_.code
    monkeypatch.undo()  # the disk has space again, signals reach the process as before
    err = capsys.readouterr().err
    assert code == status, err
    if error is not None:
        assert err.startswith("unihead: error: ") and err.count("\n") == 1, err
        assert re.search(error, err), err
    assert not list(tmp_path.rglob(".*.tmp")) and not list(tmp_path.rglob(LOCK))
    check(tmp_path, argv)
