"""Input pipeline (torchvision transforms v2): boxes and masks follow every geometric change of the image.

The pipeline has two parts: :func:`decode_transforms`, which is deterministic (what
:class:`unihead.data.decoded.DecodedDataset` computes once per run and holds), and
:func:`augment_transforms`, which runs on every draw of a sample (the random flip, float conversion,
scaling to [0, 1]). :func:`build_transforms` is the two in a row. Images leave the pipeline in [0, 1]: the model
normalises them with the statistics its backbone's weights expect
(:class:`unihead.models.backbone.InputNormalisation`).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor
from torchvision import tv_tensors
from torchvision.transforms import v2


class BoxesAsFractions(v2.Transform):
    """The last step of the pipeline: XYXY boxes in pixels of the image they lie on become a plain tensor
    of fractions of its width and height (in [0, 1]), what the detection loss and the codecs expect."""

    _transformed_types = (tv_tensors.BoundingBoxes,)

    def transform(self, inpt: tv_tensors.BoundingBoxes, params: dict[str, Any]) -> Tensor:
        height, width = inpt.canvas_size
        return inpt.as_subclass(Tensor) / torch.tensor([width, height, width, height], dtype=torch.float32)


def _decode_steps(size: int) -> list[v2.Transform]:
    return [v2.ToImage(), v2.Resize((size, size), antialias=True)]


def _augment_steps(train: bool) -> list[v2.Transform]:
    steps: list[v2.Transform] = [v2.RandomHorizontalFlip(p=0.5)] if train else []
    return [*steps, v2.ToDtype({tv_tensors.Image: torch.float32, "others": None}, scale=True), BoxesAsFractions()]


def decode_transforms(size: int) -> v2.Transform:
    """A decoded image (PIL) to a uint8 tensor of ``size`` x ``size`` (aspect ratio not kept), with its
    mask (nearest neighbour) or boxes resized alike."""
    return v2.Compose(_decode_steps(size))


def augment_transforms(train: bool) -> v2.Transform:
    """From :func:`decode_transforms`' output on: a horizontal flip for training (one ``torch.rand(1)`` of
    the global generator per sample), the image as floats in [0, 1]; boxes as fractions of the image
    (:class:`BoxesAsFractions`)."""
    return v2.Compose(_augment_steps(train))


def build_transforms(size: int, train: bool) -> v2.Transform:
    """Square resize (the paper resized every image to 512x512, aspect ratio not kept), a horizontal
    flip for training, then the image as floats in [0, 1].

    Masks (``tv_tensors.Mask``) are resized with nearest neighbour, so labels stay labels.
    """
    return v2.Compose([*_decode_steps(size), *_augment_steps(train)])
