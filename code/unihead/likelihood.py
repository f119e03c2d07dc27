"""The model's own predictive distribution per task, and the log-likelihood of labels sampled from it.

EWC's Fisher is the expected squared gradient of ``log p(y | x, theta)`` with ``y`` drawn from the
model itself (the "true" Fisher; Kirkpatrick et al. 2017, Martens 2020), not the squared gradient of
the training loss against the dataset's labels. These distributions say what ``p`` is per task:

- ``cls``: categorical over the class logits;
- ``seg``: independent categoricals over the class logits of every pixel;
- ``det`` (layout in :mod:`unihead.detection`), independent per grid cell: Bernoulli objectness
  (sigmoid of its logit); where the sampled objectness is 1, also a Gaussian with standard deviation
  :data:`BOX_SIGMA` on the decoded box (cx, cy, w, h) and, for the class, a categorical over the
  class logits (``logits`` head) or a unit-variance Gaussian on the regressed class index (``paper``).

Log-likelihoods are averaged over pixels and grid cells, so their scale does not depend on the
input resolution. Gaussian log-densities leave out their constant, which has no gradient. Labels are
drawn on the CPU from a caller's seeded :class:`torch.Generator`, so seeded runs draw the same labels.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from unihead.detection import CLASS_START, OBJECTNESS, detection_head_type, grid_boxes
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
        return _categorical(output, generator).mean()
    if task == DET:
        return _detection(output, generator).mean()
    raise ValueError(f"unknown task {task!r}; expected one of {[SEG, DET, CLS]}")


def _categorical(logits: Tensor, generator: torch.Generator) -> Tensor:
    """log p(y~) at every position of ``logits`` [B, C, ...], y~ drawn by inverse CDF over dim 1."""
    log_p = logits.log_softmax(dim=1)
    cdf = log_p.detach().exp().cpu().cumsum(dim=1)
    uniform = torch.rand((cdf.shape[0], 1, *cdf.shape[2:]), generator=generator)
    labels = (cdf < uniform).sum(dim=1, keepdim=True).clamp_(max=logits.shape[1] - 1)
    return log_p.gather(1, labels.to(logits.device)).squeeze(1)


def _gaussian(mean: Tensor, sigma: float, generator: torch.Generator) -> Tensor:
    """log N(y~; mean, sigma^2) without its constant, y~ = mean + sigma * N(0, 1), at every element."""
    noise = torch.randn(mean.shape, generator=generator).to(mean.device)
    sample = mean.detach() + sigma * noise
    return -(sample - mean).pow(2) / (2 * sigma**2)


def _detection(raw: Tensor, generator: torch.Generator) -> Tensor:
    """Per-cell log-likelihood [B, G, G] of a raw detection grid (see the module's docstring)."""
    objectness_logit = raw[:, OBJECTNESS]
    uniform = torch.rand(objectness_logit.shape, generator=generator)
    objectness = (uniform < objectness_logit.detach().sigmoid().cpu()).float().to(raw.device)
    log_likelihood = -F.binary_cross_entropy_with_logits(objectness_logit, objectness, reduction="none")
    box = _gaussian(grid_boxes(raw), BOX_SIGMA, generator).sum(dim=1)
    if detection_head_type(raw.shape[1]) == "paper":
        label = _gaussian(raw[:, CLASS_START], 1.0, generator)
    else:
        label = _categorical(raw[:, CLASS_START:], generator)
    return log_likelihood + objectness * (box + label)
