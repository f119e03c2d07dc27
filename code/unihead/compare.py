"""Did a run of the workflow reproduce committed reference results? ``unihead compare REFERENCE MINE``.

Both folders have the layout of ``results/<exp>/``: ``runs/<run>/seed<N>/metrics.json`` (with variants
``runs/<variant>/<run>/seed<N>/metrics.json``, each run then named ``<variant>/<run>``), the forgetting tables
``tables/forgetting_per_seed.csv`` and ``tables/forgetting_summary.csv``, and ``data/manifest.json``.

Provenance comes first, before any number:

- different data (a file of the two manifests with another sha256, or a file on one side only) is an
  error: such results are no reproduction, and the comparison fails whatever the numbers. The manifests
  are compared file by file rather than by their own sha256 (each run's ``data_manifest_sha256``), since a
  manifest also records the path of its data root, which may differ between machines;
- different package versions (each run's ``provenance.packages``: torch, torchvision, timm, ...) or Python
  are a loud warning: the numbers are still judged by their tolerance, but bit-identical numbers are not
  to be expected;
- the devices and code commits are stated; a run (name and seed) on one side only is an error.

The verdict is statistical (:mod:`unihead.reproduction`): bit-identical when every number is equal; else
reproduced within noise unless a reviewer-level quantity (a strategy's mean final score or drop, a baseline's
mean final score) differs beyond the combined seed and image noise of both sides (z-tests, Holm-corrected to a
5% family-wise false-alarm rate) or a verdict is pass on one side and fail on the other; data that differ, a
run on one side only or a number on one side only are not reproduced whatever the rest.

Then, as the detail, every number side by side: each run's final metrics (every metric of every task) and its accuracy
matrix ``R``, and every cell of the two forgetting tables (the report's tables are formatted from these and
are not compared again). A number is reproduced when mine differs from the reference by at most its
tolerance: two sample standard deviations of that number over the reference's seeds, and never less than
the floor (:data:`~unihead.config.COMPARE_FLOOR` on the metrics' 0..1 scale, a hundred times that for the
absolute drops, which the tables give in points). A floor below the spread keeps a quantity that all
seeds give alike (a chance score) from demanding bit-identity. In the summary table the spread of ``x_mean``
and of ``x`` is the table's own ``x_std``. Text (the verdicts) and counts (``seeds``) must be equal. A
number on one side only (a missing run, seed, task or cell) is not reproduced; a cell empty on both sides
is not a number and is not listed. Equal floats are reported as bit-identical: CPU runs of the same seed
with the same versions on the same machine type give them.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from unihead.config import COMPARE_FLOOR
from unihead.errors import InputError
from unihead.files import atomic_write_text
from unihead.forgetting import PER_SEED_CSV, RULE_DROP, SUMMARY_CSV, TOLERANCE, VARIANT, Verdict
from unihead.reproduction import (
    BIT_IDENTICAL,
    FAMILY_ALPHA,
    WITHIN_NOISE,
    estimates,
    tested_quantities,
    verdict_flips,
)
from unihead.reproduction import (
    NOT_REPRODUCED as NOT_THE_SAME,
)
from unihead.results import METRICS_FILE, RunResult, load_runs, qualified_name, require_keys
from unihead.schema import Bounds
from unihead.sources.manifest import MANIFEST

TABLE_KEYS = {PER_SEED_CSV: ("strategy", "seed", "task", "metric"), SUMMARY_CSV: ("strategy", "task", "metric")}
"""The forgetting tables under ``tables/``, with the columns that name a row (every other cell is compared);
with variants, the ``variant`` column too."""
KEYS = ["table", "run", "seed", "task", "metric", "quantity"]
"""What names one number: its file, run (strategy), seed, task, metric and quantity (``final``,
``R after <stage task>``, or a table's column)."""
OVER_SEEDS = "all"
"""The seed of a summary-table number, which is over all seeds."""
FLOOR_RANGE = Bounds(0.0, 0.1)
"""The floors ``compare`` accepts: a floor of 0.1 lets a number move by 10 points; a larger one (or an infinite one)
would take a changed result as reproduced."""
SIGMAS = 2.0
"""Standard deviations over the reference's seeds that a reproduced number may differ by."""
POINTS_PREFIX = RULE_DROP["absolute"]
"""Columns starting with this hold absolute drops in points (x100; :func:`unihead.forgetting.drops`)."""
REPRODUCED, NOT_REPRODUCED = "reproduced", "not reproduced"
MISSING_IN_MINE, MISSING_IN_REFERENCE = "missing in mine", "missing in the reference"
ERROR, WARNING, NOTE, SAME = "ERROR", "WARNING", "note", "same"
"""Levels of a provenance finding: an ERROR fails the comparison, a WARNING is printed loudly."""
COMPARISON_MD, COMPARISON_CSV = "comparison.md", "comparison.csv"
EXAMPLES = 3
"""File names shown when data differ."""


@dataclass(frozen=True)
class Results:
    """One experiment's result folder, read and checked."""

    folder: Path
    runs: list[RunResult]
    tables: dict[str, pd.DataFrame]
    data_files: dict[str, str]
    """sha256 of every data file, by its path in the manifest."""


@dataclass(frozen=True)
class Finding:
    """One line of the provenance check: its level, what it is about (data, versions, ...) and what was found."""

    level: str
    topic: str
    text: str


def _read_table(path: Path, keys: tuple[str, ...]) -> pd.DataFrame:
    """A forgetting table, its verdicts kept as written (``n/a`` is a verdict, not a missing value)."""
    try:
        table = pd.read_csv(path, keep_default_na=False, na_values=[""], dtype={VARIANT: str})
    except FileNotFoundError as err:
        raise InputError(f"{path}: not found; expected the forgetting table that `unihead forgetting` "
                         "writes") from err
    except (OSError, ValueError) as err:  # unreadable, not CSV, empty (EmptyDataError is a ValueError)
        raise InputError(f"{path}: not a readable CSV table ({err})") from err
    keys = (VARIANT, *keys) if VARIANT in table.columns else keys
    missing = [key for key in keys if key not in table.columns]
    if missing:
        raise InputError(f"{path}: missing column(s) {missing}; expected the columns {list(keys)} that name "
                         "a row of the forgetting table")
    table["metric"] = table["metric"].fillna("")  # the per-strategy rows (task 'all') have no metric
    duplicated = table.duplicated(list(keys))
    if duplicated.any():
        row = table.loc[duplicated.idxmax(), list(keys)].to_dict()
        raise InputError(f"{path}: more than one row for {row}; expected one row per {list(keys)}")
    return table


def _read_manifest(path: Path) -> dict[str, str]:
    try:
        manifest = json.loads(path.read_bytes())
    except FileNotFoundError as err:
        raise InputError(f"{path}: not found; expected the data's manifest (sha256 of every file) that "
                         "`unihead prepare` writes") from err
    except (OSError, ValueError) as err:
        raise InputError(f"{path}: not a readable JSON manifest ({err})") from err
    files = manifest.get("files") if isinstance(manifest, dict) else None
    if not isinstance(files, dict) or not all(isinstance(entry, dict) and isinstance(entry.get("sha256"), str)
                                              for entry in files.values()):
        raise InputError(f"{path}: expected an object with 'files': {{path: {{'sha256': ...}}}}, as "
                         "`unihead prepare` writes it")
    return {name: entry["sha256"] for name, entry in files.items()}


def read_results(folder: Path) -> Results:
    """The runs, forgetting tables and data manifest of a ``results/<exp>/`` folder; a file that is missing
    or malformed is an error naming it."""
    if not (folder / "runs").is_dir():
        raise InputError(f"{folder}: no runs/ folder; expected an experiment's results (runs/<run>/seed<N>/"
                         f"{METRICS_FILE}, tables/, data/{MANIFEST})")
    runs = require_keys(load_runs(folder / "runs"), ("final", "provenance"))
    tables = {name: _read_table(folder / "tables" / name, keys) for name, keys in TABLE_KEYS.items()}
    return Results(folder, runs, tables, _read_manifest(folder / "data" / MANIFEST))


def _metric_numbers(runs: list[RunResult]) -> list[dict[str, Any]]:
    """Each run's final metrics and its matrix ``R`` (row: the stage's task; column: the task evaluated)."""
    rows = []
    for run in runs:
        name, seed = run.qualified_name, str(run.seed)
        for task, metrics in (run.final or {}).items():
            rows += [{"table": METRICS_FILE, "run": name, "seed": seed, "task": task, "metric": metric,
                      "quantity": "final", "value": math.nan if value is None else value}
                     for metric, value in metrics.items()]
        for stage_task, scores in zip(run.run.tasks, run.R, strict=True):
            rows += [{"table": METRICS_FILE, "run": name, "seed": seed, "task": task,
                      "metric": run.primary_metric[task], "quantity": f"R after {stage_task}",
                      "value": math.nan if value is None else value}
                     for task, value in zip(run.eval_tasks, scores, strict=True)]
    return rows


def _spread_column(column: str, columns: pd.Index) -> str | None:
    """The summary column holding the spread over seeds of ``column``: ``x_std`` for ``x_mean`` and ``x``."""
    base = column.removesuffix("_mean")
    return f"{base}_std" if not column.endswith("_std") and f"{base}_std" in columns else None


def _table_numbers(name: str, table: pd.DataFrame) -> list[dict[str, Any]]:
    """Every cell of a forgetting table that is not a row name; summary cells carry their spread over seeds."""
    keys = (VARIANT, *TABLE_KEYS[name]) if VARIANT in table.columns else TABLE_KEYS[name]
    rows = []
    for record in table.to_dict("records"):
        seed = str(record["seed"]) if "seed" in keys else OVER_SEEDS
        run = qualified_name(record.get(VARIANT), record["strategy"])
        for column in table.columns.drop(list(keys)):
            row = {"table": name, "run": run, "seed": seed, "task": record["task"],
                   "metric": record["metric"], "quantity": column, "value": record[column]}
            if seed == OVER_SEEDS:
                spread = _spread_column(column, table.columns)
                row |= {"spread": record[spread] if spread else math.nan, "spread_seeds": record["seeds"]}
            rows.append(row)
    return rows


def _is_empty(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_))


def _is_count(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def numbers_of(results: Results) -> pd.DataFrame:
    """Every number of a result folder, one row each (:data:`KEYS`, ``value``), with the spread of the number
    over the folder's seeds (``spread``: sample standard deviation; ``spread_seeds``: how many seeds)."""
    rows = _metric_numbers(results.runs)
    for name, table in results.tables.items():
        rows += _table_numbers(name, table)
    numbers = pd.DataFrame(rows, columns=[*KEYS, "value", "spread", "spread_seeds"])
    per_seed = numbers["seed"] != OVER_SEEDS
    values = numbers.loc[per_seed, "value"].map(lambda v: float(v) if _is_number(v) else math.nan)
    groups = [numbers.loc[per_seed, key] for key in KEYS if key != "seed"]
    numbers.loc[per_seed, "spread"] = values.groupby(groups).transform("std")
    numbers.loc[per_seed, "spread_seeds"] = values.groupby(groups).transform("count")
    return numbers


def _tolerance(spread: float, seeds: float, quantity: str, floor: float) -> tuple[float, str]:
    """Two standard deviations over the reference's seeds when it has two or more, never below the floor."""
    least = floor * (100.0 if quantity.startswith(POINTS_PREFIX) else 1.0)
    if seeds >= 2 and not math.isnan(spread) and SIGMAS * spread > least:
        return SIGMAS * spread, f"2 std over {int(seeds)} seeds"
    return least, "floor"


def _judge(reference: Any, mine: Any, spread: float, seeds: float, quantity: str,
           floor: float) -> dict[str, Any]:
    """The verdict on one number: its difference, tolerance, whether it is bit-identical and its status."""
    judged: dict[str, Any] = {"difference": math.nan, "tolerance": math.nan, "tolerance_basis": "exact"}
    if _is_empty(mine) or _is_empty(reference):
        return judged | {"identical": False, "status": MISSING_IN_MINE if _is_empty(mine) else MISSING_IN_REFERENCE}
    if _is_number(reference) and _is_number(mine) and not (_is_count(reference) and _is_count(mine)):
        difference = float(mine) - float(reference)
        tolerance, basis = _tolerance(spread, seeds, quantity, floor)
        within = abs(difference) <= tolerance + TOLERANCE
        return judged | {"difference": difference, "tolerance": tolerance, "tolerance_basis": basis,
                         "identical": float(mine) == float(reference),
                         "status": REPRODUCED if within else NOT_REPRODUCED}
    alike = (_is_count(reference) and _is_count(mine)) or (isinstance(reference, str) and isinstance(mine, str))
    equal = bool(alike and reference == mine)
    return judged | {"identical": equal, "status": REPRODUCED if equal else NOT_REPRODUCED}


def compare_numbers(reference: pd.DataFrame, mine: pd.DataFrame, floor: float = COMPARE_FLOOR) -> pd.DataFrame:
    """Side by side: every number of either (see :func:`numbers_of`; in the reference's order, then those only
    mine has) with its reference and my value, the difference (mine - reference), the tolerance and its basis,
    ``identical`` and ``status``. Cells empty on both sides are left out."""
    ordered = reference.assign(order=np.arange(len(reference)))
    mine_values = mine[[*KEYS, "value"]].assign(order_mine=np.arange(len(reference), len(reference) + len(mine)))
    both = ordered.merge(mine_values, on=KEYS, how="outer", suffixes=("_reference", "_mine"))
    both = both.assign(order=both["order"].fillna(both["order_mine"])).sort_values("order", kind="stable")
    both = both.rename(columns={"value_reference": "reference", "value_mine": "mine"})
    both = both[~(both["reference"].map(_is_empty) & both["mine"].map(_is_empty))].reset_index(drop=True)
    judged = [_judge(row.reference, row.mine, row.spread, row.spread_seeds, row.quantity, floor)
              for row in both.itertuples(index=False)]
    columns = [*KEYS, "reference", "mine"]
    return pd.concat([both[columns], pd.DataFrame(judged, columns=["difference", "tolerance", "tolerance_basis",
                                                                   "identical", "status"])], axis=1)


def _listed(names: list[str]) -> str:
    shown = ", ".join(names[:EXAMPLES])
    return shown + (f" and {len(names) - EXAMPLES} more" if len(names) > EXAMPLES else "")


def _data_finding(reference: Results, mine: Results) -> Finding:
    ref, own = reference.data_files, mine.data_files
    changed = sorted(name for name in ref.keys() & own.keys() if ref[name] != own[name])
    only_ref, only_mine = sorted(ref.keys() - own.keys()), sorted(own.keys() - ref.keys())
    if not (changed or only_ref or only_mine):
        return Finding(SAME, "data", f"the same {len(ref)} files (every sha256 in data/{MANIFEST} equal)")
    parts = [f"{len(names)} file(s) {where} ({_listed(names)})" for names, where in
             ((changed, "with another sha256"), (only_ref, "only in the reference"), (only_mine, "only in mine"))
             if names]
    return Finding(ERROR, "data", f"{'; '.join(parts)} in data/{MANIFEST}. These results are not made from the "
                   "reference's data: the comparison fails whatever the numbers")


def _recorded(results: Results, key: str) -> dict[str, str]:
    """What the runs' provenance records under ``key`` (``packages``: by package, else one entry), the
    distinct values of a name joined by ' / '."""
    values: dict[str, set[str]] = {}
    for run in results.runs:
        recorded = getattr(run.provenance, key)
        recorded = "not recorded" if recorded is None else recorded
        for name, value in (recorded.items() if isinstance(recorded, dict) else [(key, recorded)]):
            values.setdefault(name, set()).add(str(value))
    return {name: " / ".join(sorted(found)) for name, found in sorted(values.items())}


def _provenance_findings(reference: Results, mine: Results) -> list[Finding]:
    ref = _recorded(reference, "packages") | _recorded(reference, "python")
    own = _recorded(mine, "packages") | _recorded(mine, "python")
    differ = [f"{name} {ref.get(name, 'not recorded')} (reference) vs {own.get(name, 'not recorded')} (mine)"
              for name in sorted(ref.keys() | own.keys()) if ref.get(name) != own.get(name)]
    findings = [Finding(WARNING, "versions", f"{', '.join(differ)}. The numbers are judged by their tolerance, "
                        "but bit-identical numbers are not to be expected") if differ else
                Finding(SAME, "versions", ", ".join(f"{name} {version}" for name, version in ref.items()))]
    for key, topic in (("device", "device"), ("cpu_capability", "CPU kernels"), ("git_commit", "code commit")):
        ref_value, own_value = _recorded(reference, key)[key], _recorded(mine, key)[key]
        findings.append(Finding(SAME, topic, ref_value) if ref_value == own_value else
                        Finding(NOTE, topic, f"{ref_value} (reference) vs {own_value} (mine)"))
    return findings


def _other_seeds(reference: Results, mine: Results) -> bool:
    """Whether the two sides are the same runs over as many seeds, but other seeds (a rerun with other seeds):
    then only what is over all seeds is compared."""
    sides = [{(run.qualified_name, run.seed) for run in results.runs} for results in (reference, mine)]
    names = [{name for name, _ in pairs} for pairs in sides]
    seeds = [{seed for _, seed in pairs} for pairs in sides]
    complete = all(len(pairs) == len(n) * len(s) for pairs, n, s in zip(sides, names, seeds, strict=True))
    return names[0] == names[1] and seeds[0] != seeds[1] and len(seeds[0]) == len(seeds[1]) and complete


def _seed_noise_findings(reference: Results, mine: Results) -> list[Finding]:
    """A warning when a side has a run of one seed: its standard errors then hold the validation images' noise
    only, and a rerun with another seed, or on other CPU kernels (which change a from-scratch run as a seed
    does), may differ beyond that by the seed alone."""
    single = [where for results, where in ((reference, "the reference"), (mine, "mine"))
              if min(Counter(run.qualified_name for run in results.runs).values(), default=0) == 1]
    text = (f"a run of one seed in {' and in '.join(single)}: the statistical test's noise holds the validation "
            "images' only, not the seeds', so another seed or other CPU kernels may be called not reproduced for "
            "that alone; run at least 2 seeds (workflow.seeds)")
    return [Finding(WARNING, "seeds", text)] if single else []


def _run_finding(reference: Results, mine: Results, other_seeds: bool) -> Finding:
    ref, own = ({(run.qualified_name, run.seed) for run in results.runs} for results in (reference, mine))
    if other_seeds:
        seeds = [", ".join(str(seed) for seed in sorted({seed for _, seed in pairs})) for pairs in (ref, own)]
        return Finding(NOTE, "runs", f"the same runs with other seeds ({seeds[0]} in the reference, {seeds[1]} in "
                       "mine): compared over seeds only")
    parts = [f"{where}: {', '.join(f'{name} seed {seed}' for name, seed in sorted(names))}" for names, where in
             ((ref - own, "in the reference but not in mine"), (own - ref, "in mine but not in the reference"))
             if names]
    return Finding(ERROR, "runs", "; ".join(parts)) if parts else \
        Finding(SAME, "runs", f"the same {len(ref)} (run, seed) pairs")


def _format(value: Any) -> str:
    if _is_empty(value):
        return ""
    if _is_number(value) and not _is_count(value):
        return f"{float(value):.6g}"
    return str(value)


def _describe(row: Any) -> str:
    """Where a number is: ``run ewc seed 0 task cls metric top1: final (metrics.json)``."""
    metric = f" metric {row.metric}" if row.metric else ""
    return f"run {row.run} seed {row.seed} task {row.task}{metric}: {row.quantity} ({row.table})"


def _failure_line(row: Any) -> str:
    if row.status in (MISSING_IN_MINE, MISSING_IN_REFERENCE):
        present = _format(row.reference) or _format(row.mine)
        return f"{row.status}: {_describe(row)} = {present}"
    if row.tolerance_basis == "exact":
        return f"{row.status}: {_describe(row)}: reference {row.reference!s}, mine {row.mine!s} (must be equal)"
    return (f"{row.status}: {_describe(row)}: reference {_format(row.reference)}, mine {_format(row.mine)}, "
            f"difference {row.difference:+.3g}, tolerance {row.tolerance:.3g} ({row.tolerance_basis})")


@dataclass(frozen=True)
class Comparison:
    """The provenance findings and every number side by side, with the verdict."""

    reference: Path
    mine: Path
    floor: float
    findings: list[Finding]
    numbers: pd.DataFrame
    tests: pd.DataFrame
    """The statistical test of each reviewer-level quantity (:func:`unihead.reproduction.tested_quantities`)."""
    flips: list[str]
    """Verdicts that are pass on one side and fail on the other."""

    @property
    def failures(self) -> pd.DataFrame:
        return self.numbers[self.numbers["status"] != REPRODUCED]

    @property
    def missing(self) -> pd.DataFrame:
        return self.numbers[self.numbers["status"].isin([MISSING_IN_MINE, MISSING_IN_REFERENCE])]

    @property
    def outcome(self) -> str:
        """Bit-identical, reproduced within noise, or not reproduced (see the module's docstring)."""
        if any(finding.level == ERROR for finding in self.findings) or not self.missing.empty:
            return NOT_THE_SAME
        if self.numbers["identical"].all():
            return BIT_IDENTICAL
        return NOT_THE_SAME if self.tests["differs"].any() or self.flips else WITHIN_NOISE

    @property
    def reproduced(self) -> bool:
        return self.outcome != NOT_THE_SAME

    def rule(self) -> str:
        """The tolerance in words."""
        return (f"a number is reproduced within {SIGMAS:g} standard deviations over the reference's seeds, at "
                f"least {self.floor:g} (the floor; {100 * self.floor:g} points for absolute drops); text and "
                "counts must be equal")

    def test_rule(self) -> str:
        return (f"{len(self.tests)} quantities (each strategy's mean final score and drops, each baseline's mean "
                "final score) tested for a difference beyond the seeds' and images' noise of both sides (z-tests, "
                f"Holm-corrected to a {100 * FAMILY_ALPHA:g}% family-wise false-alarm rate)")

    def verdict(self) -> str:
        numbers, failures = self.numbers, self.failures
        identical = int(numbers["identical"].sum())
        tally = f"{identical} of {len(numbers)} numbers bit-identical"
        outcome = self.outcome
        if outcome == BIT_IDENTICAL:
            return f"REPRODUCED, bit-identical: {tally}"
        outside = f"; {len(failures)} outside the per-number tolerance (detail)" if len(failures) else ""
        if outcome == WITHIN_NOISE:
            return f"REPRODUCED within noise: no quantity of {len(self.tests)} differs beyond noise; {tally}{outside}"
        differing = self.tests[self.tests["differs"]]
        named = [f"{row.run} {row.task} {row.quantity}" for row in differing.itertuples(index=False)]
        counts = self.missing["status"].value_counts()
        parts = ([f"{len(named)} quantit{'y' if len(named) == 1 else 'ies'} beyond noise ({_listed(named)})"]
                 if named else [])
        parts += [f"{len(self.flips)} verdict(s) pass vs fail ({_listed(self.flips)})"] if self.flips else []
        parts += [f"{counts[status]} {status}" for status in (MISSING_IN_MINE, MISSING_IN_REFERENCE)
                  if status in counts]
        parts += [f"{finding.topic} differ" for finding in self.findings if finding.level == ERROR]
        return f"NOT REPRODUCED: {'; '.join(parts)} ({tally})"

    def text(self) -> str:
        """What the command prints: provenance, every number that is not reproduced, the verdict."""
        lines = [f"reference {self.reference}, mine {self.mine}", "provenance:"]
        lines += [f"  {finding.level:<8} {finding.topic}: {finding.text}" for finding in self.findings]
        per_table = self.numbers["table"].value_counts(sort=False)
        lines.append(f"statistical test: {self.test_rule()}")
        lines += [f"  differs: {row.run} {row.task} {row.quantity}: reference {row.reference:.4g}, mine "
                  f"{row.mine:.4g}, difference {row.difference:+.3g} (standard error {row.standard_error:.3g}, "
                  f"p {row.p_value:.2g})" for row in self.tests[self.tests["differs"]].itertuples(index=False)]
        lines += [f"  verdict pass vs fail: {flip}" for flip in self.flips]
        lines.append(f"numbers (detail): {len(self.numbers)} compared ("
                     + ", ".join(f"{table} {count}" for table, count in per_table.items()) + f"); {self.rule()}")
        lines += [f"  {_failure_line(row)}" for row in self.failures.itertuples(index=False)]
        lines.append(self.verdict())
        return "\n".join(lines)

    def markdown(self) -> str:
        """The comparison as a Markdown document: verdict, provenance, failures, then every number by file."""
        shown = self.numbers.assign(
            reference=self.numbers["reference"].map(_format), mine=self.numbers["mine"].map(_format),
            difference=self.numbers["difference"].map(lambda d: "" if math.isnan(d) else f"{d:+.3g}"),
            tolerance=[basis if basis == "exact" else f"{tol:.3g} ({basis})" for tol, basis in
                       zip(self.numbers["tolerance"], self.numbers["tolerance_basis"], strict=True)],
            identical=self.numbers["identical"].map({True: "yes", False: "no"}),
        ).drop(columns="tolerance_basis")
        lines = [f"# Comparison: {self.mine} against the reference {self.reference}", "",
                 f"**{self.verdict()}**", "", "## Provenance", ""]
        lines += [f"- **{finding.level}** {finding.topic}: {finding.text}" for finding in self.findings]
        lines += ["", "## Statistical test", "", f"{self.test_rule()[0].upper()}{self.test_rule()[1:]}.", "",
                  self.tests.to_markdown(index=False, floatfmt=".4g"), ""]
        lines += [f"- verdict pass vs fail: {flip}" for flip in self.flips]
        lines += ["", "## Numbers (detail)", "", f"Mine - reference; {self.rule()}.", ""]
        failures = shown[shown["status"] != REPRODUCED]
        if not failures.empty:
            lines += ["### Not reproduced", "", failures.to_markdown(index=False, disable_numparse=True), ""]
        for table, part in shown.groupby("table", sort=False):
            lines += [f"### {table}", "", part.drop(columns="table").to_markdown(index=False, disable_numparse=True),
                      ""]
        return "\n".join(lines)


def compare_results(reference: Path, mine: Path, floor: float = COMPARE_FLOOR) -> Comparison:
    """Compare the result folder ``mine`` with ``reference`` (see the module's docstring)."""
    if floor not in FLOOR_RANGE:
        raise InputError(f"--floor {floor:g}: expected {FLOOR_RANGE}, the smallest tolerance on the metrics' 0..1 "
                         "scale (a larger floor would take a changed result as reproduced)")
    ref, own = read_results(Path(reference)), read_results(Path(mine))
    other_seeds = _other_seeds(ref, own)
    findings = [_data_finding(ref, own), *_provenance_findings(ref, own), _run_finding(ref, own, other_seeds),
                *_seed_noise_findings(ref, own)]
    summaries = [results.tables[SUMMARY_CSV] for results in (ref, own)]
    verdict = Verdict.from_table(summaries[0], Path(reference) / "tables" / SUMMARY_CSV)
    tests = tested_quantities(estimates(ref.runs, verdict), estimates(own.runs, verdict))
    flips = verdict_flips(*(summary[summary["task"] != "all"] for summary in summaries))
    numbers = [numbers_of(results) for results in (ref, own)]
    if other_seeds:
        numbers = [table[table["seed"] == OVER_SEEDS].reset_index(drop=True) for table in numbers]
    return Comparison(Path(reference), Path(mine), floor, findings, compare_numbers(*numbers, floor), tests, flips)


def write_comparison(comparison: Comparison, out_dir: Path) -> list[Path]:
    """Write ``comparison.md`` and ``comparison.csv`` (every number, full precision) into ``out_dir``."""
    paths = [Path(out_dir) / COMPARISON_MD, Path(out_dir) / COMPARISON_CSV]
    atomic_write_text(paths[0], comparison.markdown() + "\n")
    atomic_write_text(paths[1], comparison.numbers.to_csv(index=False))
    return paths
