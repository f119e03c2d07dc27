"""Qualitative panel: a trained model's segmentation mask and boxes on validation images."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from unihead.config import ExperimentConfig
from unihead.data import build_dataset
from unihead.data.categories import voc_palette
from unihead.detection_codecs import DET_CODECS
from unihead.models import build_model
from unihead.tasks import SEG_IGNORE_INDEX


def _display(image: torch.Tensor) -> np.ndarray:
    """A CxHxW image in [0, 1] (the input pipeline's) as an HxWx3 array."""
    return image.permute(1, 2, 0).numpy()


def _colour_mask(mask: torch.Tensor) -> np.ndarray:
    palette = np.array(voc_palette(), dtype=np.uint8).reshape(256, 3)
    return palette[mask.numpy().astype(np.int64)]


def _boxes(axis: Axes, boxes: torch.Tensor, labels: torch.Tensor, names: list[str], style: str) -> None:
    for (x0, y0, x1, y1), label in zip(boxes.tolist(), labels.tolist(), strict=True):
        axis.add_patch(Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, linewidth=1.2, linestyle=style,
                                 edgecolor="white" if style == "-" else "black"))
        axis.text(x0, y0, names[label], fontsize=6, color="black", backgroundcolor="white", va="bottom")


@torch.no_grad()
def qualitative_figure(config: ExperimentConfig, weights: Path, title: str, score_threshold: float = 0.3) -> Figure:
    """First validation image of seg and det: input, ground truth and the model's prediction."""
    model = build_model(dataclasses.replace(config.model, pretrained=False))
    model.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
    model.eval()
    size, root = config.data.image_size, Path(config.data.root)
    seg_image, seg_mask = build_dataset("seg", root, "val", size, train=False)[0]
    det_data = build_dataset("det", root, "val", size, train=False)
    det_image, det_target = det_data[0]
    out = model(torch.stack([seg_image, det_image]), tasks=["seg", "det"])
    predicted_mask = out["seg"][0].argmax(0)
    (found,) = DET_CODECS[config.model.det_head].decode(out["det"][1:], size, det_data.num_classes,
                                                        score_threshold=score_threshold)
    figure = Figure(figsize=(7.5, 5.0))
    axes = figure.subplots(2, 3)
    shown_mask = seg_mask.clone()
    shown_mask[shown_mask == SEG_IGNORE_INDEX] = 0
    axes[0, 0].imshow(_display(seg_image))
    axes[0, 0].set_title("segmentation input", fontsize=8)
    axes[0, 1].imshow(_colour_mask(shown_mask))
    axes[0, 1].set_title("ground truth", fontsize=8)
    axes[0, 2].imshow(_colour_mask(predicted_mask))
    axes[0, 2].set_title("prediction", fontsize=8)
    axes[1, 0].imshow(_display(det_image))
    axes[1, 0].set_title("detection input", fontsize=8)
    axes[1, 1].imshow(_display(det_image))
    _boxes(axes[1, 1], det_target["boxes"] * size, det_target["labels"], det_data.category_names, "-")
    axes[1, 1].set_title("ground truth boxes", fontsize=8)
    axes[1, 2].imshow(_display(det_image))
    _boxes(axes[1, 2], found["boxes"], found["labels"], det_data.category_names, "--")
    axes[1, 2].set_title(f"predicted boxes (score ≥ {score_threshold})", fontsize=8)
    for axis in axes.flat:
        axis.set_xticks([])
        axis.set_yticks([])
    figure.suptitle(title, fontsize=9)
    figure.tight_layout()
    return figure
