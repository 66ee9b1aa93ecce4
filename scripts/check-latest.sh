#!/usr/bin/env bash
# Drift check: resolve the newest versions that pyproject.toml's ranges allow (as scripts/lock.sh
# would, into a temporary lock), install them into a throwaway environment, and run the tests that
# drive the installed `inr` command as a user does (tests/flows/test_commands.py) there.
# Exit status 0 when they pass with the newest versions; the checked-in requirements.lock and
# .venv are left as they are. Prints which pins differ from requirements.lock.
set -euo pipefail
cd "$(dirname "$0")/.."
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
bash scripts/lock.sh "$work/latest.lock"
echo "== newer than requirements.lock:"
newer="$(comm -13 <(grep -E '^[A-Za-z0-9_.-]+==' requirements.lock | sed 's/ .*//' | sort) \
                  <(grep -E '^[A-Za-z0-9_.-]+==' "$work/latest.lock" | sed 's/ .*//' | sort))"
echo "${newer:-   (none)}"
bash scripts/setup.sh "$work/latest.lock" "$work/venv"
"$work/venv/bin/python" -m pytest -q -p no:cacheprovider tests/flows/test_commands.py "$@"
