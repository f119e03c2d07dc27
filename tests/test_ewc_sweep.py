"""EWC's penalty sweep: its choice on a case worked out by hand, its refusals, the held-out part and the config."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
import torch

from unihead.cli import main
from unihead.config import config_from_dict
from unihead.data.decoded import DecodedDataset, Holdout
from unihead.errors import InputError
from unihead.ewc_sweep import sweep_scores, sweep_summary
from unihead.results import read_runs
from unihead.schema import ConfigError
from unihead.scopes import read_choice, run_scope, sweep_scope

TASKS = ["seg", "det", "cls"]
PRIMARY = {"seg": "miou", "det": "map_50", "cls": "top1"}
SWEEP = {"penalty_weights": [0.1, 1.0, 10.0], "seeds": [0, 1], "holdout": 0.25}
FINALS = {  # (weight, seed): the last row of R; the rows before are [0.5, 0, 0.1] and [0.4, 0.3, 0.1]
    (0.1, 0): [0.10, 0.20, 0.60], (0.1, 1): [0.20, 0.20, 0.60],  # avg final 0.3, 1/3 -> mean 0.31667
    (1.0, 0): [0.30, 0.25, 0.50], (1.0, 1): [0.30, 0.15, 0.60],  # 0.35, 0.35 -> 0.35: the best
    (10.0, 0): [0.45, 0.10, 0.35], (10.0, 1): [0.45, 0.20, 0.40],  # 0.3, 0.35 -> 0.325
}


def write_sweep_run(folder: Path, weight: float, seed: int, final: list[float], holdout: float = 0.25,
                    name: str = "ewc") -> None:
    run_dir = folder / f"lambda{weight:g}" / f"seed{seed}"
    run_dir.mkdir(parents=True)
    record = {"run": {"name": name, "kind": "sequence", "seed": seed, "tasks": TASKS}, "eval_tasks": TASKS,
              "primary_metric": PRIMARY, "R": [[0.5, 0.0, 0.1], [0.4, 0.3, 0.1], final], "chance": [0.0, 0.0, 0.1],
              "final": {t: {PRIMARY[t]: v} for t, v in zip(TASKS, final, strict=True)},
              "provenance": {"git_commit": None, "packages": {}, "python": "3", "device": "cpu",
                             "config": {"strategies": {"ewc": {"penalty_weight": weight}},
                                        "train": {"holdout": holdout}}}}
    (run_dir / "metrics.json").write_text(json.dumps(record))


@pytest.fixture
def sweep_runs(tmp_path: Path) -> Path:
    for (weight, seed), final in FINALS.items():
        write_sweep_run(tmp_path / "sweep", weight, seed, final)
    return tmp_path / "sweep"


def experiment(**sweep):
    return config_from_dict({"ewc_sweep": {**SWEEP, **sweep}})


def test_the_choice_is_the_weight_of_the_best_mean_average_final_score(sweep_runs):
    summary = sweep_summary(sweep_scores(read_runs(sweep_runs), experiment()))
    assert list(summary["penalty_weight"]) == [0.1, 1.0, 10.0]
    assert summary["avg_final_mean"].tolist() == pytest.approx([0.95 / 3, 0.35, 0.325])
    assert summary["chosen"].tolist() == [False, True, False]
    # average forgetting of weight 10, seed 0: seg max(0.5, 0.4) - 0.45 = 0.05, det 0.3 - 0.1 = 0.2 -> 0.125
    assert summary.loc[2, "avg_forgetting_mean"] == pytest.approx((0.125 + 0.075) / 2)
    assert summary["seeds"].tolist() == [2, 2, 2]


def test_a_tie_goes_to_the_smaller_weight():
    scores = pd.DataFrame({"penalty_weight": [1.0, 10.0], "seed": [0, 0], "avg_final": [0.4, 0.4],
                           "avg_forgetting": [0.1, 0.0]})
    assert sweep_summary(scores)["chosen"].tolist() == [True, False]


def test_the_cli_writes_the_table_and_the_choice_that_the_run_configs_read(sweep_runs, tmp_path):
    config = tmp_path / "experiment.yaml"
    config.write_text(json.dumps({"name": "x", "ewc_sweep": SWEEP}))
    choice = tmp_path / "ewc_sweep" / "choice.json"
    assert main(["ewc-sweep", str(sweep_runs), "--config", str(config), "--table", str(tmp_path / "t" / "ewc_sweep"),
                 "--choice", str(choice)]) == 0
    assert read_choice(choice) == 1.0
    assert json.loads(choice.read_text())["score"] == pytest.approx(0.35)
    markdown = (tmp_path / "t" / "ewc_sweep.md").read_text()
    assert "| 1 (chosen) " in markdown and "35.0 ± 0.0" in markdown and "held-out training images" in markdown
    weighted = run_scope(config_from_dict({"ewc_sweep": SWEEP}), "ewc", 0, penalty_weight=read_choice(choice))
    assert weighted["strategies"]["ewc"]["penalty_weight"] == 1.0
    assert "ewc" not in run_scope(config_from_dict({}), "kd", 0, penalty_weight=1.0)["strategies"]


@pytest.mark.parametrize(("change", "message"), [
    (lambda folder: write_sweep_run(folder, 100.0, 0, [0.1, 0.1, 0.1]), r"not in the config \[\(100\.0, 0\)\]"),
    (lambda folder: shutil.rmtree(folder / "lambda10" / "seed1"), r"missing \(weight, seed\) \[\(10\.0, 1"),
    (lambda folder: write_sweep_run(folder / "other", 10.0, 1, [0.1, 0.1, 0.1]), r"given twice \[\(10\.0, 1\)\]"),
    (lambda folder: write_sweep_run(folder / "val", 0.5, 0, [0.1, 0.1, 0.1], holdout=0.0),
     "not ewc_sweep.holdout 0.25: the choice must rest on held-out training images"),
    (lambda folder: write_sweep_run(folder / "kd", 0.5, 0, [0.1, 0.1, 0.1], name="kd"),
     "run 'kd'; the sweep trains the sequence run 'ewc'"),
])
def test_runs_that_do_not_match_the_sweep_are_refused_by_name(sweep_runs, change, message):
    change(sweep_runs)
    with pytest.raises(InputError, match=message):
        sweep_scores(read_runs(sweep_runs), experiment())


CHOICE = '{"penalty_weight": 10.0, "criterion": "avg_final", "score": 0.5, "seeds": [0, 1], "holdout": 0.2}'
"""A choice file as `unihead ewc-sweep` writes it (weight 10)."""


def test_a_choice_as_the_sweep_writes_it_is_read(tmp_path):
    path = tmp_path / "choice.json"
    path.write_text(CHOICE)
    assert read_choice(path) == 10.0


@pytest.mark.parametrize(("text", "message"), [
    ("{", "not valid YAML.*expected the EWC sweep's choice"),
    ("[1]", "expected a mapping"),
    ('{"weight": 1}', "unknown config key 'weight'"),
    ('{"criterion": "avg_final", "score": 0.5, "seeds": [0], "holdout": 0.2}', "missing config key 'penalty_weight'"),
    (CHOICE.replace("10.0", "-1"), "'penalty_weight': expected at least 0, got -1"),
    (CHOICE.replace("10.0", "true"), "'penalty_weight': expected float, got True"),
    (CHOICE.replace("10.0", ".nan"), "'penalty_weight': expected a finite number"),
])
def test_a_malformed_choice_is_an_error_naming_the_file(tmp_path, text, message):
    path = tmp_path / "choice.json"
    path.write_text(text)
    with pytest.raises(InputError, match=f"(?s){path}.*{message}"):  # YAML's message spans lines
        read_choice(path)


@pytest.mark.parametrize(("sweep", "message"), [
    ({"penalty_weights": [1.0, 1.0]}, "ewc_sweep.penalty_weights': expected at least two distinct values"),
    ({"penalty_weights": [1.0]}, "ewc_sweep.penalty_weights': expected at least two distinct values"),
    ({"penalty_weights": [-1.0, 1.0]}, r"ewc_sweep.penalty_weights\[0\]': expected at least 0"),
    ({"seeds": []}, "ewc_sweep.seeds': expected at least one seed"),
    ({"holdout": 0.0}, "ewc_sweep.holdout': expected a number in \\(0, 0.5\\]"),
    ({"holdout": 0.6}, "ewc_sweep.holdout': expected a number in \\(0, 0.5\\]"),
])
def test_a_bad_sweep_config_names_its_key(sweep, message):
    with pytest.raises(ConfigError, match=message):
        config_from_dict({"ewc_sweep": sweep})


def test_a_variant_cannot_sweep_on_its_own():
    with pytest.raises(ConfigError, match="'workflow.variants.v.ewc_sweep': a variant cannot override"):
        config_from_dict({"workflow": {"variants": {"v": {"ewc_sweep": {"seeds": [3]}}}}})


def test_a_sweep_run_holds_out_the_configured_fraction_and_uses_its_weight():
    values = sweep_scope(experiment(), 10.0, 1)
    assert values["run"] == "ewc" and values["seed"] == 1
    assert values["train"]["holdout"] == 0.25 and values["strategies"]["ewc"]["penalty_weight"] == 10.0


def test_the_held_out_part_is_one_fixed_draw_spread_over_the_split_and_disjoint_from_training():
    held, kept = Holdout(0.2, held_out=True).indices(50), Holdout(0.2, held_out=False).indices(50)
    assert len(held) == 10 and len(kept) == 40 and sorted(held + kept) == list(range(50))
    assert held == Holdout(0.2, held_out=True).indices(50)  # the same for every run and seed
    assert max(held) - min(held) > 25  # drawn over the split, not its tail (a split sorted by class)
    with pytest.raises(ConfigError, match="holding out 0.2 of 2 training images leaves none held out"):
        Holdout(0.2, held_out=True).indices(2)


def test_a_held_out_dataset_holds_the_drawn_training_images(synthetic_root):
    def decoded(holdout):
        return DecodedDataset("det", synthetic_root, "train", 64, train=False, device=torch.device("cpu"),
                              limit=12, holdout=holdout)

    everything, held = decoded(None), decoded(Holdout(0.25, held_out=True))
    assert held.indices == Holdout(0.25, held_out=True).indices(12) and len(held) == 3
    assert torch.equal(held.images, everything.images[held.indices])
