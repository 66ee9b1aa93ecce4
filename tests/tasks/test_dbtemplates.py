"""Template databases (`tasks.dbtemplates`) on hand-made SQLite files, and MLflow's tracking database made
from its template (`tasks.registry`)."""

import logging
import sqlite3
import sys
import threading
import time
from contextlib import closing
from importlib.metadata import version

from tasks import registry
from tasks.dbtemplates import (TEMPLATES_SETTING, count, making_from_template, save_template, seed_database,
                               sqlite_file, start_from_template, template_path)


def rows(database, query: str) -> list:
    with closing(sqlite3.connect(f"file:{database}?mode=ro", uri=True)) as connection:
        return connection.execute(query).fetchall()


def made_database(path, runs: int = 0):
    """A database as a service leaves it: a migration version, a fixed row, `runs` rows of one run."""
    with closing(sqlite3.connect(path)) as connection:
        connection.execute("PRAGMA journal_mode = WAL")
        connection.executescript("CREATE TABLE version (v TEXT); INSERT INTO version VALUES ('abc');"
                                 "CREATE TABLE kinds (name TEXT); INSERT INTO kinds VALUES ('a'), ('b');"
                                 "CREATE TABLE runs (id INTEGER);")
        connection.executemany("INSERT INTO runs VALUES (?)", [(i,) for i in range(runs)])
        connection.commit()
    return path


def no_runs(copy) -> bool:
    return count(copy, "version") == 1 and count(copy, "runs") == 0


def test_templates_live_beside_the_installed_packages_unless_set(monkeypatch, tmp_path):
    monkeypatch.delenv(TEMPLATES_SETTING, raising=False)
    assert template_path("prefect") == tmp_path.joinpath(sys.prefix, "var", "cache", "inrflow",
                                                         f"prefect-{version('prefect')}.db")
    monkeypatch.setenv(TEMPLATES_SETTING, str(tmp_path))
    assert template_path("mlflow") == tmp_path / f"mlflow-{version('mlflow')}.db"
    monkeypatch.setenv(TEMPLATES_SETTING, "")
    assert template_path("mlflow") is None


def test_the_file_of_a_sqlite_url(tmp_path):
    assert sqlite_file(f"sqlite:///{tmp_path}/mlflow.db") == tmp_path / "mlflow.db"
    assert sqlite_file(f"sqlite+aiosqlite:///{tmp_path}/prefect.db?timeout=30") == tmp_path / "prefect.db"
    assert str(sqlite_file("sqlite:///run/mlflow.db")) == "run/mlflow.db"  # relative, as SQLAlchemy reads it
    for url in ("postgresql+asyncpg://user@db.example/prefect", "sqlite:///:memory:", "http://127.0.0.1:5000",
                "sqlite://", ""):
        assert sqlite_file(url) is None, url


def test_a_template_is_a_consistent_copy_of_a_database_its_maker_accepts(tmp_path):
    live = made_database(tmp_path / "live.db")
    writer = sqlite3.connect(live)  # still open, its last row only in the write-ahead log
    writer.execute("INSERT INTO kinds VALUES ('c')")
    writer.commit()
    template = tmp_path / "templates" / "svc-1.0.db"
    assert save_template(live, template, no_runs)
    writer.close()
    assert rows(template, "SELECT name FROM kinds") == [("a",), ("b",), ("c",)]
    assert rows(template, "PRAGMA journal_mode") == [("delete",)]  # one file
    before = template.stat().st_mtime_ns
    assert not save_template(live, template, no_runs) and template.stat().st_mtime_ns == before  # kept

    def forget_kinds(copy) -> bool:  # a maker removing what belongs to one run
        copy.execute("DELETE FROM kinds WHERE name = 'c'")
        return True

    assert save_template(live, tmp_path / "cleaned.db", forget_kinds)
    assert rows(tmp_path / "cleaned.db", "SELECT name FROM kinds") == [("a",), ("b",)]
    assert rows(live, "SELECT count(*) FROM kinds") == [(3,)]  # the database itself untouched


def test_no_template_of_a_database_its_maker_refuses_or_that_is_not_one(tmp_path):
    assert not save_template(made_database(tmp_path / "used.db", runs=2), tmp_path / "t.db", no_runs)
    (tmp_path / "empty.db").touch()
    assert not save_template(tmp_path / "empty.db", tmp_path / "t.db", no_runs)  # no tables: an error, caught
    assert not save_template(tmp_path / "missing.db", tmp_path / "t.db", no_runs)
    (tmp_path / "file").write_text("not a folder")
    assert not save_template(made_database(tmp_path / "ok.db"), tmp_path / "file" / "t.db", no_runs)
    # nothing partial (the sources' -shm and -wal files are SQLite's, made by reading them)
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.endswith(("-shm", "-wal"))) == [
        "empty.db", "file", "ok.db", "used.db"]


def test_a_new_database_is_copied_from_the_template_and_an_existing_one_kept(tmp_path):
    template = made_database(tmp_path / "template.db")
    database = tmp_path / "run" / "svc.db"
    database.parent.mkdir()
    assert seed_database(database, template)
    assert database.read_bytes() == template.read_bytes()
    database.write_bytes(b"a run's database")
    assert not seed_database(database, template) and database.read_bytes() == b"a run's database"
    assert not seed_database(tmp_path / "no folder" / "svc.db", template)  # no error, nothing written
    assert not seed_database(tmp_path / "new.db", tmp_path / "no template.db")
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["run", "svc.db", "template.db"]  # no partial copy


def test_a_new_database_starts_from_the_template_or_is_to_become_it(monkeypatch, tmp_path):
    monkeypatch.setenv(TEMPLATES_SETTING, str(tmp_path / "templates"))
    template = template_path("mlflow")
    # no template yet: nothing copied, and the path to keep the database at once it is made
    assert start_from_template(tmp_path / "one.db", "mlflow") == template
    assert not (tmp_path / "one.db").exists()
    template.parent.mkdir()
    made_database(template)
    assert start_from_template(tmp_path / "two.db", "mlflow") is None  # copied
    assert (tmp_path / "two.db").read_bytes() == template.read_bytes()
    (tmp_path / "three.db").write_bytes(b"a run's database")
    assert start_from_template(tmp_path / "three.db", "mlflow") is None  # kept as it is
    assert (tmp_path / "three.db").read_bytes() == b"a run's database"
    assert start_from_template(None, "mlflow") is None  # not a SQLite database
    monkeypatch.setenv(TEMPLATES_SETTING, "")
    assert start_from_template(tmp_path / "four.db", "mlflow") is None and not (tmp_path / "four.db").exists()


def test_a_database_begun_while_another_makes_the_template_waits_and_copies_it(monkeypatch, tmp_path):
    monkeypatch.setenv(TEMPLATES_SETTING, str(tmp_path / "templates"))
    template = template_path("mlflow")
    events = []

    def first() -> None:  # the installation's first database: made (slowly) and kept as the template
        with making_from_template(tmp_path / "one.db", "mlflow") as path:
            events.append(("first yields", path))
            time.sleep(0.5)
            made_database(tmp_path / "one.db")
            events.append(("first kept", save_template(tmp_path / "one.db", path, no_runs)))

    maker = threading.Thread(target=first)
    maker.start()
    while not events and maker.is_alive():  # the first holds the lock
        time.sleep(0.01)
    begun = time.monotonic()
    with making_from_template(tmp_path / "two.db", "mlflow") as path:  # begun meanwhile: waits, then a copy
        events.append(("second yields", path))
    waited = time.monotonic() - begun
    maker.join()
    assert events == [("first yields", template), ("first kept", True), ("second yields", None)]
    assert 0.3 < waited < 5
    assert (tmp_path / "two.db").read_bytes() == template.read_bytes()
    assert rows(tmp_path / "two.db", "SELECT name FROM kinds") == [("a",), ("b",)]
    # a maker that ends without a template (its service failed to start): the one waiting makes its own
    template.unlink()
    holding = threading.Event()

    def failing(seconds: float) -> None:
        with making_from_template(tmp_path / "failed.db", "mlflow"):
            holding.set()
            time.sleep(seconds)

    for seconds, wait, name in ((0.4, 120.0, "three.db"), (1.5, 0.2, "four.db")):  # ended; still going
        holding.clear()
        maker = threading.Thread(target=failing, args=(seconds,))
        maker.start()
        holding.wait()
        begun = time.monotonic()
        with making_from_template(tmp_path / name, "mlflow", wait=wait) as path:
            waited = time.monotonic() - begun
            assert path == template and not (tmp_path / name).exists()
        assert (0.2 < waited < 2) if wait > 1 else (0.15 < waited < 1)  # not the other's 1.5 s
        maker.join()
    # nothing to make: no lock taken, nothing written
    (tmp_path / "six.db").write_bytes(b"a run's database")
    with making_from_template(tmp_path / "six.db", "mlflow") as path:
        assert path is None and (tmp_path / "six.db").read_bytes() == b"a run's database"
    monkeypatch.setenv(TEMPLATES_SETTING, "")
    with making_from_template(tmp_path / "seven.db", "mlflow") as path:
        assert path is None and not (tmp_path / "seven.db").exists()


def test_a_tracking_database_leaves_a_template_and_the_next_starts_from_it(monkeypatch, tmp_path, caplog):
    monkeypatch.setenv(TEMPLATES_SETTING, str(tmp_path / "templates"))
    caplog.set_level(logging.INFO, logger="mlflow.store.db.utils")
    first = f"sqlite:///{tmp_path}/one/mlflow.db"
    (tmp_path / "one").mkdir()
    experiment = registry.ensure_experiment(first, "demo", (tmp_path / "one" / "art").as_uri())
    assert "Creating initial MLflow database tables" in caplog.text  # migrated: no template yet
    template = template_path("mlflow")
    assert template.is_file()
    # migrated, the Default experiment (with the first run folder's artifact location) left out
    assert rows(template, "SELECT version_num FROM alembic_version") == rows(
        tmp_path / "one" / "mlflow.db", "SELECT version_num FROM alembic_version") != []
    assert rows(template, "SELECT count(*) FROM experiments") == [(0,)]
    assert registry.client(first).get_experiment(experiment).name == "demo"

    caplog.clear()
    (tmp_path / "two").mkdir()
    second = f"sqlite:///{tmp_path}/two/mlflow.db"
    other = registry.ensure_experiment(second, "other", (tmp_path / "two" / "art").as_uri())
    assert "Creating initial MLflow database tables" not in caplog.text  # a copy of the template
    made = registry.client(second)
    default = made.get_experiment("0")  # made again by MLflow, where the second run keeps its artifacts
    assert default.name == "Default" and str(tmp_path / "one") not in default.artifact_location
    assert made.get_experiment(other).artifact_location == (tmp_path / "two" / "art").as_uri()
    assert sorted(e.name for e in made.search_experiments()) == ["Default", "other"]
