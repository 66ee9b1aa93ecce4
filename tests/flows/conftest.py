import inspect
import os

import pytest


@pytest.fixture(scope="session")
def prefect_server(tmp_path_factory):
    """A temporary Prefect API (SQLite) for the whole session, started as the `inr` commands start
    theirs (`start_temporary_server_early`: the database copied from the installation's template, or
    left as the template when there is none yet); yields its URL and its PREFECT_HOME."""
    from prefect.context import _temporary_global_settings_context, get_settings_context
    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker
    from prefect.server.api.server import SubprocessASGIServer
    from prefect.settings import (PREFECT_API_URL, PREFECT_HOME, PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS,
                                  temporary_settings)
    from prefect.utilities.asyncutils import run_coro_as_sync

    from flows.cli.prefect_env import start_temporary_server_early

    home = tmp_path_factory.mktemp("prefect-home")
    with temporary_settings(updates={PREFECT_HOME: home, PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS: 300},
                            restore_defaults={PREFECT_API_URL}):
        start_temporary_server_early()()
    server = SubprocessASGIServer()  # the one just started: Prefect keeps one temporary server a process
    try:
        # as prefect_test_harness: the settings also for contexts copied before (its issue 15818)
        with temporary_settings(updates={PREFECT_API_URL: server.api_url}), \
                _temporary_global_settings_context(get_settings_context()):
            yield server.api_url, home

            async def drain() -> None:  # the logs and events still queued, while the server is up
                for result in (APILogWorker.instance().drain(), EventsWorker.drain_all()):
                    if inspect.isawaitable(result):
                        await result

            run_coro_as_sync(drain())
    finally:
        server.stop()
        SubprocessASGIServer._instances.pop(None, None)


@pytest.fixture(scope="session")
def prefect_api(prefect_server):
    """The session's temporary Prefect API (`prefect_server`); yields its URL."""
    return prefect_server[0]


@pytest.fixture(scope="session")
def shared_cluster():
    """One Dask LocalCluster for the session, made as the flows make their own (two single-threaded
    worker processes with the flows' worker environment, `flows.collection.task_runner`); yields its
    address. Flow tests that need a cluster but not a fresh one pass it as `dask_address`: a flow's own
    LocalCluster costs about 15 s of start-up and imports on two cores. The embedded default is still run
    by every `inr` command test (`test_commands`)."""
    from distributed import LocalCluster

    from flows.collection import configure_local_workers

    configure_local_workers()
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        yield cluster.scheduler_address


@pytest.fixture(scope="session")
def cluster_recipe(tmp_path_factory):
    """README's cluster recipe (`tests/flows/recipe.py`) running in the background; `test_cluster.py`'s
    `remote_run` waits for it and takes its servers down after that module (here, at the end, only
    if that did not happen)."""
    from .recipe import RecipeRun

    run = RecipeRun(tmp_path_factory.mktemp("user"))
    yield run
    run.down()


@pytest.fixture(scope="session", autouse=True)
def cluster_recipe_early(request):
    """Start `cluster_recipe` with the session's first test when a selected test uses it: its servers and
    runs (some 2.5 minutes on two cores, mostly waiting on its processes) then overlap the tests before
    `test_cluster.py` instead of adding to them. Not in pytest-xdist workers: there the worker that takes
    `test_cluster.py` starts it while the others go on (each worker sees every selected test, and one
    worker's session may end before another's uses the servers)."""
    if os.environ.get("PYTEST_XDIST_WORKER"):
        return
    if any("remote_run" in getattr(item, "fixturenames", ()) for item in request.session.items):
        request.getfixturevalue("cluster_recipe")
