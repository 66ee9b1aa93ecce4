#!/usr/bin/env bash
# Start the servers a cluster run uses, on this machine, bound to 127.0.0.1 unless INRFLOW_BIND says
# otherwise: an MLflow tracking server (SQLite backend, artifacts served by the server so that workers
# need no shared disk), a Dask scheduler with N single-threaded `dask worker` processes, and with --s3
# a local S3-compatible object server (moto's server mode) holding a bucket, and with --prefect a Prefect
# server with the process work pool of prefect.yaml and a worker that runs its deployments from this
# checkout. Each listens on a free port.
#
#   bash scripts/cluster-up.sh DIR [--workers N] [--s3 BUCKET] [--prefect]
#   source DIR/cluster.env         # INRFLOW_DASK_ADDRESS, INRFLOW_TRACKING_URI, and the store's settings
#   inr run MANIFEST --out s3://BUCKET/run --dask-address "$INRFLOW_DASK_ADDRESS" \
#       --tracking-uri "$INRFLOW_TRACKING_URI"
#   bash scripts/cluster-down.sh DIR
#
# DIR keeps the servers' state, logs and process ids. On machines of one's own, run the scheduler and
# servers on one host and `dask worker $INRFLOW_DASK_ADDRESS --nthreads 1` on the others (with the same
# store settings in their environment), binding to an address they can reach (INRFLOW_BIND).
# The moto server is a test double of S3 for one machine; a real object store needs only
# INRFLOW_STORAGE_OPTIONS (e.g. '{"endpoint_url": "https://..."}') and its credentials in the
# environment (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY), never in a manifest.
set -euo pipefail
if [ $# -lt 1 ]; then
    echo "usage: $0 DIR [--workers N] [--s3 BUCKET] [--prefect]" >&2
    exit 2
fi
state="$(realpath -m "$1")"
shift
workers=2
bucket=""
prefect=""
while [ $# -gt 0 ]; do
    case "$1" in
        --workers) workers="$2"; shift 2 ;;
        --s3) bucket="$2"; shift 2 ;;
        --prefect) prefect=1; shift ;;
        *) echo "$0: unknown option $1" >&2; exit 2 ;;
    esac
done
here="$(cd "$(dirname "$0")/.." && pwd)"
bin="$here/.venv/bin"
[ -x "$bin/python" ] || bin="$(dirname "$(command -v python3)")"
host="${INRFLOW_BIND:-127.0.0.1}"
mkdir -p "$state/logs"
if [ -s "$state/pids" ]; then
    echo "$0: $state already holds running servers (pids); run cluster-down.sh $state first" >&2
    exit 2
fi

free_port() { "$bin/python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

wait_for() {  # NAME URL: until an HTTP GET answers (any status), at most 120 s
    for _ in $(seq 240); do
        if "$bin/python" -c 'import sys, urllib.request, urllib.error
try:
    urllib.request.urlopen(sys.argv[1], timeout=2)
except urllib.error.HTTPError:
    pass' "$2" 2>/dev/null; then return 0; fi
        sleep 0.5
    done
    echo "$0: $1 did not answer at $2 within 120 s; its log: $state/logs/$1.log" >&2
    return 1
}

start() {  # NAME COMMAND...: in the background in a process group of its own (its pid is the group's),
    local name="$1"  # its output in logs/NAME.log, its pid in pids
    shift
    setsid "$@" < /dev/null > "$state/logs/$name.log" 2>&1 &
    echo "$! $name" >> "$state/pids"
}

env_file="$state/cluster.env"
: > "$env_file"
# every server starts at once; then each is waited for in turn (their start-ups overlap)
if [ -n "$bucket" ]; then
    s3_port="$(free_port)"
    start s3 "$bin/moto_server" -H "$host" -p "$s3_port"
    export AWS_ACCESS_KEY_ID="${AWS_ACCESS_KEY_ID:-inrflow-local}" AWS_SECRET_ACCESS_KEY="${AWS_SECRET_ACCESS_KEY:-inrflow-local}"
    export AWS_DEFAULT_REGION="${AWS_DEFAULT_REGION:-us-east-1}"
    export INRFLOW_STORAGE_OPTIONS="{\"endpoint_url\": \"http://$host:$s3_port\"}"
fi
mlflow_port="$(free_port)"
mkdir -p "$state/mlflow/artifacts" "$state/prefect"
# the servers' new databases copied from the templates the `inr` commands keep (tasks/dbtemplates.py),
# where there are some: no migrations to run
"$bin/python" -c 'import sys; from pathlib import Path; from tasks.dbtemplates import start_from_template
for package, database in zip(sys.argv[1::2], sys.argv[2::2]):
    start_from_template(Path(database), package)' mlflow "$state/mlflow/mlflow.db" \
    ${prefect:+prefect "$state/prefect/prefect.db"} 2> "$state/logs/seed.log" || true
# MLflow's job execution (its GenAI jobs; a job runner and its huey consumers, eight processes) is not used by
# inrflow: off unless set, it took some 30 s of CPU in the server's first half-minute on two cores
export MLFLOW_SERVER_ENABLE_JOB_EXECUTION="${MLFLOW_SERVER_ENABLE_JOB_EXECUTION:-false}"
start mlflow "$bin/mlflow" server --host "$host" --port "$mlflow_port" \
    --backend-store-uri "sqlite:///$state/mlflow/mlflow.db" \
    --artifacts-destination "$state/mlflow/artifacts" --serve-artifacts --workers 1
scheduler_port="$(free_port)"
start dask-scheduler "$bin/dask" scheduler --host "$host" --port "$scheduler_port" --no-dashboard
for i in $(seq "$workers"); do  # with the store's settings in their environment
    start "dask-worker-$i" "$bin/dask" worker "tcp://$host:$scheduler_port" --nthreads 1 --nworkers 1 \
        --host "$host" --no-dashboard --name "worker-$i"
done
if [ -n "$prefect" ]; then
    prefect_port="$(free_port)"
    export PREFECT_HOME="$state/prefect" PREFECT_API_URL="http://$host:$prefect_port/api"
    export PREFECT_SERVER_ANALYTICS_ENABLED=false DO_NOT_TRACK=1
    start prefect-server "$bin/prefect" server start --host "$host" --port "$prefect_port" --no-ui
fi

if [ -n "$bucket" ]; then
    wait_for s3 "http://$host:$s3_port/"
    "$bin/python" -c 'import sys, s3fs, json, os
fs = s3fs.S3FileSystem(**json.loads(os.environ["INRFLOW_STORAGE_OPTIONS"]))
fs.mkdir(sys.argv[1])' "$bucket"
    # the local test store's keys (moto accepts any); a real store's credentials stay in the user's environment
    cat >> "$env_file" <<EOF
export AWS_ACCESS_KEY_ID='$AWS_ACCESS_KEY_ID'
export AWS_SECRET_ACCESS_KEY='$AWS_SECRET_ACCESS_KEY'
export AWS_DEFAULT_REGION='$AWS_DEFAULT_REGION'
export INRFLOW_STORAGE_OPTIONS='$INRFLOW_STORAGE_OPTIONS'
export INRFLOW_S3_BUCKET='$bucket'
EOF
fi
echo "export INRFLOW_TRACKING_URI='http://$host:$mlflow_port'" >> "$env_file"
echo "export INRFLOW_DASK_ADDRESS='tcp://$host:$scheduler_port'" >> "$env_file"
if [ -n "$prefect" ]; then
    wait_for prefect-server "$PREFECT_API_URL/health"
    "$bin/prefect" work-pool create inrflow-process --type process --overwrite > "$state/logs/work-pool.log" 2>&1
    # the worker runs deployments from this checkout (prefect.yaml's pull step), with the store's settings
    # it asks for runs every 2 s (Prefect's default, 10 s, is a run's wait after "deployment run" here)
    INRFLOW_PROJECT_DIR="$here" PREFECT_WORKER_QUERY_SECONDS="${PREFECT_WORKER_QUERY_SECONDS:-2}" \
        start prefect-worker "$bin/prefect" worker start --pool inrflow-process
    cat >> "$env_file" <<EOF
export PREFECT_API_URL='$PREFECT_API_URL'
export INRFLOW_PROJECT_DIR='$here'
EOF
fi

wait_for mlflow "http://$host:$mlflow_port/health"
"$bin/python" - "tcp://$host:$scheduler_port" "$workers" <<'EOF'
import sys
from distributed import Client

with Client(sys.argv[1], timeout=120) as client:
    client.wait_for_workers(int(sys.argv[2]), timeout=120)
EOF
echo "servers up ($(wc -l < "$state/pids") processes); settings in $env_file:"
cat "$env_file"
