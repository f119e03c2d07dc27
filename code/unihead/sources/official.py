"""Building the three mini datasets from their official sources, byte for byte the same on every run.

Images and masks are the archives' own bytes (never re-encoded), and the COCO annotation files are
written with sorted keys, so two builds from the same archives and id lists are identical files.
The builder writes into the folder it is given: ``unihead.sources.prepare`` gives it a hidden staging
folder, validates what it built and only then moves it into the data root, so a failed build leaves
the data root as it was. Archive members are read up to a size cap per kind of file.
"""

from __future__ import annotations

import json
import re
import shutil
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from unihead.config import OfficialConfig
from unihead.data.errors import DatasetError
from unihead.data.images import read_image
from unihead.sources.archives import SizeCap, extract_files, member_names
from unihead.sources.download import fetch, fetch_verified
from unihead.sources.subsets import SPLITS, Subsets, read_subsets
from unihead.tasks import CLS, DATASET_DIRS, DET, SEG

VOC_MEMBER = "VOCdevkit/VOC2012/{folder}/{id}{suffix}"
COCO_INSTANCES_MEMBER = "annotations/instances_val2017.json"
COCO_ZIP_MEMBER = "val2017/{file_name}"
COCO_FILE_NAME = re.compile(r"[\w-]+\.jpg")
"""A COCO image's file name: used in paths and URLs, so nothing that could climb out of a folder."""
IMAGENETTE_FOLDERS = ("imagenette2-160/train/", "imagenette2-160/val/")
"""The archive's own split folders; a listed file is looked up in both."""
IMAGENET_VAL_FILE = re.compile(r"ILSVRC2012_val_\d{8}\.JPEG")
"""An ImageNet-1k validation image's file name, as imagenette2-160's val/ folder holds them."""
IMAGE_CAP = SizeCap(50 << 20, "a listed image or mask")
"""50 MB: the official images and masks are a few hundred KB at most."""
ANNOTATIONS_CAP = SizeCap(1 << 30, "the COCO annotations file")
"""1 GB: the official instances_val2017.json is about 25 MB (instances_train2017.json about 450 MB)."""


class OfficialBuilder:
    """Downloads (cached in ``config.cache``) and assembles one dataset folder per task under ``out``."""

    def __init__(self, config: OfficialConfig, out: Path, log: Callable[[str], None] = print) -> None:
        self.config = config
        self.out = out
        self.cache = Path(config.cache)
        self.subsets: Subsets = read_subsets(Path(config.subsets))
        self.log = log

    def build_all(self) -> None:
        for task, build in ((SEG, self._build_voc), (DET, self._build_coco), (CLS, self._build_imagenette)):
            build(self.out / DATASET_DIRS[task])

    def _archive(self, name: str, what: str) -> Path:
        download = getattr(self.config, name)
        self.log(f"{what}: {download.url} (cache {self.cache})")
        return fetch_verified(download, self.cache, retries=self.config.retries, timeout_s=self.config.timeout_s,
                              what=what)

    def _lists(self, task: str) -> str:
        return " / ".join(str(self.subsets.list_file(task, split)) for split in SPLITS)

    def _build_voc(self, out: Path) -> None:
        archive = self._archive("voc", "PASCAL VOC 2012 trainval")
        targets = {}
        for split, ids in self.subsets.ids[SEG].items():
            for image_id in ids:
                for folder, suffix in (("JPEGImages", ".jpg"), ("SegmentationClass", ".png")):
                    member = VOC_MEMBER.format(folder=folder, id=image_id, suffix=suffix)
                    targets[member] = out / split / folder / f"{image_id}{suffix}"
        extract_files(archive, targets, self._lists(SEG), IMAGE_CAP)

    def _build_imagenette(self, out: Path) -> None:
        archive = self._archive("imagenette", "Imagenette 160 px")
        ids = dict(self.subsets.ids[CLS])
        if self.config.imagenette_val == "imagenet_val":
            ids["val"] = imagenet_val_names(archive, Counter(name.split("/")[0] for name in ids["val"]))
            self.log(f"Imagenette validation: {len(ids['val'])} ImageNet validation images from "
                     f"{IMAGENETTE_FOLDERS[1]} (data.official.imagenette_val: imagenet_val)")
        wanted = {name: out / split / name for split, names in ids.items() for name in names}

        def select(member: str) -> Path | None:
            for folder in IMAGENETTE_FOLDERS:
                if member.startswith(folder):
                    return wanted.get(member[len(folder):])
            return None

        extract_files(archive, wanted, f"{self._lists(CLS)} (looked up in {' and '.join(IMAGENETTE_FOLDERS)})",
                      IMAGE_CAP, select)

    def _build_coco(self, out: Path) -> None:
        archive = self._archive("coco_annotations", "COCO 2017 annotations")
        instances_file = out / "instances_val2017.json"
        extract_files(archive, {COCO_INSTANCES_MEMBER: instances_file}, "the COCO 2017 annotations archive",
                      ANNOTATIONS_CAP)
        instances = json.loads(instances_file.read_text())
        instances_file.unlink()
        categories = self._coco_categories(instances, archive)
        images_by_id = {image["id"]: image for image in instances["images"]}
        splits = {}
        for split, ids in self.subsets.ids[DET].items():
            missing = [i for i in ids if int(i) not in images_by_id]
            if missing:
                raise DatasetError(f"{self.subsets.list_file(DET, split)}: image ids not in COCO 2017 val "
                                   f"({archive}): {missing[:5]}")
            images = [images_by_id[int(i)] for i in ids]
            for image in images:
                if not COCO_FILE_NAME.fullmatch(str(image.get("file_name"))):
                    raise DatasetError(f"{archive}: image {image['id']} has file_name {image.get('file_name')!r}; "
                                       f"expected a plain name like 000000000139.jpg")
            splits[split] = images
            subset = coco_subset(instances, images, categories)
            (out / split).mkdir(parents=True)
            (out / split / "annotations.json").write_text(json.dumps(subset, sort_keys=True, indent=1) + "\n")
        if self.config.coco_images == "zip":
            self._coco_images_from_zip(splits, out)
        else:
            self._coco_images_from_server(splits, out)

    def _coco_categories(self, instances: dict[str, Any], archive: Path) -> list[dict[str, Any]]:
        by_id = {category["id"]: category for category in instances["categories"]}
        for category_id, name in self.subsets.coco_categories.items():
            if by_id.get(category_id, {}).get("name") != name:
                raise DatasetError(f"{self.subsets.folder}: category {category_id} {name!r} does not match "
                                   f"{COCO_INSTANCES_MEMBER} in {archive}")
        return [by_id[category_id] for category_id in sorted(self.subsets.coco_categories)]

    def _coco_images_from_zip(self, splits: dict[str, list[dict[str, Any]]], out: Path) -> None:
        archive = self._archive("coco_val_zip", "COCO 2017 val images")
        targets = {COCO_ZIP_MEMBER.format(file_name=image["file_name"]): out / split / "images" / image["file_name"]
                   for split, images in splits.items() for image in images}
        extract_files(archive, targets, self._lists(DET), IMAGE_CAP)

    def _coco_images_from_server(self, splits: dict[str, list[dict[str, Any]]], out: Path) -> None:
        cache = self.cache / "coco_val2017"
        self.log(f"COCO 2017 val images: {sum(map(len, splits.values()))} files from "
                 f"{self.config.coco_image_url} (cache {cache})")
        for split, images in splits.items():
            for image in images:
                url = self.config.coco_image_url.format(file_name=image["file_name"])
                cached = fetch(url, cache / image["file_name"], retries=self.config.retries,
                               timeout_s=self.config.timeout_s, verify=image_size_verifier(image),
                               what=f"COCO image {image['id']}")
                dest = out / split / "images" / image["file_name"]
                dest.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(cached, dest)


def coco_subset(instances: dict[str, Any], images: list[dict[str, Any]],
                categories: list[dict[str, Any]]) -> dict[str, Any]:
    """The COCO file for ``images``: their annotations in ``categories`` (crowd ones included), original ids."""
    image_ids = {image["id"] for image in images}
    category_ids = {category["id"] for category in categories}
    annotations = sorted((a for a in instances["annotations"]
                          if a["image_id"] in image_ids and a["category_id"] in category_ids), key=lambda a: a["id"])
    licenses = sorted({image["license"] for image in images if "license" in image})
    return {
        "info": instances.get("info", {}),
        "licenses": [license for license in instances.get("licenses", []) if license["id"] in licenses],
        "categories": categories,
        "images": images,
        "annotations": annotations,
    }


def imagenet_val_names(archive: Path, per_class: Counter[str]) -> list[str]:
    """``<wnid>/<file>`` of the first ``per_class[wnid]`` ImageNet validation images (by name) of each class in
    the archive's val/ folder: a deterministic draw of images that ImageNet pretraining has not seen."""
    found: dict[str, list[str]] = {wnid: [] for wnid in per_class}
    folder = IMAGENETTE_FOLDERS[1]
    for member in member_names(archive):
        wnid, _, file = member[len(folder):].partition("/") if member.startswith(folder) else ("", "", "")
        if wnid in found and IMAGENET_VAL_FILE.fullmatch(file):
            found[wnid].append(f"{wnid}/{file}")
    short = {wnid: len(found[wnid]) for wnid, count in per_class.items() if len(found[wnid]) < count}
    if short:
        raise DatasetError(f"{archive}: {folder} holds too few ImageNet validation images (ILSVRC2012_val_*) for "
                           f"data.official.imagenette_val: imagenet_val; found per class {short}, need "
                           f"{dict(per_class)}")
    return [name for wnid in per_class for name in sorted(found[wnid])[:per_class[wnid]]]


def image_size_verifier(image: dict[str, Any]) -> Callable[[Path], str | None]:
    """COCO publishes no per-image checksum: a fetched image must decode at the size its annotation records."""

    def verify(path: Path) -> str | None:
        try:
            size = read_image(path, mode="").size
        except DatasetError as err:
            return f"is not a readable image ({err})"
        expected = (image["width"], image["height"])
        if size != expected:
            return f"is {size[0]}x{size[1]} px, the annotations say {expected[0]}x{expected[1]}"
        return None

    return verify


def build_official(config: OfficialConfig, out: Path, log: Callable[[str], None] = print) -> None:
    """Build mini_voc_seg/, mini_coco_det/ and imagenette_160/ under ``out`` from the official sources."""
    OfficialBuilder(config, out, log).build_all()
