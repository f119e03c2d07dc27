"""The paper's architecture: exact parameter count, output shapes, task selection, weights loading."""

from __future__ import annotations

from pathlib import Path

import pytest
import timm
import torch
from safetensors.torch import save_file

from unihead.config import ModelConfig
from unihead.files import sha256_file
from unihead.models import FEATURES, build_model, parameter_breakdown
from unihead.models.backbone import WeightsError

PAPER_TOTAL = 4_175_137


@pytest.fixture(scope="module")
def paper_model():
    torch.manual_seed(0)
    return build_model().eval()


def test_paper_model_has_exactly_the_papers_parameter_count(paper_model):
    counts = parameter_breakdown(paper_model)
    assert counts == {
        "backbone": 3_595_388,  # EfficientNet-B0 without conv_head/bn2/classifier
        "neck": 503_552,  # 3 lateral 1x1 (40/112/320 -> 128) + 3 output 3x3 convs (128 -> 128)
        "shared": 73_792,  # 3x3 conv 128 -> 64 with bias, no BatchNorm
        "head.seg": 1_365,  # 1x1 conv 64 -> 21
        "head.det": 390,  # 1x1 conv 64 -> 6
        "head.cls": 650,  # linear 64 -> 10
        "total": PAPER_TOTAL,
    }


def test_logits_detection_head_adds_per_class_channels():
    counts = parameter_breakdown(build_model(ModelConfig(det_head="logits")))
    assert counts["head.det"] == 64 * 15 + 15
    assert counts["total"] == PAPER_TOTAL - 390 + 975


def test_output_shapes_at_512(paper_model):
    with torch.no_grad():
        out = paper_model(torch.zeros(1, 3, 512, 512), return_features=True)
    assert out["seg"].shape == (1, 21, 512, 512)
    assert out["det"].shape == (1, 6, 16, 16)
    assert out["cls"].shape == (1, 10)
    assert {k: tuple(v.shape) for k, v in out[FEATURES].items()} == {
        "p3": (1, 128, 64, 64), "p4": (1, 128, 32, 32), "p5": (1, 128, 16, 16), "p6": (1, 128, 8, 8),
    }


def test_single_task_forward_runs_only_that_head_and_matches_full_forward(paper_model):
    images = torch.randn(2, 3, 128, 128, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        full = paper_model(images)
        det_only = paper_model(images, tasks=["det"])
    assert set(det_only) == {"det"}
    torch.testing.assert_close(det_only["det"], full["det"])


def test_unknown_task_is_rejected(paper_model):
    with pytest.raises(ValueError, match="unknown task.*'depth'"):
        paper_model(torch.zeros(1, 3, 64, 64), tasks=["depth"])


def test_head_levels_come_from_config():
    model = build_model(ModelConfig(levels={"seg": 8, "det": 8, "cls": 64})).eval()
    with torch.no_grad():
        out = model(torch.zeros(1, 3, 256, 256))
    assert out["seg"].shape == (1, 21, 256, 256)
    assert out["det"].shape == (1, 6, 32, 32)  # stride 8 grid
    assert out["cls"].shape == (1, 10)
    assert parameter_breakdown(model)["total"] == PAPER_TOTAL  # the level changes no weights


def test_neck_computes_only_the_named_levels_bit_identical_to_torchvisions_full_fpn(paper_model):
    images = torch.randn(2, 3, 128, 128, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        maps = paper_model.backbone(images)
        full = paper_model.neck.fpn(dict(zip(["p3", "p4", "p5"], maps, strict=True)))
        full["p6"] = full.pop("pool")
        for levels in (["p5"], ["p3"], ["p4", "p6"], ["p6"], ["p3", "p4", "p5", "p6"]):
            part = paper_model.neck(maps, levels)
            assert list(part) == levels
            for name in levels:
                assert torch.equal(part[name], full[name]), (levels, name)
        assert list(paper_model.neck(maps)) == ["p3", "p4", "p5", "p6"]
    with pytest.raises(ValueError, match=r"unknown FPN level\(s\) \['p7'\]"):
        paper_model.neck(maps, ["p7"])


def test_forward_skips_the_output_convs_of_levels_no_head_reads(paper_model):
    """The paper's heads all read p5: the p3/p4 output convs never run, the parameters stay."""
    calls = []
    hooks = [block.register_forward_hook(lambda module, args, out, i=i: calls.append(i))
             for i, block in enumerate(paper_model.neck.fpn.layer_blocks)]
    images = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(3))
    try:
        with torch.no_grad():
            skipped = paper_model(images)
            assert calls == [2]
            calls.clear()
            full = paper_model(images, return_features=True)  # distillation reads every level
            assert sorted(calls) == [0, 1, 2]
    finally:
        for hook in hooks:
            hook.remove()
    for task in ("seg", "det", "cls"):
        assert torch.equal(skipped[task], full[task])
    assert parameter_breakdown(paper_model)["total"] == PAPER_TOTAL


def _imagenet_checkpoint(path: Path, seed: int) -> dict[str, torch.Tensor]:
    """A full timm EfficientNet-B0 state dict (classifier included), as the ImageNet files are."""
    torch.manual_seed(seed)
    state = timm.create_model("efficientnet_b0", pretrained=False).state_dict()
    if path.suffix == ".safetensors":
        save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    else:
        torch.save(state, path)
    return state


@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_local_weights_file_is_loaded_into_the_backbone(tmp_path, suffix):
    path = tmp_path / f"efficientnet_b0{suffix}"
    state = _imagenet_checkpoint(path, seed=3)
    model = build_model(ModelConfig(pretrained=True, weights_file=str(path), weights_sha256=sha256_file(path)))
    loaded = model.backbone.state_dict()
    assert set(loaded) == {k for k in state if not k.startswith(("conv_head.", "bn2.", "classifier."))}
    for key, value in loaded.items():
        torch.testing.assert_close(value, state[key], msg=key)


def test_weights_file_with_wrong_checksum_is_refused(tmp_path):
    path = tmp_path / "w.pth"
    _imagenet_checkpoint(path, seed=0)
    with pytest.raises(WeightsError, match="w.pth: sha256 is .* expects 00ff"):
        build_model(ModelConfig(pretrained=True, weights_file=str(path), weights_sha256="00ff"))


def test_weights_file_of_another_architecture_is_refused(tmp_path):
    path = tmp_path / "resnet.pth"
    torch.save(timm.create_model("resnet18", pretrained=False).state_dict(), path)
    with pytest.raises(WeightsError, match="resnet.pth: does not fit the backbone: .* missing keys"):
        build_model(ModelConfig(pretrained=True, weights_file=str(path)))


def test_missing_weights_file_names_the_config_key(tmp_path):
    with pytest.raises(WeightsError, match="nope.pth: backbone weights file not found .*model.weights_file"):
        build_model(ModelConfig(pretrained=True, weights_file=str(tmp_path / "nope.pth")))
