"""Test-wide settings: offline Prefect and MLflow, quiet logs."""

import os


os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("DASK_LOGGING__DISTRIBUTED", "error")
os.environ.setdefault("DO_NOT_TRACK", "1")
# As the command line's offline defaults: flow-run progress reaches the API, the console warnings.
os.environ.setdefault("PREFECT_LOGGING_LOGGERS_PREFECT_FLOW_RUNS_LEVEL", "INFO")
os.environ.setdefault("PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL", "WARNING")

# Under pytest-xdist (README's test command runs two workers) each worker computes on its share of the
# cores: torch's thread pool, and those of the commands it runs, are sized to that share instead of to
# the whole machine, where two pools would take turns on the same cores. A user's own setting wins.
_workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
if _workers > 1:
    _cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1  # not macOS
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, _cores // _workers)))
