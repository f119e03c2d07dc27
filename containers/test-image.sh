#!/usr/bin/env bash
# Build the unihead image from containers/Dockerfile and exercise it as a reviewer would: as its
# non-root user, without network, with a copy of this checkout bind-mounted at /work (the copy keeps
# the workflow's outputs out of the checkout): `unihead params`, `unihead benchmark` on the CPU, the shared
# libraries of PyTorch's CUDA build (all inside the image but the driver's), and the tiny workflow
# (`snakemake --cores 2 --configfile workflow/config/test.yaml`) end to end with its outputs checked.
# Run by tests/test_image.py (podman, from .ci/run as root) and by .github/workflows/image.yml (docker).
# Exits 77 when this machine cannot build the image (PyPI, or both Docker Hub and the Debian mirror, out of
# reach, or less than 20 GiB free for podman's store); the test then skips with that reason.
#
# Environment (all optional):
#   ENGINE         podman (the default where installed; run with runc and explicit ulimits) or docker
#   IMAGE          the tag to build and check (default localhost/unihead:test)
#   BUILD=0        check IMAGE as it is instead of building it
#   BASE_IMAGE     the base (default: the Dockerfile's). If that is not local and Docker Hub cannot be
#                  reached, a Debian root file system of the same release made with mmdebstrap serves.
#   FETCH_WEIGHTS  1 or 0: bake in the backbone weights (default: 1 when GitHub can be reached)
#   SOURCE_URL     the repository's address for the image's source label (CI sets it)
#   PIP_CERT_FILE  CA bundle handed to the build as the secret pip_cert, for a TLS-intercepting proxy
#                  (default: $PIP_CERT, the bundle the host's pip trusts; never stored in the image)
set -euo pipefail
cd "$(dirname "$0")/.."
say() { echo "test-image.sh: $*"; }
reachable() { curl --silent --output /dev/null --max-time 10 "$1"; }

image="${IMAGE:-localhost/unihead:test}"
engine_name="${ENGINE:-$(command -v podman >/dev/null && echo podman || echo docker)}"
case "$engine_name" in
    podman) engine=(podman --runtime runc); limits=(--ulimit nofile=1024:1024 --ulimit nproc=4096:4096) ;;
    docker) engine=(docker); limits=() ;;
    *) say "ENGINE must be podman or docker, not '$engine_name'"; exit 2 ;;
esac

local_debian_base() {
    # The Dockerfile's debian:<release>[-slim] base, made here by mmdebstrap and imported; prints its name.
    local release="${1#debian:}"
    release="${release%-slim}"
    local name="localhost/unihead-base:$release"
    if ! "${engine[@]}" image inspect "$name" >/dev/null 2>&1; then
        say "making $name: a minimal Debian $release root file system (mmdebstrap) imported as the base" >&2
        mmdebstrap --variant=minbase --format=tar "$release" - | "${engine[@]}" import - "$name" >/dev/null
    fi
    echo "$name"
}

cannot_build_here() {
    # Exit 77: this machine cannot build the image (a registry or mirror out of reach), which says nothing
    # about the image; tests/test_image.py skips with this reason.
    say "cannot build here: $*"
    exit 77
}

if [ "${BUILD:-1}" = 1 ]; then
    default_base="$(sed -n 's/^ARG BASE_IMAGE=//p' containers/Dockerfile)"
    base="${BASE_IMAGE:-$default_base}"
    reachable https://pypi.org/simple/pip/ || cannot_build_here "PyPI (https://pypi.org) cannot be reached for the image's Python packages"
    if [ "$engine_name" = podman ]; then
        store="$(podman info --format '{{.Store.GraphRoot}}')"
        free_gib=$(( $(df --output=avail -k "$store" | tail -1) / 1024 / 1024 ))
        [ "$free_gib" -ge 20 ] || cannot_build_here "$free_gib GiB free under $store; a build needs about 20 GiB"
    fi
    if ! "${engine[@]}" image inspect "$base" >/dev/null 2>&1 && ! reachable https://registry-1.docker.io/v2/; then
        case "$base" in
            debian:*)
                say "Docker Hub cannot be reached for $base"
                reachable http://deb.debian.org/debian/ ||
                    cannot_build_here "neither Docker Hub nor deb.debian.org (for mmdebstrap) can be reached for $base"
                base="$(local_debian_base "$base")" ;;
            *) say "the base $base is neither local nor reachable"; exit 1 ;;
        esac
    fi
    weights_url="$(sed -n 's/^URL = "\(.*\)"$/\1/p' containers/fetch_weights.py)"
    fetch_weights="${FETCH_WEIGHTS:-$(reachable "$weights_url" && echo 1 || echo 0)}"
    [ "$fetch_weights" = 1 ] || say "building without the backbone weights: $weights_url is not fetched"
    build_args=(--build-arg "BASE_IMAGE=$base" --build-arg "FETCH_WEIGHTS=$fetch_weights")
    [ -z "${SOURCE_URL:-}" ] || build_args+=(--build-arg "SOURCE=$SOURCE_URL")
    ca_bundle="${PIP_CERT_FILE:-${PIP_CERT:-}}"
    if [ -n "$ca_bundle" ]; then
        say "pip in the build trusts the CA bundle $ca_bundle (a build secret)"
        build_args+=(--secret "id=pip_cert,src=$ca_bundle")
    fi
    say "building $image on $base with $engine_name"
    start=$SECONDS
    "${engine[@]}" build "${limits[@]}" "${build_args[@]}" --file containers/Dockerfile --tag "$image" .
    say "built $image in $(( (SECONDS - start) / 60 )) min $(( (SECONDS - start) % 60 )) s"
else
    fetch_weights="${FETCH_WEIGHTS:-1}"
fi
size="$("${engine[@]}" image inspect --format '{{.Size}}' "$image")"
say "image $image: $(( size / 1000000 )) MB"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
git ls-files -z --cached --others --exclude-standard | tar --null --files-from - --ignore-failed-read -cf - \
    | tar -xf - -C "$work"
chmod -R a+rwX "$work"   # the image's user (uid 10001) writes the outputs into the copy
in_image() {
    # Runs "$@" in the image as its own user, offline, in the copy; umask 0 lets the host remove the outputs.
    local entrypoint="$1"
    shift
    "${engine[@]}" run --rm --interactive --network none "${limits[@]}" --volume "$work:/work" --workdir /work \
        --entrypoint "$entrypoint" "$image" "$@"
}

say "the image runs as its own non-root user"
in_image id
[ "$(in_image id -u)" = 10001 ]
say "unihead params"
in_image python -m unihead params
say "unihead benchmark on the CPU"
in_image python -m unihead benchmark --config workflow/config/test.yaml --device cpu --repeats 3
say "PyTorch's CUDA build: every library it links resolves inside the image, but the driver's (from the host)"
in_image python - <<'PY'
import pathlib, re, subprocess, sys, torch
libraries = sorted((pathlib.Path(torch.__file__).parent / "lib").glob("*.so*"))
listings = [subprocess.run(["ldd", str(library)], capture_output=True, text=True, check=True).stdout
            for library in libraries]
missing = {name for listing in listings for name in re.findall(r"^\s*(\S+) => not found", listing, re.M)}
print(f"torch {torch.__version__} (CUDA {torch.version.cuda}): {len(libraries)} libraries; not found: {sorted(missing)}")
sys.exit(missing != {"libcuda.so.1"})
PY
if [ "$fetch_weights" = 1 ]; then
    say "the backbone weights of workflow/config/paper.yaml are in the image"
    in_image bash -c 'cd /opt/unihead/weights && sha256sum --check ./*.sha256'
fi
say "the tiny workflow end to end"
start=$SECONDS
if ! in_image bash -c 'umask 0 && snakemake --cores 2 --configfile workflow/config/test.yaml'; then
    say "the tiny workflow failed; the end of each job's log:"
    find "$work/results" -name '*.log' -exec tail --lines 20 {} + || true
    exit 1
fi
say "the tiny workflow took $(( (SECONDS - start) / 60 )) min $(( (SECONDS - start) % 60 )) s"
in_image python - <<'PY'
import json
from pathlib import Path

import pandas as pd

from unihead.config import load_config
from unihead.runs import run_names

config = load_config("workflow/config/test.yaml")
results = Path("results") / config.name
for run in run_names(config):
    for seed in config.workflow.seeds:
        metrics = json.loads((results / "runs" / run / f"seed{seed}" / "metrics.json").read_text())
        tasks = len(metrics["R"])
        assert all(len(row) == tasks for row in metrics["R"]) and metrics["final"], run
        print(f"{run} seed {seed}: R = {metrics['R']}")
summary = pd.read_csv(results / "tables" / "forgetting_summary.csv")
assert set(summary["strategy"]) == set(config.workflow.strategies), summary["strategy"]
report = results / "report"
for table in ("final_metrics", "forgetting", "continual", "r_matrices", "compute"):
    assert all((report / "tables" / f"{table}.{ext}").stat().st_size > 0 for ext in ("csv", "md", "tex")), table
for figure in ("final_metrics", "stages", "r_matrices", "training_curves", "qualitative"):
    assert (report / "figures" / f"{figure}.pdf").read_bytes().startswith(b"%PDF"), figure
print("the tiny workflow's outputs are complete")
PY
say "all checks passed"
