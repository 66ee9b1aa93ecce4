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
# Bytecode is compiled afterwards on every core (pip compiles file by file: ~80 s of the ~180 s here);
# like pip, a file that does not compile (some packages ship Python 2 examples) is skipped.
.venv/bin/python -m pip install --quiet --no-compile --no-deps --require-hashes "${local_wheels[@]}" -r requirements.lock
.venv/bin/python -m compileall -q -j 0 .venv/lib > /dev/null || true
.venv/bin/python -m pip install --quiet --no-deps --no-build-isolation -e .
.venv/bin/python -m pip check
