"""The tiny workflow on a real single-node SLURM cluster (workflow/scripts/slurm_test.sh).

Installs Slurm and munge with apt-get and runs their daemons as root, so it runs only when asked:
UNIHEAD_SLURM_TEST=1 pytest tests/test_slurm_cluster.py (about 5 minutes on 2 cores); CI sets it when it runs as root.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
@pytest.mark.skipif(os.environ.get("UNIHEAD_SLURM_TEST") != "1", reason="set UNIHEAD_SLURM_TEST=1 to run")
def test_the_tiny_workflow_runs_through_slurm():
    proc = subprocess.run(
        ["bash", "workflow/scripts/slurm_test.sh", sys.prefix],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    if proc.returncode == 77:
        pytest.skip("no SLURM cluster can be started on this machine: " + proc.stdout[-500:] + proc.stderr[-1000:])
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    assert "ran through SLURM" in proc.stdout
