#!/usr/bin/env bash
# System packages from the base image's distribution: Python 3 with venv (the environment in
# /opt/venv links to it) and CA certificates (the official data downloads run in the container);
# with --with-tex also a TeX distribution with latexmk for the `paper` rule. No compilers or other
# build tools. Called by containers/Dockerfile and containers/unihead.def.
set -euo pipefail
packages=(ca-certificates python3 python3-venv)
if [ "${1:-}" = "--with-tex" ]; then
    packages+=(latexmk texlive-latex-recommended texlive-latex-extra texlive-fonts-recommended)
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update
apt-get install --yes --no-install-recommends "${packages[@]}"
apt-get clean
rm -rf /var/lib/apt/lists/*
