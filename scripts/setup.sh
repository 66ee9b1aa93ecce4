#!/usr/bin/env bash
# Set up inrflow in ./.venv: exactly the versions of requirements.lock (hashes checked), then the
# package itself, editable. torch is the 2.13.0 CPU build whose wheel lies in /opt/wheels on the
# project's machines (a torch from the package index would be a multi-GB CUDA build).
# scripts/lock.sh refreshes the lock.
set -euo pipefail
cd "$(dirname "$0")/.."
local_wheels=()
if [ -d /opt/wheels ]; then local_wheels=(--find-links /opt/wheels); fi
python3 -m venv .venv
.venv/bin/python -m pip install --quiet --no-deps --require-hashes "${local_wheels[@]}" -r requirements.lock
.venv/bin/python -m pip install --quiet --no-deps --no-build-isolation -e .
.venv/bin/python -m pip check
