"""Preparing a data root: synthetic data or a user's folder, each with a manifest of every file."""

from __future__ import annotations

import json
import shutil

import pytest

from unihead.cli import main
from unihead.data import DatasetError
from unihead.files import sha256_file
from unihead.sources.manifest import MANIFEST
from unihead.sources.prepare import prepare_folder, validate_folder


def test_synthetic_source_writes_data_and_manifest(tmp_path):
    config = tmp_path / "exp.yaml"
    config.write_text(f"data:\n  source: synthetic\n  root: {tmp_path / 'data'}\n"
                      "  synthetic: {n_train: 10, n_val: 10, image_size: 40}\n")
    assert main(["prepare", "--config", str(config), "--manifest", str(tmp_path / "manifest.json")]) == 0
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["source"] == "synthetic"
    assert len(manifest["files"]) == 3 * 20 + 20 + 2
    some, entry = next(iter(manifest["files"].items()))
    assert entry["sha256"] == sha256_file(tmp_path / "data" / some)


def test_an_edited_synthetic_config_regenerates_but_a_users_file_stops_it(tmp_path, capsys):
    config, root = tmp_path / "exp.yaml", tmp_path / "data"

    def prepare(n_train: int) -> int:
        config.write_text(f"data:\n  source: synthetic\n  root: {root}\n"
                          f"  synthetic: {{n_train: {n_train}, n_val: 10, image_size: 40}}\n")
        return main(["prepare", "--config", str(config)])

    assert prepare(10) == 0
    assert prepare(12) == 0
    manifest = (root / MANIFEST).read_text()
    assert len(json.loads(manifest)["files"]) == 3 * 22 + 22 + 2
    assert sorted(p.name for p in root.iterdir()) == \
        [".unihead-prepare.json", "imagenette_160", MANIFEST, "mini_coco_det", "mini_voc_seg"]
    notes = root / "mini_voc_seg" / "train" / "notes.txt"
    notes.write_text("mine\n")
    assert prepare(14) == 2
    assert f"{notes}: not as `unihead prepare` wrote it" in capsys.readouterr().err
    assert notes.read_text() == "mine\n"
    assert (root / MANIFEST).read_text() == manifest
    assert len(list((root / "mini_voc_seg" / "train" / "JPEGImages").iterdir())) == 12
    notes.unlink()
    assert prepare(14) == 0
    assert len(json.loads((root / MANIFEST).read_text())["files"]) == 3 * 24 + 24 + 2


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
