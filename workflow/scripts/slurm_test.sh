#!/usr/bin/env bash
# End-to-end check of the workflow on a real SLURM cluster: a single-node cluster on this host
# (workflow/scripts/slurm_cluster.sh, needs root for apt-get and the daemons), a fresh copy of the
# repository's working tree, and the tiny config (workflow/config/test.yaml) run with the SLURM
# profile (workflow/profiles/slurm), its container calls answered by the stand-in `apptainer` of
# tests/stand_in (no container engine here). Exits 0 only if snakemake succeeds, every non-local
# job went through the scheduler (one sbatch job per Snakemake job, each COMPLETED in the job
# completion log and with its log in .snakemake/slurm_logs/) and ran its command in the container,
# and the workflow's outputs exist. Exits 77 (skipped) when no cluster can be started here.
#
#   bash workflow/scripts/slurm_test.sh [VENV]     # VENV: with the project's workflow extra (default .venv)
#
# Set KEEP=1 to keep the temporary directory (cluster logs, the copy and its results).
set -euo pipefail

REPO=$(cd "$(dirname "$0")/../.." && pwd)
VENV=$(cd "${1:-$REPO/.venv}" && pwd)
CLUSTER_SH="$REPO/workflow/scripts/slurm_cluster.sh"

say() { printf 'slurm_test: %s\n' "$*"; }
fail() { printf 'slurm_test: FAIL: %s\n' "$*" >&2; exit 1; }

[ -x "$VENV/bin/snakemake" ] || fail "no snakemake in $VENV/bin"
"$VENV/bin/python" -c "import snakemake_executor_plugin_slurm" 2>/dev/null \
    || fail "snakemake-executor-plugin-slurm is not installed in $VENV (pip install -e '.[workflow]')"
say "snakemake $("$VENV/bin/snakemake" --version)," \
    "$("$VENV/bin/python" -m pip show snakemake-executor-plugin-slurm 2>/dev/null | awk '/^Version:/ {print "executor plugin slurm " $2}')"

WORK=$(mktemp -d /tmp/unihead-slurm-test.XXXXXX)
cleanup() {
    local status=$?
    bash "$CLUSTER_SH" stop "$WORK/cluster" || true
    if [ "${KEEP:-0}" = 1 ] || [ "$status" -ne 0 ]; then
        say "kept $WORK (cluster logs in $WORK/cluster/log, the run in $WORK/repo)"
    else
        rm -rf "$WORK"
    fi
}
trap cleanup EXIT

if ! bash "$CLUSTER_SH" start "$WORK/cluster"; then
    say "SKIP: no SLURM cluster could be started on this machine (see the messages above)"
    exit 77
fi
export SLURM_CONF="$WORK/cluster/slurm.conf"

# The working tree as git sees it: tracked files and untracked ones that are not ignored, less
# any file that .gitignore excludes even though it is tracked (results/, .snakemake/ of an earlier
# run), so that the run starts from nothing.
COPY="$WORK/repo"
mkdir -p "$COPY"
(
    cd "$REPO"
    declare -A ignored=()
    while IFS= read -r -d '' file; do
        ignored[$file]=1
    done < <(git ls-files -z --cached --ignored --exclude-standard)
    git ls-files -z --cached --others --exclude-standard | while IFS= read -r -d '' file; do
        if [ -e "$file" ] && [ -z "${ignored[$file]:-}" ]; then cp --parents -P "$file" "$COPY/"; fi
    done
)
say "copied the working tree of $REPO to $COPY ($(find "$COPY" -type f | wc -l) files)"

# The jobs inherit the submitting shell's environment (sbatch --export=ALL): python is the venv's,
# and `apptainer` the stand-in, which logs each call and runs the job's command on the host.
# shellcheck disable=SC1091
source "$VENV/bin/activate"
export PATH="$REPO/tests/stand_in:$PATH" STAND_IN_APPTAINER_LOG="$WORK/apptainer.jsonl"
cd "$COPY"
CPUS=$(sinfo --noheader --Node --format=%c | head -n 1)
# The profile as a reviewer uses it, with this cluster's settings on top: its partition and small
# jobs; no sacct without slurmdbd, so the plugin polls squeue, which keeps finished jobs for
# MinJobAge (600 s) > 3 x the first status check delay; rules asking for more threads than the node
# has are capped to it (sbatch rejects a job that no node can hold); no retries, so that a failure
# shows.
PROFILE=(--workflow-profile workflow/profiles/slurm --configfile workflow/config/test.yaml)
COMMAND=(snakemake "${PROFILE[@]}" --jobs 4 --retries 0
    --default-resources slurm_partition=debug runtime=30 mem_mb=1000
    --max-threads "$CPUS"
    --slurm-status-command squeue --slurm-init-seconds-before-status-checks 10
    --slurm-keep-successful-logs --latency-wait 30)
say "running: ${COMMAND[*]}"
start=$SECONDS
set +e
"${COMMAND[@]}" >"$WORK/snakemake.log" 2>&1
status=$?
set -e
say "snakemake exited with $status after $((SECONDS - start)) s (log: $WORK/snakemake.log)"
if [ "$status" -ne 0 ]; then
    tail -n 60 "$WORK/snakemake.log" >&2
    tail -n 20 "$WORK/cluster/log/slurmctld.log" >&2
    fail "snakemake --executor slurm failed"
fi

# One SLURM job per non-local Snakemake job: the "rule NAME:" headers (local jobs print
# "localrule NAME:"), the plugin's submissions, their logs, and the completed jobs of the cluster.
rules=$(grep -cE '^rule [A-Za-z0-9_]+:$' "$WORK/snakemake.log" || true)
mapfile -t jobids < <(sed -nE 's/.*has been submitted with SLURM jobid ([0-9]+).*/\1/p' "$WORK/snakemake.log" | sort -un)
logs=$(find .snakemake/slurm_logs -name '*.log' -type f | wc -l)
completed=$(sacct --completion --noheader --parsable2 --format=JobID,State | grep -c '|COMPLETED$' || true)
say "snakemake jobs on SLURM: $rules; submitted: ${#jobids[@]}; slurm logs: $logs; completed in the cluster: $completed"
[ "$rules" -ge 1 ] || fail "no Snakemake job ran on SLURM"
[ "${#jobids[@]}" -eq "$rules" ] || fail "$rules Snakemake jobs but ${#jobids[@]} SLURM submissions"
[ "$logs" -eq "$rules" ] || fail "$rules Snakemake jobs but $logs logs in .snakemake/slurm_logs"
[ "$completed" -eq "$rules" ] || fail "$rules Snakemake jobs but $completed completed SLURM jobs"
for id in "${jobids[@]}"; do
    grep -q "^JobId=$id .*JobState=COMPLETED" "$WORK/cluster/jobcomp.log" || fail "SLURM job $id did not complete"
    [ -n "$(find .snakemake/slurm_logs -name "$id.log")" ] || fail "no slurm log for SLURM job $id"
done
trains=$(grep -cE '^rule train:$' "$WORK/snakemake.log" || true)
in_container=$(grep '"exec"' "$STAND_IN_APPTAINER_LOG" | grep -c 'python -m unihead' || true)
[ "$in_container" -eq "$rules" ] || fail "$rules SLURM jobs but $in_container commands run by apptainer exec"

# The workflow's outputs (workflow/config/test.yaml: results/test/).
results=results/test
runs=$(find "$results/runs" -name metrics.json | wc -l)
[ "$trains" -ge 1 ] && [ "$runs" -eq "$trains" ] || fail "$trains train jobs but $runs runs/*/metrics.json"
for file in "$results/data/manifest.json" "$results/tables/forgetting_summary.csv" \
    "$results/tables/forgetting_per_seed.csv" "$results/compute/benchmark.json" \
    "$results/report/tables/forgetting.md" "$results/report/figures/r_matrices.png"; do
    [ -s "$file" ] || fail "missing output $file"
done
dry_run=$(snakemake -n "${PROFILE[@]}" 2>&1)
grep -q "Nothing to be done" <<<"$dry_run" || fail "the workflow is not complete after the run: $dry_run"
say "OK: $rules jobs ($trains train) ran through SLURM in the container, outputs in $results complete"
