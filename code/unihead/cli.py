"""The ``unihead`` command (also ``python -m unihead``), which the workflow's rules call."""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import re
import signal
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from unihead.config import (
    COMPARE_FLOOR,
    DATA_SOURCES,
    DEVICE_PATTERN,
    MAX_IMAGE_SIZE,
    SYNTHETIC_MIN_IMAGES,
    SYNTHETIC_MIN_SIZE,
    THRESHOLD_RULES,
    DataConfig,
    ExperimentConfig,
    SyntheticConfig,
    apply_variant,
    load_config,
)
from unihead.errors import InputError, TrainingDiverged
from unihead.files import atomic_write_text, writing_into
from unihead.schema import ConfigError


def _experiment(path: str | None) -> ExperimentConfig:
    return load_config(path) if path else ExperimentConfig()


def cmd_params(args: argparse.Namespace) -> int:
    """Print the parameter count per part of the model (no weights are loaded: counting needs none)."""
    from unihead.models import build_model, parameter_breakdown

    config = _experiment(args.config)
    model_config = dataclasses.replace(config.model, pretrained=False)
    counts = parameter_breakdown(build_model(model_config))
    source = args.config or "the paper's model (built-in defaults)"
    print(f"parameters of {source} (head={model_config.head}, det_head={model_config.det_head}, "
          f"levels={model_config.levels})")
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


def cmd_benchmark(args: argparse.Namespace) -> int:
    """Measure the model on a device: parameters, forward latency (eager and fast path, beside the bare backbone
    + FPN), training images/s (full model beside the bare backbone + FPN), data pipeline images/s, peak memory;
    medians of repeated runs after warm-up."""
    from tabulate import tabulate

    from unihead.benchmark import Settings, conditions_line, run_benchmark, summary_rows
    from unihead.engine.run import resolve_device

    config = _experiment(args.config)
    if args.variant is not None:
        config = apply_variant(config, args.variant)
    try:
        device = resolve_device(args.device or config.train.device)
    except ConfigError as err:
        if args.device is None:
            raise
        raise InputError(f"unihead benchmark: --device {args.device}: no CUDA device is visible") from err
    settings = Settings(image_size=args.size or config.data.image_size, batch=args.batch,
                        train_batch=args.train_batch or config.train.batch_size, repeats=args.repeats,
                        warmup=args.warmup, precision=config.train.precision,
                        deterministic=config.train.deterministic, data_samples=args.samples)
    data_root = Path(args.data_root) if args.data_root else None
    if data_root is not None and not data_root.is_dir():
        raise InputError(f"unihead benchmark: --data-root {data_root}: no such folder")
    result = run_benchmark(dataclasses.replace(config.model, pretrained=False), device, settings, data_root)
    if args.variant is not None:
        result["variant"] = args.variant
        print(f"variant {args.variant!r} of experiment {config.name!r}")
    print(tabulate(summary_rows(result), headers=["measurement", "value"], disable_numparse=True))
    print(conditions_line(result))
    if args.json:
        atomic_write_text(Path(args.json), json.dumps(result, indent=2) + "\n")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    """Write the tables (CSV, Markdown, LaTeX) and figures (PDF, PNG) of an experiment from its runs."""
    from unihead.report.build import build_report

    with writing_into(Path(args.out)):
        written = build_report(load_config(args.config), [Path(p) for p in args.metrics], Path(args.forgetting),
                               Path(args.out), benchmarks=[Path(p) for p in args.benchmark or []])
    print(f"wrote {len(written)} files under {args.out}")
    return 0


def _exit_on_sigterm(signum: int, frame: object) -> None:
    """SIGTERM (a cluster's time limit, ``kill``) as an exit that unwinds the run, so that its lock and
    temporary files are removed on the way out (status 128 + 15, as after the signal itself)."""
    sys.exit(128 + signum)


def cmd_train(args: argparse.Namespace) -> int:
    """Train and evaluate one run (a strategy over the task sequence, or baseline-<task>); resumes if interrupted."""
    from unihead.config import load_run_config
    from unihead.engine.run import Run, execute
    from unihead.results import METRICS_FILE
    from unihead.scopes import run_config

    if args.run is None:
        if args.seed is not None or args.variant is not None:
            raise InputError("unihead train: --seed and --variant go with --run (a run config file holds its own "
                             "seed and variant)")
        config = load_run_config(args.config)
    else:
        config = run_config(load_config(args.config), args.run, 0 if args.seed is None else args.seed, args.variant)
    run = Run(config, Path(args.out), manifest=Path(args.manifest) if args.manifest else None)
    previous = signal.signal(signal.SIGTERM, _exit_on_sigterm)
    try:
        record = execute(run, overwrite=args.overwrite)
    finally:
        signal.signal(signal.SIGTERM, previous)
    finals = ", ".join(f"{task} {math.nan if score is None else score:.4f}"
                       for task, score in zip(record.eval_tasks, record.R[-1], strict=True))
    print(f"[{config.run} seed{config.seed}] done in {record.train_seconds:.0f} s of training: {finals}; "
          f"wrote {Path(args.out) / METRICS_FILE}")
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


def cmd_ewc_sweep(args: argparse.Namespace) -> int:
    """Write the EWC sweep's table and choice from its runs (each weight's ewc run, scored on held-out training
    images): the penalty weight of the best average final score, which every EWC run of the experiment uses."""
    from unihead.report.build import provenance_line
    from unihead.report.ewc_sweep import write_sweep
    from unihead.results import read_runs

    experiment = load_config(args.config)
    choice, table = Path(args.choice), Path(args.table)
    with writing_into(choice.parent), writing_into(table.parent):
        paths = write_sweep(read_runs([Path(p) for p in args.runs]), experiment, table, choice,
                            provenance_line(experiment, len(experiment.ewc_sweep.seeds)))
    print("wrote " + ", ".join(str(p) for p in paths))
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    """Compare an experiment's results with reference results, number by number (provenance first); exits 1
    when a number is not reproduced, is missing on one side, or the data differ."""
    from unihead.compare import compare_results, write_comparison

    comparison = compare_results(Path(args.reference), Path(args.mine), floor=args.floor)
    paths = write_comparison(comparison, Path(args.out) if args.out else Path(args.mine) / "compare")
    print(comparison.text())
    print("wrote " + ", ".join(str(p) for p in paths))
    return 0 if comparison.reproduced else 1


def cmd_readme(args: argparse.Namespace) -> int:
    """Copy generated Markdown tables into README.md between the experiment's markers."""
    from unihead.report.readme import update_readme

    name = load_config(args.config).name
    block = "\n\n".join(Path(table).read_text().strip() for table in args.tables)
    update_readme(Path(args.readme), block, name, ", ".join(args.tables))
    print(f"updated the '{name}' results in {args.readme}")
    return 0


def _integer_in(low: int, high: int | None = None, why: str = "") -> Callable[[str], int]:
    """An argparse type: an integer in [low, high] (no upper bound when None)."""
    def integer(text: str) -> int:
        value = int(text)
        if value < low or (high is not None and value > high):
            span = f"at least {low}" if high is None else f"an integer in [{low}, {high}]"
            raise argparse.ArgumentTypeError(f"expected {span}{why}, got {value}")
        return value
    return integer


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected at least 1, got {value}")
    return value


def _device(text: str) -> str:
    if not re.fullmatch(DEVICE_PATTERN.regex, text):
        raise argparse.ArgumentTypeError(f"expected {DEVICE_PATTERN.description}, got {text!r}")
    return text


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="unihead", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    params = commands.add_parser("params", help=cmd_params.__doc__, description=cmd_params.__doc__)
    params.add_argument("--config", help="experiment YAML (default: the paper's model)")
    params.set_defaults(func=cmd_params)

    synth = commands.add_parser("synth", help=cmd_synth.__doc__, description=cmd_synth.__doc__)
    synth.add_argument("--out", required=True, help="data root to write (mini_voc_seg/, mini_coco_det/, ...)")
    per_class = _integer_in(SYNTHETIC_MIN_IMAGES, why=" (one image per class)")
    synth.add_argument("--n-train", type=per_class, default=SyntheticConfig.n_train,
                       help="images per task in train (default %(default)s)")
    synth.add_argument("--n-val", type=per_class, default=SyntheticConfig.n_val,
                       help="images per task in val (default %(default)s)")
    synth.add_argument("--size", type=_integer_in(SYNTHETIC_MIN_SIZE, MAX_IMAGE_SIZE),
                       default=SyntheticConfig.image_size, help="nominal image size in pixels (default %(default)s)")
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
    train.add_argument("--config", required=True, help="the run's config file as the workflow writes it "
                       "(results/<exp>/runs/<run>/seed<N>/run.yaml), or with --run an experiment YAML")
    train.add_argument("--run", help="with an experiment YAML: a strategy name (none, ewc, lwf, replay, kd, "
                       "kd_replay, or strategies joined by '+' such as lwf+replay) or baseline-seg / baseline-det / "
                       "baseline-cls")
    train.add_argument("--seed", type=int, help="with --run: the seed (default 0)")
    train.add_argument("--variant", help="with --run: the experiment's variant (workflow.variants) to train")
    train.add_argument("--out", required=True, help="run folder (metrics.json, history.csv, model.pt)")
    train.add_argument("--manifest", help="the data's manifest, whose sha256 is recorded with the results "
                       "(default: <data root>/manifest.json when it exists)")
    train.add_argument("--overwrite", action="store_true", help="replace the results of a finished run of another "
                       "run config in --out (without it, such a folder is refused, naming the keys that differ)")
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

    benchmark = commands.add_parser("benchmark", help=cmd_benchmark.__doc__, description=cmd_benchmark.__doc__)
    benchmark.add_argument("--config", help="experiment YAML: the model, image size, training batch, "
                           "train.precision and train.deterministic (default: the paper's model and settings)")
    benchmark.add_argument("--size", type=_positive, help="image size (default: the config's data.image_size)")
    benchmark.add_argument("--batch", type=_positive, default=1, help="images per forward pass (default 1)")
    benchmark.add_argument("--train-batch", type=_positive,
                           help="images per training step (default: the config's train.batch_size)")
    benchmark.add_argument("--repeats", type=_positive, default=10,
                           help="timed runs of each measurement; their median is reported (default 10)")
    benchmark.add_argument("--warmup", type=int, default=2, help="untimed runs before them (default 2)")
    benchmark.add_argument("--device", type=_device,
                           help="auto, cpu, cuda or cuda:N (default: the config's train.device)")
    benchmark.add_argument("--data-root", help="also time reading and transforming training samples from this "
                           "data root (mini_voc_seg/, mini_coco_det/, imagenette_160/)")
    benchmark.add_argument("--samples", type=_positive, default=32,
                           help="training samples per task read for the data pipeline (default 32)")
    benchmark.add_argument("--variant", help="measure the model of this variant of the experiment "
                           "(workflow.variants); the JSON records its name")
    benchmark.add_argument("--json", help="also write every measurement and its conditions to this JSON file")
    benchmark.set_defaults(func=cmd_benchmark)

    report = commands.add_parser("report", help=cmd_report.__doc__, description=cmd_report.__doc__)
    report.add_argument("--config", required=True, help="the experiment YAML the runs were made with (or the "
                        "workflow's report config, results/<exp>/config/report.yaml)")
    report.add_argument("metrics", nargs="+", help="metrics.json files, or folders of runs")
    report.add_argument("--forgetting", required=True, help="forgetting_summary.csv that `unihead forgetting` "
                        "wrote from the same runs (the report shows its drops and verdicts)")
    report.add_argument("--out", required=True, help="folder for tables/ and figures/")
    report.add_argument("--benchmark", nargs="+", help="JSON written by `unihead benchmark --json` (inference "
                        "latency); with variants one per variant, written with `--variant`")
    report.set_defaults(func=cmd_report)

    sweep = commands.add_parser("ewc-sweep", help=cmd_ewc_sweep.__doc__, description=cmd_ewc_sweep.__doc__)
    sweep.add_argument("runs", nargs="+", help="the sweep's metrics.json files, or folders of them")
    sweep.add_argument("--config", required=True, help="the experiment YAML (its ewc_sweep section; or the "
                       "workflow's slice, results/<exp>/config/ewc_sweep.yaml)")
    sweep.add_argument("--table", required=True, help="the table's path without suffix (.csv, .md and .tex are "
                       "written)")
    sweep.add_argument("--choice", required=True, help="the JSON file of the chosen weight")
    sweep.set_defaults(func=cmd_ewc_sweep)

    compare = commands.add_parser("compare", help=cmd_compare.__doc__, description=cmd_compare.__doc__)
    compare.add_argument("reference", help="reference results: a results/<exp>/ folder (runs/, tables/, data/)")
    compare.add_argument("mine", help="the results to check, in the same layout")
    compare.add_argument("--out", help="folder for comparison.md and comparison.csv (default: MINE/compare)")
    compare.add_argument("--floor", type=float, default=COMPARE_FLOOR,
                         help="smallest tolerance on the metrics' 0..1 scale (x100 for drops in points); a number "
                         "may also differ by 2 standard deviations over the reference's seeds when that is more "
                         "(default %(default)s)")
    compare.set_defaults(func=cmd_compare)

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
    except OSError as err:  # a file or folder that cannot be read or written: the error names it
        where = f"{err.filename}: " if err.filename else ""
        print(f"unihead: error: {where}{err.strerror or err}", file=sys.stderr)
        return 2
    except TrainingDiverged as err:
        print(f"unihead: training diverged: {err}", file=sys.stderr)
        return 1
