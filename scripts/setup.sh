#!/usr/bin/env bash
# Set up inrflow in ./.venv: the package (editable) with its test extras.
# torch is pinned to the CPU build by constraints.txt; see README "Install".
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -c constraints.txt -e '.[test]'
