"""COCO-JSON detection: ``{split}/images/<file_name>`` + ``{split}/annotations.json`` with original ids."""

from __future__ import annotations

import contextlib
import io
import json
from collections import defaultdict
from pathlib import Path
from typing import Any

import torch
from pycocotools.coco import COCO
from torch import Tensor
from torch.utils.data import Dataset
from torchvision import tv_tensors

from unihead.data.errors import DatasetError
from unihead.data.images import read_image, require_dir
from unihead.data.transforms import build_transforms

ANNOTATIONS = "annotations.json"


def read_annotations(path: Path) -> dict[str, Any]:
    """A COCO annotation file, checked: every annotation points at a known image and category."""
    if not path.is_file():
        raise DatasetError(f"{path}: annotation file not found")
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise DatasetError(f"{path}: not valid JSON ({err})") from err
    for key in ("images", "annotations", "categories"):
        if not isinstance(data.get(key), list):
            raise DatasetError(f"{path}: expected a list under '{key}'")
    image_ids = {image["id"] for image in data["images"]}
    category_ids = {category["id"] for category in data["categories"]}
    for annotation in data["annotations"]:
        if annotation["image_id"] not in image_ids:
            raise DatasetError(f"{path}: annotation {annotation['id']} points at image id {annotation['image_id']}, "
                               "which no image entry has")
        if annotation["category_id"] not in category_ids:
            raise DatasetError(f"{path}: annotation {annotation['id']} has category id {annotation['category_id']}, "
                               f"which no category entry has (ids: {sorted(category_ids)})")
        x, y, w, h = annotation["bbox"]
        if w < 0 or h < 0:
            raise DatasetError(f"{path}: annotation {annotation['id']} has a negative box size {annotation['bbox']}")
    return data


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


class CocoDetection(Dataset):
    """Images with boxes (XYXY in the resized image's pixels), contiguous labels and crowd flags.

    Category ids stay the file's own (``coco``, used by the evaluation); labels are their index in
    sorted id order (``label_to_category_id``).
    """

    def __init__(self, root: Path, split: str, size: int, train: bool) -> None:
        root = Path(root)
        self.image_dir = require_dir(root / split / "images", f"detection '{split}' images")
        path = root / split / ANNOTATIONS
        data = read_annotations(path)
        check_category_agreement(sorted(root.glob(f"*/{ANNOTATIONS}")))
        if not data["images"]:
            raise DatasetError(f"{path}: no images")
        for image in data["images"]:
            if not (self.image_dir / image["file_name"]).is_file():
                raise DatasetError(f"{self.image_dir / image['file_name']}: image file not found "
                                   f"(listed in {path})")
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
        self.transforms = build_transforms(size, train)

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
        boxes = tv_tensors.BoundingBoxes(torch.cat([xywh[:, :2], xywh[:, :2] + xywh[:, 2:]], dim=1),
                                         format=tv_tensors.BoundingBoxFormat.XYXY,
                                         canvas_size=(image.height, image.width))
        image, boxes = self.transforms(image, boxes)
        labels = [self.category_to_label[a["category_id"]] for a in annotations]
        target = {
            "boxes": boxes.as_subclass(Tensor),
            "labels": torch.tensor(labels, dtype=torch.int64),
            "iscrowd": torch.tensor([bool(a.get("iscrowd", 0)) for a in annotations], dtype=torch.bool),
            "image_id": info["id"],
            "orig_size": (info["height"], info["width"]),
        }
        return image, target
