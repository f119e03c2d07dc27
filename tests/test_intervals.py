"""Bootstrap intervals on forgetting drops: the resampling worked out by hand, and verdicts that say pass or fail
only where the validation images can tell."""

from __future__ import annotations

import gzip
import json

import numpy as np
import pytest

from test_forgetting import write_run
from unihead.forgetting import Verdict, forgetting_table, rule_drops, summary_table
from unihead.intervals import image_draws, percentile_interval, seed_draws, seed_means
from unihead.results import PER_IMAGE_FILE, load_runs


def test_draws_are_deterministic_resamples_with_replacement():
    draws = image_draws(7, 500, 3)
    assert draws.shape == (500, 7) and (draws.sum(axis=1) == 7).all()
    assert (draws == image_draws(7, 500, 3)).all() and (draws != image_draws(7, 500, 4)).any()
    # every image is drawn about once per resample on average
    assert draws.mean() == pytest.approx(1.0, abs=0.05)
    assert seed_draws(3, 500, 3).shape == (500, 3) and set(np.unique(seed_draws(3, 500, 3))) == {0, 1, 2}


def test_seed_means_and_percentiles_by_hand():
    per_seed = np.array([[1.0, 2.0], [3.0, 4.0]])  # 2 seeds x 2 resamples
    draws = np.array([[0, 0], [0, 1]])  # resample 0 draws seed 0 twice, resample 1 both seeds
    assert seed_means(per_seed, draws).tolist() == [1.0, 3.0]
    assert percentile_interval(np.arange(101.0), 0.9) == pytest.approx((5.0, 95.0))
    assert percentile_interval(np.array([np.nan, 1.0, 3.0]), 0.5) == pytest.approx((1.5, 2.5))
    assert all(np.isnan(percentile_interval(np.array([np.nan]), 0.95)))


def test_rule_drops_per_resample():
    base, final = np.array([0.5, 0.0, 0.4]), np.array([0.4, 0.0, 0.4])
    assert rule_drops("relative", base, final, 0.1)[[0, 2]].tolist() == pytest.approx([0.2, 0.0])
    assert np.isnan(rule_drops("relative", base, final, 0.1)[1])
    assert rule_drops("relative_to_chance", base, final, 0.1)[0] == pytest.approx(0.25)
    assert rule_drops("absolute", base, final, 0.1).tolist() == pytest.approx([10.0, 0.0, 0.0])


def _cls_runs(tmp_path, images: int, base_hits: int, lost: int, seeds=(0,)):
    """A one-stage 'none' run on cls and its baseline: the baseline gets ``base_hits`` of ``images`` right, the
    run the same images except ``lost`` of them (a paired loss)."""
    runs = tmp_path / "runs"
    for seed in seeds:
        base = [1] * base_hits + [0] * (images - base_hits)
        final = [0] * lost + base[lost:]
        for name, correct in (("baseline-cls", base), ("none", final)):
            write_run(runs, name, seed, [[sum(correct) / images]], ["cls"])
            folder = runs / name / f"seed{seed}"
            (folder / PER_IMAGE_FILE).write_bytes(gzip.compress(json.dumps([{"cls": {"correct": correct}}]).encode()))
    return load_runs(runs)


@pytest.mark.parametrize(("images", "base_hits", "lost", "verdict"), [
    (200, 147, 7, "inconclusive"),  # 4.8% drop passes by its point estimate; 7 images are too few to tell
    (4000, 2940, 59, "pass"),  # a 2.0% drop on 4000 images: the whole interval is below 5%
    (200, 147, 30, "fail"),  # a 20% drop: the whole interval is above 5%
])
def test_the_interval_decides_the_verdict(tmp_path, images, base_hits, lost, verdict):
    row = forgetting_table(_cls_runs(tmp_path, images, base_hits, lost), Verdict()).iloc[0]
    assert row["rel_drop_single"] == pytest.approx(lost / base_hits)
    assert row["rel_drop_single_low"] < lost / base_hits < row["rel_drop_single_high"]
    assert row["verdict_single"] == verdict
    assert forgetting_table(_cls_runs(tmp_path / "point", images, base_hits, lost), Verdict(resamples=0)).iloc[0][
        "verdict_single"] == ("pass" if lost / base_hits <= 0.05 else "fail")


def test_the_bootstrap_is_paired_and_its_width_follows_the_lost_images(tmp_path):
    # the drop of a resample is (draws of the lost images) / (draws of the baseline's hits): paired, it is 0 when
    # nothing is lost, whatever the resample (an unpaired bootstrap would scatter it around 0)
    unchanged = forgetting_table(_cls_runs(tmp_path / "same", 60, 45, 0), Verdict()).iloc[0]
    assert (unchanged["rel_drop_single_low"], unchanged["rel_drop_single_high"]) == (0.0, 0.0)
    assert unchanged["verdict_single"] == "pass"
    # 6 of 45 hits lost: the lost count drawn is about Binomial(60, 0.1), so the 95% interval of the drop runs
    # from about 2/45 to 11/45
    row = forgetting_table(_cls_runs(tmp_path / "lost", 60, 45, 6), Verdict()).iloc[0]
    assert 0.0 < row["rel_drop_single_low"] < 0.08 and 0.18 < row["rel_drop_single_high"] < 0.32


def test_the_summary_resamples_seeds_then_images_and_is_reproducible(tmp_path):
    runs = _cls_runs(tmp_path, 200, 147, 30, seeds=(0, 1, 2))
    first, again = (summary_table(runs, Verdict()).set_index("task").loc["cls"] for _ in range(2))
    assert (first["rel_drop_single_low"], first["rel_drop_single_high"]) == \
        (again["rel_drop_single_low"], again["rel_drop_single_high"])
    other = summary_table(runs, Verdict(bootstrap_seed=1)).set_index("task").loc["cls"]
    assert other["rel_drop_single_low"] != first["rel_drop_single_low"]
    assert first["verdict_single"] == "fail" and first["seeds"] == 3
