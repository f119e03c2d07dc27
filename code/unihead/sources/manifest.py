"""Dataset manifests: the sha256 of every file of a data root, so one hash pins the data a result used."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from unihead.files import atomic_write_text, sha256_file
from unihead.tasks import DATASET_DIRS

MANIFEST = "manifest.json"


def build_manifest(root: Path, source: str) -> dict[str, Any]:
    """Every file under the three dataset folders of ``root``, with its size and sha256, sorted by path."""
    files = {}
    for folder in DATASET_DIRS.values():
        for path in sorted((root / folder).rglob("*")):
            if path.is_file():
                files[str(path.relative_to(root))] = {"bytes": path.stat().st_size, "sha256": sha256_file(path)}
    return {"source": source, "root": str(root), "files": files}


def write_manifest(manifest: dict[str, Any], path: Path) -> str:
    """Write the manifest atomically; return its own sha256 (the data hash recorded with results)."""
    text = json.dumps(manifest, indent=1, sort_keys=True) + "\n"
    atomic_write_text(path, text)
    return hashlib.sha256(text.encode()).hexdigest()
