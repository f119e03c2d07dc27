"""Preparing a data root: synthetic data or a user's folder, each with a manifest of every file."""

from __future__ import annotations

import json
import shutil

import pytest

from unihead.cli import main
from unihead.data import DatasetError
from unihead.data.prepare import prepare_folder, validate_folder
from unihead.files import sha256_file


def test_synthetic_source_writes_data_and_manifest(tmp_path, capsys):
    config = tmp_path / "exp.yaml"
    config.write_text(f"data:\n  source: synthetic\n  root: {tmp_path / 'data'}\n"
                      "  synthetic: {n_train: 10, n_val: 10, image_size: 40}\n")
    assert main(["prepare", "--config", str(config), "--manifest", str(tmp_path / "manifest.json")]) == 0
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["source"] == "synthetic"
    assert len(manifest["files"]) == 3 * 20 + 20 + 2
    some, entry = next(iter(manifest["files"].items()))
    assert entry["sha256"] == sha256_file(tmp_path / "data" / some)
    assert main(["prepare", "--config", str(config), "--manifest", str(tmp_path / "again.json")]) == 2
    assert "already holds" in capsys.readouterr().err


def test_folder_source_validates_every_file(synthetic_root, tmp_path):
    root = tmp_path / "copy"
    shutil.copytree(synthetic_root, root)
    manifest = prepare_folder(root)
    assert manifest["source"] == "folder" and len(manifest["files"]) == 3 * 36 + 36 + 2
    assert validate_folder(root, {"train": 24, "val": 12})["det"] == {"train": 24, "val": 12}
    with pytest.raises(DatasetError, match=r"mini_voc_seg/train: 24 images, expected 240"):
        validate_folder(root, {"train": 240})
    (root / "imagenette_160" / "val" / "n01440764" / "n01440764_synth00000.JPEG").write_bytes(b"broken")
    with pytest.raises(DatasetError, match=r"n01440764_synth00000.JPEG: unreadable image"):
        prepare_folder(root)
    shutil.rmtree(root / "mini_coco_det")
    with pytest.raises(DatasetError, match=r"copy/mini_coco_det: dataset folder not found"):
        prepare_folder(root)


@pytest.mark.realdata
def test_the_real_mini_folder_passes_validation(mini_root):
    counts = validate_folder(mini_root, {"train": 240, "val": 60})
    assert counts == {task: {"train": 240, "val": 60} for task in ("seg", "det", "cls")}
