"""Input pipeline (torchvision transforms v2): boxes and masks follow every geometric change of the image."""

from __future__ import annotations

import torch
from torchvision import tv_tensors
from torchvision.transforms import v2

from unihead.tasks import IMAGENET_MEAN, IMAGENET_STD


def build_transforms(size: int, train: bool) -> v2.Transform:
    """Square resize (the paper resized every image to 512x512, aspect ratio not kept), a horizontal
    flip for training, then float conversion and ImageNet normalisation of the image only.

    Masks (``tv_tensors.Mask``) are resized with nearest neighbour, so labels stay labels.
    """
    steps: list[v2.Transform] = [v2.ToImage(), v2.Resize((size, size), antialias=True)]
    if train:
        steps.append(v2.RandomHorizontalFlip(p=0.5))
    steps += [
        v2.ToDtype({tv_tensors.Image: torch.float32, "others": None}, scale=True),
        v2.Normalize(IMAGENET_MEAN, IMAGENET_STD),
    ]
    return v2.Compose(steps)
