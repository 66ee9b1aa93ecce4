#!/usr/bin/env bash
# Stop the servers scripts/cluster-up.sh started in DIR: every process group is asked to stop at once
# (SIGTERM; a Prefect worker gets a second one, which stops it), and those still running after 30 s
# are killed (an MLflow server on a loaded 2-core machine once took more than 10 s to stop). DIR's state
# and logs are kept.
#   bash scripts/cluster-down.sh DIR
set -uo pipefail
if [ $# -ne 1 ]; then
    echo "usage: $0 DIR" >&2
    exit 2
fi
pids="$(realpath -m "$1")/pids"
[ -f "$pids" ] || { echo "$0: no $pids: nothing to stop" >&2; exit 0; }
# workers first, then the scheduler and the servers; each pid is its process group's (a worker's nanny
# and process, mlflow's uvicorn)
tac "$pids" | while read -r pid name; do kill -TERM -- "-$pid" 2>/dev/null; done
for i in $(seq 60); do
    if [ "$i" = 2 ]; then  # a Prefect worker lets its flow runs finish on the first SIGTERM, stops on a second
        while read -r pid name; do
            [ "$name" = prefect-worker ] && kill -TERM -- "-$pid" 2>/dev/null
        done < "$pids"
    fi
    running=0
    # the whole group: mlflow's uvicorn can outlive the `mlflow server` process that started it
    while read -r pid name; do kill -0 -- "-$pid" 2>/dev/null && running=1; done < "$pids"
    [ "$running" = 0 ] && break
    sleep 0.5
done
while read -r pid name; do
    if kill -KILL -- "-$pid" 2>/dev/null; then echo "$name ($pid) killed"; else echo "$name ($pid) stopped"; fi
done < "$pids"
rm -f "$pids"
