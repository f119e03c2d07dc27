"""The whole report of an experiment: every table and figure from its runs."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from unihead.config import ExperimentConfig
from unihead.forgetting import load_runs, read_summary
from unihead.models import build_model, parameter_breakdown
from unihead.report import figures
from unihead.report.qualitative import qualitative_figure
from unihead.report.tables import final_metrics, write_tables

DATA_DESCRIPTIONS = {
    "synthetic": "synthetic data ({root})",
    "folder": "real data from the folder {root}",
    "official": "Mini-VOC-Seg, Mini-COCO-Det and Imagenette-160 built from the official VOC 2012, COCO 2017 "
                "and Imagenette archives ({root})",
}
"""How a caption names each ``data.source``."""


def provenance_line(config: ExperimentConfig, seeds: int) -> str:
    """Which data, resolution and weights produced the numbers (appended to every caption)."""
    weights = "ImageNet-pretrained backbone" if config.model.pretrained else "backbone trained from scratch"
    data = DATA_DESCRIPTIONS[config.data.source].format(root=config.data.root)
    return (f"Experiment '{config.name}': {data}, {config.data.image_size} px, {weights}, "
            f"det head '{config.model.det_head}', {config.train.epochs} epochs per task, {seeds} seed(s).")


def build_report(config: ExperimentConfig, metrics: list[Path], forgetting: Path, out_dir: Path,
                 benchmark: Path | None = None) -> list[Path]:
    """Write ``out_dir/tables`` and ``out_dir/figures`` from the runs, the forgetting summary that
    ``unihead forgetting`` wrote from them and the benchmark's JSON; return every file written."""
    runs = load_runs(metrics)
    summary, verdict = read_summary(forgetting)
    seeds = len({run["run"]["seed"] for run in runs})
    line = provenance_line(config, seeds)
    parameters = parameter_breakdown(build_model(dataclasses.replace(config.model, pretrained=False)))["total"]
    measured = json.loads(benchmark.read_text()) if benchmark else None
    written = write_tables(runs, summary, verdict, out_dir / "tables", parameters, measured, line)
    figure_dir = out_dir / "figures"
    sequence = [run for run in runs if run["run"]["kind"] == "sequence"]
    written += figures.save(figures.final_metrics_figure(final_metrics(runs)), figure_dir, "final_metrics")
    if sequence:
        written += figures.save(figures.stages_figure(sequence), figure_dir, "stages")
        written += figures.save(figures.r_heatmaps_figure(sequence), figure_dir, "r_matrices")
        first_seed = min(run["run"]["seed"] for run in sequence)
        histories = {run["run"]["name"]: Path(run["path"]).with_name("history.csv") for run in sequence
                     if run["run"]["seed"] == first_seed}
        written += figures.save(figures.training_curves_figure(histories), figure_dir, "training_curves")
        shown = sequence[-1]
        weights = Path(shown["path"]).with_name("model.pt")
        title = f"{shown['run']['name']} (seed {shown['run']['seed']}) after all stages. {line}"
        written += figures.save(qualitative_figure(config, weights, title), figure_dir, "qualitative")
    return written
