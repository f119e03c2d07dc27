"""Bootstrap intervals on forgetting drops, from the runs' per-image records (:mod:`unihead.metrics.per_image`).

One seed's drop is resampled over validation images: each resample draws the task's N images with replacement,
and the base and final scores are both recomputed on that same draw (a paired bootstrap, so that the images
every model finds hard do not widen the interval). A mean over seeds is resampled hierarchically: each resample
draws the seeds with replacement, then the images (one draw shared by the seeds, as they share the validation
set), and averages the drawn seeds' scores before taking the drop, as the point estimate does. The interval is
the percentile interval of the resampled drops. Draws depend only on the config's seed and the counts, so the
same runs give the same intervals. Imports no torch, so the workflow's host side can use it.
"""

from __future__ import annotations

import math
from functools import cache

import numpy as np

from unihead.metrics.per_image import PerImage, images_of, score
from unihead.results import RunResult, read_per_image


@cache
def image_draws(n_images: int, resamples: int, seed: int) -> np.ndarray:
    """``[resamples, n_images]``: how often each image is drawn in each resample (every row sums to N)."""
    rng = np.random.default_rng([seed, 0, n_images])
    draws = rng.multinomial(n_images, np.full(n_images, 1.0 / n_images), size=resamples)
    draws.flags.writeable = False
    return draws


@cache
def seed_draws(n_seeds: int, resamples: int, seed: int) -> np.ndarray:
    """``[resamples, n_seeds]``: the positions of the seeds drawn (with replacement) in each resample."""
    draws = np.random.default_rng([seed, 1, n_seeds]).integers(0, n_seeds, size=(resamples, n_seeds))
    draws.flags.writeable = False
    return draws


def resampled_scores(record: PerImage, task: str, draws: np.ndarray) -> np.ndarray:
    """The primary metric of ``task`` on each resample of ``draws``."""
    return np.array([score(record, task, weights) for weights in draws])


def seed_means(per_seed: np.ndarray, draws: np.ndarray) -> np.ndarray:
    """Per resample, the mean over the seeds it drew of ``per_seed[seed, resample]`` (``[seeds, resamples]``)."""
    return per_seed[draws, np.arange(draws.shape[0])[:, None]].mean(axis=1)


def percentile_interval(values: np.ndarray, confidence: float) -> tuple[float, float]:
    """The central ``confidence`` interval of the resampled ``values``; resamples where the value is undefined
    (a base of 0 on that draw) are left out, and with none defined the interval is undefined (NaN, NaN)."""
    defined = values[np.isfinite(values)]
    if not len(defined):
        return math.nan, math.nan
    tail = (1.0 - confidence) / 2.0
    low, high = np.quantile(defined, [tail, 1.0 - tail])
    return float(low), float(high)


RunKey = tuple[str | None, str, int]
"""A run: (variant, name, seed)."""
Pair = tuple[np.ndarray, np.ndarray]
"""A drop's base and final scores on each resample of the images."""


class Resampler:
    """The runs' scores on ``resamples`` resamples of the validation images (drawn from ``seed``), each computed
    once when first asked for; every run's per-image records are read and checked against its R when it is made."""

    def __init__(self, runs: list[RunResult], resamples: int, seed: int) -> None:
        self.resamples, self.seed = resamples, seed
        self.records = {(run.variant, run.name, run.seed): read_per_image(run) for run in runs}
        self._scores: dict[tuple[RunKey, int, str], np.ndarray] = {}

    def __call__(self, run: RunKey, stage: int, task: str) -> np.ndarray:
        """Run ``run``'s score of ``task`` after stage ``stage`` (-1: its last) on every resample."""
        stage %= len(self.records[run])
        if (run, stage, task) not in self._scores:
            record = self.records[run][stage][task]
            draws = image_draws(images_of(record, task), self.resamples, self.seed)
            self._scores[(run, stage, task)] = resampled_scores(record, task, draws)
        return self._scores[(run, stage, task)]


def over_seeds(seeds: list[Pair | None], resamples: int, seed: int) -> Pair | None:
    """The mean over resampled seeds (``resamples`` draws from ``seed``) of each seed's resampled (base, final)
    scores; None if a seed has none."""
    if any(pair is None for pair in seeds):
        return None
    draws = seed_draws(len(seeds), resamples, seed)
    base, final = (np.stack([pair[k] for pair in seeds]) for k in (0, 1))
    return seed_means(base, draws), seed_means(final, draws)
