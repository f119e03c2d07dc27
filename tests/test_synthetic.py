"""The synthetic generator: byte-identical for a seed, different across seeds, read by the real readers."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from unihead.cli import main
from unihead.data import build_dataset
from unihead.sources import write_synthetic_dataset
from unihead.sources.synthetic import SEG_CLASSES


def _digest(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_same_seed_gives_identical_bytes_and_another_seed_does_not(tmp_path):
    for name, seed in (("a", 3), ("b", 3), ("c", 4)):
        write_synthetic_dataset(tmp_path / name, n_train=10, n_val=10, image_size=48, seed=seed)
    a, b, c = (_digest(tmp_path / n) for n in "abc")
    assert len(a) == 3 * 2 * 10 + 2 * 10 + 2  # images, seg masks, two annotation files
    assert a == b
    assert a.keys() == c.keys() and a != c


def test_cli_writes_what_the_readers_read(tmp_path, capsys):
    assert main(["synth", "--out", str(tmp_path), "--n-train", "12", "--n-val", "10", "--size", "48"]) == 0
    for task in ("seg", "det", "cls"):
        assert len(build_dataset(task, tmp_path, "train", 48, train=True)) == 12
        assert len(build_dataset(task, tmp_path, "val", 48, train=False)) == 10


def test_too_few_images_for_one_per_class(tmp_path):
    with pytest.raises(ValueError, match="at least 10 images per split"):
        write_synthetic_dataset(tmp_path, n_train=5, n_val=10)


def test_masks_are_derived_from_the_shapes_drawn(synthetic_root):
    """Pixels a mask gives class k show class k's colour in the image (up to jitter and JPEG)."""
    split = synthetic_root / "mini_voc_seg" / "train"
    seen = set()
    for mask_path in sorted((split / "SegmentationClass").glob("*.png"))[:8]:
        mask = np.asarray(Image.open(mask_path))
        image = np.asarray(Image.open(split / "JPEGImages" / f"{mask_path.stem}.jpg").convert("RGB"), dtype=float)
        assert (mask == 255).any() and (mask == 0).any()
        for label in set(np.unique(mask).tolist()) - {0, 255}:
            colour = SEG_CLASSES[label]
            mean = image[mask == label].mean(axis=0)
            assert np.abs(mean - colour).max() < 35, (mask_path.name, label, mean, colour)
            seen.add(label)
    assert len(seen) >= 3
