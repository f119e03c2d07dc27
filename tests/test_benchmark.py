"""`unihead benchmark`: the fields of its JSON and their consistency on a tiny config (a behavioural test, not a
timed one), the median of the timings, the bare network, and the compute table that reads the JSON."""

from __future__ import annotations

import json
import platform
from types import SimpleNamespace

import pytest
import torch

from unihead import benchmark
from unihead.benchmark import BackboneFPN, Settings, median_timing
from unihead.cli import main
from unihead.config import ModelConfig
from unihead.models import build_model, parameter_breakdown
from unihead.report.tables import compute, compute_caption

TINY = {"name": "tiny", "model": {"det_head": "logits", "levels": {"seg": 8, "det": 16, "cls": 32}},
        "data": {"image_size": 64}, "train": {"batch_size": 2, "device": "cpu"}}


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


def test_the_json_holds_every_measurement_and_its_conditions(measured):
    model = build_model(ModelConfig(det_head="logits", levels={"seg": 8, "det": 16, "cls": 32}))
    assert measured["parameters"] == parameter_breakdown(model)["total"]
    forward = measured["forward_ms"]
    assert set(forward) == {"eager", "fast", "bare"}
    for timing in [*forward.values(), *measured["train_step"].values()]:
        assert 0 < timing["min_ms"] <= timing["median_ms"] <= timing["max_ms"] < 60_000
    assert measured["forward_time_full_over_bare"] == forward["eager"]["median_ms"] / forward["bare"]["median_ms"]
    full, bare = measured["train_step"]["full"], measured["train_step"]["bare"]
    assert full["images_per_s"] == pytest.approx(2 * 1000 / full["median_ms"])  # train.batch_size 2
    assert measured["train_images_per_s_full_over_bare"] == full["images_per_s"] / bare["images_per_s"]
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


def test_the_median_of_the_timed_runs_after_the_warmup(monkeypatch):
    clock = iter([0.0, 10.0, 10.005, 20.0, 20.001, 30.0, 30.003])  # a warm-up (not timed), then 5, 1 and 3 ms
    monkeypatch.setattr(benchmark, "time", SimpleNamespace(perf_counter=lambda: next(clock)))
    timing = median_timing(lambda: None, torch.device("cpu"), repeats=3, warmup=1)
    assert timing == pytest.approx({"median_ms": 3.0, "min_ms": 1.0, "max_ms": 5.0})


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
    run = {"run": {"name": "ewc"}, "train_seconds": 120.0, "images_per_s": 10.0, "provenance": {"device": "cpu: x"}}
    table = compute([run], measured["parameters"], measured)
    assert table.loc[0, "inference_ms"] == measured["forward_ms"]["eager"]["median_ms"]
    assert table.loc[0, "inference_fast_ms"] == measured["forward_ms"]["fast"]["median_ms"]
    caption = compute_caption(measured)
    assert "batch of 1 at 64 px" in caption and "median of 1 runs after 0 warm-up" in caption
    assert f"torch {measured['conditions']['versions']['torch']}" in caption
    assert compute_caption(None) == "Model size, training time and throughput per run."
