"""A run folder that already holds a finished run (its ``metrics.json``): training into it again with another run
config would replace that run's results, so it is refused naming the keys that differ, unless the user asks to
overwrite (``unihead train --overwrite``: the finished run's outputs are deleted first). With the same run config
the run is trained again as before. The workflow never meets the refusal: Snakemake deletes a job's outputs
before it reruns the job."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from unihead.errors import InputError
from unihead.results import HISTORY_FILE, METRICS_FILE, PER_IMAGE_FILE, WEIGHTS_FILE
from unihead.schema import config_differences

SHOWN = 5
"""Differing keys named in the error; the rest are counted."""


def _recorded_config(path: Path) -> dict[str, Any] | None:
    """The run config a finished run's ``metrics.json`` records (``provenance.config``), None if it holds none."""
    try:
        config = json.loads(path.read_bytes())["provenance"]["config"]
    except (ValueError, KeyError, TypeError):
        return None
    return config if isinstance(config, dict) else None


def refuse_another_config(out_dir: Path, config: dict[str, Any], overwrite: bool) -> None:
    """Refuse to train ``config`` (:func:`unihead.config.config_to_dict` of the run config) into ``out_dir`` when it
    holds a finished run of another run config (or a ``metrics.json`` that records none); with ``overwrite``, delete
    that run's outputs instead (``metrics.json`` first: the folder then holds no finished run)."""
    path = out_dir / METRICS_FILE
    if not path.is_file():
        return
    recorded = _recorded_config(path)
    differing = None if recorded is None else config_differences(recorded, json.loads(json.dumps(config)))
    if differing == []:
        return
    if not overwrite:
        if differing is None:
            what = "a metrics.json that records no run config (provenance.config)"
        else:
            more = f" and {len(differing) - SHOWN} more" if len(differing) > SHOWN else ""
            what = f"a finished run of another run config (differing keys: {', '.join(differing[:SHOWN])}{more})"
        raise InputError(f"{path}: the run folder holds {what}; give another --out, or --overwrite to replace that "
                         "run's results")
    for name in (METRICS_FILE, HISTORY_FILE, PER_IMAGE_FILE, WEIGHTS_FILE):
        (out_dir / name).unlink(missing_ok=True)
