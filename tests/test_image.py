"""The image itself, built and exercised by containers/test-image.sh with podman: as its non-root user, offline,
`unihead params`, `unihead benchmark` on the CPU and the tiny workflow end to end, outputs checked.

Builds a multi-GB image (PyTorch's CUDA wheels from PyPI), so it runs only when asked: UNIHEAD_IMAGE_TEST=1, which
.ci/run sets when it runs as root and can install podman.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

pytestmark = [
    pytest.mark.image,
    pytest.mark.slow,
    pytest.mark.skipif(os.environ.get("UNIHEAD_IMAGE_TEST") != "1",
                       reason="set UNIHEAD_IMAGE_TEST=1 to build the image with podman (.ci/run does as root)"),
]


def test_the_image_runs_the_package_and_the_tiny_workflow_as_its_user():
    if shutil.which("podman") is None:
        pytest.skip("podman is not installed (apt-get install podman runc mmdebstrap)")
    proc = subprocess.run(["bash", "containers/test-image.sh"], cwd=REPO, capture_output=True, text=True,
                          timeout=3000, env={**os.environ, "ENGINE": "podman"})
    if proc.returncode == 77:  # a registry or mirror out of reach: nothing is known about the image
        pytest.skip(proc.stdout.strip().splitlines()[-1])
    assert proc.returncode == 0, proc.stdout[-5000:] + proc.stderr[-5000:]
    assert "test-image.sh: all checks passed" in proc.stdout
    print("\n".join(line for line in proc.stdout.splitlines() if line.startswith("test-image.sh: ")))

    # The image builds the model the host builds: the same parameter table, line by line.
    host = subprocess.run([sys.executable, "-m", "unihead", "params"], cwd=REPO, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(REPO / "code")}, check=True)
    table = [line for line in host.stdout.splitlines() if line.startswith("  ")]
    assert len(table) >= 3 and all(line in proc.stdout.splitlines() for line in table)
