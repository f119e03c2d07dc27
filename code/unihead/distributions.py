"""Per-position primitives over a head's raw output, shared by EWC's likelihoods, distillation and the
detection codecs: the log-likelihood of a label drawn from the output's own distribution, and Hinton's
softened KL between two outputs.

Labels are drawn on the CPU from a caller's seeded :class:`torch.Generator`, so seeded runs draw the same
labels; Gaussian log-densities leave out their constant, which has no gradient.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def sampled_categorical(logits: Tensor, generator: torch.Generator) -> Tensor:
    """log p(y~) at every position of ``logits`` [B, C, ...], y~ drawn by inverse CDF over dim 1."""
    log_p = logits.log_softmax(dim=1)
    cdf = log_p.detach().exp().cpu().cumsum(dim=1)
    uniform = torch.rand((cdf.shape[0], 1, *cdf.shape[2:]), generator=generator)
    labels = (cdf < uniform).sum(dim=1, keepdim=True).clamp_(max=logits.shape[1] - 1)
    return log_p.gather(1, labels.to(logits.device)).squeeze(1)


def sampled_gaussian(mean: Tensor, sigma: float, generator: torch.Generator) -> Tensor:
    """log N(y~; mean, sigma^2) without its constant, y~ = mean + sigma * N(0, 1), at every element."""
    noise = torch.randn(mean.shape, generator=generator).to(mean.device)
    sample = mean.detach() + sigma * noise
    return -(sample - mean).pow(2) / (2 * sigma**2)


def softmax_kl_per_position(student: Tensor, teacher: Tensor, temperature: float, dim: int = 1) -> Tensor:
    """Hinton's KL(teacher || student) of the temperature-softened distributions over ``dim``, times T^2,
    at every other position (the input's shape without ``dim``)."""
    log_s = F.log_softmax(student / temperature, dim=dim)
    log_t = F.log_softmax(teacher / temperature, dim=dim)
    return F.kl_div(log_s, log_t, log_target=True, reduction="none").sum(dim=dim) * temperature**2
