"""The ``unihead`` command line."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys

import pytest

from tiny import tiny_values
from unihead.cli import main


def test_params_prints_the_breakdown_of_the_papers_model(capsys):
    assert main(["params"]) == 0
    out = capsys.readouterr().out
    assert "det_head=paper" in out
    lines = {line.split()[0]: line.split()[1] for line in out.splitlines()[1:]}
    assert lines == {"backbone": "3,595,388", "neck": "503,552", "shared": "73,792", "head.seg": "1,365",
                     "head.det": "390", "head.cls": "650", "total": "4,175,137"}


def test_params_reads_an_experiment_config(tmp_path, capsys):
    config = tmp_path / "exp.yaml"
    config.write_text("model:\n  det_head: logits\n  pretrained: true\n")
    assert main(["params", "--config", str(config)]) == 0
    assert capsys.readouterr().out.split()[-2:] == ["total", "4,175,722"]


def test_bad_config_is_one_line_error_and_status_2(tmp_path):
    config = tmp_path / "exp.yaml"
    config.write_text("model:\n  fpn_chanels: 128\n")
    proc = subprocess.run([sys.executable, "-m", "unihead", "params", "--config", str(config)],
                          capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.strip() == (f"unihead: error: {config}: unknown config key 'model.fpn_chanels'; "
                                   "valid keys at 'model': ['backbone', 'det_head', 'fpn_channels', 'head', 'levels', "
                                   "'pretrained', 'shared_channels', 'weights_file', 'weights_sha256']")


def test_train_with_an_unknown_run_name_is_a_one_line_error(tmp_path, capsys):
    config = tmp_path / "exp.yaml"
    config.write_text("train:\n  epochs: 1\n")
    assert main(["train", "--config", str(config), "--run", "si", "--out", str(tmp_path / "run")]) == 2
    assert capsys.readouterr().err.startswith("unihead: error: unknown run 'si' (a baseline is one of ['baseline-seg', "
                                              "'baseline-det', 'baseline-cls']): expected 'none', a strategy ['ewc', ")
    assert not (tmp_path / "run").exists()


@pytest.mark.slow
def test_a_terminated_training_unwinds_and_removes_its_lock(synthetic_root, tmp_path):
    config = tmp_path / "exp.yaml"
    config.write_text(json.dumps(tiny_values(synthetic_root, name="experiment", train={"epochs": 50})))
    out = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-m", "unihead", "train", "--config", str(config), "--run",
                             "baseline-cls", "--out", str(out)], stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    for line in proc.stdout:  # until the second epoch is done: the first one's checkpoint is saved
        if "epoch 2/50" in line:
            break
    assert (out / "run.lock").is_file()
    proc.terminate()
    assert proc.wait(timeout=120) == 128 + signal.SIGTERM
    assert (out / "checkpoint.pt").is_file() and not (out / "run.lock").exists()


def test_prepare_refuses_bad_strategy_options_before_building_data(tmp_path, capsys):
    root = tmp_path / "data"
    config = tmp_path / "exp.yaml"
    config.write_text(f"data:\n  root: {root}\nstrategies:\n  ewc: {{fisher_samples: 0}}\n")
    assert main(["prepare", "--config", str(config), "--manifest", str(tmp_path / "m.json")]) == 2
    assert "'strategies.ewc.fisher_samples'" in capsys.readouterr().err
    assert not root.exists() and not (tmp_path / "m.json").exists()


@pytest.mark.parametrize(("option", "value", "message"), [
    ("--n-train", "1", r"argument --n-train: expected at least 10 \(one image per class\), got 1"),
    ("--n-val", "0", r"argument --n-val: expected at least 10 \(one image per class\), got 0"),
    ("--size", "99999", r"argument --size: expected an integer in \[32, 2048\], got 99999"),
])
def test_synth_refuses_sizes_it_cannot_write_before_writing(tmp_path, capsys, option, value, message):
    """`unihead synth` bounds its counts and size as the config bounds data.synthetic (issue 22: a traceback
    before), leaving nothing behind."""
    with pytest.raises(SystemExit) as stopped:
        main(["synth", "--out", str(tmp_path / "data"), option, value])
    assert stopped.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: unihead synth") and err.splitlines()[-1].startswith("unihead synth: error: ")
    assert re.search(message, err)
    assert not (tmp_path / "data").exists()
