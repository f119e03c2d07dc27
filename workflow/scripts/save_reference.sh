#!/usr/bin/env bash
# Save an experiment's results as its committed reference, the folder `unihead compare` and the workflow's
# compare rule read (workflow.reference, by default results/<name>-reference/): every run's metrics.json,
# per_image.json.gz, history.csv and run.yaml (and those of the EWC sweep's runs, with its choice), the job configs, the forgetting tables, the report's tables and figures, the
# benchmark JSON and the data manifest. Never weights, checkpoints, logs or data.
#   bash workflow/scripts/save_reference.sh demo      # results/demo -> results/demo-reference
set -euo pipefail
cd "$(dirname "$0")/../.."
name="${1:?usage: save_reference.sh EXPERIMENT_NAME [REFERENCE_FOLDER]}"
source="results/$name"
target="${2:-results/$name-reference}"
for needed in tables/forgetting_summary.csv report/tables/final_metrics.csv data/manifest.json; do
    if [ ! -f "$source/$needed" ]; then
        echo "save_reference.sh: $source/$needed is missing; run the workflow for '$name' to the end first" >&2
        exit 1
    fi
done
staging="$(mktemp -d "${target%/}.XXXXXX")"
trap 'rm -rf "$staging"' EXIT
(
    cd "$source"
    find runs ewc_sweep \( -name metrics.json -o -name per_image.json.gz -o -name history.csv -o -name run.yaml \
        -o -name choice.json \) -print 2>/dev/null || true
    find config tables report compute -type f -print 2>/dev/null || true
    echo data/manifest.json
) | tar -C "$source" -cf - --files-from - | tar -C "$staging" -xf -
rm -rf "$target"
mv "$staging" "$target"
trap - EXIT
echo "saved $(find "$target" -type f | wc -l) files of $source as $target (commit it: git add $target)"
