"""Experiment config: defaults, values read and round-tripped, and strings read as numbers.

Every config that must be refused is a row of the table in tests/test_bad_input_config.py.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from unihead.config import (
    GPU_SHARE,
    MAX_RUNS_PER_GPU,
    ExperimentConfig,
    ModelConfig,
    config_from_dict,
    config_to_dict,
    model_stride,
)
from unihead.runs import strategy_components
from unihead.schema import ConfigError
from unihead.strategy_options import STRATEGY_NAMES, STRATEGY_OPTIONS


def test_empty_config_gives_the_papers_model():
    config = config_from_dict({})
    assert config.model == ModelConfig()
    assert config.model.det_head == "paper"
    assert config.model.levels == {"seg": 32, "det": 32, "cls": 32}
    assert config.data.image_size == 512


def test_values_are_read_and_round_trip():
    values = {"name": "x", "model": {"det_head": "logits", "levels": {"seg": 8, "det": 32, "cls": 32}},
              "data": {"root": "/d", "image_size": 128}}
    config = config_from_dict(values)
    assert config.model.det_head == "logits"
    assert config.model.levels["seg"] == 8
    assert config_from_dict(config_to_dict(config)) == config


def test_strings_that_spell_a_number_or_a_bool_are_read_as_one():
    """Snakemake hands the values inside `--config 'workflow={"seeds": [0]}'` over as strings, and YAML reads
    `1e-3` (no dot) as one; a string field keeps its string."""
    config = config_from_dict({
        "name": "0",
        "model": {"pretrained": "true", "levels": {"seg": "8", "det": "16", "cls": "32"}},
        "train": {"epochs": "+3", "lr": "1e-3", "weight_decay": ".5E-4", "reset_optimizer": "False",
                  "limit_train": "null"},
        "workflow": {"seeds": ["0", "12"], "gpus_per_run": "1"},
        "threshold": "0.1",
    })
    assert config.name == "0"
    assert config.model.pretrained is True and config.model.levels == {"seg": 8, "det": 16, "cls": 32}
    assert (config.train.epochs, config.train.lr, config.train.weight_decay) == (3, 0.001, 0.00005)
    assert type(config.train.epochs) is int and type(config.train.lr) is float
    assert config.train.reset_optimizer is False and config.train.limit_train is None
    assert config.workflow.seeds == [0, 12] and config.workflow.gpus_per_run == 1
    assert config.threshold == 0.1


def test_strategy_options_given_as_strings_are_read_as_numbers():
    from unihead.strategies import create_strategy

    config = config_from_dict({"strategies": {"replay": {"capacity": "7", "weight": "1e-1"},
                                              "kd": {"temperature": "4"}}})
    strategy = create_strategy("kd_replay", config.strategies)
    replay, kd = strategy.components["replay"].options, strategy.components["kd"].options
    assert (replay.capacity, kd.temperature, replay.weight) == (7, 4.0, 0.1)


def test_values_at_the_edges_of_their_ranges_are_accepted():
    config = config_from_dict({
        "name": "exp_1.a-b",
        "model": {"levels": {"seg": 8, "det": 64, "cls": 32}},
        "data": {"image_size": 2048, "synthetic": {"n_train": 10, "n_val": 10, "image_size": 32}},
        "train": {"weight_decay": 0, "device": "cuda:1", "num_workers": 0, "precision": "bf16",
                  "deterministic": "false"},
        "eval": {"nms_iou": 1, "score_threshold": 0, "max_detections": 1},
        "workflow": {"seeds": [0], "container": "images/unihead.sif", "report_dir": "out/{name}/report",
                     "strategies": ["kd_replay"], "runs_per_gpu": "16"},
        "strategies": {"ewc": {"fisher_samples": 1, "decay": 0}, "lwf": {"weight": 0}},
    })
    assert model_stride(config.model) == 64 and config.eval.nms_iou == 1.0 and config.data.image_size == 2048
    assert (config.train.precision, config.train.deterministic, config.workflow.runs_per_gpu) == ("bf16", False, 16)
    from unihead.strategies import create_strategy

    options = {name: create_strategy(name, config.strategies).components[name].options for name in config.strategies}
    assert (options["ewc"].fisher_samples, options["ewc"].decay, options["lwf"].weight) == (1, 0.0, 0.0)
    assert config_from_dict({"eval": {"score_threshold": 1}, "train": {"device": "cuda"}}).eval.score_threshold == 1


def test_the_torch_free_strategy_names_are_exactly_the_registry():
    """The Snakefile checks strategy names and options against STRATEGY_OPTIONS (it cannot import torch): a
    strategy file added to unihead/strategies/ must add its options class there too."""
    from unihead.strategies import STRATEGIES

    assert sorted(STRATEGIES) == sorted(STRATEGY_OPTIONS)
    assert ExperimentConfig().workflow.strategies == list(STRATEGY_NAMES) == \
        ["none", "ewc", "lwf", "replay", "kd", "kd_replay"]


def test_run_names_resolve_to_the_strategies_they_combine():
    assert strategy_components("kd_replay") == ("kd", "replay")
    assert strategy_components("lwf+replay") == ("lwf", "replay")
    assert strategy_components("replay+ewc+kd") == ("replay", "ewc", "kd")
    assert strategy_components("ewc") == ("ewc",)
    assert strategy_components("none") == strategy_components("baseline-seg") == ()
    with pytest.raises(ConfigError, match=r"got 'lwf\+ewk' \('ewk' is not a strategy\)"):
        strategy_components("lwf+ewk")
    with pytest.raises(ConfigError, match=r"got 'kd_replay\+lwf' \('kd_replay' is not a strategy\)"):
        strategy_components("kd_replay+lwf")
    with pytest.raises(ConfigError, match="unknown baseline 'baseline-depth'"):
        strategy_components("baseline-depth")


def test_names_and_options_are_checked_without_torch():
    """What the Snakefile does on a login node: read a config with combinations and options, torch never imported."""
    code = ("import sys; from unihead.config import config_from_dict; from unihead.runs import strategy_components; "
            "c = config_from_dict({'workflow': {'strategies': ['lwf+replay', 'kd_replay']}, "
            "'strategies': {'ewc': {'fisher_samples': 3}}}); "
            "print([strategy_components(n) for n in c.workflow.strategies], 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[('lwf', 'replay'), ('kd', 'replay')] False"


@pytest.mark.parametrize("module", ["scopes", "results", "intervals", "forgetting", "reproduction", "ewc_sweep",
                                    "metrics.per_image"])
def test_the_modules_that_say_they_import_no_torch_do_not(module):
    """The run record, the forgetting verdicts and the EWC sweep's choice are read where torch may be absent."""
    code = f"import sys, unihead.{module}; print('torch' in sys.modules, 'pycocotools' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False False"


def test_runs_per_gpu_training_jobs_and_no_more_fit_in_one_gpus_share():
    for runs in range(1, MAX_RUNS_PER_GPU + 1):
        workflow = config_from_dict({"workflow": {"gpus_per_run": 1, "runs_per_gpu": runs}}).workflow
        assert GPU_SHARE // workflow.gpu_share_per_run == runs, runs
        assert workflow.gpu_share_alone == GPU_SHARE
    two = config_from_dict({"workflow": {"gpus_per_run": 2, "runs_per_gpu": 2}}).workflow
    assert (two.gpu_share_per_run, two.gpu_share_alone) == (GPU_SHARE, 2 * GPU_SHARE)  # 2 jobs on 2 GPUs
    assert config_from_dict({}).workflow.gpu_share_per_run == 0  # CPU jobs take none
