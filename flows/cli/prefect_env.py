"""Prefect for the pipeline commands (`inr run`, `inr nerf-run`) without servers: the embedded
defaults put in the environment before Prefect is imported, and one line instead of a traceback
when Prefect's temporary server does not start."""

from __future__ import annotations

import contextvars
import importlib
import os
import sqlite3
import sys
import threading
from pathlib import Path
from typing import Callable, Optional

from tasks.dbtemplates import count, making_from_template, save_template, sqlite_file


# Seconds the command line lets Prefect's temporary server take to answer (Prefect's own default,
# 20 s, is too short for a fresh PREFECT_HOME on a busy 2-core machine with Prefect 3.9).
EPHEMERAL_STARTUP_SECONDS = 300
EPHEMERAL_STARTUP_SETTING = "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS"


def run_folder(out: Optional[str], default_name: str, verbose: bool = False) -> str:
    """The run folder of a pipeline command: `out` (a path, made absolute, or an fsspec URL such as
    s3://bucket/run) or runs/<default_name>; the embedded defaults set up (`use_offline_defaults`)
    with Prefect's own files on this machine: in the run folder, or in runs/<default_name> when the
    run folder is at a URL."""
    from tasks.locations import is_url

    local = str(Path("runs", default_name).resolve())
    if out and is_url(out):
        use_offline_defaults(local, verbose=verbose)
        return out
    out_dir = str(Path(out).resolve()) if out else local
    use_offline_defaults(out_dir, verbose=verbose)
    return out_dir


def use_offline_defaults(out_dir: str, verbose: bool = False) -> None:
    """Environment for a run with no servers; anything the user already set wins.

    Prefect keeps its temporary server's database under the run folder and gets a generous
    startup wait (`EPHEMERAL_STARTUP_SECONDS`), telemetry is off, and log noise is kept to
    warnings unless `verbose`.
    """
    defaults = {
        "PREFECT_HOME": str(Path(out_dir) / "prefect"),
        EPHEMERAL_STARTUP_SETTING: str(EPHEMERAL_STARTUP_SECONDS),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_LOGGING_LEVEL": "INFO" if verbose else "WARNING",
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "MLFLOW_LOGGING_LEVEL": "INFO" if verbose else "WARNING",
        "DO_NOT_TRACK": "1",
        "DASK_LOGGING__DISTRIBUTED": "info" if verbose else "warning",
        # Progress lines go to the flow run's logger at INFO (flows.stages.progress_printer): the
        # API (a server's UI, the temporary server's database) gets them, the console only
        # warnings, since the lines are printed once already.
        "PREFECT_LOGGING_LOGGERS_PREFECT_FLOW_RUNS_LEVEL": "INFO",
        "PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL": "INFO" if verbose else "WARNING",
        # A shape's failure is reported on its progress line and in the summary; the task
        # engine's traceback for it (in the worker processes too) only with --verbose.
        "PREFECT_LOGGING_LOGGERS_PREFECT_TASK_RUNS_LEVEL": "INFO" if verbose else "CRITICAL",
    }
    for key, value in defaults.items():
        os.environ.setdefault(key, value)
    Path(os.environ["PREFECT_HOME"]).mkdir(parents=True, exist_ok=True)


def start_temporary_server_early() -> Callable[[], None]:
    """Start Prefect's temporary server now, in a thread, when the run will use one (no PREFECT_API_URL
    is set), and return a function that waits for it and raises what its start raised.

    Its process starts while this one imports the pipeline (about 10 s); the flow then finds it running
    (Prefect keeps one temporary server a process). Four `inr run`s of one tiny shape, old and new
    alternating: the flow began 32 s after the command (mean) before, 27 s with this. A new run folder's
    database is copied from the installation's template (`tasks.dbtemplates`) instead of being migrated;
    the first server of an installation leaves that template (`is_prefect_template`), and a run starting
    while it does waits for it (`making_from_template`). With a server configured the returned function
    does nothing.
    """
    from prefect.settings import PREFECT_API_URL

    if PREFECT_API_URL.value():
        return lambda: None
    # imported here, not in the thread: an import holds the interpreter as the pipeline's would, and the
    # server's process would start only after both; prefect.main sets up Prefect's logging (the server's
    # "Starting temporary server on ..." line), as the pipeline's `from prefect import flow` would
    importlib.import_module("prefect.main")
    from prefect.server.api.server import SubprocessASGIServer

    database = sqlite_database()
    failure: list[BaseException] = []

    def start() -> None:
        # the template's path where this server makes the database (none copied): kept there once made
        with making_from_template(database, "prefect") as template:
            server = SubprocessASGIServer()
            try:
                server.start()
            except BaseException as exc:  # raised again in the command's thread, where it is reported
                failure.append(exc)
                server.stop()  # its process, now rather than at exit: the imports go on beside it
                return
            if template is not None:  # migrated by this server, nothing of a run in it yet
                save_template(database, template, is_prefect_template)

    thread = threading.Thread(target=contextvars.copy_context().run, args=(start,), name="prefect-server-start",
                              daemon=True)
    thread.start()

    def wait() -> None:
        thread.join()
        if failure:
            raise failure[0]

    return wait


def sqlite_database() -> Optional[Path]:
    """The file of the database Prefect's server would use under the current settings
    (PREFECT_HOME/prefect.db by default), or None when it is not a SQLite file."""
    from prefect.settings import get_current_settings

    url = get_current_settings().server.database.connection_url
    return sqlite_file(url.get_secret_value() if url is not None else "")


def is_prefect_template(copy: sqlite3.Connection) -> bool:
    """Whether a copy of a just-started server's database is a template: migrated, Prefect's block types
    registered, no flow runs (`tasks.dbtemplates.save_template`)."""
    return count(copy, "alembic_version") == 1 and count(copy, "block_type") > 0 and count(copy, "flow_run") == 0


def prefect_start_failure(exc: BaseException) -> Optional[str]:
    """One line for a run that failed because Prefect's temporary server never answered, or
    None when `exc` (or an exception it was raised from) is anything else."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        text = str(exc)
        if "ephemeral Prefect API server" in text:
            wait = os.environ.get(EPHEMERAL_STARTUP_SETTING, "Prefect's default")
            exited = " (its process exited)" if "process exited with code" in text else ""
            return (f"inr: Prefect's temporary server did not start within {wait} s{exited}; "
                    f"raise {EPHEMERAL_STARTUP_SETTING}, or set PREFECT_API_URL to a running Prefect server "
                    "(--verbose shows the traceback)")
        exc = exc.__cause__ or exc.__context__
    return None


def report_prefect_start_failure(exc: Exception, verbose: bool) -> int:
    """Exit status 2 with one line when Prefect's temporary server could not start (the
    traceback too with `verbose`); any other exception is raised again."""
    line = prefect_start_failure(exc)
    if line is None:
        raise exc
    if verbose:
        import traceback

        traceback.print_exception(exc)
    print(line, file=sys.stderr)
    return 2
