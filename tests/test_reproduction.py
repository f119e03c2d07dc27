"""The statistical verdict of `unihead compare`: a rerun with other seeds is reproduced within noise, a run with
a strategy switched off is not, and Holm's correction worked out by hand."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from test_compare import compare, write_run
from unihead.forgetting import Verdict, write_tables
from unihead.intervals import seed_draws, seed_means
from unihead.metrics.per_image import score
from unihead.reproduction import Estimate, holm

IMAGES = 60


def _record(task: str, level: float, rng: np.random.Generator) -> dict:
    """Per-image records of 60 images scoring about ``level``: cls hits with probability level; seg images of
    100 pixels of one class, each pixel right with probability level."""
    if task == "cls":
        return {"correct": rng.binomial(1, level, IMAGES).tolist()}
    tp = rng.binomial(100, level, IMAGES)
    return {"tp": [[int(t)] for t in tp], "gt": [[100]] * IMAGES, "pred": [[100]] * IMAGES}


def _run(folder: Path, name: str, seed: int, tasks: list[str], levels: list[list[float]],
         rng: np.random.Generator) -> None:
    records = [{task: _record(task, level, rng) for task, level in zip(tasks, row, strict=True)} for row in levels]
    write_run(folder, name, seed, tasks, [[score(stage[task], task) for task in tasks] for stage in records], records)


def experiment(folder: Path, seeds: list[int], seg_kept: float = 0.5) -> Path:
    """EWC over seg -> cls and both baselines per seed, every score drawn from its images' noise; seg ends at
    pixel accuracy ``seg_kept`` (0.5: the method works as in the reference; lower: it forgets more)."""
    for seed in seeds:
        rng = np.random.default_rng(seed)
        _run(folder, "ewc", seed, ["seg", "cls"], [[0.6, 0.1], [seg_kept, 0.6]], rng)
        _run(folder, "baseline-seg", seed, ["seg"], [[0.62]], rng)
        _run(folder, "baseline-cls", seed, ["cls"], [[0.7]], rng)
    write_tables(folder / "runs", folder / "tables", Verdict())
    (folder / "data").mkdir()
    manifest = {"files": {f"imagenette_160/val/{i}.JPEG": {"bytes": 3, "sha256": f"{i:064x}"} for i in range(3)}}
    (folder / "data" / "manifest.json").write_text(json.dumps(manifest))
    return folder


def test_a_rerun_with_other_seeds_is_reproduced_within_noise(tmp_path, capsys):
    reference = experiment(tmp_path / "reference", [0, 1, 2])
    code, out, table = compare(reference, experiment(tmp_path / "mine", [3, 4, 5]), capsys)
    assert code == 0, out
    assert "note     runs: the same runs with other seeds (0, 1, 2 in the reference, 3, 4, 5 in mine): compared " \
           "over seeds only" in out
    assert "REPRODUCED within noise: no quantity of 7 differs beyond noise" in out
    assert "WARNING  seeds" not in out  # three seeds a side: the seeds' noise is in the test
    assert set(table["seed"]) == {"all"}  # one seed's numbers have no counterpart


def test_a_strategy_that_forgets_more_is_not_reproduced_naming_it(tmp_path, capsys):
    # seg kept at pixel accuracy 0.3 instead of 0.5 (EWC switched off, say): its mIoU falls from about 0.33
    # to about 0.18
    reference = experiment(tmp_path / "reference", [0, 1, 2])
    code, out, _ = compare(reference, experiment(tmp_path / "mine", [3, 4, 5], seg_kept=0.3), capsys)
    assert code == 1
    assert "NOT REPRODUCED: 3 quantities beyond noise (ewc seg rel_drop_stage, ewc seg final, ewc seg " \
           "rel_drop_single)" in out
    # the baselines and classification, which nothing changed, are within noise
    assert [line for line in out.splitlines() if line.startswith("  differs:")] == [
        line for line in out.splitlines() if line.startswith("  differs: ewc seg ")]


@pytest.mark.parametrize("seeds", [2, 3])
def test_the_standard_error_of_a_mean_over_seeds_is_the_unbiased_one(seeds):
    # seed k scores k on every resample of its images (no image noise): the mean of n seeds has the
    # unbiased standard error s / sqrt(n), s the seeds' sample standard deviation; drawing the seeds with
    # replacement alone gives sqrt((n - 1) / n) of it
    per_seed = np.repeat(np.arange(seeds, dtype=float)[:, None], 20_000, axis=1)
    means = seed_means(per_seed, seed_draws(seeds, 20_000, 0))
    unbiased = np.arange(seeds).std(ddof=1) / math.sqrt(seeds)
    assert means.std(ddof=1) == pytest.approx(unbiased * math.sqrt((seeds - 1) / seeds), rel=0.02)
    assert Estimate(float(means.mean()), means, seeds).standard_error == pytest.approx(unbiased, rel=0.02)


def test_one_seed_has_the_images_noise_only():
    resampled = np.array([0.4, 0.5, 0.6])
    assert Estimate(0.5, resampled, 1).standard_error == pytest.approx(0.1)


def test_holm_by_hand():
    # four p-values at alpha 0.05: sorted 0.001 <= 0.05/4, 0.015 <= 0.05/3, 0.03 > 0.05/2 stops the test
    assert holm([0.03, 0.001, 0.5, 0.015]) == [False, True, False, True]
    assert holm([0.02, 0.02]) == [True, True]  # 0.02 <= 0.025, then 0.02 <= 0.05
    assert holm([0.03, 0.04]) == [False, False]
    assert holm([0.026, 0.001]) == [True, True]  # 0.001 <= 0.025, then 0.026 <= 0.05
    assert holm([0.026, 0.03]) == [False, False]  # the smallest, 0.026, is above 0.05 / 2
