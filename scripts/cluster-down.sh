#!/usr/bin/env bash
# Stop the servers scripts/cluster-up.sh started in DIR (workers first, then the scheduler and the
# servers), waiting up to 10 s for each before killing it. DIR's state and logs are kept.
#   bash scripts/cluster-down.sh DIR
set -uo pipefail
if [ $# -ne 1 ]; then
    echo "usage: $0 DIR" >&2
    exit 2
fi
pids="$(realpath -m "$1")/pids"
[ -f "$pids" ] || { echo "$0: no $pids: nothing to stop" >&2; exit 0; }
tac "$pids" | while read -r pid name; do
    if kill -0 "$pid" 2>/dev/null; then
        kill -TERM -- "-$pid" 2>/dev/null  # its whole process group: a worker's nanny and process, mlflow's uvicorn
        for _ in $(seq 20); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
        if kill -KILL -- "-$pid" 2>/dev/null; then echo "$name ($pid) killed"; else echo "$name ($pid) stopped"; fi
    fi
done
rm -f "$pids"
