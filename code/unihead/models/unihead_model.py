"""The paper's network: backbone -> FPN -> shared layer -> seg / det / cls heads."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping

from torch import Tensor, nn

from unihead.config import ModelConfig
from unihead.detection import det_channels
from unihead.models.backbone import create_backbone
from unihead.models.heads import ClassificationHead, DetectionHead, SegmentationHead, SharedLayer
from unihead.models.neck import Neck, level_name
from unihead.tasks import CLS, DET, NUM_CLS_CLASSES, NUM_DET_CLASSES, NUM_SEG_CLASSES, SEG, TASKS

FEATURES = "features"
"""Key of the FPN feature dict in the model's output when ``return_features`` is set."""


class UniHeadModel(nn.Module):
    """Multi-task network returning a dict of named outputs.

    ``forward(x, tasks=("det",))`` runs only the detection head, so training one task does not pay
    for the other heads (the segmentation head's upsampling to full size is the costly one); the FPN
    computes only the levels those heads read, unless ``return_features`` asks for every level.
    """

    def __init__(self, backbone: nn.Module, neck: Neck, shared: nn.Module, heads: Mapping[str, nn.Module],
                 levels: Mapping[str, int]) -> None:
        super().__init__()
        if set(heads) != set(levels):
            raise ValueError(f"heads {sorted(heads)} and levels {sorted(levels)} must name the same tasks")
        self.backbone = backbone
        self.neck = neck
        self.shared = shared
        self.heads = nn.ModuleDict(dict(heads))
        self.levels = {task: level_name(stride) for task, stride in levels.items()}

    @classmethod
    def from_config(cls, config: ModelConfig) -> UniHeadModel:
        backbone = create_backbone(config.backbone, config.pretrained, config.weights_file, config.weights_sha256)
        neck = Neck(backbone.feature_info.channels(), config.fpn_channels)
        width = config.shared_channels
        heads = {
            SEG: SegmentationHead(width, NUM_SEG_CLASSES),
            DET: DetectionHead(width, det_channels(config.det_head, NUM_DET_CLASSES)),
            CLS: ClassificationHead(width, NUM_CLS_CLASSES),
        }
        return cls(backbone, neck, SharedLayer(config.fpn_channels, width), heads, config.levels)

    def extract_features(self, images: Tensor, levels: Collection[str] | None = None) -> dict[str, Tensor]:
        """FPN levels ``p3`` (stride 8) to ``p6`` (stride 64); only those in ``levels`` when given."""
        return self.neck(self.backbone(images), levels)

    def forward(self, images: Tensor, tasks: Iterable[str] | None = None,
                return_features: bool = False) -> dict[str, Tensor | dict[str, Tensor]]:
        tasks = TASKS if tasks is None else tuple(tasks)
        unknown = [t for t in tasks if t not in self.heads]
        if unknown:
            raise ValueError(f"unknown task(s) {unknown}; the model has heads {list(self.heads)}")
        read = {self.levels[t] for t in tasks}
        features = self.extract_features(images, levels=None if return_features else read)
        shared = {level: self.shared(features[level]) for level in read}
        size = (images.shape[-2], images.shape[-1])
        outputs: dict[str, Tensor | dict[str, Tensor]] = {
            task: self.heads[task](shared[self.levels[task]], size) for task in tasks
        }
        if return_features:
            outputs[FEATURES] = features
        return outputs


def build_model(config: ModelConfig | None = None) -> UniHeadModel:
    """The model for a config; with none, the paper's architecture (randomly initialised)."""
    return UniHeadModel.from_config(config or ModelConfig())


def parameter_breakdown(model: UniHeadModel) -> dict[str, int]:
    """Trainable parameter count per part (backbone, neck, shared, each head) and the total."""
    parts: dict[str, nn.Module] = {"backbone": model.backbone, "neck": model.neck, "shared": model.shared}
    parts.update({f"head.{task}": head for task, head in model.heads.items()})
    counts = {name: sum(p.numel() for p in part.parameters()) for name, part in parts.items()}
    counts["total"] = sum(p.numel() for p in model.parameters())
    return counts


def batchnorm_layers(model: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    """Every BatchNorm layer of ``model`` (timm's ``BatchNormAct2d`` included): the layers whose mode
    decides between batch and running statistics."""
    return [module for module in model.modules() if isinstance(module, nn.modules.batchnorm._BatchNorm)]
