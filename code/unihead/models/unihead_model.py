"""The paper's network: backbone -> FPN -> task outputs, from three separate heads on a shared layer (the
paper's ``separate`` design) or from one branch whose one output tensor holds every task's (``unified``)."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping

from torch import Tensor, nn

from unihead.config import ModelConfig
from unihead.detection_codecs import DET_CODECS
from unihead.models.backbone import InputNormalisation, create_backbone, input_normalisation
from unihead.models.heads import ClassificationHead, DetectionHead, SegmentationHead, SharedLayer, UnifiedHead
from unihead.models.neck import LEVELS, Neck, level_name
from unihead.tasks import CLS, DET, NUM_CLS_CLASSES, NUM_DET_CLASSES, NUM_SEG_CLASSES, SEG, TASKS

FEATURES = "features"
"""Key of the FPN feature dict in the model's output when ``return_features`` is set."""


def task_channels(config: ModelConfig) -> dict[str, int]:
    """Raw output channels of each task: segmentation and classification logits, the detection grid's layout."""
    return {SEG: NUM_SEG_CLASSES, DET: DET_CODECS[config.det_head].channels(NUM_DET_CLASSES), CLS: NUM_CLS_CLASSES}


def trunk(config: ModelConfig) -> tuple[InputNormalisation, nn.Module, Neck]:
    """The input normalisation of the backbone's weights, the backbone (with its weights when
    ``config.pretrained``) and the FPN on its three maps."""
    backbone = create_backbone(config.backbone, config.pretrained, config.weights_file, config.weights_sha256)
    normalise = InputNormalisation(*input_normalisation(config.backbone))
    return normalise, backbone, Neck(backbone.feature_info.channels(), config.fpn_channels)


class UniHeadModel(nn.Module):
    """Multi-task network returning a dict of named outputs; subclasses add the heads.

    ``forward(x, tasks=("det",))`` returns only the detection output, so training one task does not pay
    for the other tasks' read-outs (the segmentation logits' upsampling to full size is the costly one); the
    FPN computes only the levels those outputs read, unless ``return_features`` asks for every level.
    """

    def __init__(self, normalise: InputNormalisation, backbone: nn.Module, neck: Neck) -> None:
        super().__init__()
        self.normalise = normalise
        self.backbone = backbone
        self.neck = neck

    def extract_features(self, images: Tensor, levels: Collection[str] | None = None) -> dict[str, Tensor]:
        """FPN levels ``p3`` (stride 8) to ``p6`` (stride 64) of images in [0, 1]; only those in ``levels``
        when given. The images are normalised here, with the statistics the backbone's weights expect."""
        return self.neck(self.backbone(self.normalise(images)), levels)

    def read_levels(self, tasks: tuple[str, ...]) -> tuple[str, ...]:
        """The FPN levels the outputs of ``tasks`` read, finest first: a fixed order, since a level's outputs are
        computed in this order and autograd sums the shared layer's gradients in the order of the forward (a
        set's order changes with Python's hash seed, and with it the last bits of every later number)."""
        raise NotImplementedError

    def task_outputs(self, features: Mapping[str, Tensor], tasks: tuple[str, ...],
                     input_size: tuple[int, int]) -> dict[str, Tensor]:
        """The outputs of ``tasks`` from the FPN features."""
        raise NotImplementedError

    def head_parts(self) -> dict[str, nn.Module]:
        """The modules after the neck, by the name :func:`parameter_breakdown` gives their count."""
        raise NotImplementedError

    def forward(self, images: Tensor, tasks: Iterable[str] | None = None,
                return_features: bool = False) -> dict[str, Tensor | dict[str, Tensor]]:
        tasks = TASKS if tasks is None else tuple(tasks)
        unknown = [t for t in tasks if t not in TASKS]
        if unknown:
            raise ValueError(f"unknown task(s) {unknown}; the model has outputs {list(TASKS)}")
        features = self.extract_features(images, levels=None if return_features else self.read_levels(tasks))
        outputs: dict[str, Tensor | dict[str, Tensor]] = dict(
            self.task_outputs(features, tasks, (images.shape[-2], images.shape[-1])))
        if return_features:
            outputs[FEATURES] = features
        return outputs


class SeparateHeadsModel(UniHeadModel):
    """The paper's heads: a shared layer, then one head module per task, each on its own FPN level."""

    def __init__(self, normalise: InputNormalisation, backbone: nn.Module, neck: Neck, shared: nn.Module,
                 heads: Mapping[str, nn.Module], levels: Mapping[str, int]) -> None:
        super().__init__(normalise, backbone, neck)
        if set(heads) != set(levels):
            raise ValueError(f"heads {sorted(heads)} and levels {sorted(levels)} must name the same tasks")
        self.shared = shared
        self.heads = nn.ModuleDict(dict(heads))
        self.levels = {task: level_name(stride) for task, stride in levels.items()}

    @classmethod
    def from_config(cls, config: ModelConfig) -> SeparateHeadsModel:
        normalise, backbone, neck = trunk(config)  # first: the parameters are initialised in this order
        width, channels = config.shared_channels, task_channels(config)
        heads = {
            SEG: SegmentationHead(width, channels[SEG]),
            DET: DetectionHead(width, channels[DET]),
            CLS: ClassificationHead(width, channels[CLS]),
        }
        return cls(normalise, backbone, neck, SharedLayer(config.fpn_channels, width), heads, config.levels)

    def read_levels(self, tasks: tuple[str, ...]) -> tuple[str, ...]:
        read = {self.levels[t] for t in tasks}
        return tuple(level for level in LEVELS if level in read)

    def task_outputs(self, features: Mapping[str, Tensor], tasks: tuple[str, ...],
                     input_size: tuple[int, int]) -> dict[str, Tensor]:
        shared = {level: self.shared(features[level]) for level in self.read_levels(tasks)}
        return {task: self.heads[task](shared[self.levels[task]], input_size) for task in tasks}

    def head_parts(self) -> dict[str, nn.Module]:
        return {"shared": self.shared, **{f"head.{task}": head for task, head in self.heads.items()}}


class UnifiedHeadModel(UniHeadModel):
    """One branch (:class:`UnifiedHead`) on one FPN level computes every task's output in one tensor.

    A forward pass for some tasks still runs the whole branch (every task's channels come out of it); only the
    read-outs of the other tasks are skipped.
    """

    def __init__(self, normalise: InputNormalisation, backbone: nn.Module, neck: Neck, head: UnifiedHead,
                 stride: int) -> None:
        super().__init__(normalise, backbone, neck)
        self.head = head
        self.level = level_name(stride)

    @classmethod
    def from_config(cls, config: ModelConfig) -> UnifiedHeadModel:
        normalise, backbone, neck = trunk(config)  # first: the parameters are initialised in this order
        head = UnifiedHead(config.fpn_channels, config.shared_channels, task_channels(config))
        (stride,) = set(config.levels.values())  # ModelConfig checks that a unified head reads one level
        return cls(normalise, backbone, neck, head, stride)

    def read_levels(self, tasks: tuple[str, ...]) -> tuple[str, ...]:
        return (self.level,)

    def task_outputs(self, features: Mapping[str, Tensor], tasks: tuple[str, ...],
                     input_size: tuple[int, int]) -> dict[str, Tensor]:
        return self.head(features[self.level], tasks, input_size)

    def head_parts(self) -> dict[str, nn.Module]:
        return {"head.unified": self.head}


NETWORKS: dict[str, type[SeparateHeadsModel] | type[UnifiedHeadModel]] = {
    "separate": SeparateHeadsModel,
    "unified": UnifiedHeadModel,
}
"""The network of each ``model.head`` value (the names are :data:`unihead.config.HEAD_DESIGNS`)."""


def build_model(config: ModelConfig | None = None) -> UniHeadModel:
    """The model for a config; with none, the paper's architecture (randomly initialised)."""
    config = config or ModelConfig()
    return NETWORKS[config.head].from_config(config)


def parameter_breakdown(model: UniHeadModel) -> dict[str, int]:
    """Trainable parameter count per part (backbone, neck, the head's parts) and the total."""
    parts: dict[str, nn.Module] = {"backbone": model.backbone, "neck": model.neck, **model.head_parts()}
    counts = {name: sum(p.numel() for p in part.parameters()) for name, part in parts.items()}
    counts["total"] = sum(p.numel() for p in model.parameters())
    return counts


def batchnorm_layers(model: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    """Every BatchNorm layer of ``model`` (timm's ``BatchNormAct2d`` included): the layers whose mode
    decides between batch and running statistics."""
    return [module for module in model.modules() if isinstance(module, nn.modules.batchnorm._BatchNorm)]
