"""Shared fixtures: a small synthetic data root, and the real mini datasets when they exist."""

from __future__ import annotations

from pathlib import Path

import pytest

from unihead.sources import write_synthetic_dataset

MINI_ROOT = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "mini"
"""The real mini datasets beside the checkout (``../shared/data/mini``); never copied into the repo."""


@pytest.fixture(scope="session")
def synthetic_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("synthetic")
    write_synthetic_dataset(root, n_train=24, n_val=12, image_size=64, seed=0)
    return root


@pytest.fixture(scope="session")
def mini_root() -> Path:
    if not MINI_ROOT.is_dir():
        pytest.skip(f"real mini datasets not found at {MINI_ROOT}")
    return MINI_ROOT
