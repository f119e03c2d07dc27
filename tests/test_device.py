"""How a run computes on its device (train.precision, train.deterministic, channels_last, fused AdamW): the
CPU keeps PyTorch's defaults, so CPU runs stay bit-identical; the CUDA choices are checked by what the
helpers decide for a CUDA device (tests/test_gpu.py runs them on a GPU)."""

from __future__ import annotations

import pytest
import torch

from unihead.engine.device import (
    autocast_context,
    compute_dtype,
    configure_backends,
    make_optimizer,
    memory_format,
    prepare_model,
    to_model_input,
)
from unihead.engine.run import Run, execute
from unihead.scopes import run_config

CPU, CUDA = torch.device("cpu"), torch.device("cuda")


@pytest.mark.parametrize(("device", "precision", "dtype"), [
    (CPU, "auto", torch.float32), (CUDA, "auto", torch.bfloat16), (CPU, "bf16", torch.bfloat16),
    (CUDA, "bf16", torch.bfloat16), (CPU, "fp32", torch.float32), (CUDA, "fp32", torch.float32),
])
def test_precision_auto_is_bf16_on_cuda_and_fp32_on_the_cpu(device, precision, dtype):
    assert compute_dtype(device, precision) == dtype


def test_unknown_precision_is_refused():
    with pytest.raises(ValueError, match=r"precision 'fp16': expected one of \['auto', 'fp32', 'bf16'\]"):
        compute_dtype(CPU, "fp16")


def test_autocast_on_the_cpu_only_when_bf16_is_asked_for():
    weight, x = torch.randn(4, 4), torch.randn(2, 4)
    with autocast_context(CPU, "auto"):
        assert (x @ weight).dtype == torch.float32
    with autocast_context(CPU, "bf16"):
        assert (x @ weight).dtype == torch.bfloat16


def test_channels_last_and_fused_adamw_on_cuda_only():
    assert memory_format(CUDA) == torch.channels_last and memory_format(CPU) == torch.contiguous_format
    conv = torch.nn.Conv2d(3, 8, 3)
    assert prepare_model(conv, CPU).weight.is_contiguous()
    assert to_model_input(torch.randn(2, 3, 8, 8), CPU).is_contiguous()
    optimizer = make_optimizer(conv.parameters(), lr=1e-3, weight_decay=0.1, device=CPU)
    assert isinstance(optimizer, torch.optim.AdamW) and optimizer.param_groups[0]["fused"] is None
    assert (optimizer.param_groups[0]["lr"], optimizer.param_groups[0]["weight_decay"]) == (1e-3, 0.1)


@pytest.fixture
def restore_backends():
    saved = (torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled(),
             torch.backends.cudnn.benchmark)
    yield
    torch.use_deterministic_algorithms(saved[0], warn_only=saved[1])
    torch.backends.cudnn.benchmark = saved[2]


@pytest.mark.parametrize(("device", "deterministic", "benchmark"), [
    (CPU, True, False), (CPU, False, False), (CUDA, True, False), (CUDA, False, True),
])
def test_deterministic_false_lets_cudnn_benchmark_on_cuda(restore_backends, device, deterministic, benchmark):
    configure_backends(device, deterministic)
    assert torch.are_deterministic_algorithms_enabled() == deterministic
    assert torch.backends.cudnn.benchmark == benchmark


def _losses(tiny_config, tmp_path, precision):
    config = tiny_config(name="t", train={"limit_train": 4, "limit_val": 4, "precision": precision})
    metrics = execute(Run(run_config(config, "baseline-cls", 0), tmp_path / precision, log=lambda line: None))
    history = (tmp_path / precision / "history.csv").read_text().splitlines()
    return history[1].split(",")[4], metrics


@pytest.mark.slow
def test_precision_auto_on_the_cpu_is_fp32_bit_for_bit_and_bf16_changes_the_arithmetic(tiny_config, tmp_path):
    auto, auto_metrics = _losses(tiny_config, tmp_path, "auto")
    fp32, fp32_metrics = _losses(tiny_config, tmp_path, "fp32")
    bf16, _ = _losses(tiny_config, tmp_path, "bf16")
    assert auto == fp32 and auto_metrics.final == fp32_metrics.final
    assert bf16 != fp32 and float(bf16) == pytest.approx(float(fp32), rel=0.05)
