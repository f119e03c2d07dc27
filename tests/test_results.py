"""The run record (``metrics.json``): the committed reference's records load and write back byte for byte."""

from __future__ import annotations

import json
from pathlib import Path

from unihead.results import RunResult, load_runs

REFERENCE_RUNS = Path(__file__).resolve().parents[1] / "results" / "demo-reference" / "runs"


def test_the_reference_records_load_and_write_back_unchanged():
    runs = load_runs(REFERENCE_RUNS)
    assert len(runs) == 18  # 6 strategies and 3 baselines, 2 seeds
    for run in runs:
        assert json.dumps(run.to_dict(), indent=2) + "\n" == run.path.read_text()


def test_a_record_reads_its_keys_as_attributes():
    (run,) = load_runs([REFERENCE_RUNS / "lwf" / "seed0" / "metrics.json"])
    assert (run.name, run.seed, run.variant, run.qualified_name, run.is_baseline) == ("lwf", 0, None, "lwf", False)
    assert run.run.tasks == run.eval_tasks == ["seg", "det", "cls"]
    assert run.chance_of("cls") == 0.1 and run.chance_of("det") == 0.0
    assert run.final["cls"]["top1"] == 0.72 and run.provenance.device.startswith("cpu")
    assert RunResult.from_dict(run.to_dict()) == run
