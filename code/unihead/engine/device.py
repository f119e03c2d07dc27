"""How a run computes on its device: arithmetic (``train.precision``), memory layout, optimiser, backend flags.

On the CPU every helper leaves PyTorch's defaults alone (fp32, contiguous tensors, the for-each AdamW), so CPU
runs stay bit-identical; on CUDA they choose the fast path: bf16 autocast, channels_last, fused AdamW and,
without ``train.deterministic``, cuDNN's benchmark mode.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable

import torch
from torch import nn

from unihead.config import PRECISIONS


def compute_dtype(device: torch.device, precision: str) -> torch.dtype:
    """The dtype a training step computes in: ``auto`` is bf16 on CUDA and fp32 elsewhere."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision {precision!r}: expected one of {list(PRECISIONS)}")
    if precision == "bf16" or (precision == "auto" and device.type == "cuda"):
        return torch.bfloat16
    return torch.float32


def autocast_context(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    """bf16 autocast for the forward pass and the loss when ``precision`` resolves to bf16, else nothing."""
    if compute_dtype(device, precision) == torch.bfloat16:
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def memory_format(device: torch.device) -> torch.memory_format:
    """channels_last on CUDA (what cuDNN's fast convolutions want), PyTorch's default elsewhere."""
    return torch.channels_last if device.type == "cuda" else torch.contiguous_format


def prepare_model(model: nn.Module, device: torch.device) -> nn.Module:
    """The model on ``device``, in :func:`memory_format`."""
    return model.to(device=device, memory_format=memory_format(device))


def to_model_input(images: torch.Tensor, device: torch.device) -> torch.Tensor:
    """A batch of images on ``device``, in :func:`memory_format`."""
    return images.to(device, non_blocking=True, memory_format=memory_format(device))


def make_optimizer(parameters: Iterable[nn.Parameter], lr: float, weight_decay: float,
                   device: torch.device) -> torch.optim.AdamW:
    """AdamW, with the fused CUDA kernel on a GPU (one launch for every parameter)."""
    fused = True if device.type == "cuda" else None  # None: PyTorch's default (for-each) implementation
    return torch.optim.AdamW(parameters, lr=lr, weight_decay=weight_decay, fused=fused)


def configure_backends(device: torch.device, deterministic: bool) -> None:
    """Deterministic algorithms (warning where an operation has none) when asked; otherwise PyTorch's default
    algorithms, and on CUDA cuDNN's benchmark mode, which times the convolution algorithms for each input
    shape and keeps the fastest."""
    torch.use_deterministic_algorithms(deterministic, warn_only=True)
    torch.backends.cudnn.benchmark = device.type == "cuda" and not deterministic
