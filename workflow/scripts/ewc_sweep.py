"""Sweep EWC's penalty weight lambda on an experiment's data and print the table the choice rests on.

    python workflow/scripts/ewc_sweep.py workflow/config/demo.yaml 0.01 1 100 10000 \
        --out results/ewc-sweep --latex paper/ewc_sweep.tex

Each lambda is one ``unihead train --run ewc`` (the experiment's first seed) with only
``strategies.ewc.penalty_weight`` changed, run ``--jobs`` at a time with the experiment's
``workflow.threads_per_run`` threads each; the table (Markdown, to stdout
and ``<out>/sweep.md``; a lambda whose run is complete under ``--out`` with the same config is
not trained again) gives each task's final score, the average final score and the average
forgetting from ``unihead.forgetting``; ``--latex`` also writes it as a booktabs table (the paper's
reproduction notes include ``paper/ewc_sweep.tex``). The experiment's data must exist (run its
prepare_data job).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pandas as pd
import yaml

from unihead.config import load_config
from unihead.forgetting import sequence_summaries
from unihead.report.tables import latex_table
from unihead.results import METRICS_FILE, load_runs


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("config", type=Path)
    parser.add_argument("lambdas", type=float, nargs="+")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--latex", type=Path, help="also write the table here as LaTeX")
    args = parser.parse_args()
    experiment = load_config(args.config)
    values = yaml.safe_load(args.config.read_text())
    seed = experiment.workflow.seeds[0]
    manifest = Path(f"results/{experiment.name}/data/manifest.json")
    env = {**os.environ, "OMP_NUM_THREADS": str(experiment.workflow.threads_per_run)}

    def train(weight: float) -> Path:
        out = args.out / f"lambda{weight:g}"
        out.mkdir(parents=True, exist_ok=True)
        values.setdefault("strategies", {}).setdefault("ewc", {})
        config = {**values, "strategies": {**values["strategies"], "ewc": {**values["strategies"]["ewc"],
                                                                            "penalty_weight": weight}}}
        text = yaml.safe_dump(config, sort_keys=False)
        run_dir = out / "runs" / "ewc" / f"seed{seed}"
        config_file = out / "config.yaml"
        if (run_dir / METRICS_FILE).is_file() and config_file.is_file() and config_file.read_text() == text:
            return run_dir / METRICS_FILE  # this lambda's run is complete: reuse it
        config_file.write_text(text)
        with open(out / "train.log", "w") as log:
            subprocess.run([sys.executable, "-m", "unihead", "train", "--config", str(out / "config.yaml"),
                            "--manifest", str(manifest), "--run", "ewc", "--seed", str(seed), "--out", str(run_dir)],
                           check=True, stdout=log, stderr=subprocess.STDOUT, env=env)
        return run_dir / METRICS_FILE

    with ThreadPoolExecutor(args.jobs) as pool:
        paths = list(pool.map(train, args.lambdas))
    rows = []
    for weight, path in zip(args.lambdas, paths, strict=True):
        (run,) = load_runs([path])
        summary = sequence_summaries(run)
        rows.append({"lambda": f"{weight:g}", **{t: 100 * v for t, v in zip(run.eval_tasks, run.R[-1], strict=True)},
                     "avg final": 100 * summary["avg_final"], "avg forgetting": 100 * summary["avg_forgetting"]})
    display = pd.DataFrame(rows).map(lambda value: value if isinstance(value, str) else f"{value:.1f}")
    data = experiment.data
    caption = (f"EWC's penalty weight on {args.config} ({data.source} data, {data.image_size} px, seed {seed}): "
               "final score per task, average final score and average forgetting (x100); "
               f"made by workflow/scripts/ewc_sweep.py.")
    table = display.to_markdown(index=False, disable_numparse=True)
    (args.out / "sweep.md").write_text(f"{table}\n\n{caption}\n")
    if args.latex:
        args.latex.write_text(latex_table(display, caption, "tab:ewc-sweep", index=False))
    print(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
