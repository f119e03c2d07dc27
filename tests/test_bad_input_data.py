"""The bad-input suite, folder-data surface: every bad input of the three folder readers behind
``build_dataset`` (VOC segmentation, COCO detection, Imagenette classification), one table row each.

A row breaks a copy of a small synthetic dataset in one way and names the ``DatasetError`` it must give
(the file and the problem), either when the dataset is opened (``open``) or when its items are loaded
(``read``). No bad input may pass silently or end in a traceback of another kind.
"""

from __future__ import annotations

import io
import json
import math
import shutil
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

from unihead.data import DatasetError, build_dataset
from unihead.data.categories import voc_palette
from unihead.sources import write_synthetic_dataset

SIZE = 48
OPEN, READ = "open", "read"
FIRST_IMAGE = "000000000001.jpg"
"""Detection train image 1, the image of annotation 1."""


@dataclass(frozen=True)
class BadInput:
    name: str
    task: str
    split: str
    breaks: Callable[[Path], None]
    error: str
    stage: str = OPEN


def _coco(split: str, edit: Callable[[dict[str, Any]], None]) -> Callable[[Path], None]:
    """Edit the detection ``split``'s annotation document in place."""

    def breaks(root: Path) -> None:
        path = root / "mini_coco_det" / split / "annotations.json"
        document = json.loads(path.read_text())
        edit(document)
        path.write_text(json.dumps(document))

    return breaks


def _annotation_1(**fields: Any) -> Callable[[Path], None]:
    return _coco("train", lambda d: d["annotations"][0].update(fields))


def _bbox_1(index: int, value: float) -> Callable[[Path], None]:
    def edit(document: dict[str, Any]) -> None:
        document["annotations"][0]["bbox"][index] = value

    return _coco("train", edit)


def _without(kind: str, key: str) -> Callable[[Path], None]:
    return _coco("train", lambda d: d[kind][0].pop(key))


def _write(relative: str, content: bytes) -> Callable[[Path], None]:
    def breaks(root: Path) -> None:
        (root / relative).write_bytes(content)

    return breaks


def _remove(relative: str) -> Callable[[Path], None]:
    def breaks(root: Path) -> None:
        path = root / relative
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink()

    return breaks


def _box_past_the_right_edge(document: dict[str, Any]) -> None:
    width = document["images"][0]["width"]
    document["annotations"][0]["bbox"] = [width - 10, 2, 12, 5]


def _duplicate_image_id(document: dict[str, Any]) -> None:
    second = document["images"][1]
    for annotation in document["annotations"]:
        if annotation["image_id"] == second["id"]:
            annotation["image_id"] = 1
    second["id"] = 1


def _swap_category_names(document: dict[str, Any]) -> None:
    first, second = document["categories"][:2]
    first["name"], second["name"] = second["name"], first["name"]


def _move_first_image(destination: Callable[[Path], Path], file_name: Callable[[Path], str]) -> Callable[[Path], None]:
    """Move detection train image 1 to ``destination(split folder)`` and list it as ``file_name(that path)``."""

    def breaks(root: Path) -> None:
        split = root / "mini_coco_det" / "train"
        target = destination(split)
        target.parent.mkdir(parents=True, exist_ok=True)
        (split / "images" / FIRST_IMAGE).replace(target)
        _coco("train", lambda d: d["images"][0].update(file_name=file_name(target)))(root)

    return breaks


def _symlink_out_of_the_dataset(root: Path) -> None:
    image = root / "mini_coco_det" / "train" / "images" / FIRST_IMAGE
    outside = root / "elsewhere" / FIRST_IMAGE
    outside.parent.mkdir()
    image.replace(outside)
    image.symlink_to(outside)


def _save_mask(relative: str, pixels: np.ndarray) -> Callable[[Path], None]:
    def breaks(root: Path) -> None:
        mask = Image.fromarray(pixels.astype(np.uint8), mode="P" if pixels.ndim == 2 else "RGB")
        if pixels.ndim == 2:
            mask.putpalette(voc_palette())
        mask.save(root / relative, format="PNG")

    return breaks


def _mask_with_value(value: int) -> np.ndarray:
    pixels = np.zeros((SIZE, SIZE), dtype=np.uint8)
    pixels[0, :4] = value
    return pixels


def _only_a_text_file(root: Path) -> None:
    folder = root / "imagenette_160" / "val" / "n02102040"
    for image in folder.iterdir():
        image.unlink()
    (folder / "notes.txt").write_text("no images here\n")


def _png_header(width: int, height: int) -> bytes:
    """A PNG whose header claims ``width`` x ``height`` RGB pixels (a decompression bomb: its data is a few bytes)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)) + \
        chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def _jpeg_header(width: int, height: int) -> bytes:
    """A small JPEG whose frame header (SOF0) claims ``width`` x ``height`` pixels."""
    buffer = io.BytesIO()
    Image.new("RGB", (16, 16)).save(buffer, format="JPEG")
    data = bytearray(buffer.getvalue())
    frame = data.index(b"\xff\xc0")
    data[frame + 5:frame + 9] = struct.pack(">HH", height, width)
    return bytes(data)


def _encoded(image: Image.Image, format: str) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=format)
    return buffer.getvalue()


def _rename(relative: str, suffix: str) -> Callable[[Path], None]:
    def breaks(root: Path) -> None:
        path = root / relative
        path.rename(path.with_suffix(suffix))

    return breaks


def _both(*changes: Callable[[Path], None]) -> Callable[[Path], None]:
    def breaks(root: Path) -> None:
        for change in changes:
            change(root)

    return breaks


CLASS_FOLDER = "imagenette_160/train/n01440764"
VOC_TRAIN = "mini_voc_seg/train"
SKIPPED = r"an image file that the reader would skip \(1 in \S+{}\); it reads "
NEW_DEFECTS = [
    # Images read as something else, or skipped though the manifest lists them (issue 22: 2, 7).
    BadInput("16-bit PNG in a class folder", "cls", "train",
             _write(f"{CLASS_FOLDER}/deep.png", _encoded(Image.fromarray(np.full((SIZE, SIZE), 40000, np.uint16)),
                                                          "PNG")),
             r"n01440764/deep.png: image of mode I;16 \(16 or 32 bits per pixel\); expected 8 bits per channel "
             r"\(RGB, greyscale or palette\): converting it would clip it to white", READ),
    BadInput("VOC pair in upper case (.JPG and .PNG)", "seg", "train",
             _both(_rename(f"{VOC_TRAIN}/JPEGImages/synth_train_00000.jpg", ".JPG"),
                   _rename(f"{VOC_TRAIN}/SegmentationClass/synth_train_00000.png", ".PNG")),
             r"train/JPEGImages/synth_train_00000.JPG: " + SKIPPED.format("JPEGImages") + r"<id>.jpg \(lower case\)"),
    BadInput("VOC mask in upper case (.PNG)", "seg", "val",
             _rename("mini_voc_seg/val/SegmentationClass/synth_val_00001.png", ".PNG"),
             r"val/SegmentationClass/synth_val_00001.PNG: " + SKIPPED.format("SegmentationClass") +
             r"<id>.png \(lower case\)"),
    BadInput("BMP in a class folder", "cls", "train",
             _write(f"{CLASS_FOLDER}/extra.bmp", _encoded(Image.new("RGB", (SIZE, SIZE)), "BMP")),
             r"n01440764/extra.bmp: " + SKIPPED.format("n01440764") + r"\.jpeg, \.jpg, \.png \(any case\)"),
    BadInput("WebP in a class folder", "cls", "val", _write("imagenette_160/val/n03000684/extra.webp", b"RIFF"),
             r"n03000684/extra.webp: " + SKIPPED.format("n03000684")),
    # Decompression bombs: headers of more pixels than a dataset image holds (issue 22: 11).
    BadInput("PNG header of 1e10 pixels", "cls", "train",
             _write(f"{CLASS_FOLDER}/bomb.png", _png_header(100_000, 100_000)),
             r"n01440764/bomb.png: Image size \(10000000000 pixels\) exceeds limit .* \(more than the 67,108,864 "
             r"pixels a dataset image may hold\)", READ),
    BadInput("PNG mask header of 3.6e9 pixels", "seg", "train",
             _write(f"{VOC_TRAIN}/SegmentationClass/synth_train_00000.png", _png_header(60_000, 60_000)),
             r"synth_train_00000.png: Image size \(3600000000 pixels\) exceeds limit", READ),
    BadInput("JPEG header of 9e8 pixels", "det", "val",
             _write("mini_coco_det/val/images/000000500001.jpg", _jpeg_header(30_000, 30_000)),
             r"val/images/000000500001.jpg: Image size \(900000000 pixels\) exceeds limit", READ),
    BadInput("JPEG header of 1e8 pixels (below PIL's own limit)", "cls", "val",
             _write("imagenette_160/val/n03000684/bomb.JPEG", _jpeg_header(10_000, 10_000)),
             r"n03000684/bomb.JPEG: image of 10000x10000 pixels, more than the 67,108,864 a dataset image may hold "
             r"\(a decompression bomb\?\)", READ),
    # Imagenette: labels must mean the same class in every split.
    BadInput("class folder renamed", "cls", "train",
             lambda root: (root / "imagenette_160/train/n01440764").rename(root / "imagenette_160/train/n99999999"),
             r"imagenette_160/train: class folders must be Imagenette's 10 wnids; unexpected: \['n99999999'\], "
             r"missing: \['n01440764'\]"),
    # COCO boxes: finite, positive size, inside the image (1 px tolerance).
    BadInput("box past the right edge", "det", "train", _coco("train", _box_past_the_right_edge),
             r"train/annotations.json: annotation 1 has box \[\d+, 2, 12, 5\] \(x, y, width, height\) outside its "
             r"image 1 of \d+x\d+ px"),
    BadInput("box above the image", "det", "train", _annotation_1(bbox=[2, -3, 5, 5]),
             r"train/annotations.json: annotation 1 has box \[2, -3, 5, 5\] .* outside its image 1"),
    BadInput("box with NaN", "det", "train", _bbox_1(0, math.nan),
             r"train/annotations.json: annotation 1 has 'bbox' \[nan, \d+, \d+, \d+\]; expected \[x, y, width, "
             r"height\], 4 finite numbers"),
    BadInput("box of infinite width", "det", "train", _bbox_1(2, math.inf),
             r"train/annotations.json: annotation 1 has 'bbox' \[\d+, \d+, inf, \d+\]; expected"),
    BadInput("box of zero width", "det", "train", _bbox_1(2, 0),
             r"train/annotations.json: annotation 1 has box \[\d+, \d+, 0, \d+\] of size 0x\d+; expected a positive "
             r"width and height"),
    # COCO entries of the wrong shape.
    BadInput("bbox of 3 numbers", "det", "train", _annotation_1(bbox=[1, 2, 3]),
             r"train/annotations.json: annotation 1 has 'bbox' \[1, 2, 3\]; expected \[x, y, width, height\]"),
    BadInput("annotation without bbox", "det", "train", _without("annotations", "bbox"),
             r"train/annotations.json: annotation 1 has no 'bbox'; expected \[x, y, width, height\]"),
    BadInput("bbox as a string", "det", "train", _annotation_1(bbox="1,2,3,4"),
             r"train/annotations.json: annotation 1 has 'bbox' '1,2,3,4'; expected \[x, y, width, height\]"),
    BadInput("annotation without id", "det", "train", _without("annotations", "id"),
             r"train/annotations.json: annotation entry #0 has id None; expected an integer"),
    BadInput("annotation ids used twice", "det", "train", _coco("train", lambda d: d["annotations"][1].update(id=1)),
             r"train/annotations.json: annotation id 1 is used twice"),
    BadInput("annotation without iscrowd", "det", "train", _without("annotations", "iscrowd"),
             r"train/annotations.json: annotation 1 has no 'iscrowd'; expected 0 or 1"),
    BadInput("negative area", "det", "train", _annotation_1(area=-5),
             r"train/annotations.json: annotation 1 has 'area' -5; expected a finite number >= 0"),
    BadInput("image without file_name", "det", "train", _without("images", "file_name"),
             r"train/annotations.json: image 1 has no 'file_name'; expected a plain file name"),
    BadInput("image width as a string", "det", "train",
             _coco("train", lambda d: d["images"][0].update(width=str(d["images"][0]["width"]))),
             r"train/annotations.json: image 1 has 'width' '\d+'; expected a positive integer"),
    BadInput("image ids used twice", "det", "train", _coco("train", _duplicate_image_id),
             r"train/annotations.json: image id 1 is used twice"),
    BadInput("category without name", "det", "train", _without("categories", "name"),
             r"train/annotations.json: category 1 has no 'name'; expected a string"),
    BadInput("annotations a list of numbers", "det", "train", _coco("train", lambda d: d.update(annotations=[1, 2])),
             r"train/annotations.json: expected a list of objects under 'annotations'"),
    BadInput("top level a list", "det", "train", _write("mini_coco_det/train/annotations.json", b"[]"),
             r"train/annotations.json: expected a JSON object with 'images', 'annotations' and 'categories', "
             r"got list"),
    # COCO image paths: a file name stays inside the images folder, a symlink inside the dataset folder.
    BadInput("absolute file_name", "det", "train",
             _move_first_image(lambda split: split.parents[1] / "elsewhere" / FIRST_IMAGE, str),
             r"train/annotations.json: image 1 has 'file_name' '/.*/elsewhere/000000000001.jpg'; expected a plain "
             r"file name \(no folder, no '..'\)"),
    BadInput("file_name climbing out with ..", "det", "train",
             _move_first_image(lambda split: split / FIRST_IMAGE, lambda _: f"../{FIRST_IMAGE}"),
             r"train/annotations.json: image 1 has 'file_name' '../000000000001.jpg'; expected a plain file name"),
    BadInput("file_name with a folder", "det", "train",
             _move_first_image(lambda split: split / "images" / "sub" / FIRST_IMAGE, lambda _: f"sub/{FIRST_IMAGE}"),
             r"train/annotations.json: image 1 has 'file_name' 'sub/000000000001.jpg'; expected a plain file name"),
    BadInput("symlink leading out of the dataset folder", "det", "train", _symlink_out_of_the_dataset,
             r"train/images/000000000001.jpg: resolves to .*/elsewhere/000000000001.jpg, outside the dataset folder "
             r".*/mini_coco_det \(listed in .*train/annotations.json\)"),
]
"""Bad inputs that today's readers accepted (wrong labels or boxes) or answered with a traceback."""

ALREADY_REFUSED = [
    # VOC segmentation.
    BadInput("mask folder missing", "seg", "train", _remove("mini_voc_seg/train/SegmentationClass"),
             r"mini_voc_seg/train/SegmentationClass: segmentation masks folder not found"),
    BadInput("image without mask", "seg", "val", _remove("mini_voc_seg/val/SegmentationClass/synth_val_00002.png"),
             r"val/SegmentationClass/synth_val_00002.png: file not found \(1 masks missing"),
    BadInput("mask with an unknown class value", "seg", "val",
             _save_mask("mini_voc_seg/val/SegmentationClass/synth_val_00000.png", _mask_with_value(100)),
             r"synth_val_00000.png: mask values \[100\] are no class \(expected 0..20 or 255\)", READ),
    BadInput("RGB mask", "seg", "train",
             _save_mask("mini_voc_seg/train/SegmentationClass/synth_train_00000.png", np.zeros((SIZE, SIZE, 3))),
             r"synth_train_00000.png: expected a single-channel \(palette\) mask, got shape \(48, 48, 3\)", READ),
    BadInput("mask of another size than its image", "seg", "train",
             _save_mask("mini_voc_seg/train/SegmentationClass/synth_train_00000.png", np.zeros((24, 24))),
             r"synth_train_00000.png: mask is \(24, 24\), its image \(48, 48\)", READ),
    # COCO detection.
    BadInput("images folder missing", "det", "train", _remove("mini_coco_det/train/images"),
             r"mini_coco_det/train/images: detection 'train' images folder not found"),
    BadInput("annotation file missing", "det", "train", _remove("mini_coco_det/train/annotations.json"),
             r"mini_coco_det/train/annotations.json: annotation file not found"),
    BadInput("annotation file not JSON", "det", "train", _write("mini_coco_det/train/annotations.json", b"{"),
             r"train/annotations.json: not valid JSON"),
    BadInput("annotations an object", "det", "train", _coco("train", lambda d: d.update(annotations={})),
             r"train/annotations.json: expected a list of objects under 'annotations'"),
    BadInput("split without images", "det", "train", _coco("train", lambda d: d.update(images=[], annotations=[])),
             r"train/annotations.json: no images"),
    BadInput("listed image missing", "det", "train", _remove("mini_coco_det/train/images/000000000002.jpg"),
             r"train/images/000000000002.jpg: image file not found \(listed in .*train/annotations.json\)"),
    BadInput("annotation on no image", "det", "val", _coco("val", lambda d: d["annotations"][0].update(image_id=42)),
             r"val/annotations.json: annotation 1 points at image id 42, which no image entry has"),
    BadInput("annotation of an unknown category", "det", "val",
             _coco("val", lambda d: d["annotations"][0].update(category_id=3)),
             r"val/annotations.json: annotation 1 has category id 3, which no category entry has"),
    BadInput("splits that number categories differently", "det", "train", _coco("val", _swap_category_names),
             r"train/annotations.json and .*val/annotations.json disagree on category id 1: 'hue 0' vs "
             r"'hue 36'"),
    BadInput("box of negative height", "det", "train", _bbox_1(3, -4),
             r"train/annotations.json: annotation 1 has box \[\d+, \d+, \d+, -4\] of size \d+x-4; expected a "
             r"positive width and height"),
    BadInput("image of another height than listed", "det", "train",
             _coco("train", lambda d: d["images"][0].update(height=d["images"][0]["height"] + 7)),
             r"000000000001.jpg: image is \d+x\d+ but .*train/annotations.json says \d+x\d+ \(boxes would be "
             r"misplaced\)", READ),
    BadInput("empty image file", "det", "val", _write("mini_coco_det/val/images/000000500001.jpg", b""),
             r"val/images/000000500001.jpg: unreadable image", READ),
    # Imagenette classification.
    BadInput("split folder missing", "cls", "val", _remove("imagenette_160/val"),
             r"imagenette_160/val: classification 'val' split folder not found"),
    BadInput("class folder missing", "cls", "val", _remove("imagenette_160/val/n03888257"),
             r"imagenette_160/val: class folders must be Imagenette's 10 wnids; unexpected: none, "
             r"missing: \['n03888257'\]"),
    BadInput("extra class folder", "cls", "train", lambda root: (root / "imagenette_160/train/n00000000").mkdir(),
             r"imagenette_160/train: class folders must be Imagenette's 10 wnids; unexpected: \['n00000000'\], "
             r"missing: none"),
    BadInput("class folder without images", "cls", "val", _only_a_text_file,
             r"imagenette_160/val/n02102040: class folder has no images"),
    BadInput("unreadable image", "cls", "train",
             _write("imagenette_160/train/n01440764/n01440764_synth00000.JPEG", b"not a jpeg"),
             r"n01440764_synth00000.JPEG: unreadable image", READ),
]
"""Bad inputs the readers refused before (some messages now say more); listed so that this table is complete."""


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("pristine")
    write_synthetic_dataset(root, n_train=12, n_val=10, image_size=SIZE, seed=0)
    return root


@pytest.fixture
def data_root(pristine: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(pristine, tmp_path / "data"))


def _read_all(task: str, root: Path, split: str) -> None:
    dataset = build_dataset(task, root, split, SIZE, train=False)
    for index in range(len(dataset)):
        dataset[index]


@pytest.mark.parametrize("task", ["seg", "det", "cls"])
def test_the_unbroken_dataset_reads(task: str, pristine: Path):
    for split in ("train", "val"):
        _read_all(task, pristine, split)


@pytest.mark.parametrize("case", NEW_DEFECTS + ALREADY_REFUSED, ids=lambda case: case.name)
def test_bad_input_gives_a_dataset_error_naming_it(case: BadInput, data_root: Path):
    case.breaks(data_root)
    if case.stage == OPEN:
        with pytest.raises(DatasetError, match=case.error):
            build_dataset(case.task, data_root, case.split, SIZE, train=False)
    else:
        dataset = build_dataset(case.task, data_root, case.split, SIZE, train=False)
        with pytest.raises(DatasetError, match=case.error):
            for index in range(len(dataset)):
                dataset[index]


def test_box_past_the_border_by_rounding_is_clipped_to_the_image(data_root: Path):
    def overshoot(document: dict[str, Any]) -> None:
        width = document["images"][0]["width"]
        document["annotations"][0]["bbox"] = [-0.5, 1, width + 1.0, 5.0]

    _coco("train", overshoot)(data_root)
    _, target = build_dataset("det", data_root, "train", SIZE, train=False)[0]
    assert target["boxes"][0, 0].item() == 0 and target["boxes"][0, 2].item() == pytest.approx(1.0)
    assert (target["boxes"] >= 0).all() and (target["boxes"] <= 1).all()


def test_symlink_that_stays_inside_the_dataset_folder_is_read(data_root: Path):
    image = data_root / "mini_coco_det" / "train" / "images" / FIRST_IMAGE
    inside = data_root / "mini_coco_det" / "shared_images" / FIRST_IMAGE
    inside.parent.mkdir()
    image.replace(inside)
    image.symlink_to(inside)
    reader = build_dataset("det", data_root, "train", SIZE, train=False)
    assert torch.isfinite(reader[0][0]).all()
