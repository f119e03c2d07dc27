#!/usr/bin/env bash
# Build the container's Python environment in /opt/venv and fetch the backbone weights.
# Called by containers/Dockerfile (build stage) and containers/unihead.def (%post), so the two
# recipes install exactly the same things. $1: folder holding torch.txt, requirements.txt and
# fetch_weights.py.
set -euo pipefail
here="$1"
export PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
python3 -m venv /opt/venv
/opt/venv/bin/pip install --requirement "$here/torch.txt"
/opt/venv/bin/pip install --requirement "$here/requirements.txt"
/opt/venv/bin/pip check
/opt/venv/bin/python "$here/fetch_weights.py" /opt/unihead/weights
