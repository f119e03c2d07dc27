"""Dataset readers: shapes, label mappings, augmentation that moves boxes and masks with the image,
the real mini datasets, and an error naming the file for each kind of bad input."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from unihead.data import CocoDetection, DatasetError, VocSegmentation, build_dataset, collate
from unihead.data.categories import COCO_CATEGORIES, IMAGENETTE_WNIDS
from unihead.sources.synthetic import SEG_CLASSES

SIZE = 64


def test_synthetic_readers_give_model_ready_tensors(synthetic_root):
    seg = build_dataset("seg", synthetic_root, "train", SIZE, train=False)
    det = build_dataset("det", synthetic_root, "train", SIZE, train=False)
    cls = build_dataset("cls", synthetic_root, "val", SIZE, train=False)
    assert (len(seg), len(det), len(cls)) == (24, 24, 12)
    images, masks = collate([seg[i] for i in range(4)])
    assert images.shape == (4, 3, SIZE, SIZE) and images.dtype == torch.float32
    assert masks.shape == (4, SIZE, SIZE) and masks.dtype == torch.int64
    assert set(masks.unique().tolist()) <= {0, 255, *SEG_CLASSES}
    images, targets = collate([det[i] for i in range(3)])
    assert isinstance(targets, list) and set(targets[0]) == {"boxes", "labels", "iscrowd", "image_id", "orig_size"}
    boxes = torch.cat([t["boxes"] for t in targets])
    assert boxes.shape[1] == 4 and (boxes >= 0).all() and (boxes <= 1).all()
    assert (boxes[:, 2:] > boxes[:, :2]).all()
    images, labels = collate([cls[i] for i in range(12)])
    assert labels.tolist() == sorted(labels.tolist()) and set(labels.tolist()) == set(range(10))
    assert cls.classes == list(IMAGENETTE_WNIDS)


def test_detection_labels_map_to_original_category_ids_and_back(synthetic_root):
    det = CocoDetection(synthetic_root / "mini_coco_det", "train", SIZE, train=False)
    assert det.label_to_category_id == [cid for cid, _ in COCO_CATEGORIES]
    assert det.category_names == [f"hue {degrees}" for degrees in range(0, 360, 36)]
    for index in range(len(det)):
        _, target = det[index]
        annotations = det.coco.loadAnns(det.coco.getAnnIds(imgIds=target["image_id"]))
        assert [det.label_to_category_id[label] for label in target["labels"].tolist()] == \
            [a["category_id"] for a in annotations]
        assert target["iscrowd"].tolist() == [bool(a["iscrowd"]) for a in annotations]


def _hand_made_detection(root: Path, width: int = 100, height: int = 50,
                         bbox: tuple[int, int, int, int] = (10, 10, 30, 20)) -> Path:
    """One ``width`` x ``height`` image with one box (x, y, w, h; default x 10..40, y 10..30) of category 7."""
    split = root / "mini_coco_det" / "train"
    (split / "images").mkdir(parents=True)
    pixels = np.zeros((height, width, 3), dtype=np.uint8)
    pixels[:, :20] = 255
    Image.fromarray(pixels).save(split / "images" / "a.jpg")
    document = {"images": [{"id": 5, "file_name": "a.jpg", "width": width, "height": height}],
                "annotations": [{"id": 1, "image_id": 5, "category_id": 7, "bbox": list(bbox),
                                 "area": bbox[2] * bbox[3], "iscrowd": 0}],
                "categories": [{"id": 7, "name": "thing"}]}
    (split / "annotations.json").write_text(json.dumps(document))
    return root / "mini_coco_det"


def test_resize_and_flip_move_the_boxes_with_the_image(tmp_path):
    root = _hand_made_detection(tmp_path)
    plain_image, plain = CocoDetection(root, "train", SIZE, train=False)[0]
    # resize 100x50 -> 64x64 keeps the box at x 0.1..0.4, y 0.2..0.6 of the image (6.4..25.6, 12.8..38.4 px)
    torch.testing.assert_close(plain["boxes"], torch.tensor([[0.1, 0.2, 0.4, 0.6]]))
    assert plain["orig_size"] == (50, 100) and plain["image_id"] == 5
    reader = CocoDetection(root, "train", SIZE, train=True)
    flipped_seen = False
    for seed in range(12):
        torch.manual_seed(seed)
        image, target = reader[0]
        if torch.allclose(image, plain_image):
            torch.testing.assert_close(target["boxes"], plain["boxes"])
        else:
            torch.testing.assert_close(image, plain_image.flip(-1), atol=1e-5, rtol=0)
            torch.testing.assert_close(target["boxes"], torch.tensor([[1 - 0.4, 0.2, 1 - 0.1, 0.6]]))
            flipped_seen = True
    assert flipped_seen


def test_boxes_are_fractions_of_the_resized_image(tmp_path):
    # a 20x10 box at (8, 12) in a 40x40 image: x 8..28, y 12..22, i.e. x 0.2..0.7, y 0.3..0.55 of the image,
    # which the resize to 64x64 (12.8..44.8 px, 19.2..35.2 px) keeps
    root = _hand_made_detection(tmp_path, width=40, height=40, bbox=(8, 12, 20, 10))
    _, target = CocoDetection(root, "train", SIZE, train=False)[0]
    torch.testing.assert_close(target["boxes"], torch.tensor([[0.2, 0.3, 0.7, 0.55]]))
    assert target["orig_size"] == (40, 40)


def test_flip_moves_the_mask_with_the_image(synthetic_root):
    plain_image, plain_mask = VocSegmentation(synthetic_root / "mini_voc_seg", "train", SIZE, train=False)[0]
    reader = VocSegmentation(synthetic_root / "mini_voc_seg", "train", SIZE, train=True)
    outcomes = set()
    for seed in range(12):
        torch.manual_seed(seed)
        image, mask = reader[0]
        flipped = not torch.equal(mask, plain_mask)
        outcomes.add(flipped)
        want_image, want_mask = (plain_image.flip(-1), plain_mask.flip(-1)) if flipped else (plain_image, plain_mask)
        torch.testing.assert_close(image, want_image, atol=1e-5, rtol=0)
        assert torch.equal(mask, want_mask)
    assert outcomes == {True, False}


@pytest.mark.realdata
def test_real_mini_datasets(mini_root):
    for task in ("seg", "det", "cls"):
        assert len(build_dataset(task, mini_root, "train", 128, False)) == 240
        assert len(build_dataset(task, mini_root, "val", 128, False)) == 60
    seg = VocSegmentation(mini_root / "mini_voc_seg", "val", 128, train=False)
    values = set()
    for image_id in seg.ids:
        values |= set(seg.read_mask(image_id).unique().tolist())
    assert 255 in values and 0 in values and max(v for v in values if v != 255) <= 20
    det = CocoDetection(mini_root / "mini_coco_det", "train", 128, train=False)
    assert det.label_to_category_id == [1, 14, 39, 42, 52, 65, 67, 73, 74, 88]
    assert any(a["iscrowd"] for a in det.coco.dataset["annotations"])
    assert len(det.coco.dataset["annotations"]) == 793
    image, target = det[0]
    assert image.shape == (3, 128, 128) and target["boxes"].shape[0] == len(target["labels"])
    cls = build_dataset("cls", mini_root, "train", 128, False)
    assert cls.classes == list(IMAGENETTE_WNIDS)


def _copy(synthetic_root: Path, tmp_path: Path, folder: str) -> Path:
    return Path(shutil.copytree(synthetic_root / folder, tmp_path / folder))


def test_missing_split_folder(synthetic_root, tmp_path):
    root = _copy(synthetic_root, tmp_path, "mini_voc_seg")
    with pytest.raises(DatasetError, match=r"mini_voc_seg/test: segmentation 'test' split folder not found"):
        VocSegmentation(root, "test", SIZE, train=False)


def test_image_without_mask_and_mask_without_image(synthetic_root, tmp_path):
    root = _copy(synthetic_root, tmp_path, "mini_voc_seg")
    (root / "train" / "SegmentationClass" / "synth_train_00003.png").unlink()
    with pytest.raises(DatasetError,
                       match=r"SegmentationClass/synth_train_00003.png: file not found \(1 masks missing"):
        VocSegmentation(root, "train", SIZE, train=False)
    (root / "train" / "JPEGImages" / "synth_train_00003.jpg").unlink()
    (root / "train" / "JPEGImages" / "synth_train_00004.jpg").unlink()
    with pytest.raises(DatasetError, match=r"JPEGImages/synth_train_00004.jpg: file not found \(1 images missing"):
        VocSegmentation(root, "train", SIZE, train=False)


def test_unreadable_image_is_named_when_loaded(synthetic_root, tmp_path):
    root = _copy(synthetic_root, tmp_path, "mini_voc_seg")
    bad = root / "train" / "JPEGImages" / "synth_train_00000.jpg"
    bad.write_bytes(bad.read_bytes()[:200])
    reader = VocSegmentation(root, "train", SIZE, train=False)
    with pytest.raises(DatasetError, match=r"synth_train_00000.jpg: unreadable image"):
        reader[0]
    bad.write_bytes(b"not a jpeg at all")
    with pytest.raises(DatasetError, match=r"synth_train_00000.jpg: unreadable image"):
        reader[0]


def test_mask_with_unknown_class_value(synthetic_root, tmp_path):
    root = _copy(synthetic_root, tmp_path, "mini_voc_seg")
    path = root / "train" / "SegmentationClass" / "synth_train_00001.png"
    mask = Image.open(path)
    pixels = np.array(mask)
    pixels[0, :3] = [21, 30, 30]
    broken = Image.fromarray(pixels, mode="P")
    broken.putpalette(mask.getpalette())
    broken.save(path)
    reader = VocSegmentation(root, "train", SIZE, train=False)
    with pytest.raises(DatasetError, match=r"synth_train_00001.png: mask values \[21, 30\] are no class"):
        reader[1]


def _edit_annotations(root: Path, split: str, edit) -> Path:
    path = root / split / "annotations.json"
    document = json.loads(path.read_text())
    edit(document)
    path.write_text(json.dumps(document))
    return path


def test_missing_annotation_file_and_missing_listed_image(synthetic_root, tmp_path):
    root = _copy(synthetic_root, tmp_path, "mini_coco_det")
    image = root / "val" / "images" / "000000500003.jpg"
    image.unlink()
    with pytest.raises(DatasetError,
                       match=r"000000500003.jpg: image file not found \(listed in .*val/annotations.json"):
        CocoDetection(root, "val", SIZE, train=False)
    (root / "val" / "annotations.json").unlink()
    with pytest.raises(DatasetError, match=r"val/annotations.json: annotation file not found"):
        CocoDetection(root, "val", SIZE, train=False)


def test_annotation_pointing_at_no_image(synthetic_root, tmp_path):
    root = _copy(synthetic_root, tmp_path, "mini_coco_det")
    _edit_annotations(root, "train", lambda d: d["annotations"][2].update(image_id=999))
    with pytest.raises(DatasetError, match=r"train/annotations.json: annotation 3 points at image id 999"):
        CocoDetection(root, "train", SIZE, train=False)


def test_annotation_with_unknown_category(synthetic_root, tmp_path):
    root = _copy(synthetic_root, tmp_path, "mini_coco_det")
    _edit_annotations(root, "train", lambda d: d["annotations"][0].update(category_id=2))
    with pytest.raises(DatasetError,
                       match=r"train/annotations.json: annotation 1 has category id 2, which no category"):
        CocoDetection(root, "train", SIZE, train=False)


def test_train_and_val_that_name_a_category_differently(synthetic_root, tmp_path):
    root = _copy(synthetic_root, tmp_path, "mini_coco_det")
    _edit_annotations(root, "val", lambda d: d["categories"][1].update(name="fire hydrant"))
    with pytest.raises(DatasetError, match=r"train/annotations.json and .*val/annotations.json disagree on category "
                                           r"id 14: 'hue 36' vs 'fire hydrant'"):
        CocoDetection(root, "train", SIZE, train=False)


def test_image_of_another_size_than_its_annotation(synthetic_root, tmp_path):
    root = _copy(synthetic_root, tmp_path, "mini_coco_det")
    _edit_annotations(root, "train", lambda d: d["images"][0].update(width=999))
    reader = CocoDetection(root, "train", SIZE, train=False)
    with pytest.raises(DatasetError, match=r"000000000001.jpg: image is \d+x\d+ but .* says 999x"):
        reader[0]


def test_empty_class_folder(synthetic_root, tmp_path):
    root = _copy(synthetic_root, tmp_path, "imagenette_160")
    for image in (root / "train" / "n03000684").iterdir():
        image.unlink()
    with pytest.raises(DatasetError, match=r"train/n03000684: class folder has no images"):
        build_dataset("cls", tmp_path, "train", SIZE, train=False)


def test_unknown_task():
    with pytest.raises(ValueError, match=r"unknown task 'depth'; expected one of \['seg', 'det', 'cls'\]"):
        build_dataset("depth", Path("."), "train", SIZE, train=False)


def test_train_and_val_with_different_category_sets(synthetic_root, tmp_path):
    root = _copy(synthetic_root, tmp_path, "mini_coco_det")

    def drop_teddy_bear(document: dict) -> None:
        document["categories"] = [c for c in document["categories"] if c["id"] != 88]
        document["annotations"] = [a for a in document["annotations"] if a["category_id"] != 88]

    _edit_annotations(root, "val", drop_teddy_bear)
    with pytest.raises(DatasetError, match=r"train/annotations.json and .*val/annotations.json disagree on category "
                                           r"id 88: 'hue 324' vs no such category"):
        CocoDetection(root, "val", SIZE, train=False)


def test_image_without_annotations_has_empty_target(synthetic_root, tmp_path):
    root = _copy(synthetic_root, tmp_path, "mini_coco_det")
    _edit_annotations(root, "train", lambda d: d.update(annotations=[a for a in d["annotations"]
                                                                     if a["image_id"] != 1]))
    image, target = CocoDetection(root, "train", SIZE, train=True)[0]
    assert target["image_id"] == 1 and image.shape == (3, SIZE, SIZE)
    assert target["boxes"].shape == (0, 4) and target["boxes"].dtype == torch.float32
    assert target["labels"].shape == (0,) and target["labels"].dtype == torch.int64
    assert target["iscrowd"].shape == (0,) and target["iscrowd"].dtype == torch.bool


def test_split_without_images(synthetic_root, tmp_path):
    seg = _copy(synthetic_root, tmp_path, "mini_voc_seg")
    for folder in ("JPEGImages", "SegmentationClass"):
        for file in (seg / "val" / folder).iterdir():
            file.unlink()
    with pytest.raises(DatasetError, match=r"val/JPEGImages: no .jpg images"):
        VocSegmentation(seg, "val", SIZE, train=False)
    det = _copy(synthetic_root, tmp_path, "mini_coco_det")
    _edit_annotations(det, "val", lambda d: d.update(images=[], annotations=[]))
    with pytest.raises(DatasetError, match=r"val/annotations.json: no images"):
        CocoDetection(det, "val", SIZE, train=False)


def test_unreadable_detection_image_is_named_when_loaded(synthetic_root, tmp_path):
    root = _copy(synthetic_root, tmp_path, "mini_coco_det")
    (root / "train" / "images" / "000000000002.jpg").write_bytes(b"\xff\xd8garbage")
    reader = CocoDetection(root, "train", SIZE, train=False)
    with pytest.raises(DatasetError, match=r"000000000002.jpg: unreadable image"):
        reader[1]
