#!/usr/bin/env bash
# Set up inrflow in ./.venv: the package (editable) with its test extras.
# torch is pinned by constraints.txt to 2.13.0, whose CPU wheel lies in /opt/wheels on the
# project's machines (a torch from the package index would be a multi-GB CUDA build).
set -euo pipefail
cd "$(dirname "$0")/.."
local_wheels=()
if [ -d /opt/wheels ]; then local_wheels=(--find-links /opt/wheels); fi
python3 -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet "${local_wheels[@]}" -c constraints.txt -e '.[test]'
