"""Shared fixtures: a small synthetic data root, the tiny experiment's config on it, and the real mini datasets
when they exist."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tiny import tiny_values
from unihead.config import ExperimentConfig, config_from_dict
from unihead.sources import write_synthetic_dataset

MINI_ROOT = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "mini"
"""The real mini datasets beside the checkout (``../shared/data/mini``); never copied into the repo."""


@pytest.fixture(scope="session")
def synthetic_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("synthetic")
    write_synthetic_dataset(root, n_train=24, n_val=12, image_size=64, seed=0)
    return root


@pytest.fixture(scope="session")
def tiny_config(synthetic_root: Path) -> Callable[..., ExperimentConfig]:
    """Makes the tiny experiment's config on the synthetic data: ``tiny_config(train={"epochs": 2}, ...)`` takes
    ``tiny_values``'s overrides (a test that writes a config file uses ``tiny_values`` itself)."""
    return lambda **overrides: config_from_dict(tiny_values(synthetic_root, **overrides))


@pytest.fixture(scope="session")
def mini_root() -> Path:
    if not MINI_ROOT.is_dir():
        pytest.skip(f"real mini datasets not found at {MINI_ROOT}")
    return MINI_ROOT


BAD_INPUT_TABLES = "test_bad_input_"
"""The bad-input suites, one parametrised table per surface (folder data, archives, config, run outputs)."""
_bad_input_outcomes: dict[str, list[str]] = {}


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """Record the outcome of each bad-input case (its call phase, or the setup that failed or skipped it)."""
    name = Path(report.fspath).stem
    if name.startswith(BAD_INPUT_TABLES) and (report.when == "call" or report.outcome != "passed"):
        _bad_input_outcomes.setdefault(name[len(BAD_INPUT_TABLES):], []).append(report.outcome)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """The bad-input tables' own summary: cases tried and cases that behaved, per surface and in all."""
    if not _bad_input_outcomes:
        return
    counts = {surface: (len(outcomes), outcomes.count("passed")) for surface, outcomes in _bad_input_outcomes.items()}
    terminalreporter.section("bad-input tables")
    for surface, (tried, passed) in sorted(counts.items()):
        terminalreporter.write_line(f"{surface}: {passed} of {tried} cases behaved")
    tried, passed = (sum(values) for values in zip(*counts.values(), strict=True))
    terminalreporter.write_line(f"all surfaces: {passed} of {tried} bad-input cases behaved")
