import pytest


@pytest.fixture(scope="session")
def prefect_api():
    """A temporary Prefect API (SQLite) for the whole session; yields its URL."""
    from prefect.settings import PREFECT_API_URL
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield PREFECT_API_URL.value()
