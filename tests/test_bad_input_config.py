"""Bad input, the config surface: every config the package refuses before any work, with its error.

One parametrised table, BAD_CONFIGS: a row per bad config (an id, the config's values, and the text the
ConfigError must contain: the dotted key and what is allowed). Each row reads the config
(:func:`config_from_dict`, as the Snakefile does when it is parsed and every command does), which checks
every key, strategy names and every strategy's options too. A new kind of bad config is a new row here.
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from unihead.config import ModelConfig, OfficialConfig, TrainConfig, config_from_dict, load_config
from unihead.schema import ConfigError, read_yaml
from unihead.strategy_options import STRATEGY_OPTIONS


def row(case: str, values: dict[str, Any], message: str) -> Any:
    """One bad config: its test id, its values, and (a part of) the error it must raise."""
    return pytest.param(values, message, id=case)


NAME = ("letters, digits, '.', '_' and '-', but not '.' or '..', at most 100 characters (it names the folder "
        r"results/<name>) (pattern (?!\.\.?$)[A-Za-z0-9._-]{1,100})")


def alias_bomb() -> list[Any]:
    """What YAML aliases of aliases load as: 9 levels of 9 references to one list, 9**9 values written out."""
    bomb: list[Any] = ["lol"] * 9
    for _ in range(8):
        bomb = [bomb] * 9
    return bomb


BOMB = "the config holds more than 10,000 values once its YAML aliases are expanded"

BAD_CONFIGS = [
    # keys, types and choices
    row("unknown-key", {"model": {"det_hed": "paper"}}, "unknown config key 'model.det_hed'"),
    row("unknown-section", {"modle": {}}, "unknown config key 'modle'"),
    row("bad-choice", {"model": {"det_head": "yolo"}},
        "'model.det_head': expected one of ['paper', 'logits'], got 'yolo'"),
    row("str-for-int", {"model": {"fpn_channels": "128px"}}, "'model.fpn_channels': expected int, got '128px'"),
    row("int-for-bool", {"model": {"pretrained": 1}}, "'model.pretrained': expected bool, got 1"),
    row("bool-for-int", {"data": {"image_size": True}}, "'data.image_size': expected int, got True"),
    row("bool-for-int-item", {"workflow": {"seeds": [True]}}, "'workflow.seeds[0]': expected int, got True"),
    row("float-string-for-int", {"workflow": {"seeds": ["0.5"]}}, "'workflow.seeds[0]': expected int, got '0.5'"),
    row("not-a-float-string", {"train": {"lr": "1e-3x"}}, "'train.lr': expected float, got '1e-3x'"),
    row("nan-string", {"train": {"lr": "nan"}}, "'train.lr': expected float, got 'nan'"),
    row("yes-for-bool", {"train": {"reset_optimizer": "yes"}}, "'train.reset_optimizer': expected bool, got 'yes'"),
    row("null-for-str", {"data": {"root": None}}, "'data.root': expected str, got None"),
    row("list-for-section", {"model": [1, 2]}, "'model': expected a mapping"),
    row("bad-level", {"model": {"levels": {"seg": 4, "det": 32, "cls": 32}}}, "'model.levels.seg': expected one of"),
    row("missing-level", {"model": {"levels": {"seg": 8}}}, "'model.levels': expected one entry per task"),
    row("bad-head", {"model": {"head": "shared"}},
        "'model.head': expected one of ['separate', 'unified'], got 'shared'"),
    row("unified-head-on-two-levels", {"model": {"head": "unified", "levels": {"seg": 8, "det": 16, "cls": 16}}},
        "config key 'model.levels': a unified head (model.head: unified) reads one FPN level for every task, so "
        "expected the same stride for ['seg', 'det', 'cls'], got {'seg': 8, 'det': 16, 'cls': 16}"),
    row("sha-without-file", {"model": {"weights_sha256": "ab"}},
        "'model.weights_sha256' is set but 'model.weights_file' is not"),
    row("bad-source", {"data": {"source": "ftp"}},
        "'data.source': expected one of ['synthetic', 'folder', 'official']"),
    row("official-missing-checksum", {"data": {"official": {"voc": {"url": "http://mirror/voc.tar"}}}},
        "missing config key 'data.official.voc.checksum'"),
    row("official-bad-checksum", {"data": {"official": {"voc": {"url": "u", "checksum": "md5:abc"}}}},
        "config key 'data.official.voc': checksum 'md5:abc' of u: expected 'md5:<32 hex digits>'"),
    row("official-url-without-file-name", {"data": {"official": {"coco_image_url": "http://x/img.jpg"}}},
        "expected a URL containing '{file_name}'"),
    row("official-retries", {"data": {"official": {"retries": 0}}}, "'data.official.retries': expected at least 1"),
    row("official-timeout", {"data": {"official": {"timeout_s": 0}}},
        "'data.official.timeout_s': expected a number above 0, got 0"),
    row("threshold-rule", {"threshold_rule": "points"},
        "'threshold_rule': expected one of ['relative', 'relative_to_chance'"),
    row("threshold", {"threshold": 5}, "'threshold': expected a number in [0, 1), got 5.0"),
    row("learned-margin", {"learned_margin": -0.1}, "'learned_margin': expected a number in [0, 1), got -0.1"),
    row("precision", {"train": {"precision": "fp16"}},
        "'train.precision': expected one of ['auto', 'fp32', 'bf16'], got 'fp16'"),
    row("deterministic", {"train": {"deterministic": "sometimes"}},
        "'train.deterministic': expected bool, got 'sometimes'"),
    row("runs-per-gpu", {"workflow": {"runs_per_gpu": 0}}, "'workflow.runs_per_gpu': expected a number in [1, 16]"),
    row("runs-per-gpu-high", {"workflow": {"runs_per_gpu": 17}},
        "'workflow.runs_per_gpu': expected a number in [1, 16], got 17"),
    row("bn-mode", {"train": {"bn": "frozen"}}, "'train.bn': expected one of ['train', 'freeze_after_first']"),
    row("epochs", {"train": {"epochs": 0}}, "'train.epochs': expected at least 1, got 0"),
    row("repeated-task", {"train": {"tasks": ["seg", "seg"]}}, "'train.tasks': expected distinct tasks"),
    row("limit", {"train": {"limit_val": 0}},
        "'train.limit_val': expected at least 1 (or null for all of them), got 0"),
    row("baseline", {"workflow": {"baselines": ["depth"]}}, "'workflow.baselines': expected tasks from"),
    row("no-seed", {"workflow": {"seeds": []}}, "'workflow.seeds': expected at least one seed"),
    row("threads", {"workflow": {"threads_per_run": 0}}, "'workflow.threads_per_run': expected at least 1"),
    row("strategy-option-key", {"strategies": {"kd": {"temprature": 2.0}}},
        "unknown config key 'strategies.kd.temprature'"),
    row("strategy-option-type", {"strategies": {"replay": {"capacity": "fifty"}}},
        "'strategies.replay.capacity': expected int, got 'fifty'"),
    # strings that reach a path or a command line
    row("name-shell-syntax", {"name": "a$(touch X)b"}, f"config key 'name': expected {NAME}, got 'a$(touch X)b'"),
    row("name-escapes-results", {"name": "../../outside"}, "config key 'name': expected letters, digits"),
    row("name-dot-dot", {"name": ".."}, "config key 'name': expected letters, digits"),
    row("name-dot", {"name": "."}, "config key 'name': expected letters, digits"),
    row("name-empty", {"name": ""}, "config key 'name': expected letters, digits"),
    row("name-space", {"name": "my run"}, "config key 'name': expected letters, digits"),
    row("name-too-long", {"name": "x" * 300}, "config key 'name': expected letters, digits, '.', '_' and '-', but not "
        "'.' or '..', at most 100 characters"),
    row("variant-name-too-long", {"workflow": {"variants": {"v" * 300: {}}}},
        "expected letters, digits, '.', '_' and '-', but not '.' or '..', at most 100 characters"),
    row("container-shell-syntax", {"workflow": {"container": "unihead.sif; touch X"}},
        "config key 'workflow.container': expected an image name such as docker://host/image:tag"),
    row("container-option", {"workflow": {"container": "--bind=/:/host"}}, "config key 'workflow.container'"),
    row("report-dir-placeholder", {"workflow": {"report_dir": "results/{nmae}/report"}},
        "config key 'workflow.report_dir': expected a folder path whose only placeholder is {name}, "
        "got 'results/{nmae}/report'"),
    row("report-dir-brace", {"workflow": {"report_dir": "out/{{name}}"}}, "config key 'workflow.report_dir'"),
    row("report-dir-empty", {"workflow": {"report_dir": ""}}, "config key 'workflow.report_dir'"),
    # strategy names (the Snakefile checks them when it is parsed)
    row("run-strategy-name", {"workflow": {"strategies": ["none", "ewk"]}},
        "config key 'workflow.strategies[1]': expected 'none', a strategy ['ewc', 'lwf', 'replay', 'kd'], "
        "an alias ['kd_replay'] or strategies joined by '+' (such as 'lwf+replay'), got 'ewk'"),
    row("run-strategy-combination", {"workflow": {"strategies": ["lwf+ewk"]}},
        "config key 'workflow.strategies[0]': expected 'none', a strategy ['ewc', 'lwf', 'replay', 'kd'], an alias "
        "['kd_replay'] or strategies joined by '+' (such as 'lwf+replay'), got 'lwf+ewk' ('ewk' is not a strategy)"),
    row("run-strategy-alias-in-combination", {"workflow": {"strategies": ["kd_replay+lwf"]}},
        "got 'kd_replay+lwf' ('kd_replay' is not a strategy)"),
    row("run-strategy-twice", {"workflow": {"strategies": ["ewc", "lwf+replay+lwf"]}},
        "config key 'workflow.strategies[1]': expected 'none', a strategy ['ewc', 'lwf', 'replay', 'kd'], an alias "
        "['kd_replay'] or strategies joined by '+' (such as 'lwf+replay'), got 'lwf+replay+lwf' "
        "('lwf' is named twice)"),
    row("run-strategy-empty-part", {"workflow": {"strategies": ["lwf+"]}}, "got 'lwf+' ('' is not a strategy)"),
    row("options-strategy-name", {"strategies": {"ewk": {"fisher_samples": 8}}},
        "unknown config key 'strategies.ewk'; valid keys at 'strategies' (the registered strategies): ['ewc', "
        "'lwf', 'replay', 'kd']"),
    row("options-of-an-alias", {"strategies": {"kd_replay": {"capacity": 10}}},
        "unknown config key 'strategies.kd_replay'; valid keys at 'strategies' (the registered strategies): "
        "['ewc', 'lwf', 'replay', 'kd']; a combination has no options of its own, each of its strategies reads its "
        "own ('kd_replay' reads 'strategies.kd' and 'strategies.replay')"),
    row("options-of-none", {"strategies": {"none": {}}}, "unknown config key 'strategies.none'"),
    # ranges
    row("nms-iou-zero", {"eval": {"nms_iou": 0}}, "config key 'eval.nms_iou': expected a number in (0, 1], got 0.0"),
    row("nms-iou-above-one", {"eval": {"nms_iou": 1.5}}, "config key 'eval.nms_iou': expected a number in (0, 1]"),
    row("score-threshold-negative", {"eval": {"score_threshold": -0.1}},
        "config key 'eval.score_threshold': expected a number in [0, 1], got -0.1"),
    row("score-threshold-above-one", {"eval": {"score_threshold": 1.5}}, "config key 'eval.score_threshold'"),
    row("max-detections", {"eval": {"max_detections": 0}}, "config key 'eval.max_detections': expected at least 1"),
    row("eval-batch-size", {"eval": {"batch_size": 0}}, "config key 'eval.batch_size': expected at least 1, got 0"),
    row("image-size-zero", {"data": {"image_size": 0}},
        "config key 'data.image_size': expected a number in [1, 2048] (at most four times the paper's 512"),
    row("image-size-huge", {"data": {"image_size": 65536}},
        "config key 'data.image_size': expected a number in [1, 2048] (at most four times the paper's 512: a "
        "training batch of larger images does not fit in memory), got 65536"),
    row("image-size-not-a-multiple", {"data": {"image_size": 48}},
        "config key 'data.image_size': expected a multiple of 32, the largest stride the model uses"),
    row("image-size-not-a-multiple-of-a-level",
        {"model": {"levels": {"seg": 32, "det": 64, "cls": 32}}, "data": {"image_size": 96}},
        "config key 'data.image_size': expected a multiple of 64"),
    row("lr-zero", {"train": {"lr": 0}}, "config key 'train.lr': expected a number above 0, got 0.0"),
    row("lr-negative", {"train": {"lr": "-1e-3"}}, "config key 'train.lr': expected a number above 0, got -0.001"),
    row("weight-decay", {"train": {"weight_decay": -1e-4}}, "config key 'train.weight_decay': expected at least 0"),
    row("device-gpu", {"train": {"device": "gpu"}},
        "config key 'train.device': expected auto, cpu, cuda or cuda:N (pattern auto|cpu|cuda(:[0-9]+)?), got 'gpu'"),
    row("device-cuda-x", {"train": {"device": "cuda:x"}},
        "config key 'train.device': expected auto, cpu, cuda or cuda:N"),
    row("num-workers", {"train": {"num_workers": -1}}, "config key 'train.num_workers': expected at least 0"),
    row("fpn-channels", {"model": {"fpn_channels": 0}}, "config key 'model.fpn_channels': expected at least 1"),
    row("synthetic-n-train", {"data": {"synthetic": {"n_train": 0}}},
        "config key 'data.synthetic.n_train': expected at least 10"),
    row("synthetic-n-train-below-the-classes", {"data": {"synthetic": {"n_train": 1}}},
        "config key 'data.synthetic.n_train': expected at least 10 (the generator writes at least one image per "
        "classification class, 10 of them), got 1"),
    row("synthetic-n-val", {"data": {"synthetic": {"n_val": 9}}},
        "config key 'data.synthetic.n_val': expected at least 10"),
    row("synthetic-image-size", {"data": {"synthetic": {"image_size": 0}}},
        "config key 'data.synthetic.image_size': expected a number in [32, 2048]"),
    row("synthetic-image-size-huge", {"data": {"synthetic": {"image_size": 1_000_000}}},
        "config key 'data.synthetic.image_size': expected a number in [32, 2048] (below 32 px its shapes cannot be "
        "drawn; above 2048 px it would not fit in memory), got 1000000"),
    row("official-timeout-nan", {"data": {"official": {"timeout_s": float("nan")}}},
        "config key 'data.official.timeout_s': expected a finite number, got nan"),
    row("lr-infinite", {"train": {"lr": float("inf")}}, "config key 'train.lr': expected a finite number, got inf"),
    row("negative-seed", {"workflow": {"seeds": [0, -1]}},
        "config key 'workflow.seeds[1]': expected at least 0, got -1"),
    row("gpus", {"workflow": {"gpus_per_run": -1}}, "config key 'workflow.gpus_per_run': expected at least 0"),
    row("runtime", {"workflow": {"runtime_minutes": 0}}, "config key 'workflow.runtime_minutes': expected at least 1"),
    row("ewc-fisher-samples", {"strategies": {"ewc": {"fisher_samples": 0}}},
        "config key 'strategies.ewc.fisher_samples': expected at least 1, got 0"),
    row("ewc-penalty-weight", {"strategies": {"ewc": {"penalty_weight": -1}}},
        "config key 'strategies.ewc.penalty_weight': expected at least 0"),
    row("ewc-decay", {"strategies": {"ewc": {"decay": 2}}},
        "config key 'strategies.ewc.decay': expected a number in [0, 1]"),
    row("replay-capacity", {"strategies": {"replay": {"capacity": 0}}},
        "config key 'strategies.replay.capacity': expected at least 1, got 0"),
    row("replay-batch-size", {"strategies": {"replay": {"batch_size": 0}}},
        "config key 'strategies.replay.batch_size': expected at least 1"),
    row("replay-weight", {"strategies": {"replay": {"weight": -1}}},
        "config key 'strategies.replay.weight': expected at least 0"),
    row("lwf-temperature", {"strategies": {"lwf": {"temperature": 0}}},
        "config key 'strategies.lwf.temperature': expected a number above 0, got 0.0"),
    row("lwf-weight", {"strategies": {"lwf": {"weight": -0.5}}},
        "config key 'strategies.lwf.weight': expected at least 0"),
    row("kd-temperature", {"strategies": {"kd": {"temperature": -2}}},
        "config key 'strategies.kd.temperature': expected a number above 0"),
    row("kd-feature-weight", {"strategies": {"kd": {"feature_weight": -1}}},
        "config key 'strategies.kd.feature_weight': expected at least 0"),
    row("kd-attention-weight", {"strategies": {"kd": {"attention_weight": -1}}},
        "config key 'strategies.kd.attention_weight': expected at least 0"),
    # variants: each override validated inside its variant
    row("variant-unknown-key", {"workflow": {"variants": {"logits": {"model": {"det_haed": "logits"}}}}},
        "unknown config key 'workflow.variants.logits.model.det_haed'"),
    row("variant-bad-choice", {"workflow": {"variants": {"bn": {"train": {"bn": "frozen"}}}}},
        "config key 'workflow.variants.bn.train.bn': expected one of ['train', 'freeze_after_first'], got 'frozen'"),
    row("variant-overrides-threshold", {"workflow": {"variants": {"loose": {"threshold": 0.2}}}},
        "config key 'workflow.variants.loose.threshold': a variant cannot override 'threshold'"),
    row("variant-overrides-workflow", {"workflow": {"variants": {"more": {"workflow": {"seeds": [0, 1]}}}}},
        "config key 'workflow.variants.more.workflow': a variant cannot override 'workflow'"),
    row("variant-name", {"workflow": {"variants": {"..": {}}}}, "config key 'workflow.variants...': expected letters"),
    # YAML aliases of aliases (an alias bomb), as a variant's override and as a wrongly typed value
    row("alias-bomb-in-a-variant", {"workflow": {"variants": {"v": {"train": {"epochs": alias_bomb()}}}}}, BOMB),
    row("alias-bomb-as-a-value", {"train": {"epochs": alias_bomb()}}, BOMB),
    row("variant-not-a-mapping", {"workflow": {"variants": {"logits": "det_head=logits"}}},
        "config key 'workflow.variants.logits': expected a mapping, got 'det_head=logits'"),
]


@pytest.mark.parametrize(("values", "message"), BAD_CONFIGS)
def test_a_bad_config_is_refused_naming_the_key_and_what_is_allowed(values, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        config_from_dict(values)


@pytest.mark.parametrize("name", list(STRATEGY_OPTIONS))
def test_strategy_options_built_in_code_are_checked_too(name):
    """Options constructed directly (not read from a config) check their ranges in __post_init__."""
    field, value = {"ewc": ("fisher_samples", 0), "replay": ("capacity", 0)}.get(name, ("temperature", 0.0))
    with pytest.raises(ConfigError, match=re.escape(f"config key '{field}': expected")):
        STRATEGY_OPTIONS[name](**{field: value})


@pytest.mark.parametrize(("section", "values", "message"), [
    (TrainConfig, {"epochs": 0}, "config key 'epochs': expected at least 1, got 0"),
    (TrainConfig, {"limit_train": 0}, "config key 'limit_train': expected at least 1"),
    (OfficialConfig, {"retries": 0}, "config key 'retries': expected at least 1, got 0"),
    (OfficialConfig, {"timeout_s": 0.0}, "config key 'timeout_s': expected a number above 0"),
    (ModelConfig, {"levels": {"seg": 4, "det": 32, "cls": 32}}, "config key 'levels.seg': expected one of [8, 16"),
], ids=["epochs", "limit", "retries", "timeout", "level"])
def test_config_sections_built_in_code_are_checked_too(section: type, values: dict[str, Any], message: str):
    """A section constructed directly (not read from a config) checks its fields' metadata in __post_init__."""
    with pytest.raises(ConfigError, match=re.escape(message)):
        section(**values)


def test_load_config_names_the_file(tmp_path):
    path = tmp_path / "exp.yaml"
    path.write_text("model:\n  det_head: yolo\n")
    with pytest.raises(ConfigError, match=r"exp.yaml: config key 'model.det_head'"):
        load_config(path)
    with pytest.raises(ConfigError, match=r"missing.yaml: config file not found"):
        load_config(tmp_path / "missing.yaml")
    path.write_text("model: [unclosed\n")
    with pytest.raises(ConfigError, match=r"exp.yaml: not valid YAML"):
        load_config(path)


YAML_BOMB = b"a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n" + b"".join(
    b"%c: &%c [%s]\n" % (ord("a") + i, ord("a") + i, b", ".join([b"*%c" % (ord("a") + i - 1)] * 9))
    for i in range(1, 9))
"""An alias bomb in YAML: 'i' stands for 9**9 values."""
BAD_FILES = [
    row("key-given-twice", b"train:\n  epochs: 2\n  lr: 1.0e-3\n  epochs: 50\n",
        "exp.yaml: line 4: key 'epochs' is given twice in one mapping (first on line 2); keep one of them"),
    row("section-given-twice", b"train: {epochs: 2}\ntrain: {epochs: 50}\n",
        "exp.yaml: line 2: key 'train' is given twice in one mapping (first on line 1)"),
    row("not-utf-8", "name: caf\u00e9\n".encode("latin-1"),
        "exp.yaml: not UTF-8 text (byte 0xe9 on line 1); save the config file as UTF-8"),
    row("alias-bomb-in-a-variant", YAML_BOMB + b"workflow:\n  variants:\n    v: {train: {epochs: *i}}\n",
        "exp.yaml: " + BOMB),
]


@pytest.mark.parametrize(("content", "message"), BAD_FILES)
def test_a_bad_config_file_is_refused_naming_the_file(content: bytes, message: str, tmp_path):
    path = tmp_path / "exp.yaml"
    path.write_bytes(content)
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_config(path)


def test_a_yaml_merge_key_may_be_overridden(tmp_path):
    """``<<: *defaults`` followed by one of its keys is YAML's way to override, not a key given twice."""
    path = tmp_path / "exp.yaml"
    path.write_text("base: &b {epochs: 2, batch_size: 4}\ntrain: {<<: *b, epochs: 3}\n")
    assert read_yaml(path, "config")["train"] == {"epochs": 3, "batch_size": 4}
