"""Prefect's temporary server started early by the pipeline commands (`start_temporary_server_early`)."""

import pytest
from prefect.server.api.server import SubprocessASGIServer
from prefect.settings import PREFECT_API_URL, PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS, temporary_settings

from flows.cli.prefect_env import prefect_start_failure, start_temporary_server_early


def test_a_configured_server_starts_no_temporary_one():
    with temporary_settings(updates={PREFECT_API_URL: "http://127.0.0.1:4200/api"}):
        wait = start_temporary_server_early()
        assert wait() is None
    assert None not in SubprocessASGIServer._instances  # Prefect's key of the temporary server


def test_a_start_that_fails_is_raised_by_the_wait_and_its_process_is_stopped():
    with temporary_settings(restore_defaults={PREFECT_API_URL},
                            updates={PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS: 0}):
        wait = start_temporary_server_early()
        with pytest.raises(RuntimeError, match="ephemeral Prefect API server") as raised:
            wait()
    assert prefect_start_failure(raised.value).startswith("inr: Prefect's temporary server did not start within ")
    server = SubprocessASGIServer()  # a fresh instance: the failed one was stopped and let go
    assert server.server_process is None and not server.running
    SubprocessASGIServer._instances.pop(None, None)
