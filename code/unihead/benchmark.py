"""What the model costs on a device, measured in one process (``unihead benchmark``).

- parameters;
- forward latency of one batch (the paper: batch 1 at 512 px), all three heads: ``eager`` (fp32, the
  default memory layout, ``no_grad``) and ``fast`` (``inference_mode``, channels_last, and the training
  precision's autocast: bf16 on CUDA by default), beside ``bare``, the backbone + FPN alone (the FPN levels
  the heads read, computed the same way), so that their ratio is what the shared layer and heads add;
- images/s of one training step (forward, a loss over every output, backward, AdamW step) of the full
  model beside the same step of the bare backbone + FPN, with the engine's own device choices
  (``train.precision``, channels_last and fused AdamW on CUDA, ``train.deterministic``);
- images/s of the data pipeline (reading and transforming training samples) when a data root is given;
- peak memory: CUDA's largest allocation, or the process's largest resident set on the CPU.

Every timing is the median of ``repeats`` timed runs after ``warmup`` untimed ones (CUDA synchronised around
each). The networks compared are timed in turn within each round, and a ratio is the median of the ratios of
one round, so that a machine whose load changes (a shared CPU) slows both sides alike. The conditions (device,
threads, versions, load average) are recorded with the numbers.
"""

from __future__ import annotations

import copy
import os
import platform
import resource
import statistics
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from unihead.config import ModelConfig
from unihead.data import build_dataset
from unihead.engine.device import (
    autocast_context,
    compute_dtype,
    configure_backends,
    make_optimizer,
    memory_format,
    prepare_model,
    to_model_input,
)
from unihead.engine.provenance import device_description, git_commit, package_versions
from unihead.models import UniHeadModel, build_model, parameter_breakdown
from unihead.tasks import TASKS


@dataclass(frozen=True)
class Settings:
    """What to measure, and how often."""

    image_size: int
    batch: int = 1
    """Images per forward pass for the latencies."""
    train_batch: int = 4
    """Images per training step."""
    repeats: int = 10
    warmup: int = 2
    precision: str = "auto"
    deterministic: bool = True
    data_samples: int = 32
    """Training samples read per task for the data pipeline's throughput."""

    def __post_init__(self) -> None:
        for key in ("image_size", "batch", "train_batch", "repeats", "data_samples"):
            if getattr(self, key) < 1:
                raise ValueError(f"benchmark {key} must be at least 1, got {getattr(self, key)}")
        if self.warmup < 0:
            raise ValueError(f"benchmark warmup must be at least 0, got {self.warmup}")


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def interleaved_timings(steps: Mapping[str, Callable[[], Any]], device: torch.device, repeats: int,
                        warmup: int) -> dict[str, list[float]]:
    """Wall times in milliseconds of every step over ``repeats`` rounds after ``warmup`` untimed ones; each round
    runs the steps in turn, so that a change of the machine's load hits them alike."""
    timings: dict[str, list[float]] = {name: [] for name in steps}
    for round_ in range(warmup + repeats):
        for name, step in steps.items():
            _synchronize(device)
            start = time.perf_counter()
            step()
            _synchronize(device)
            elapsed = (time.perf_counter() - start) * 1000.0
            if round_ >= warmup:
                timings[name].append(elapsed)
    return timings


def timing_summary(timings: list[float]) -> dict[str, float]:
    """Median, minimum and maximum of timings in milliseconds."""
    return {"median_ms": statistics.median(timings), "min_ms": min(timings), "max_ms": max(timings)}


def paired_ratio(numerators: list[float], denominators: list[float]) -> float:
    """The median of the ratios of timings taken in the same round (robust to load that drifts between rounds)."""
    return statistics.median(a / b for a, b in zip(numerators, denominators, strict=True))


class BackboneFPN(nn.Module):
    """The model's backbone and FPN without the shared layer and heads, returning the FPN levels the heads
    read: the bare network the full model is compared with."""

    def __init__(self, model: UniHeadModel) -> None:
        super().__init__()
        self.normalise, self.backbone, self.neck = model.normalise, model.backbone, model.neck
        self.read = model.read_levels(TASKS)

    def forward(self, images: Tensor) -> dict[str, Tensor]:
        return self.neck(self.backbone(self.normalise(images)), self.read)


def forward_step(network: nn.Module, images: Tensor, precision: str, fast: bool) -> Callable[[], None]:
    """One forward pass of ``network`` in eval mode: eager (fp32, ``no_grad``), or the fast path
    (``inference_mode``, channels_last, ``precision``'s autocast)."""
    device = images.device
    if fast:
        network = network.to(memory_format=torch.channels_last)
        images = images.contiguous(memory_format=torch.channels_last)
    else:
        precision = "fp32"
    context = torch.inference_mode if fast else torch.no_grad
    network.eval()

    def step() -> None:
        with context(), autocast_context(device, precision):
            network(images)

    return step


def training_step(network: nn.Module, device: torch.device, settings: Settings) -> Callable[[], None]:
    """One optimiser step on a random batch, with the engine's device choices; the loss is the sum of the means
    of every output (the cost of a real loss is small beside the network's)."""
    network = prepare_model(network, device).train()
    optimizer = make_optimizer(network.parameters(), lr=1e-4, weight_decay=1e-4, device=device)
    images = to_model_input(torch.randn(settings.train_batch, 3, settings.image_size, settings.image_size), device)

    def step() -> None:
        with autocast_context(device, settings.precision):
            loss = sum(output.float().mean() for output in network(images).values())
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return step


def data_throughput(root: Path, settings: Settings) -> dict[str, dict[str, float]]:
    """Training samples read and transformed per second, per task (the first ``data_samples`` of each)."""
    result = {}
    for task in TASKS:
        dataset = build_dataset(task, root, "train", settings.image_size, train=True)
        count = min(len(dataset), settings.data_samples)
        start = time.perf_counter()
        for index in range(count):
            dataset[index]
        seconds = time.perf_counter() - start
        result[task] = {"samples": count, "images_per_s": count / seconds}
    return result


def peak_memory_mib(device: torch.device) -> tuple[float, str]:
    """The largest memory use so far and what it measures."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20, "CUDA max allocated"
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "process max RSS"


def conditions(device: torch.device, settings: Settings, model_config: ModelConfig) -> dict[str, Any]:
    """Under what the numbers were taken."""
    return {
        "device": device_description(device),
        "device_type": device.type,
        "threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "load_average_1min": os.getloadavg()[0],
        **asdict(settings),
        "compute_dtype": str(compute_dtype(device, settings.precision)).removeprefix("torch."),
        "training_memory_format": "channels_last" if memory_format(device) == torch.channels_last else "contiguous",
        "cudnn_benchmark": torch.backends.cudnn.benchmark,
        "det_head": model_config.det_head,
        "levels": dict(model_config.levels),
        "versions": package_versions(("torch", "torchvision", "timm")),
        "python": platform.python_version(),
        "git_commit": git_commit(Path(__file__).resolve().parent),
        "time_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


def run_benchmark(model_config: ModelConfig, device: torch.device, settings: Settings,
                  data_root: Path | None = None) -> dict[str, Any]:
    """Every measurement of the module docstring, as a JSON-ready dict."""
    torch.manual_seed(0)
    configure_backends(device, settings.deterministic)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    before = conditions(device, settings, model_config)
    model = build_model(model_config)
    images = torch.randn(settings.batch, 3, settings.image_size, settings.image_size).to(device)
    eager_model = copy.deepcopy(model).to(device)
    rounds = {"repeats": settings.repeats, "warmup": settings.warmup}
    forward = interleaved_timings({
        "eager": forward_step(eager_model, images, settings.precision, fast=False),
        "fast": forward_step(copy.deepcopy(eager_model), images, settings.precision, fast=True),
        "bare": forward_step(BackboneFPN(eager_model), images, settings.precision, fast=False),
    }, device, **rounds)
    train = interleaved_timings({"full": training_step(copy.deepcopy(model), device, settings),
                                 "bare": training_step(BackboneFPN(copy.deepcopy(model)), device, settings)},
                                device, **rounds)
    data = None if data_root is None else data_throughput(data_root, settings)
    memory, measure = peak_memory_mib(device)
    return {
        "parameters": parameter_breakdown(model)["total"],
        "forward_ms": {name: timing_summary(timings) for name, timings in forward.items()},
        "forward_time_full_over_bare": paired_ratio(forward["eager"], forward["bare"]),
        "train_step": {name: {**timing_summary(timings),
                              "images_per_s": settings.train_batch * 1000.0 / statistics.median(timings)}
                       for name, timings in train.items()},
        "train_images_per_s_full_over_bare": paired_ratio(train["bare"], train["full"]),
        "data": None if data is None else {"root": str(data_root), "tasks": data},
        "peak_memory_mib": memory,
        "peak_memory_measure": measure,
        "conditions": {**before, "load_average_1min_after": os.getloadavg()[0]},
    }


def summary_rows(result: dict[str, Any]) -> list[tuple[str, str]]:
    """The benchmark as (measurement, value) rows for the printed table."""
    forward, train, cond = result["forward_ms"], result["train_step"], result["conditions"]
    size = f"{cond['image_size']} px"
    rows = [("parameters", f"{result['parameters']:,}")]
    rows += [(f"forward {name}, batch {cond['batch']} at {size} (median ms)", f"{forward[name]['median_ms']:.1f}")
             for name in ("eager", "fast", "bare")]
    rows.append(("forward time full / bare (eager)", f"{result['forward_time_full_over_bare']:.2f}"))
    rows += [(f"training step {name}, batch {cond['train_batch']} (images/s)", f"{train[name]['images_per_s']:.2f}")
             for name in ("full", "bare")]
    rows.append(("training images/s full / bare", f"{result['train_images_per_s_full_over_bare']:.2f}"))
    if result["data"] is not None:
        rows += [(f"data pipeline {task} ({values['samples']} samples, images/s)", f"{values['images_per_s']:.1f}")
                 for task, values in result["data"]["tasks"].items()]
    rows.append((f"peak memory ({result['peak_memory_measure']}, MiB)", f"{result['peak_memory_mib']:.0f}"))
    return rows


def conditions_line(result: dict[str, Any]) -> str:
    """The conditions in one sentence, for the printed table and the compute table's caption."""
    cond = result["conditions"]
    threads = "" if cond["device_type"] == "cpu" else f", {cond['threads']} CPU threads"  # the CPU's says them
    return (f"{cond['device']}{threads}, torch {cond['versions']['torch']}, "
            f"{cond['compute_dtype']} training, median of {cond['repeats']} runs after {cond['warmup']} warm-up, "
            f"load average {cond['load_average_1min']:.1f}")
