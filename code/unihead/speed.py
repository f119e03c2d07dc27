"""Inference latency of the model: the paper claims under 150 ms per 512x512 image."""

from __future__ import annotations

import statistics
import time

import torch
from torch import nn


def measure_inference_ms(model: nn.Module, image_size: int, device: torch.device | str = "cpu",
                         runs: int = 10, warmup: int = 2) -> dict[str, float]:
    """Median and extremes of the wall time of one forward pass (all heads, batch 1), in milliseconds."""
    if runs < 1:
        raise ValueError(f"runs must be at least 1, got {runs}")
    device = torch.device(device)
    model = model.to(device).eval()
    images = torch.randn(1, 3, image_size, image_size, device=device)
    timings = []
    with torch.inference_mode():
        for i in range(warmup + runs):
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            start = time.perf_counter()
            model(images)
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            if i >= warmup:
                timings.append((time.perf_counter() - start) * 1000.0)
    return {"median_ms": statistics.median(timings), "min_ms": min(timings), "max_ms": max(timings),
            "runs": float(runs)}
