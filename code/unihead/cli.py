"""The ``unihead`` command (also ``python -m unihead``), which the workflow's rules call."""

from __future__ import annotations

import argparse
import dataclasses
import json
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

from unihead.config import DATA_SOURCES, THRESHOLD_RULES, DataConfig, ExperimentConfig, SyntheticConfig, load_config
from unihead.errors import InputError, TrainingDiverged
from unihead.files import atomic_write_text


def _experiment(path: str | None) -> ExperimentConfig:
    return load_config(path) if path else ExperimentConfig()


def cmd_params(args: argparse.Namespace) -> int:
    """Print the parameter count per part of the model (no weights are loaded: counting needs none)."""
    from unihead.models import build_model, parameter_breakdown

    config = _experiment(args.config)
    model_config = dataclasses.replace(config.model, pretrained=False)
    counts = parameter_breakdown(build_model(model_config))
    source = args.config or "the paper's model (built-in defaults)"
    print(f"parameters of {source} (det_head={model_config.det_head}, levels={model_config.levels})")
    width = max(len(name) for name in counts)
    for name, count in counts.items():
        print(f"  {name:<{width}}  {count:>10,}")
    return 0


def cmd_synth(args: argparse.Namespace) -> int:
    """Write the synthetic datasets in the three on-disk formats."""
    from unihead.sources import write_synthetic_dataset

    write_synthetic_dataset(Path(args.out), n_train=args.n_train, n_val=args.n_val,
                            image_size=args.size, seed=args.seed)
    print(f"wrote synthetic datasets to {args.out}")
    return 0


def cmd_prepare(args: argparse.Namespace) -> int:
    """Make a data root ready (synthesise it, build it from the official sources, or validate a folder the
    user has) and write its manifest (sha256 of every file)."""
    from unihead.sources.manifest import MANIFEST, write_manifest
    from unihead.sources.prepare import prepare_data

    if args.config:
        if args.source or args.path or args.out or args.subsets or args.cache:
            raise InputError("unihead prepare: give either --config, or --source with --out (and a folder for "
                             "--source folder), not both")
        experiment = load_config(args.config)  # checks every strategy's options too, before any data is built
        data = experiment.data
        manifest_path = Path(args.manifest) if args.manifest else Path(data.root) / MANIFEST
    else:
        if not args.source or not args.out:
            raise InputError("unihead prepare: give --config, or --source and --out")
        if (args.source == "folder") != (args.path is not None):
            raise InputError("unihead prepare: a folder to validate is given with --source folder, and only then")
        official = {key: value for key, value in (("subsets", args.subsets), ("cache", args.cache)) if value}
        if official and args.source != "official":
            raise InputError("unihead prepare: --subsets and --cache are options of --source official")
        data = DataConfig(source=args.source, root=args.path or args.out,
                          official=dataclasses.replace(DataConfig().official, **official))
        manifest_path = Path(args.manifest) if args.manifest else Path(args.out) / MANIFEST
    manifest = prepare_data(data)
    digest = write_manifest(manifest, manifest_path)
    print(f"{data.source} data at {data.root}: {len(manifest['files'])} files; manifest {manifest_path} "
          f"(sha256 {digest[:12]})")
    return 0


def cmd_speed(args: argparse.Namespace) -> int:
    """Time one forward pass of the model (median of several runs, batch 1, all heads)."""
    import torch

    from unihead.engine.provenance import device_description
    from unihead.models import build_model
    from unihead.speed import measure_inference_ms

    config = _experiment(args.config)
    size = args.size or config.data.image_size
    model = build_model(dataclasses.replace(config.model, pretrained=False))
    result = measure_inference_ms(model, size, args.device, runs=args.runs)
    device = device_description(torch.device(args.device))
    print(f"forward of one {size}x{size} image on {device}: median {result['median_ms']:.1f} ms "
          f"(min {result['min_ms']:.1f}, max {result['max_ms']:.1f}, {args.runs} runs)")
    if args.json:
        atomic_write_text(Path(args.json), json.dumps({**result, "image_size": size, "device": device}) + "\n")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    """Write the tables (CSV, Markdown, LaTeX) and figures (PDF, PNG) of an experiment from its runs."""
    from unihead.report.build import build_report

    written = build_report(load_config(args.config), [Path(p) for p in args.metrics], Path(args.out),
                           inference=Path(args.inference) if args.inference else None)
    print(f"wrote {len(written)} files under {args.out}")
    return 0


def _exit_on_sigterm(signum: int, frame: object) -> None:
    """SIGTERM (a cluster's time limit, ``kill``) as an exit that unwinds the run, so that its lock and
    temporary files are removed on the way out (status 128 + 15, as after the signal itself)."""
    sys.exit(128 + signum)


def cmd_train(args: argparse.Namespace) -> int:
    """Train and evaluate one run (a strategy over the task sequence, or baseline-<task>); resumes if interrupted."""
    from unihead.engine.run import Run, execute
    from unihead.runs import run_spec

    config = load_config(args.config)
    run = Run(config, run_spec(config, args.run, args.seed), Path(args.out),
              manifest=Path(args.manifest) if args.manifest else None)
    previous = signal.signal(signal.SIGTERM, _exit_on_sigterm)
    try:
        metrics = execute(run)
    finally:
        signal.signal(signal.SIGTERM, previous)
    finals = ", ".join(f"{t} {m[metric]:.4f}" for t, m in metrics["final"].items()
                       for metric in [metrics["primary_metric"][t]])
    print(f"[{args.run} seed{args.seed}] done in {metrics['train_seconds']:.0f} s of training: {finals}; "
          f"wrote {Path(args.out) / 'metrics.json'}")
    return 0


def cmd_forgetting(args: argparse.Namespace) -> int:
    """Write the forgetting tables (drops, verdicts; per seed, and over seeds) from a folder of runs."""
    from unihead.forgetting import Verdict, write_tables

    experiment = load_config(args.config) if args.config else None
    given = {"threshold": args.threshold, "rule": args.threshold_rule, "learned_margin": args.learned_margin}
    verdict = dataclasses.replace(Verdict.from_config(experiment or ExperimentConfig()),
                                  **{key: value for key, value in given.items() if value is not None})
    paths = write_tables([Path(p) for p in args.runs], Path(args.out), verdict,
                         require_single_baseline=not args.no_single_baseline, experiment=experiment)
    print("wrote " + ", ".join(str(p) for p in paths))
    return 0


def cmd_readme(args: argparse.Namespace) -> int:
    """Copy generated Markdown tables into README.md between the experiment's markers."""
    from unihead.report.readme import update_readme

    name = load_config(args.config).name
    block = "\n\n".join(Path(table).read_text().strip() for table in args.tables)
    update_readme(Path(args.readme), block, name, ", ".join(args.tables))
    print(f"updated the '{name}' results in {args.readme}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="unihead", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    params = commands.add_parser("params", help=cmd_params.__doc__, description=cmd_params.__doc__)
    params.add_argument("--config", help="experiment YAML (default: the paper's model)")
    params.set_defaults(func=cmd_params)

    synth = commands.add_parser("synth", help=cmd_synth.__doc__, description=cmd_synth.__doc__)
    synth.add_argument("--out", required=True, help="data root to write (mini_voc_seg/, mini_coco_det/, ...)")
    synth.add_argument("--n-train", type=int, default=SyntheticConfig.n_train,
                       help="images per task in train (default %(default)s)")
    synth.add_argument("--n-val", type=int, default=SyntheticConfig.n_val,
                       help="images per task in val (default %(default)s)")
    synth.add_argument("--size", type=int, default=SyntheticConfig.image_size,
                       help="nominal image size in pixels (default %(default)s)")
    synth.add_argument("--seed", type=int, default=SyntheticConfig.seed)
    synth.set_defaults(func=cmd_synth)

    prepare = commands.add_parser("prepare", help=cmd_prepare.__doc__, description=cmd_prepare.__doc__)
    prepare.add_argument("--config", help="experiment YAML: its data section says the source and the root")
    prepare.add_argument("--source", choices=DATA_SOURCES, help="without --config: where the data comes from "
                         "(the other data settings take their defaults)")
    prepare.add_argument("path", nargs="?", help="with --source folder: the existing folder to validate in place")
    prepare.add_argument("--out", help="with --source: the folder to write (synthetic, official) or the folder for "
                         "the manifest (folder)")
    prepare.add_argument("--manifest", help="where to write the manifest (default: manifest.json in the data root, "
                         "or in --out)")
    defaults = DataConfig().official
    prepare.add_argument("--subsets", help="with --source official: folder of the id lists (default: "
                         f"{defaults.subsets}, relative to the current folder)")
    prepare.add_argument("--cache", help=f"with --source official: download cache (default: {defaults.cache})")
    prepare.set_defaults(func=cmd_prepare)

    train = commands.add_parser("train", help=cmd_train.__doc__, description=cmd_train.__doc__)
    train.add_argument("--config", required=True, help="experiment YAML")
    train.add_argument("--run", required=True, help="a strategy name (none, ewc, lwf, replay, kd, kd_replay, or "
                       "strategies joined by '+' such as lwf+replay) or baseline-seg / baseline-det / baseline-cls")
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--out", required=True, help="run folder (metrics.json, history.csv, model.pt)")
    train.add_argument("--manifest", help="the data's manifest, whose sha256 is recorded with the results "
                       "(default: <data root>/manifest.json when it exists)")
    train.set_defaults(func=cmd_train)

    forgetting = commands.add_parser("forgetting", help=cmd_forgetting.__doc__, description=cmd_forgetting.__doc__)
    forgetting.add_argument("runs", nargs="+",
                            help="metrics.json files, or folders of runs (<run>/seed<N>/metrics.json)")
    forgetting.add_argument("--out", required=True, help="folder for the CSV tables")
    forgetting.add_argument("--config", help="the experiment's YAML: every run it lists (workflow.strategies and "
                            "baseline-<task> for workflow.baselines, for every seed of workflow.seeds) must be "
                            "among the runs, and its threshold, threshold_rule and learned_margin are the defaults")
    forgetting.add_argument("--threshold", type=float,
                            help="largest drop that passes, as measured by --threshold-rule (default: the "
                            f"experiment's, else {ExperimentConfig.threshold})")
    forgetting.add_argument("--threshold-rule", choices=THRESHOLD_RULES,
                            help="relative: (base - final) / base; relative_to_chance: (base - final) / "
                            "(base - chance); absolute: base - final on the 0..1 scale (default: the "
                            f"experiment's, else {ExperimentConfig.threshold_rule})")
    forgetting.add_argument("--learned-margin", type=float,
                            help="a baseline less than this above the chance score (0..1 scale) is 'not learned' "
                            f"(default: the experiment's, else {ExperimentConfig.learned_margin})")
    forgetting.add_argument("--no-single-baseline", action="store_true",
                            help="allow runs without baseline-<task> runs (single-task columns are then empty)")
    forgetting.set_defaults(func=cmd_forgetting)

    speed = commands.add_parser("speed", help=cmd_speed.__doc__, description=cmd_speed.__doc__)
    speed.add_argument("--config", help="experiment YAML (default: the paper's model)")
    speed.add_argument("--size", type=int, help="image size (default: the config's data.image_size)")
    speed.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda (default cpu)")
    speed.add_argument("--runs", type=int, default=10)
    speed.add_argument("--json", help="also write the timings to this JSON file")
    speed.set_defaults(func=cmd_speed)

    report = commands.add_parser("report", help=cmd_report.__doc__, description=cmd_report.__doc__)
    report.add_argument("--config", required=True, help="the experiment YAML the runs were made with")
    report.add_argument("metrics", nargs="+", help="metrics.json files, or folders of runs")
    report.add_argument("--out", required=True, help="folder for tables/ and figures/")
    report.add_argument("--inference", help="JSON written by `unihead speed --json` (inference latency)")
    report.set_defaults(func=cmd_report)

    readme = commands.add_parser("readme", help=cmd_readme.__doc__, description=cmd_readme.__doc__)
    readme.add_argument("tables", nargs="+", help="Markdown tables written by `unihead report`")
    readme.add_argument("--config", required=True,
                        help="the experiment's YAML; its name selects the README markers results:<name>:begin/end")
    readme.add_argument("--readme", default="README.md")
    readme.set_defaults(func=cmd_readme)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except InputError as err:
        print(f"unihead: error: {err}", file=sys.stderr)
        return 2
    except TrainingDiverged as err:
        print(f"unihead: training diverged: {err}", file=sys.stderr)
        return 1
