#!/usr/bin/env bash
# Refresh requirements.lock: resolve the newest versions that pyproject.toml's ranges allow (with
# the test extra and the build tools of requirements-build.in) to exact versions with hashes, by
# uv (at the version requirements-build.in pins) from the package index, torch from
# constraints.txt. Then re-check with
#   bash scripts/lock.sh && bash scripts/setup.sh && .venv/bin/python -m pytest -q
# An argument writes that file instead (scripts/check-latest.sh does so).
set -euo pipefail
output="$(realpath -m "${1:-requirements.lock}")"
cd "$(dirname "$0")/.."
UV_VERSION="$(sed -n 's/^uv==\([0-9.]*\).*/\1/p' requirements-build.in)"
[ -n "$UV_VERSION" ] || { echo "lock.sh: requirements-build.in pins no uv (a line uv==VERSION)" >&2; exit 1; }
tools="$(mktemp -d)"
trap 'rm -rf "$tools"' EXIT
python3 -m venv "$tools/venv"
"$tools/venv/bin/python" -m pip install --quiet "uv==$UV_VERSION"
find_links=()
if [ -d /opt/wheels ]; then find_links=(--find-links /opt/wheels); fi
"$tools/venv/bin/uv" pip compile pyproject.toml requirements-build.in --extra test --extra s3 \
    "${find_links[@]}" --constraint constraints.txt --python-version 3.11 \
    --generate-hashes --upgrade --quiet \
    --custom-compile-command "bash scripts/lock.sh" --output-file "$output"
echo "$output: $(grep -c '==' "$output") packages pinned"
