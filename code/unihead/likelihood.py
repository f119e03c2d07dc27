"""The model's own predictive distribution per task, and the log-likelihood of labels sampled from it.

EWC's Fisher is the expected squared gradient of ``log p(y | x, theta)`` with ``y`` drawn from the
model itself (the "true" Fisher; Kirkpatrick et al. 2017, Martens 2020), not the squared gradient of
the training loss against the dataset's labels. These distributions say what ``p`` is per task:

- ``cls``: categorical over the class logits;
- ``seg``: independent categoricals over the class logits of every pixel;
- ``det`` (layout in :mod:`unihead.detection`), independent per grid cell: Bernoulli objectness
  (sigmoid of its logit); where the sampled objectness is 1, also a Gaussian with standard deviation
  :data:`BOX_SIGMA` on the decoded box (cx, cy, w, h) and the head type's class distribution
  (:meth:`unihead.detection_codecs.DetectionCodec.class_log_likelihood`).

Log-likelihoods are averaged over pixels and grid cells, so their scale does not depend on the
input resolution. The primitives that draw the labels are in :mod:`unihead.distributions`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from unihead.detection import OBJECTNESS, grid_boxes
from unihead.detection_codecs import codec_for_output
from unihead.distributions import sampled_categorical, sampled_gaussian
from unihead.tasks import CLS, DET, SEG

BOX_SIGMA = 0.1
"""Standard deviation of the Gaussian on each decoded box coordinate, as a fraction of the image
(a tenth of the image: the scale of a typical localisation error of a coarse grid detector)."""


def sampled_log_likelihood(task: str, output: Tensor, generator: torch.Generator) -> Tensor:
    """Mean log-likelihood of labels drawn from the model's predictive distribution for ``output``.

    The labels are drawn without gradient; the result's gradient is the score ``d log p(y~) / d theta``
    whose square, averaged over inputs, is the Fisher's diagonal.
    """
    if task in (CLS, SEG):
        return sampled_categorical(output, generator).mean()
    if task == DET:
        return _detection(output, generator).mean()
    raise ValueError(f"unknown task {task!r}; expected one of {[SEG, DET, CLS]}")


def _detection(raw: Tensor, generator: torch.Generator) -> Tensor:
    """Per-cell log-likelihood [B, G, G] of a raw detection grid (see the module's docstring)."""
    objectness_logit = raw[:, OBJECTNESS]
    uniform = torch.rand(objectness_logit.shape, generator=generator)
    objectness = (uniform < objectness_logit.detach().sigmoid().cpu()).float().to(raw.device)
    log_likelihood = -F.binary_cross_entropy_with_logits(objectness_logit, objectness, reduction="none")
    box = sampled_gaussian(grid_boxes(raw), BOX_SIGMA, generator).sum(dim=1)
    label = codec_for_output(raw).class_log_likelihood(raw, generator)
    return log_likelihood + objectness * (box + label)
