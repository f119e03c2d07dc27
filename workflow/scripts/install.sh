#!/usr/bin/env bash
# Install the CPU environment into the virtual environment given as $1 (created if missing):
# the pinned PyTorch (containers/torch.txt: the CPU wheels here, the same versions' CUDA builds in the
# container), then the package with its test and workflow extras, its runtime dependencies pinned by
# containers/requirements.txt (the versions the container uses).
# Used by the demo (workflow/scripts/demo.sh) and by CI (.ci/run).
set -euo pipefail
venv="$1"
cd "$(dirname "$0")/../.."
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --upgrade pip
"$venv/bin/python" -m pip install --quiet --requirement containers/torch.txt
"$venv/bin/python" -m pip install --quiet -c containers/requirements.txt -e ".[test,workflow]"
"$venv/bin/python" -m pip check
