#!/usr/bin/env bash
# Set up inrflow in ./.venv: exactly the versions of requirements.lock (hashes checked), then the
# package itself, editable. torch is the 2.13.0 CPU build whose wheel lies in /opt/wheels on the
# project's machines (a torch from the package index would be a multi-GB CUDA build).
# scripts/lock.sh refreshes the lock. Arguments (for scripts/check-latest.sh): another lock file
# and another environment folder, in that order.
set -euo pipefail
lock="$(realpath -m "${1:-$(dirname "$0")/../requirements.lock}")"
venv="$(realpath -m "${2:-$(dirname "$0")/../.venv}")"
cd "$(dirname "$0")/.."
[ -f "$lock" ] || { echo "setup.sh: no lock file $lock" >&2; exit 1; }
local_wheels=()
if [ -d /opt/wheels ]; then local_wheels=(--find-links /opt/wheels); fi
python3 -m venv "$venv"
# The installer first: uv, by pip, at the version and hashes of the lock's own `uv==` entry.
uv_entry="$(mktemp)"
trap 'rm -f "$uv_entry"' EXIT
awk '/^uv==/ {found = 1} found {print} found && !/\\$/ {exit}' "$lock" > "$uv_entry"
grep -q '^uv==' "$uv_entry" || { echo "setup.sh: $lock has no uv== entry (scripts/lock.sh writes one)" >&2; exit 1; }
"$venv/bin/python" -m pip install --quiet --no-deps --require-hashes -r "$uv_entry"
# Then the lock: uv downloads and unpacks in parallel and compiles the bytecode on every core
# (about 45 s on two cores, where pip took about 110 s and compiling afterwards another 48 s).
# Bytecode matters: with PYTHONDONTWRITEBYTECODE set, every process would compile what it imports.
uv=("$venv/bin/uv" pip --quiet)
"${uv[@]}" install --python "$venv/bin/python" --no-deps --require-hashes --compile-bytecode "${local_wheels[@]}" \
    -r "$lock"
"${uv[@]}" install --python "$venv/bin/python" --no-deps --no-build-isolation -e .
"${uv[@]}" check --python "$venv/bin/python"
