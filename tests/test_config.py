"""Experiment config validation: defaults, and errors that name the bad key."""

from __future__ import annotations

import pytest

from unihead.config import ConfigError, ModelConfig, config_from_dict, config_to_dict, load_config


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


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"model": {"det_hed": "paper"}}, "unknown config key 'model.det_hed'"),
        ({"modle": {}}, "unknown config key 'modle'"),
        ({"model": {"det_head": "yolo"}}, "'model.det_head': expected one of \\['paper', 'logits'\\], got 'yolo'"),
        ({"model": {"fpn_channels": "128"}}, "'model.fpn_channels': expected int, got '128'"),
        ({"model": {"pretrained": 1}}, "'model.pretrained': expected bool, got 1"),
        ({"data": {"image_size": True}}, "'data.image_size': expected int, got True"),
        ({"model": {"levels": {"seg": 4, "det": 32, "cls": 32}}}, "'model.levels.seg': expected one of"),
        ({"model": {"levels": {"seg": 8}}}, "'model.levels': expected one entry per task"),
        ({"model": {"weights_sha256": "ab"}}, "'model.weights_sha256' is set but 'model.weights_file' is not"),
        ({"model": [1, 2]}, "'model': expected a mapping"),
        ({"data": {"source": "ftp"}}, "'data.source': expected one of \\['synthetic', 'folder', 'official'\\]"),
        ({"data": {"official": {"voc": {"url": "http://mirror/voc.tar"}}}},
         "missing config key 'data.official.voc.checksum'"),
        ({"data": {"official": {"voc": {"url": "u", "checksum": "md5:abc"}}}},
         "config key 'data.official.voc': checksum 'md5:abc' of u: expected 'md5:<32 hex digits>'"),
        ({"data": {"official": {"coco_image_url": "http://x/img.jpg"}}}, "expected a URL containing '\\{file_name\\}'"),
        ({"data": {"official": {"timeout_s": 0}}}, "'data.official.timeout_s': expected a positive number, got 0"),
        ({"threshold_rule": "points"}, "'threshold_rule': expected one of \\['relative', 'relative_to_chance'"),
        ({"threshold": 5}, "'threshold': expected a number from 0 to below 1"),
        ({"learned_margin": -0.1}, "'learned_margin': expected a number from 0 to below 1"),
        ({"train": {"bn": "frozen"}}, "'train.bn': expected one of \\['train', 'freeze_after_first'\\]"),
        ({"train": {"reset_optimizer": "yes"}}, "'train.reset_optimizer': expected bool"),
        ({"workflow": {"threads_per_run": 0}}, "'workflow.threads_per_run': expected at least 1"),
    ],
)
def test_bad_values_name_the_key(values, message):
    with pytest.raises(ConfigError, match=message):
        config_from_dict(values)


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
