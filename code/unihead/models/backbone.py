"""EfficientNet-B0 feature extractor (timm), with ImageNet weights from the hub or a local file."""

from __future__ import annotations

from pathlib import Path

import timm
import torch
from torch import nn

from unihead.errors import InputError
from unihead.files import sha256_file

OUT_INDICES = (2, 3, 4)
"""timm feature stages at strides 8, 16 and 32 (40, 112 and 320 channels for EfficientNet-B0)."""
CLASSIFIER_PREFIXES = ("conv_head.", "bn2.", "classifier.")
"""Parts of a full ImageNet checkpoint that the feature extractor does not have."""


class WeightsError(InputError):
    """A backbone weights file that is missing, has the wrong checksum or does not fit the model."""


def _read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    state = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(state, dict) and "state_dict" in state:
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise WeightsError(f"{path}: expected a state dict, got {type(state).__name__}")
    return state


def load_backbone_weights(backbone: nn.Module, path: Path, sha256: str | None = None) -> None:
    """Load a full ImageNet checkpoint (``.pth`` or ``.safetensors``) into the feature extractor.

    Loading is strict once the classifier's keys are dropped: timm's own ``pretrained`` path loads
    ``features_only`` models non-strictly, so a wrong file could load partly without a word.
    """
    if not path.is_file():
        raise WeightsError(f"{path}: backbone weights file not found (config key 'model.weights_file')")
    if sha256 is not None:
        actual = sha256_file(path)
        if actual != sha256.lower():
            raise WeightsError(f"{path}: sha256 is {actual}, config key 'model.weights_sha256' expects {sha256}")
    state = {k: v for k, v in _read_state_dict(path).items() if not k.startswith(CLASSIFIER_PREFIXES)}
    expected = backbone.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    mismatched = sorted(k for k in set(state) & set(expected) if state[k].shape != expected[k].shape)
    if missing or unexpected or mismatched:
        raise WeightsError(
            f"{path}: does not fit the backbone: {len(missing)} missing keys (e.g. {missing[:3]}), "
            f"{len(unexpected)} unexpected keys (e.g. {unexpected[:3]}), "
            f"{len(mismatched)} of another shape (e.g. {mismatched[:3]})"
        )
    backbone.load_state_dict(state, strict=True)


def create_backbone(name: str, pretrained: bool, weights_file: str | None = None,
                    weights_sha256: str | None = None) -> nn.Module:
    """The backbone returning feature maps at strides 8/16/32, as a list."""
    from_hub = pretrained and weights_file is None
    backbone = timm.create_model(name, pretrained=from_hub, features_only=True, out_indices=OUT_INDICES)
    if pretrained and weights_file is not None:
        load_backbone_weights(backbone, Path(weights_file), weights_sha256)
    return backbone
