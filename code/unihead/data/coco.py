"""COCO-JSON detection: ``{split}/images/<file_name>`` + ``{split}/annotations.json`` with original ids."""

from __future__ import annotations

import contextlib
import io
import json
import math
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from pycocotools.coco import COCO
from torch import Tensor
from torch.utils.data import Dataset
from torchvision import tv_tensors
from torchvision.transforms import v2

from unihead.data.errors import DatasetError
from unihead.data.images import read_image, require_dir
from unihead.data.transforms import build_transforms

ANNOTATIONS = "annotations.json"
BOX_TOLERANCE_PX = 1.0
"""How far a box may reach past the image border: COCO's own boxes overshoot it by rounding (up to
0.4 px in mini-COCO-Det); the reader clips such boxes to the image."""


def read_annotations(path: Path) -> dict[str, Any]:
    """A COCO annotation file, checked: well-formed entries with unique ids, images named by plain file
    names, and every annotation on a known image and category with a finite box of positive size inside
    its image (boxes of zero width or height, which COCO has a few of, are refused too)."""
    if not path.is_file():
        raise DatasetError(f"{path}: annotation file not found")
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise DatasetError(f"{path}: not valid JSON ({err})") from err
    if not isinstance(data, dict):
        raise DatasetError(f"{path}: expected a JSON object with 'images', 'annotations' and 'categories', "
                           f"got {type(data).__name__}")
    for key in ("images", "annotations", "categories"):
        if not isinstance(data.get(key), list) or not all(isinstance(entry, dict) for entry in data[key]):
            raise DatasetError(f"{path}: expected a list of objects under '{key}'")
    images = {image["id"]: image for image in _checked(path, "image", data["images"], _check_image)}
    category_ids = {category["id"] for category in _checked(path, "category", data["categories"], _check_category)}
    for annotation in _checked(path, "annotation", data["annotations"], _check_annotation_fields):
        _check_annotation_references(path, annotation, images, category_ids)
    return data


def _checked(path: Path, kind: str, entries: list[dict[str, Any]],
             check: Callable[[Path, str, dict[str, Any]], None]) -> list[dict[str, Any]]:
    """``entries`` after ``check`` of each, with integer ids that no two share."""
    seen: set[int] = set()
    for index, entry in enumerate(entries):
        entry_id = entry.get("id")
        if not _is_int(entry_id):
            raise DatasetError(f"{path}: {kind} entry #{index} has id {entry_id!r}; expected an integer")
        if entry_id in seen:
            raise DatasetError(f"{path}: {kind} id {entry_id} is used twice")
        seen.add(entry_id)
        check(path, f"{kind} {entry_id}", entry)
    return entries


def _check_image(path: Path, name: str, image: dict[str, Any]) -> None:
    _require(path, name, image, "file_name", _is_plain_file_name, "a plain file name (no folder, no '..')")
    for key in ("width", "height"):
        _require(path, name, image, key, lambda v: _is_int(v) and v > 0, "a positive integer")


def _check_category(path: Path, name: str, category: dict[str, Any]) -> None:
    _require(path, name, category, "name", lambda v: isinstance(v, str), "a string")


def _check_annotation_fields(path: Path, name: str, annotation: dict[str, Any]) -> None:
    for key in ("image_id", "category_id"):
        _require(path, name, annotation, key, _is_int, "an integer")
    _require(path, name, annotation, "bbox", lambda v: isinstance(v, list) and len(v) == 4 and all(map(_is_finite, v)),
             "[x, y, width, height], 4 finite numbers")
    _require(path, name, annotation, "area", lambda v: _is_finite(v) and v >= 0, "a finite number >= 0")
    _require(path, name, annotation, "iscrowd", lambda v: _is_int(v) and v in (0, 1), "0 or 1")


def _check_annotation_references(path: Path, annotation: dict[str, Any], images: dict[int, dict[str, Any]],
                                 category_ids: set[int]) -> None:
    name = f"annotation {annotation['id']}"
    image = images.get(annotation["image_id"])
    if image is None:
        raise DatasetError(f"{path}: {name} points at image id {annotation['image_id']}, which no image entry has")
    if annotation["category_id"] not in category_ids:
        raise DatasetError(f"{path}: {name} has category id {annotation['category_id']}, which no category entry "
                           f"has (ids: {sorted(category_ids)})")
    x, y, w, h = annotation["bbox"]
    if w <= 0 or h <= 0:
        raise DatasetError(f"{path}: {name} has box {annotation['bbox']} of size {w}x{h}; expected a positive "
                           "width and height")
    width, height, tolerance = image["width"], image["height"], BOX_TOLERANCE_PX
    if x < -tolerance or y < -tolerance or x + w > width + tolerance or y + h > height + tolerance:
        raise DatasetError(f"{path}: {name} has box {annotation['bbox']} (x, y, width, height) outside its image "
                           f"{image['id']} of {width}x{height} px")


def _require(path: Path, name: str, entry: dict[str, Any], key: str, valid: Callable[[Any], bool],
             expected: str) -> None:
    if key not in entry:
        raise DatasetError(f"{path}: {name} has no '{key}'; expected {expected}")
    if not valid(entry[key]):
        raise DatasetError(f"{path}: {name} has '{key}' {entry[key]!r}; expected {expected}")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _is_plain_file_name(value: Any) -> bool:
    """A name that stays inside the images folder: no folder part, not absolute, not ``.`` or ``..``."""
    return (isinstance(value, str) and value not in ("", ".", "..")
            and not any(char in value for char in ("/", "\\", "\0")))


def check_category_agreement(paths: list[Path]) -> None:
    """All splits' annotation files must name the same categories with the same ids.

    The paper's own implementation numbered its validation categories differently from its
    training ones, which alone drives mAP to about 0; this check makes that an error.
    """
    reference: tuple[Path, dict[int, str]] | None = None
    for path in paths:
        names = {c["id"]: c["name"] for c in read_annotations(path)["categories"]}
        if reference is None:
            reference = (path, names)
            continue
        first_path, first = reference
        for category_id in sorted(set(first) | set(names)):
            if first.get(category_id) != names.get(category_id):
                raise DatasetError(f"{first_path} and {path} disagree on category id {category_id}: "
                                   f"{_category_name(first, category_id)} vs {_category_name(names, category_id)}")


def _category_name(names: dict[int, str], category_id: int) -> str:
    return repr(names[category_id]) if category_id in names else "no such category"


def check_image_file(file: Path, dataset_dir: Path, listed_in: Path) -> None:
    """The listed image must exist and lie inside the dataset folder, also where a symlink leads."""
    if not file.is_file():
        raise DatasetError(f"{file}: image file not found (listed in {listed_in})")
    target, inside = file.resolve(), dataset_dir.resolve()
    if not target.is_relative_to(inside):
        raise DatasetError(f"{file}: resolves to {target}, outside the dataset folder {inside} "
                           f"(listed in {listed_in}); copy the image into the dataset folder")


class CocoDetection(Dataset):
    """Images with boxes (XYXY as fractions of the resized image's width and height, so in [0, 1], made by
    the pipeline's last step; in pixels of the resized image with :func:`~unihead.data.transforms.decode_transforms`),
    contiguous labels and crowd flags; ``orig_size`` (height, width) maps boxes back to the file's pixels.

    Category ids stay the file's own (``coco``, used by the evaluation); labels are their index in
    sorted id order (``label_to_category_id``).
    """

    def __init__(self, root: Path, split: str, size: int, train: bool,
                 transforms: v2.Transform | None = None) -> None:
        root = Path(root)
        self.image_dir = require_dir(root / split / "images", f"detection '{split}' images")
        path = root / split / ANNOTATIONS
        data = read_annotations(path)
        check_category_agreement(sorted(root.glob(f"*/{ANNOTATIONS}")))
        if not data["images"]:
            raise DatasetError(f"{path}: no images")
        for image in data["images"]:
            check_image_file(self.image_dir / image["file_name"], root, path)
        categories = sorted(data["categories"], key=lambda c: c["id"])
        self.label_to_category_id = [c["id"] for c in categories]
        self.category_to_label = {category_id: i for i, category_id in enumerate(self.label_to_category_id)}
        self.category_names = [c["name"] for c in categories]
        self.num_classes = len(categories)
        self.annotation_path = path
        self.images = sorted(data["images"], key=lambda image: image["id"])
        self.image_ids = [image["id"] for image in self.images]
        self.annotations: dict[int, list[dict]] = defaultdict(list)
        for annotation in data["annotations"]:
            self.annotations[annotation["image_id"]].append(annotation)
        self.coco = COCO()
        self.coco.dataset = data
        with contextlib.redirect_stdout(io.StringIO()):
            self.coco.createIndex()
        self.transforms = build_transforms(size, train) if transforms is None else transforms

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> tuple[Tensor, dict[str, Any]]:
        info = self.images[index]
        file = self.image_dir / info["file_name"]
        image = read_image(file)
        if (image.height, image.width) != (info["height"], info["width"]):
            raise DatasetError(f"{file}: image is {image.width}x{image.height} but {self.annotation_path} says "
                               f"{info['width']}x{info['height']} (boxes would be misplaced)")
        annotations = self.annotations[info["id"]]
        xywh = torch.tensor([a["bbox"] for a in annotations], dtype=torch.float32).reshape(-1, 4)
        xyxy = torch.cat([xywh[:, :2], xywh[:, :2] + xywh[:, 2:]], dim=1)
        xyxy[:, 0::2] = xyxy[:, 0::2].clamp(0, image.width)
        xyxy[:, 1::2] = xyxy[:, 1::2].clamp(0, image.height)
        boxes = tv_tensors.BoundingBoxes(xyxy,
                                         format=tv_tensors.BoundingBoxFormat.XYXY,
                                         canvas_size=(image.height, image.width))
        image, boxes = self.transforms(image, boxes)
        labels = [self.category_to_label[a["category_id"]] for a in annotations]
        target = {
            "boxes": boxes.as_subclass(Tensor),
            "labels": torch.tensor(labels, dtype=torch.int64),
            "iscrowd": torch.tensor([bool(a["iscrowd"]) for a in annotations], dtype=torch.bool),
            "image_id": info["id"],
            "orig_size": (info["height"], info["width"]),
        }
        return image, target
