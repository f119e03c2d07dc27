"""Where a result came from: code version, package versions, data, device and time."""

from __future__ import annotations

import hashlib
import platform
import socket
import subprocess
from collections.abc import Iterable
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

import torch

PACKAGES = ("torch", "torchvision", "timm", "pycocotools", "numpy", "pillow")


def git_commit(path: Path) -> str | None:
    """The commit checked out at ``path`` (with ``+dirty`` when tracked files changed), or None."""
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=path, capture_output=True, text=True,
                                check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=path,
                               capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    return f"{commit}+dirty" if dirty else commit


def manifest_hash(manifest: Path) -> str | None:
    """sha256 of the data's manifest (so one hash pins every file), or None when there is none."""
    if not manifest.is_file():
        return None
    return hashlib.sha256(manifest.read_bytes()).hexdigest()


def device_description(device: torch.device) -> str:
    if device.type == "cuda":
        return f"cuda: {torch.cuda.get_device_name(device)}"
    return f"cpu: {platform.processor() or platform.machine()}, {torch.get_num_threads()} threads"


def package_versions(names: Iterable[str]) -> dict[str, str | None]:
    """The installed version of each package, None where it is not installed."""
    versions = {}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def provenance(config: dict[str, Any], seed: int, data_root: Path, manifest: Path,
               device: torch.device) -> dict[str, Any]:
    versions = package_versions(PACKAGES)
    return {
        "config": config,
        "seed": seed,
        "git_commit": git_commit(Path(__file__).resolve().parent),
        "packages": versions,
        "python": platform.python_version(),
        "data_root": str(data_root),
        "data_manifest": str(manifest),
        "data_manifest_sha256": manifest_hash(manifest),
        "device": device_description(device),
        # the CPU kernels PyTorch picked (e.g. AVX2, AVX512): the same seed, versions and kernels give
        # bit-identical CPU runs, other kernels may round differently
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "host": socket.gethostname(),
        "finished_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
