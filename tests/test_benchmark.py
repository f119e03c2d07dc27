"""`unihead benchmark`: the fields of its JSON and their consistency on a tiny config (a behavioural test, not a
timed one), the median of the timings, the bare network, and the compute table that reads the JSON."""

from __future__ import annotations

import json
import platform
from types import SimpleNamespace

import pytest
import torch

from tiny import tiny_values
from unihead import benchmark
from unihead.benchmark import BackboneFPN, Settings, interleaved_timings, paired_ratio, timing_summary
from unihead.cli import main
from unihead.config import ModelConfig
from unihead.models import build_model, parameter_breakdown
from unihead.report.tables import compute, compute_caption
from unihead.results import RunResult

TINY = tiny_values(None, name="tiny", model={"det_head": "logits", "levels": {"seg": 8, "det": 16, "cls": 32}},
                   train={"batch_size": 2})
"""The tiny config without a data root (the benchmark reads none of its epochs and limits)."""


@pytest.fixture(scope="module")
def measured(synthetic_root, tmp_path_factory):
    folder = tmp_path_factory.mktemp("benchmark")
    config = folder / "tiny.yaml"
    config.write_text(json.dumps(TINY))
    out = folder / "benchmark.json"
    status = main(["benchmark", "--config", str(config), "--repeats", "1", "--warmup", "0",
                   "--data-root", str(synthetic_root), "--samples", "3", "--json", str(out)])
    assert status == 0
    return json.loads(out.read_text())


def test_the_unified_head_is_measured_beside_its_bare_backbone_and_fpn(tmp_path):
    """The bare network keeps the one FPN level the unified branch reads (an ablation variant is benchmarked)."""
    config = tmp_path / "unified.yaml"
    config.write_text(json.dumps({**TINY, "model": {"head": "unified", "levels": {"seg": 16, "det": 16, "cls": 16}}}))
    out = tmp_path / "benchmark.json"
    assert main(["benchmark", "--config", str(config), "--repeats", "1", "--warmup", "0", "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["parameters"] == parameter_breakdown(build_model(ModelConfig(
        head="unified", levels={"seg": 16, "det": 16, "cls": 16}, pretrained=False)))["total"]
    assert result["forward_ms"]["bare"]["median_ms"] > 0


def test_the_json_holds_every_measurement_and_its_conditions(measured):
    model = build_model(ModelConfig(det_head="logits", levels={"seg": 8, "det": 16, "cls": 32}))
    assert measured["parameters"] == parameter_breakdown(model)["total"]
    forward = measured["forward_ms"]
    assert set(forward) == {"eager", "fast", "bare"}
    for timing in [*forward.values(), *measured["train_step"].values()]:
        assert 0 < timing["min_ms"] <= timing["median_ms"] <= timing["max_ms"] < 60_000
    # one round: the median of the rounds' ratios is the ratio of the medians
    assert measured["forward_time_full_over_bare"] == forward["eager"]["median_ms"] / forward["bare"]["median_ms"]
    full, bare = measured["train_step"]["full"], measured["train_step"]["bare"]
    assert full["images_per_s"] == pytest.approx(2 * 1000 / full["median_ms"])  # train.batch_size 2
    assert measured["train_images_per_s_full_over_bare"] == pytest.approx(full["images_per_s"] / bare["images_per_s"])
    data = measured["data"]["tasks"]
    assert set(data) == {"seg", "det", "cls"}
    assert all(t["samples"] == 3 and t["images_per_s"] > 0 for t in data.values())
    assert 100 < measured["peak_memory_mib"] < 64_000 and measured["peak_memory_measure"] == "process max RSS"
    cond = measured["conditions"]
    assert cond["device"].startswith("cpu: ") and cond["device_type"] == "cpu"
    assert (cond["image_size"], cond["batch"], cond["train_batch"], cond["repeats"], cond["warmup"]) == (64, 1, 2, 1, 0)
    assert cond["threads"] == torch.get_num_threads() and cond["versions"]["torch"] == torch.__version__.split("+")[0]
    assert (cond["precision"], cond["compute_dtype"], cond["training_memory_format"]) == ("auto", "float32",
                                                                                           "contiguous")
    assert cond["python"] == platform.python_version() and cond["load_average_1min"] >= 0


def test_steps_are_timed_in_turn_after_the_warmup_and_ratios_pair_the_rounds(monkeypatch):
    ticks = [0.0, 7.0, 7.0, 9.0,  # warm-up round: not kept
             10.0, 10.005, 11.0, 11.010,  # a 5 ms, b 10 ms
             20.0, 20.001, 21.0, 21.001,  # a 1 ms, b 1 ms
             30.0, 30.003, 31.0, 31.001]  # a 3 ms, b 1 ms
    clock = iter(ticks)
    monkeypatch.setattr(benchmark, "time", SimpleNamespace(perf_counter=lambda: next(clock)))
    order = []
    timings = interleaved_timings({"a": lambda: order.append("a"), "b": lambda: order.append("b")},
                                  torch.device("cpu"), repeats=3, warmup=1)
    assert order == ["a", "b"] * 4
    assert timings["a"] == pytest.approx([5.0, 1.0, 3.0]) and timings["b"] == pytest.approx([10.0, 1.0, 1.0])
    assert timing_summary(timings["a"]) == pytest.approx({"median_ms": 3.0, "min_ms": 1.0, "max_ms": 5.0})
    assert paired_ratio(timings["a"], timings["b"]) == pytest.approx(1.0)  # rounds 0.5, 1, 3; medians' ratio: 3


def test_the_bare_network_is_the_backbone_and_fpn_at_the_levels_the_heads_read():
    torch.manual_seed(0)
    model = build_model(ModelConfig(levels={"seg": 8, "det": 32, "cls": 32})).eval()
    bare = BackboneFPN(model)
    counts = parameter_breakdown(model)
    assert sum(p.numel() for p in bare.parameters()) == counts["backbone"] + counts["neck"]
    images = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        levels = bare(images)
        assert list(levels) == ["p3", "p5"]
        assert torch.equal(levels["p3"], model(images, return_features=True)["features"]["p3"])


def test_bad_settings_and_devices_are_refused(capsys):
    with pytest.raises(ValueError, match="benchmark repeats must be at least 1, got 0"):
        Settings(image_size=64, repeats=0)
    with pytest.raises(SystemExit):
        main(["benchmark", "--device", "gpu"])
    assert "expected auto, cpu, cuda or cuda:N, got 'gpu'" in capsys.readouterr().err
    if not torch.cuda.is_available():
        assert main(["benchmark", "--device", "cuda", "--size", "64"]) == 2
        assert "unihead benchmark: --device cuda: no CUDA device is visible" in capsys.readouterr().err


def test_the_compute_table_shows_both_latencies_and_states_the_conditions(measured):
    run = RunResult.from_dict({"run": {"name": "ewc", "seed": 0, "tasks": ["cls"]}, "eval_tasks": ["cls"],
                               "primary_metric": {"cls": "top1"}, "R": [[0.5]], "chance": [0.1],
                               "train_seconds": 120.0, "images_per_s": 10.0,
                               "provenance": {"device": "cpu: x", "packages": {}, "python": "3", "git_commit": "x"}})
    table = compute([run], {None: measured["parameters"]}, {None: measured})
    assert table.loc[0, "inference_ms"] == measured["forward_ms"]["eager"]["median_ms"]
    assert table.loc[0, "inference_fast_ms"] == measured["forward_ms"]["fast"]["median_ms"]
    caption = compute_caption({None: measured})
    assert "batch of 1 at 64 px" in caption and "median of 1 runs after 0 warm-up" in caption
    assert f"torch {measured['conditions']['versions']['torch']}" in caption
    assert compute_caption({}).startswith("Model size, training time and throughput per run (training minutes and "
                                          "images/s as the workflow's training jobs measured them")
    assert "timings under load, not benchmarks" in caption
    assert caption.endswith("150 ms per image on an NVIDIA T4; the latencies here were measured on the device named, "
                            "which is a T4 only where it says so.")
