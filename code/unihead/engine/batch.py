"""Moving a collated batch to the training device."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor


def to_device(targets: Any, device: torch.device) -> Any:
    """Tensors, and the tensors inside a list of detection target dicts, moved to ``device``."""
    if isinstance(targets, Tensor):
        return targets.to(device)
    if isinstance(targets, list):
        return [to_device(t, device) for t in targets]
    if isinstance(targets, dict):
        return {k: to_device(v, device) for k, v in targets.items()}
    return targets
