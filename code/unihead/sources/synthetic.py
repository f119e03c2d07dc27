"""Synthetic datasets in the three on-disk formats: coloured shapes on textured grey backgrounds.

Labels are derived from what is drawn: a class is a colour (ten hues evenly spaced around the colour
wheel, far apart even after jitter and JPEG), and the shape is drawn at random as a nuisance. A network
trained from scratch learns colour within a few epochs at 64-128 px on a CPU but not shape, so every
task can be learned in the demo's budget (with shape-defined classes it stayed at chance). The output
is byte-identical for the same arguments: it is what the tests and the demo train on, through the
same readers as the real data.
"""

from __future__ import annotations

import colorsys
import json
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from unihead.config import SYNTHETIC_MIN_IMAGES, SYNTHETIC_MIN_SIZE
from unihead.data.categories import COCO_CATEGORIES, IMAGENETTE_WNIDS, voc_palette
from unihead.tasks import SEG_IGNORE_INDEX

SHAPES = ("circle", "square", "triangle", "diamond", "cross")
CLASS_COLOURS = tuple(tuple(round(255 * c) for c in colorsys.hsv_to_rgb(i / 10, 0.9, 0.95)) for i in range(10))
"""The colour of each of the 10 detection and classification classes: hues 36 degrees apart."""
SEG_CLASSES = {1: CLASS_COLOURS[0], 2: CLASS_COLOURS[2], 3: CLASS_COLOURS[4], 8: CLASS_COLOURS[6],
               15: CLASS_COLOURS[8]}
"""Segmentation classes used (VOC ids: aeroplane, bicycle, bird, cat, person) and their colour."""
CROWD_FRACTION = 0.08
JPEG_QUALITY = 95
SPLIT_SEEDS = {"train": 0, "val": 1}


def _background(rng: np.random.Generator, width: int, height: int) -> Image.Image:
    """Greyish texture: a gradient, stripes of random direction and frequency, and pixel noise."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    angle, frequency = rng.uniform(0, np.pi), rng.uniform(0.05, 0.3)
    stripes = 25 * np.sin(frequency * (x * np.cos(angle) + y * np.sin(angle)))
    gradient = rng.uniform(-40, 40) * x / width + rng.uniform(-40, 40) * y / height
    base = rng.uniform(90, 170) + stripes + gradient
    tint = rng.uniform(-15, 15, size=3)
    pixels = base[..., None] + tint + rng.normal(0, 12, size=(height, width, 3))
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


def _draw_shape(draw: ImageDraw.ImageDraw, shape: str, box: tuple[int, int, int, int], fill, outline=None,
                width: int = 0) -> None:
    x0, y0, x1, y1 = box
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    if shape == "circle":
        draw.ellipse(box, fill=fill, outline=outline, width=width)
    elif shape == "square":
        draw.rectangle(box, fill=fill, outline=outline, width=width)
    elif shape == "cross":
        w, h = (x1 - x0) / 3, (y1 - y0) / 3
        points = [(x0 + w, y0), (x1 - w, y0), (x1 - w, y0 + h), (x1, y0 + h), (x1, y1 - h), (x1 - w, y1 - h),
                  (x1 - w, y1), (x0 + w, y1), (x0 + w, y1 - h), (x0, y1 - h), (x0, y0 + h), (x0 + w, y0 + h)]
        draw.polygon(points, fill=fill, outline=outline, width=width)
    else:
        points = [(cx, y0), (x1, y1), (x0, y1)] if shape == "triangle" else [(cx, y0), (x1, cy), (cx, y1), (x0, cy)]
        draw.polygon(points, fill=fill, outline=outline, width=width)


def _jitter(rng: np.random.Generator, colour: tuple[int, int, int]) -> tuple[int, ...]:
    return tuple(int(np.clip(c + rng.integers(-20, 21), 0, 255)) for c in colour)


def _place(rng: np.random.Generator, width: int, height: int, low: float, high: float) -> tuple[int, int, int, int]:
    side = int(rng.uniform(low, high) * min(width, height))
    w, h = max(6, int(side * rng.uniform(0.8, 1.25))), max(6, side)
    x0, y0 = int(rng.integers(0, width - w)), int(rng.integers(0, height - h))
    return x0, y0, x0 + w - 1, y0 + h - 1


def _save_jpeg(image: Image.Image, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, format="JPEG", quality=JPEG_QUALITY)


def write_segmentation(root: Path, split: str, count: int, size: int, rng: np.random.Generator) -> None:
    palette = voc_palette()
    for index in range(count):
        name = f"synth_{split}_{index:05d}"
        image = _background(rng, size, size)
        mask = Image.new("P", (size, size), 0)
        mask.putpalette(palette)
        draw, draw_mask = ImageDraw.Draw(image), ImageDraw.Draw(mask)
        for _ in range(int(rng.integers(1, 4))):
            label = int(rng.choice(list(SEG_CLASSES)))
            shape, colour = SHAPES[int(rng.integers(len(SHAPES)))], SEG_CLASSES[label]
            box = _place(rng, size, size, 0.25, 0.5)
            _draw_shape(draw, shape, box, _jitter(rng, colour))
            _draw_shape(draw_mask, shape, box, label, outline=SEG_IGNORE_INDEX, width=2)
        _save_jpeg(image, root / split / "JPEGImages" / f"{name}.jpg")
        (root / split / "SegmentationClass").mkdir(parents=True, exist_ok=True)
        mask.save(root / split / "SegmentationClass" / f"{name}.png", format="PNG")


def write_detection(root: Path, split: str, count: int, size: int, rng: np.random.Generator) -> None:
    images, annotations = [], []
    first_id = 1 if split == "train" else 500_001
    for index in range(count):
        image_id = first_id + index
        width, height = int(size * rng.uniform(0.75, 1.3)), int(size * rng.uniform(0.75, 1.3))
        image = _background(rng, width, height)
        draw = ImageDraw.Draw(image)
        for _ in range(int(rng.integers(1, 3))):
            label = int(rng.integers(len(CLASS_COLOURS)))
            shape, colour = SHAPES[int(rng.integers(len(SHAPES)))], CLASS_COLOURS[label]
            x0, y0, x1, y1 = _place(rng, width, height, 0.25, 0.5)
            _draw_shape(draw, shape, (x0, y0, x1, y1), _jitter(rng, colour))
            w, h = x1 - x0 + 1, y1 - y0 + 1
            annotations.append({"id": len(annotations) + 1, "image_id": image_id,
                                "category_id": COCO_CATEGORIES[label][0], "bbox": [x0, y0, w, h], "area": w * h,
                                "iscrowd": int(rng.random() < CROWD_FRACTION)})
        file_name = f"{image_id:012d}.jpg"
        _save_jpeg(image, root / split / "images" / file_name)
        images.append({"id": image_id, "file_name": file_name, "width": width, "height": height})
    # Mini-COCO-Det's category ids, named by what a class is here: its colour's hue (CLASS_COLOURS)
    categories = [{"id": cid, "name": f"hue {label * 36}", "supercategory": "synthetic"}
                  for label, (cid, _) in enumerate(COCO_CATEGORIES)]
    document = {"info": {"description": "unihead synthetic detection data"}, "images": images,
                "annotations": annotations, "categories": categories}
    (root / split / "annotations.json").write_text(json.dumps(document, indent=1) + "\n")


def write_classification(root: Path, split: str, count: int, size: int, rng: np.random.Generator) -> None:
    for index in range(count):
        label = index % len(IMAGENETTE_WNIDS)
        shape, colour = SHAPES[int(rng.integers(len(SHAPES)))], CLASS_COLOURS[label]
        image = _background(rng, size, size)
        _draw_shape(ImageDraw.Draw(image), shape, _place(rng, size, size, 0.45, 0.75), _jitter(rng, colour))
        wnid = IMAGENETTE_WNIDS[label]
        _save_jpeg(image, root / split / wnid / f"{wnid}_synth{index:05d}.JPEG")


WRITERS = {"mini_voc_seg": write_segmentation, "mini_coco_det": write_detection,
           "imagenette_160": write_classification}


def write_synthetic_dataset(root: Path, n_train: int, n_val: int, image_size: int = 128, seed: int = 0) -> None:
    """Write ``root/{mini_voc_seg,mini_coco_det,imagenette_160}/{train,val}``."""
    if min(n_train, n_val) < SYNTHETIC_MIN_IMAGES:
        raise ValueError(f"need at least {SYNTHETIC_MIN_IMAGES} images per split (one per class), "
                         f"got n_train={n_train}, n_val={n_val}")
    if image_size < SYNTHETIC_MIN_SIZE:
        raise ValueError(f"image_size must be at least {SYNTHETIC_MIN_SIZE}, got {image_size}")
    for offset, (folder, writer) in enumerate(WRITERS.items()):
        for split, count in (("train", n_train), ("val", n_val)):
            rng = np.random.default_rng([seed, offset, SPLIT_SEEDS[split]])
            writer(Path(root) / folder, split, count, image_size, rng)
