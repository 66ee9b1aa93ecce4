import pytest


@pytest.fixture(scope="session")
def prefect_api():
    """A temporary Prefect API (SQLite) for the whole session; yields its URL."""
    from prefect.settings import PREFECT_API_URL
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield PREFECT_API_URL.value()


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
