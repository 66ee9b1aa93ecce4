"""Prefect's temporary server started early by the pipeline commands (`start_temporary_server_early`),
and the template database new run folders start from."""

import sqlite3
from contextlib import closing

import pytest
from prefect.server.api.server import SubprocessASGIServer
from prefect.settings import (PREFECT_API_URL, PREFECT_HOME, PREFECT_SERVER_DATABASE_CONNECTION_URL,
                              PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS, temporary_settings)

from flows.cli.prefect_env import (is_prefect_template, prefect_start_failure, report_prefect_start_failure,
                                   sqlite_database, start_temporary_server_early)
from tasks.dbtemplates import save_template, seed_database, template_path


@pytest.fixture
def no_temporary_server():
    """No temporary server registered in this process during the test (the session's, when started, is
    put back after)."""
    saved = SubprocessASGIServer._instances.pop(None, None)
    yield
    SubprocessASGIServer._instances.pop(None, None)
    if saved is not None:
        SubprocessASGIServer._instances[None] = saved


def rows(database, query: str) -> list:
    with closing(sqlite3.connect(f"file:{database}?mode=ro", uri=True)) as connection:
        return connection.execute(query).fetchall()


def test_a_configured_server_starts_no_temporary_one(no_temporary_server):
    with temporary_settings(updates={PREFECT_API_URL: "http://127.0.0.1:4200/api"}):
        wait = start_temporary_server_early()
        assert wait() is None
    assert None not in SubprocessASGIServer._instances  # Prefect's key of the temporary server


def test_a_start_that_fails_is_raised_by_the_wait_and_its_process_is_stopped(no_temporary_server, tmp_path, capsys):
    with temporary_settings(restore_defaults={PREFECT_API_URL},
                            updates={PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS: 0, PREFECT_HOME: tmp_path}):
        wait = start_temporary_server_early()
        with pytest.raises(RuntimeError, match="ephemeral Prefect API server") as raised:
            wait()
    line = prefect_start_failure(raised.value)
    assert line.startswith("inr: Prefect's temporary server did not start within ")
    server = SubprocessASGIServer()  # a fresh instance: the failed one was stopped and let go
    assert server.server_process is None and not server.running
    # the command's report: one line, exit status 2; with --verbose the traceback before it
    assert report_prefect_start_failure(raised.value, verbose=False) == 2
    assert capsys.readouterr().err == line + "\n"
    assert report_prefect_start_failure(raised.value, verbose=True) == 2
    err = capsys.readouterr().err
    assert "Traceback" in err and "RuntimeError" in err and err.endswith("\n" + line + "\n")
    with pytest.raises(ValueError, match="not Prefect's"):
        report_prefect_start_failure(ValueError("not Prefect's"), verbose=False)


def test_the_database_is_the_sqlite_file_prefects_settings_name(tmp_path):
    with temporary_settings(updates={PREFECT_HOME: tmp_path}):
        assert sqlite_database() == tmp_path / "prefect.db"
    url = f"sqlite+aiosqlite:///{tmp_path}/x.db?timeout=1"
    with temporary_settings(updates={PREFECT_SERVER_DATABASE_CONNECTION_URL: url}):
        assert sqlite_database() == tmp_path / "x.db"
    for url in ("postgresql+asyncpg://user@db.example/prefect", "sqlite+aiosqlite:///:memory:"):
        with temporary_settings(updates={PREFECT_SERVER_DATABASE_CONNECTION_URL: url}):
            assert sqlite_database() is None, url


def test_the_sessions_server_started_from_the_installations_template(prefect_server):
    template, database = template_path("prefect"), prefect_server[1] / "prefect.db"
    assert template.is_file() and database.is_file()
    # migrated and with Prefect's block types, nothing of a run: the same rows (their random ids too)
    # as the session's database, whether that was copied from it or it was kept from that one
    for query in ("SELECT version_num FROM alembic_version", "SELECT id, slug FROM block_type ORDER BY id"):
        assert rows(template, query) == rows(database, query) != [], query
    assert len(rows(template, "SELECT id FROM block_schema")) > 10
    assert rows(template, "SELECT count(*) FROM flow_run") == [(0,)]


def test_the_template_is_a_snapshot_of_a_fresh_database_never_of_one_with_runs(prefect_server, tmp_path):
    from prefect import flow

    fresh = tmp_path / "fresh.db"
    assert seed_database(fresh, template_path("prefect"))
    kept = tmp_path / "cache" / "prefect.db"
    assert save_template(fresh, kept, is_prefect_template)
    assert rows(kept, "SELECT id FROM block_type ORDER BY id") == rows(fresh, "SELECT id FROM block_type ORDER BY id")

    @flow
    def one() -> int:
        return 1

    assert one() == 1  # a flow run in the session's (live) database
    assert not save_template(prefect_server[1] / "prefect.db", tmp_path / "other.db", is_prefect_template)
    assert not list(tmp_path.rglob("*.part"))  # no partial copy left
