#!/usr/bin/env bash
# The demo, end to end on a CPU: install what it needs into .venv, then run the whole workflow on
# synthetic data (workflow/config/demo.yaml). Outputs: results/demo/ (runs, tables, report), and its comparison
# with the committed reference results/demo-reference/ (results/demo/compare/).
set -euo pipefail
cd "$(dirname "$0")/../.."
bash workflow/scripts/install.sh .venv
# shellcheck disable=SC1091
source .venv/bin/activate
snakemake --cores all --configfile workflow/config/demo.yaml "$@"
echo "Forgetting table: results/demo/report/tables/forgetting.md; figures: results/demo/report/figures/"
if [ -f results/demo/compare/comparison.md ]; then
    echo "Against the committed reference results/demo-reference: results/demo/compare/comparison.md"
    grep -E "^(\*\*)?(REPRODUCED|NOT REPRODUCED)" results/demo/compare/comparison.md || true
fi
