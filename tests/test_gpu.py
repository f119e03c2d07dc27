"""On a CUDA device (skipped without one): the fast path (bf16 autocast, channels_last, fused AdamW) computes
what the CPU's fp32 computes within bf16's precision, a killed and resumed GPU run ends where an uninterrupted
one does, and `unihead benchmark` measures on the GPU. workflow/scripts/gpu_check.sh runs these first."""

from __future__ import annotations

import copy
import json

import pytest
import torch

from unihead.cli import main
from unihead.config import ModelConfig
from unihead.engine.device import autocast_context, prepare_model, to_model_input
from unihead.engine.run import Run, execute
from unihead.models import build_model
from unihead.scopes import run_config

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(),
                       reason="no CUDA device (run on a GPU machine, e.g. by workflow/scripts/gpu_check.sh)"),
]

CUDA = torch.device("cuda")


def relative_error(actual: torch.Tensor, expected: torch.Tensor) -> float:
    """||actual - expected|| / ||expected||, in fp32 on the CPU."""
    actual, expected = actual.detach().float().cpu(), expected.detach().float().cpu()
    return float((actual - expected).norm() / expected.norm())


def _forward_backward(model: torch.nn.Module, images: torch.Tensor, device: torch.device, precision: str):
    """Outputs and every gradient, BatchNorm on its running statistics: the batch statistics of an untrained
    network amplify rounding (bf16 autocast moves its gradients by ~20% on the CPU as well)."""
    model = prepare_model(model, device).eval()
    with autocast_context(device, precision):
        outputs = model(to_model_input(images, device))
        loss = sum(output.float().pow(2).mean() for output in outputs.values())
    loss.backward()
    gradients = torch.cat([p.grad.float().flatten().cpu() for p in model.parameters() if p.grad is not None])
    return {task: output.float().cpu() for task, output in outputs.items()}, gradients


@pytest.mark.parametrize(("precision", "outputs_tolerance", "gradients_tolerance"), [
    ("auto", 0.03, 0.05),  # bf16 (8 bits of mantissa); CPU bf16 autocast gives 0.003 and 0.002 here
    ("fp32", 0.01, 0.01),  # cuDNN may use TF32 for convolutions
])
def test_a_cuda_forward_and_backward_agree_with_the_cpus(precision, outputs_tolerance, gradients_tolerance):
    torch.manual_seed(0)
    model = build_model(ModelConfig(det_head="logits", levels={"seg": 8, "det": 16, "cls": 32}))
    images = torch.randn(2, 3, 128, 128, generator=torch.Generator().manual_seed(1))
    cpu_outputs, cpu_gradients = _forward_backward(copy.deepcopy(model), images, torch.device("cpu"), "fp32")
    gpu_outputs, gpu_gradients = _forward_backward(copy.deepcopy(model), images, CUDA, precision)
    for task, expected in cpu_outputs.items():
        assert gpu_outputs[task].shape == expected.shape
        assert relative_error(gpu_outputs[task], expected) < outputs_tolerance, task
    assert gpu_gradients.shape == cpu_gradients.shape
    assert relative_error(gpu_gradients, cpu_gradients) < gradients_tolerance


@pytest.mark.slow
def test_a_killed_and_resumed_gpu_run_ends_like_an_uninterrupted_one(tiny_config, tmp_path):
    config = tiny_config(name="gpu", train={"epochs": 2, "limit_train": 12, "limit_val": None, "device": "cuda"},
                         strategies={"ewc": {"fisher_samples": 4}})
    whole = execute(Run(run_config(config, "ewc", 0), tmp_path / "whole", log=lambda line: None))

    class Killed(Exception):
        pass

    lines = []

    def kill_after_three_epochs(line: str) -> None:
        lines.append(line)
        if len(lines) == 3:  # stage 2's first epoch logged, its checkpoint not yet written
            raise Killed

    with pytest.raises(Killed):
        execute(Run(run_config(config, "ewc", 0), tmp_path / "resumed", log=kill_after_three_epochs))
    messages = []
    resumed = execute(Run(run_config(config, "ewc", 0), tmp_path / "resumed", log=messages.append))
    assert messages[0].endswith("resuming after epoch 2")
    assert resumed.provenance.device.startswith("cuda")
    for row_whole, row_resumed in zip(whole.R, resumed.R, strict=True):
        assert row_resumed == pytest.approx(row_whole, abs=0.1)  # bf16 and atomic adds: close, not identical
    weights_whole = torch.load(tmp_path / "whole" / "model.pt", weights_only=True)
    weights_resumed = torch.load(tmp_path / "resumed" / "model.pt", weights_only=True)
    for key, value in weights_whole.items():
        if value.is_floating_point():
            assert relative_error(weights_resumed[key], value) < 0.05, key


def test_the_benchmark_measures_the_fast_path_on_the_gpu(tmp_path):
    out = tmp_path / "benchmark.json"
    assert main(["benchmark", "--device", "cuda", "--size", "128", "--repeats", "3", "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    cond = result["conditions"]
    assert cond["device"].startswith("cuda: ") and cond["compute_dtype"] == "bfloat16"
    assert cond["training_memory_format"] == "channels_last" and result["peak_memory_measure"] == "CUDA max allocated"
    assert 0 < result["forward_ms"]["fast"]["median_ms"] and 0 < result["peak_memory_mib"]
