"""Building the mini datasets from the official sources, served as fake archives from 127.0.0.1.

The archives have the real ones' inner layout (VOCdevkit/VOC2012/..., annotations/instances_val2017.json,
val2017/<file>, imagenette2-160/{train,val}/<wnid>/...) and hold more than the id lists ask for.
"""

from __future__ import annotations

import hashlib
import http.server
import io
import json
import shutil
import stat
import tarfile
import threading
import zipfile
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from unihead.cli import main
from unihead.config import DataConfig, Download, OfficialConfig
from unihead.data.categories import COCO_CATEGORIES, IMAGENETTE_WNIDS, voc_palette
from unihead.data.errors import DatasetError, DownloadError
from unihead.files import sha256_file
from unihead.sources.archives import SizeCap, extract_selected
from unihead.sources.manifest import MANIFEST
from unihead.sources.prepare import RECORD, prepare_data
from unihead.sources.subsets import read_subsets

VOC_IDS = {"train": ["2007_000032", "2008_000101"], "val": ["2009_000200"]}
VOC_UNLISTED = "2010_000300"
COCO_IDS = {"train": [139, 285], "val": [632]}
COCO_UNLISTED = 724
EXTRA_CATEGORY = {"id": 3, "name": "car", "supercategory": "vehicle"}
CATEGORIES = dict(COCO_CATEGORIES)


def jpeg(width: int, height: int, seed: int) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def voc_mask(width: int, height: int) -> bytes:
    values = np.zeros((height, width), np.uint8)
    values[2:8, 3:10] = 15
    values[1, :] = 255
    image = Image.fromarray(values, mode="P")
    image.putpalette(voc_palette())
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def write_tar(path: Path, members: dict[str, bytes], mode: str = "w") -> None:
    with tarfile.open(path, mode) as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


def write_zip(path: Path, members: dict[str, bytes]) -> None:
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)


def md5(path: Path) -> str:
    return "md5:" + hashlib.md5(path.read_bytes()).hexdigest()


class Server(http.server.ThreadingHTTPServer):
    """Serves a folder with HTTP range requests; can cut its first responses short; logs every request."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.log: list[tuple[str, str | None]] = []
        self.truncate: dict[str, int] = {}
        """Path -> how many more responses to cut off halfway."""
        self.refuse: dict[str, list[int]] = {}
        """Path -> HTTP error statuses to answer its next requests with, in order."""
        super().__init__(("127.0.0.1", 0), RangeHandler)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class RangeHandler(http.server.BaseHTTPRequestHandler):
    server: Server

    def do_GET(self) -> None:  # noqa: N802 (the http.server API)
        self.server.log.append((self.path, self.headers.get("Range")))
        file = self.server.folder / self.path.lstrip("/")
        if not file.is_file():
            self.send_error(404)
            return
        if self.server.refuse.get(self.path):
            self.send_error(self.server.refuse[self.path].pop(0))
            return
        data = file.read_bytes()
        start = int(self.headers["Range"].split("=")[1].split("-")[0]) if self.headers.get("Range") else 0
        if start >= len(data):
            self.send_error(416)
            return
        self.send_response(206 if start else 200)
        self.send_header("Content-Length", str(len(data) - start))
        self.end_headers()
        body = data[start:]
        if self.server.truncate.get(self.path, 0) > 0:
            self.server.truncate[self.path] -= 1
            body = body[: len(body) // 2]
            self.close_connection = True
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


def serve(folder: Path) -> Server:
    server = Server(folder)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.fixture(scope="module")
def sources(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Fake official archives and id lists; returns what the tests need to know about them."""
    base = tmp_path_factory.mktemp("official")
    served = base / "served"
    served.mkdir()
    subsets = base / "subsets"
    subsets.mkdir()
    expected: dict[str, bytes] = {}

    voc = {}
    for n, image_id in enumerate([*VOC_IDS["train"], *VOC_IDS["val"], VOC_UNLISTED]):
        voc[f"VOCdevkit/VOC2012/JPEGImages/{image_id}.jpg"] = jpeg(12, 10, n)
        voc[f"VOCdevkit/VOC2012/SegmentationClass/{image_id}.png"] = voc_mask(12, 10)
    voc["VOCdevkit/VOC2012/ImageSets/Segmentation/train.txt"] = b"\n".join(i.encode() for i in VOC_IDS["train"])
    write_tar(served / "VOCtrainval_11-May-2012.tar", voc)
    for split, ids in VOC_IDS.items():
        (subsets / f"mini_voc_seg_{split}.txt").write_text("\n".join(ids) + "\n")
        for image_id in ids:
            expected[f"mini_voc_seg/{split}/JPEGImages/{image_id}.jpg"] = \
                voc[f"VOCdevkit/VOC2012/JPEGImages/{image_id}.jpg"]
            expected[f"mini_voc_seg/{split}/SegmentationClass/{image_id}.png"] = voc_mask(12, 10)

    categories = [{"id": i, "name": name, "supercategory": "s"} for i, name in CATEGORIES.items()]
    images, annotations, coco_files = [], [], {}
    for n, image_id in enumerate([*COCO_IDS["train"], *COCO_IDS["val"], COCO_UNLISTED]):
        name = f"{image_id:012d}.jpg"
        images.append({"id": image_id, "file_name": name, "width": 20 + n, "height": 16, "license": 1 + n % 2})
        coco_files[name] = jpeg(20 + n, 16, 100 + n)
        for k, category_id in enumerate((1, 88, EXTRA_CATEGORY["id"])):
            annotations.append({"id": 1000 * image_id + k, "image_id": image_id, "category_id": category_id,
                                "bbox": [1, 2, 5, 6], "area": 30, "iscrowd": int(k == 1)})
    instances = {"info": {"year": 2017}, "licenses": [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}],
                 "images": images, "annotations": annotations, "categories": [*categories, EXTRA_CATEGORY]}
    write_zip(served / "annotations_trainval2017.zip",
              {"annotations/instances_val2017.json": json.dumps(instances).encode(),
               "annotations/captions_val2017.json": b"{}"})
    write_zip(served / "val2017.zip", {f"val2017/{name}": data for name, data in coco_files.items()})
    (served / "val2017").mkdir()
    for name, data in coco_files.items():
        (served / "val2017" / name).write_bytes(data)
    for split, ids in COCO_IDS.items():
        (subsets / f"mini_coco_det_{split}.txt").write_text("\n".join(map(str, ids)) + "\n")
        for image_id in ids:
            expected[f"mini_coco_det/{split}/images/{image_id:012d}.jpg"] = coco_files[f"{image_id:012d}.jpg"]
    (subsets / "mini_coco_det_categories.json").write_text(json.dumps(
        {"category_ids": list(CATEGORIES), "category_names": list(CATEGORIES.values())}))

    imagenette, lists = {}, {"train": [], "val": []}
    for n, wnid in enumerate(IMAGENETTE_WNIDS):
        for split in ("train", "val"):
            name = f"{wnid}/{wnid}_{split}{n}.JPEG"
            archive_split = "val" if (split, n) == ("train", 0) else split
            data = jpeg(16, 16, 200 + 2 * n + (split == "val"))
            imagenette[f"imagenette2-160/{archive_split}/{name}"] = data
            lists[split].append(name)
            expected[f"imagenette_160/{split}/{name}"] = data
        imagenette[f"imagenette2-160/train/{wnid}/{wnid}_unlisted.JPEG"] = jpeg(16, 16, 999)
        for k in (7, 3, 5):  # ImageNet validation images, not in name order in the archive
            imagenette[f"imagenette2-160/val/{wnid}/ILSVRC2012_val_{1000 * n + k:08d}.JPEG"] = jpeg(16, 16, 300 + k)
    imagenette["imagenette2-160/noisy_imagenette.csv"] = b"path,label\n"
    write_tar(served / "imagenette2-160.tgz", imagenette, "w:gz")
    for split, names in lists.items():
        (subsets / f"imagenette_160_{split}.txt").write_text("\n".join(names) + "\n")

    server = serve(served)
    config = OfficialConfig(
        subsets=str(subsets),
        voc=Download(f"{server.url}/VOCtrainval_11-May-2012.tar", md5(served / "VOCtrainval_11-May-2012.tar")),
        coco_annotations=Download(f"{server.url}/annotations_trainval2017.zip",
                                  md5(served / "annotations_trainval2017.zip")),
        coco_image_url=f"{server.url}/val2017/{{file_name}}",
        coco_val_zip=Download(f"{server.url}/val2017.zip", md5(served / "val2017.zip")),
        imagenette=Download(f"{server.url}/imagenette2-160.tgz", md5(served / "imagenette2-160.tgz")),
        retries=2, timeout_s=10.0)
    yield {"config": config, "server": server, "served": served, "subsets": subsets, "expected": expected,
           "instances": instances}
    server.shutdown()


def build(sources: dict, tmp_path: Path, **changes) -> tuple[Path, dict]:
    official = replace(sources["config"], cache=str(tmp_path / "cache"), **changes)
    root = tmp_path / "data"
    return root, prepare_data(DataConfig(source="official", root=str(root), official=official))


def dataset_files(root: Path) -> dict[str, bytes]:
    """The files of the data root but the COCO annotations and the record of the build."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
            and p.name not in ("annotations.json", RECORD)}


def assert_no_dataset(root: Path) -> None:
    leftovers = sorted(p.name for p in root.iterdir()) if root.exists() else []
    assert not [name for name in leftovers if "mini_" in name or "imagenette" in name], leftovers


def test_builds_exactly_the_listed_files_with_their_original_bytes(sources, tmp_path):
    root, manifest = build(sources, tmp_path)
    assert dataset_files(root) == sources["expected"]
    assert manifest["source"] == "official"
    assert set(manifest["files"]) == set(sources["expected"]) | {f"mini_coco_det/{s}/annotations.json"
                                                                 for s in ("train", "val")}
    assert manifest["files"]["mini_voc_seg/val/SegmentationClass/2009_000200.png"]["sha256"] == \
        sha256_file(root / "mini_voc_seg/val/SegmentationClass/2009_000200.png")
    record = json.loads((root / RECORD).read_text())
    assert record["source"] == "official"
    assert {f"{folder}/{name}": size for folder, files in record["folders"].items() for name, size in files.items()} \
        == {name: entry["bytes"] for name, entry in manifest["files"].items()}

    train = json.loads((root / "mini_coco_det/train/annotations.json").read_text())
    assert [image["id"] for image in train["images"]] == COCO_IDS["train"]
    assert sorted(c["id"] for c in train["categories"]) == sorted(CATEGORIES)
    assert [a["id"] for a in train["annotations"]] == [139000, 139001, 285000, 285001]
    assert [a["iscrowd"] for a in train["annotations"]] == [0, 1, 0, 1]
    assert [lic["id"] for lic in train["licenses"]] == [1, 2]
    val = json.loads((root / "mini_coco_det/val/annotations.json").read_text())
    assert [image["id"] for image in val["images"]] == COCO_IDS["val"]
    assert [lic["id"] for lic in val["licenses"]] == [1]


def test_imagenet_val_draws_the_first_imagenet_validation_images_by_name_per_class(sources, tmp_path):
    root, manifest = build(sources, tmp_path, imagenette_val="imagenet_val")
    folder = root / "imagenette_160" / "val"
    val = sorted(str(path.relative_to(folder)) for path in folder.rglob("*") if path.is_file())
    assert val == sorted(f"{wnid}/ILSVRC2012_val_{1000 * n + 3:08d}.JPEG" for n, wnid in enumerate(IMAGENETTE_WNIDS))
    assert (folder / val[0]).read_bytes() == jpeg(16, 16, 303)
    train = {k: v for k, v in dataset_files(root).items() if k.startswith("imagenette_160/train/")}
    assert train == {k: v for k, v in sources["expected"].items() if k.startswith("imagenette_160/train/")}
    assert sorted(name for name in manifest["files"] if name.startswith("imagenette_160/val/")) == \
        [f"imagenette_160/val/{name}" for name in val]


def test_imagenet_val_with_too_few_validation_images_names_the_archive_and_the_class(sources, tmp_path):
    subsets = tmp_path / "subsets"
    shutil.copytree(sources["subsets"], subsets)
    listed = (subsets / "imagenette_160_val.txt").read_text()
    first = listed.split("/")[0]
    (subsets / "imagenette_160_val.txt").write_text(listed + "\n".join(f"{first}/{first}_extra{k}.JPEG"
                                                                      for k in range(3)) + "\n")
    with pytest.raises(DatasetError, match=rf"imagenette2-160.tgz: imagenette2-160/val/ holds too few ImageNet "
                                           rf"validation images .* found per class {{'{first}': 3}}, need"):
        build(sources, tmp_path, imagenette_val="imagenet_val", subsets=str(subsets))
    assert_no_dataset(tmp_path / "data")


def test_a_second_build_downloads_nothing_and_is_byte_identical(sources, tmp_path):
    server = sources["server"]
    root, first = build(sources, tmp_path)
    requests = len(server.log)
    first_bytes = {**dataset_files(root), "ann": (root / "mini_coco_det/val/annotations.json").read_bytes()}
    _, second = build(sources, tmp_path)
    assert len(server.log) == requests
    assert second == first
    assert {**dataset_files(root), "ann": (root / "mini_coco_det/val/annotations.json").read_bytes()} == first_bytes

    cached = tmp_path / "cache" / "imagenette2-160.tgz"
    cached.write_bytes(cached.read_bytes()[:-10] + b"corrupted!")
    _, third = build(sources, tmp_path)
    assert server.log[requests:] == [("/imagenette2-160.tgz", None)]
    assert third == first


def test_images_from_the_val_zip_equal_those_from_the_image_server(sources, tmp_path):
    root_server, from_server = build(sources, tmp_path / "a")
    root_zip, from_zip = build(sources, tmp_path / "b", coco_images="zip")
    assert {k: v["sha256"] for k, v in from_zip["files"].items()} == \
        {k: v["sha256"] for k, v in from_server["files"].items()}
    assert not (tmp_path / "b" / "cache" / "coco_val2017").exists()
    assert (tmp_path / "b" / "cache" / "val2017.zip").is_file()


def test_a_broken_connection_resumes_where_it_stopped(sources, tmp_path):
    server = sources["server"]
    server.truncate["/VOCtrainval_11-May-2012.tar"] = 1
    start = len(server.log)
    root, _ = build(sources, tmp_path)
    voc_requests = [r for r in server.log[start:] if r[0] == "/VOCtrainval_11-May-2012.tar"]
    size = (sources["served"] / "VOCtrainval_11-May-2012.tar").stat().st_size
    assert voc_requests == [("/VOCtrainval_11-May-2012.tar", None),
                            ("/VOCtrainval_11-May-2012.tar", f"bytes={size // 2}-")]
    assert dataset_files(root) == sources["expected"]


def test_a_rate_limit_is_retried_and_a_complete_partial_file_is_kept(sources, tmp_path):
    server = sources["server"]
    server.refuse["/imagenette2-160.tgz"] = [429]
    voc = sources["served"] / "VOCtrainval_11-May-2012.tar"
    (tmp_path / "cache").mkdir()
    (tmp_path / "cache" / (voc.name + ".part")).write_bytes(voc.read_bytes())
    start = len(server.log)
    root, _ = build(sources, tmp_path)
    assert dataset_files(root) == sources["expected"]
    assert [r for r in server.log[start:] if "imagenette" in r[0]] == [("/imagenette2-160.tgz", None)] * 2
    assert [r for r in server.log[start:] if "VOC" in r[0]] == [(f"/{voc.name}", f"bytes={voc.stat().st_size}-")]


def test_an_annotation_file_name_with_a_path_is_refused(sources, tmp_path):
    instances = json.loads(json.dumps(sources["instances"]))
    instances["images"][0]["file_name"] = "../../escaped.jpg"
    archive = sources["served"] / "annotations_bad.zip"
    write_zip(archive, {"annotations/instances_val2017.json": json.dumps(instances).encode()})
    with pytest.raises(DatasetError, match=r"image 139 has file_name '../../escaped.jpg'; expected a plain name"):
        build(sources, tmp_path, coco_annotations=Download(f"{sources['server'].url}/{archive.name}", md5(archive)))
    assert not list(tmp_path.rglob("escaped.jpg"))


def test_a_symbolic_link_in_a_zip_is_refused(tmp_path):
    archive = tmp_path / "links.zip"
    with zipfile.ZipFile(archive, "w") as handle:
        info = zipfile.ZipInfo("val2017/000000000139.jpg")
        info.external_attr = (stat.S_IFLNK | 0o777) << 16
        handle.writestr(info, "/etc/passwd")
    with pytest.raises(DatasetError, match=r"member 'val2017/000000000139.jpg' is a symbolic link"):
        extract_selected(archive, lambda name: tmp_path / "out" / name, SizeCap(1 << 20, "a test file"))
    assert not (tmp_path / "out").exists()


def test_a_download_that_keeps_failing_is_an_error_and_leaves_no_dataset(sources, tmp_path):
    """The first two datasets are built, but nothing moves into the data root until all three are checked."""
    sources["server"].truncate["/imagenette2-160.tgz"] = 5
    try:
        with pytest.raises(DownloadError, match=r"Imagenette 160 px: could not download http://127.0.0.1:\d+/"
                                                r"imagenette2-160.tgz after 2 attempts"):
            build(sources, tmp_path)
    finally:
        sources["server"].truncate.clear()
    assert list((tmp_path / "data").iterdir()) == []
    assert (tmp_path / "cache" / "imagenette2-160.tgz.part").is_file()


def test_a_wrong_checksum_is_an_error_naming_the_url_and_leaves_nothing_behind(sources, tmp_path):
    wrong = Download(sources["config"].voc.url, "md5:" + "0" * 32)
    with pytest.raises(DownloadError, match=r"VOCtrainval_11-May-2012.tar has md5 [0-9a-f]{32}, expected 0{32}"):
        build(sources, tmp_path, voc=wrong)
    assert_no_dataset(tmp_path / "data")
    assert list((tmp_path / "cache").iterdir()) == []


def test_a_missing_url_is_an_error_naming_it(sources, tmp_path):
    missing = Download(sources["config"].voc.url + ".gone", sources["config"].voc.checksum)
    with pytest.raises(DownloadError, match=r"answered HTTP 404"):
        build(sources, tmp_path, voc=missing)


def test_an_archive_with_a_member_outside_the_target_is_refused(sources, tmp_path):
    evil = tmp_path / "evil.tgz"
    with tarfile.open(sources["served"] / "imagenette2-160.tgz") as original, tarfile.open(evil, "w:gz") as out:
        for member in original:
            out.addfile(member, original.extractfile(member))
        info = tarfile.TarInfo("imagenette2-160/../../escaped.txt")
        info.size = 4
        out.addfile(info, io.BytesIO(b"evil"))
    (sources["served"] / "evil.tgz").write_bytes(evil.read_bytes())
    with pytest.raises(DatasetError, match=r"member 'imagenette2-160/../../escaped.txt' would be written outside"):
        build(sources, tmp_path, imagenette=Download(f"{sources['server'].url}/evil.tgz", md5(evil)))
    assert not list(tmp_path.rglob("escaped.txt"))
    assert list((tmp_path / "data").iterdir()) == []


def test_a_listed_id_missing_from_the_archive_is_an_error_naming_it(sources, tmp_path):
    subsets = tmp_path / "subsets"
    subsets.mkdir()
    for file in sources["subsets"].iterdir():
        (subsets / file.name).write_bytes(file.read_bytes())
    (subsets / "mini_voc_seg_val.txt").write_text("2009_000200\n2011_999999\n")
    with pytest.raises(DatasetError, match=r"2 member\(s\) listed in .*mini_voc_seg_train.txt / .*mini_voc_seg_val.txt"
                                           r" are missing: VOCdevkit/VOC2012/JPEGImages/2011_999999.jpg"):
        build(sources, tmp_path, subsets=str(subsets))
    assert_no_dataset(tmp_path / "data")


def test_id_lists_are_checked(sources, tmp_path):
    subsets = tmp_path / "subsets"
    subsets.mkdir()
    for file in sources["subsets"].iterdir():
        (subsets / file.name).write_bytes(file.read_bytes())
    (subsets / "mini_coco_det_val.txt").write_text("632\n285\n")
    with pytest.raises(DatasetError, match=r"mini_coco_det_val.txt: also listed for train: \['285'\]"):
        read_subsets(subsets)
    (subsets / "mini_coco_det_val.txt").write_text("632\n632\n")
    with pytest.raises(DatasetError, match=r"listed more than once: \['632'\]"):
        read_subsets(subsets)
    (subsets / "mini_coco_det_val.txt").write_text("000000000632.jpg\n")
    with pytest.raises(DatasetError, match=r"entry 1 '000000000632.jpg' is not of the form"):
        read_subsets(subsets)


def test_the_committed_id_lists_define_240_and_60_images_per_dataset():
    subsets = read_subsets(Path(__file__).resolve().parents[1] / "workflow" / "config" / "subsets")
    assert {task: {split: len(ids) for split, ids in splits.items()} for task, splits in subsets.ids.items()} == \
        {task: {"train": 240, "val": 60} for task in ("seg", "det", "cls")}
    assert subsets.coco_categories == CATEGORIES


def test_cli_builds_official_data_into_its_root(sources, tmp_path):
    config = tmp_path / "exp.yaml"
    official = {**asdict(sources["config"]), "cache": str(tmp_path / "cache")}
    config.write_text(yaml.safe_dump({"data": {"source": "official", "root": str(tmp_path / "data"),
                                               "official": official}}))
    assert main(["prepare", "--config", str(config)]) == 0
    manifest = json.loads((tmp_path / "data" / MANIFEST).read_text())
    assert len(manifest["files"]) == len(sources["expected"]) + 2


def test_cli_validates_a_folder_in_place(synthetic_root, tmp_path, capsys):
    assert main(["prepare", "--source", "folder", str(synthetic_root), "--out", str(tmp_path / "m")]) == 0
    manifest = json.loads((tmp_path / "m" / MANIFEST).read_text())
    assert manifest["source"] == "folder" and manifest["root"] == str(synthetic_root)
    assert main(["prepare", "--source", "folder", "--out", str(tmp_path / "m")]) == 2
    assert "a folder to validate is given with --source folder" in capsys.readouterr().err
    assert main(["prepare", "--source", "folder", str(synthetic_root), "--out", "m", "--cache", "c"]) == 2
    assert "--subsets and --cache are options of --source official" in capsys.readouterr().err


@pytest.mark.realdata
def test_cli_validates_the_real_mini_folder(mini_root, tmp_path):
    assert main(["prepare", "--source", "folder", str(mini_root), "--out", str(tmp_path)]) == 0
    manifest = json.loads((tmp_path / MANIFEST).read_text())
    assert len(manifest["files"]) == 2 * 300 + (300 + 2) + 300


@pytest.mark.realdata
def test_the_committed_lists_rebuild_the_shared_mini_datasets(mini_root, tmp_path):
    """Archives laid out like the official ones, filled from ../shared/data/mini (plus its two COCO files
    merged into one instances_val2017.json): the committed lists select exactly its images, with the
    same bytes, and the same COCO images and annotations."""
    served = tmp_path / "served"
    (served / "val2017").mkdir(parents=True)
    voc, imagenette = {}, {}
    instances: dict = {"images": [], "annotations": []}
    for split in ("train", "val"):
        for path in (mini_root / "mini_voc_seg" / split).rglob("*.*"):
            voc[f"VOCdevkit/VOC2012/{path.parent.name}/{path.name}"] = path.read_bytes()
        for path in (mini_root / "imagenette_160" / split).rglob("*.JPEG"):
            imagenette[f"imagenette2-160/{split}/{path.parent.name}/{path.name}"] = path.read_bytes()
        for path in (mini_root / "mini_coco_det" / split / "images").iterdir():
            (served / "val2017" / path.name).write_bytes(path.read_bytes())
        coco = json.loads((mini_root / "mini_coco_det" / split / "annotations.json").read_text())
        instances.update(info=coco["info"], licenses=coco["licenses"], categories=coco["categories"])
        instances["images"] += coco["images"]
        instances["annotations"] += coco["annotations"]
    write_tar(served / "voc.tar", voc)
    write_tar(served / "imagenette.tgz", imagenette, "w:gz")
    write_zip(served / "annotations.zip", {"annotations/instances_val2017.json": json.dumps(instances).encode()})
    server = serve(served)
    try:
        official = OfficialConfig(
            cache=str(tmp_path / "cache"),
            subsets=str(Path(__file__).resolve().parents[1] / "workflow" / "config" / "subsets"),
            voc=Download(f"{server.url}/voc.tar", md5(served / "voc.tar")),
            coco_annotations=Download(f"{server.url}/annotations.zip", md5(served / "annotations.zip")),
            coco_image_url=f"{server.url}/val2017/{{file_name}}",
            imagenette=Download(f"{server.url}/imagenette.tgz", md5(served / "imagenette.tgz")))
        root = tmp_path / "data"
        built = prepare_data(DataConfig(source="official", root=str(root), official=official))["files"]
    finally:
        server.shutdown()
    shared = {str(p.relative_to(mini_root)) for folder in ("mini_voc_seg", "mini_coco_det", "imagenette_160")
              for p in (mini_root / folder).rglob("*") if p.is_file()}
    assert set(built) == shared
    for name, entry in built.items():
        if not name.endswith("annotations.json"):
            assert entry["sha256"] == sha256_file(mini_root / name), name
    for split in ("train", "val"):
        ours = json.loads((root / "mini_coco_det" / split / "annotations.json").read_text())
        theirs = json.loads((mini_root / "mini_coco_det" / split / "annotations.json").read_text())
        for key in ("images", "annotations", "categories"):
            def canonical(records: list) -> list[str]:
                return sorted(json.dumps(record, sort_keys=True) for record in records)

            assert canonical(ours[key]) == canonical(theirs[key]), (split, key)
