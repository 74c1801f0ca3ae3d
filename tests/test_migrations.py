"""Issue 16: Alembic keeps the registry's schema (registry/migrations), on SQLite and PostgreSQL.

- A registry made by the migrations is exactly registry/models.py (Alembic's
  compare_metadata finds no difference), and exactly the schema eir made before Alembic
  (tests/legacy_registry: main's create_schema, dumped): every table, column, index,
  partial index, constraint and its name, read back from the database's catalogue.
- A registry made before Alembic is refused with the command to run; `eir registry init`
  adopts it (its data kept) and brings it to HEAD; one of a newer eir is left alone.
- The revisions go down to nothing and up again; two inits at once make one registry.
- Opening a registry at HEAD does not import Alembic; the package ships its migrations.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Any

import psycopg
import pytest
from alembic import command
from sqlalchemy import Engine, create_engine, inspect, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

from registry import migrations
from registry.migrations import config, differences, script
from registry.schema import HEAD, REVISIONS, SchemaVersionError, sqlite_file
from registry.store import Registry
from simulator.agent_process import EIR, run_eir
from tests.postgres import empty

ROOT = Path(__file__).resolve().parents[1]
LEGACY = Path(__file__).with_name("legacy_registry")  # {sqlite,postgresql}.sql: a registry of main before Alembic
KEPT = "35209900176148"  # the IMEI a legacy registry holds, to see it kept


@contextmanager
def engine_at(url: str) -> Iterator[Engine]:
    engine = create_engine(url)
    try:
        yield engine
    finally:
        engine.dispose()


def catalogue(url: str) -> dict[str, Any]:
    """The schema as the database describes it (without alembic_version): SQLite's own DDL
    text; PostgreSQL's columns, indexes, constraints and sequences."""
    with engine_at(url) as engine, engine.connect() as conn:
        if conn.dialect.name == "sqlite":
            rows = conn.exec_driver_sql("SELECT type, name, tbl_name, sql FROM sqlite_master "
                                        "WHERE tbl_name != 'alembic_version'")
            return {"sqlite_master": sorted((kind, name, table, " ".join((sql or "").split()))
                                            for kind, name, table, sql in rows)}
        queries = {
            "columns": "SELECT table_name, ordinal_position, column_name, data_type, character_maximum_length, "
                       "is_nullable, column_default FROM information_schema.columns WHERE table_schema = 'public'",
            "indexes": "SELECT tablename, indexname, indexdef FROM pg_indexes WHERE schemaname = 'public'",
            "constraints": "SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid) FROM pg_constraint "
                           "WHERE connamespace = 'public'::regnamespace",
            "sequences": "SELECT sequencename, data_type FROM pg_sequences WHERE schemaname = 'public'",
        }
        return {name: sorted(tuple(row) for row in conn.exec_driver_sql(sql)
                             if "alembic_version" not in str(row[0]))
                for name, sql in queries.items()}


def drop_everything(url: str) -> None:
    """An empty database again: the SQLite file removed, PostgreSQL's public schema remade."""
    path = sqlite_file(make_url(url))
    if path is not None:
        path.unlink(missing_ok=True)
        return
    empty(url)


def make_legacy(url: str, version: int = 1) -> None:
    """The registry eir made before Alembic (tests/legacy_registry), holding one IMEI."""
    with engine_at(url) as engine, engine.begin() as conn:
        lines = (LEGACY / f"{conn.dialect.name}.sql").read_text().splitlines()
        dump = "\n".join(line for line in lines if not line.startswith("--"))
        for statement in dump.split(";\n"):
            if statement.strip("\n ;"):
                conn.exec_driver_sql(statement)
        conn.execute(text("UPDATE eir_schema SET version = :v"), {"v": version})
        conn.execute(text("INSERT INTO equipment (imei, list, source, stolen, created_at, updated_at) "
                          "VALUES (:imei, 'white', 'import:old.csv', false, '2026-01-01', '2026-01-01')"),
                     {"imei": KEPT})


def state(url: str) -> tuple[str | None, int | None]:
    """alembic_version's revision and eir_schema's version."""
    with engine_at(url) as engine, engine.connect() as conn:
        revision = conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
        legacy = conn.execute(text("SELECT version FROM eir_schema")).scalar()
    return revision, legacy


def no_differences(url: str) -> list[Any]:
    with engine_at(url) as engine, engine.connect() as conn:
        return differences(conn)


@pytest.fixture
def empty_url(registry_url: str) -> str:
    """registry_url with nothing in it: its PostgreSQL database may keep a registry's tables."""
    drop_everything(registry_url)
    return registry_url


def test_revisions_are_one_line_ending_at_head() -> None:
    revisions = script()
    assert revisions.get_heads() == [HEAD]
    walked = [revision.revision for revision in revisions.walk_revisions("base", "heads")]
    assert tuple(reversed(walked)) == REVISIONS


def test_a_new_registry_is_exactly_the_models(empty_url: str) -> None:
    with Registry(empty_url) as made:
        assert made.schema == "created"
    assert no_differences(empty_url) == []
    assert state(empty_url) == (HEAD, 2)
    with Registry(empty_url, create=False, writable=True) as opened:
        assert opened.schema == "verified"


def test_the_baseline_is_the_schema_eir_made_before_alembic(empty_url: str) -> None:
    Registry(empty_url).close()
    migrated = catalogue(empty_url)
    drop_everything(empty_url)
    make_legacy(empty_url)
    assert catalogue(empty_url) == migrated
    if empty_url.startswith("sqlite"):  # the DDL text: WITHOUT ROWID and the partial index's WHERE
        ddl = " ".join(entry[3] for entry in migrated["sqlite_master"])
        assert ddl.count("WITHOUT ROWID") == 2 and "ON sighting (imsi) WHERE msisdn IS NOT NULL" in ddl
    else:
        assert any("WHERE (msisdn IS NOT NULL)" in index[2] for index in migrated["indexes"])


def test_init_adopts_a_registry_made_before_alembic(empty_url: str) -> None:
    make_legacy(empty_url)
    with pytest.raises(SchemaVersionError, match=r"version 1, made by an older eir \(before migrations\); "
                                                 "upgrade it with `eir registry init`"):
        Registry(empty_url, create=False)
    done = run_eir(empty_url, "registry", "init", check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.endswith(f": upgraded to schema revision {HEAD}\n")
    assert state(empty_url) == (HEAD, 2)
    assert no_differences(empty_url) == []
    shown = run_eir(empty_url, "registry", "show", KEPT, check=False)
    assert shown.returncode == 0 and "list:     white" in shown.stdout and "import:old.csv" in shown.stdout


def test_a_registry_of_a_newer_eir_before_alembic_is_refused_and_left_alone(sqlite_url: str) -> None:
    make_legacy(sqlite_url, version=3)
    with pytest.raises(SchemaVersionError, match="version 3, made by a newer eir"):
        Registry(sqlite_url, create=False)
    done = run_eir(sqlite_url, "registry", "init", check=False)
    assert done.returncode == 2 and "version 3, made by a newer eir" in done.stderr
    with engine_at(sqlite_url) as engine, engine.connect() as conn:
        assert "alembic_version" not in inspect(conn).get_table_names()


def test_the_revisions_go_down_to_nothing_and_up_again(empty_url: str) -> None:
    Registry(empty_url).close()
    with engine_at(empty_url) as engine:
        with engine.connect() as conn, conn.begin():
            command.downgrade(config(conn), "base")
        with engine.connect() as conn:
            left = set(inspect(conn).get_table_names())
    assert left == {"alembic_version"}
    with Registry(empty_url) as again:
        assert again.schema == "created"
    assert no_differences(empty_url) == []


def test_two_inits_at_once_make_one_registry(empty_url: str) -> None:
    runs = [subprocess.Popen([*EIR, "--registry", empty_url, "registry", "init"], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outputs = [run.communicate(timeout=60) for run in runs]
    assert [run.returncode for run in runs] == [0, 0], outputs
    said = sorted(out.split(": ", 1)[1] for out, _ in outputs)
    assert said == [f"already at schema revision {HEAD}\n", f"created at schema revision {HEAD}\n"]
    assert no_differences(empty_url) == []


def test_opening_a_registry_at_head_does_not_import_alembic(sqlite_url: str) -> None:
    Registry(sqlite_url).close()
    probe = ("import sys; from registry.store import Registry; "
             f"Registry({sqlite_url!r}, create=False, writable=True).close(); "
             f"Registry({sqlite_url!r}).close(); "
             "print(sorted(name for name in sys.modules if name.split('.')[0] == 'alembic'))")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, cwd=ROOT,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 0, done.stderr
    assert done.stdout == "[]\n"


def test_the_package_ships_its_migrations(tmp_path: Path) -> None:
    """setuptools' build_py (what a wheel holds) on a copy of the project's packaging."""
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, tmp_path / name)
    shutil.copytree(ROOT / "registry", tmp_path / "registry", ignore=shutil.ignore_patterns("__pycache__"))
    built = tmp_path / "built"
    done = subprocess.run([sys.executable, "-c", "from setuptools import setup; setup()", "-q", "build_py", "-d",
                           str(built)], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    source = ROOT / "registry" / "migrations"
    wanted = {path.relative_to(source) for path in source.rglob("*")
              if path.is_file() and path.suffix in (".py", ".mako")}
    shipped = {path.relative_to(built / "registry" / "migrations")
               for path in (built / "registry" / "migrations").rglob("*") if path.is_file()}
    assert wanted <= shipped
    assert {Path("env.py"), Path("script.py.mako"), Path("versions/v0001_baseline.py")} <= wanted


def test_an_upgrade_on_postgresql_gives_up_on_a_lock_held_too_long(postgres_url: str,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """Agents' queries would queue behind an upgrade waiting for a table: it waits a while
    (LOCK_TIMEOUT_MS), then fails with nothing changed; once the lock is gone it succeeds."""
    empty(postgres_url)
    make_legacy(postgres_url)
    monkeypatch.setattr(migrations, "LOCK_TIMEOUT_MS", 300)
    with engine_at(postgres_url) as holder, holder.connect() as conn, engine_at(postgres_url) as engine:
        with conn.begin():
            conn.execute(text("LOCK TABLE eir_schema IN ACCESS EXCLUSIVE MODE"))  # e.g. a long transaction
            started = time.monotonic()
            with pytest.raises(OperationalError, match="lock timeout"):
                migrations.upgrade(engine)
            assert time.monotonic() - started < 5
        assert state_of_legacy(postgres_url) == (None, 1)
        assert migrations.upgrade(engine) == "upgraded"
    assert state(postgres_url) == (HEAD, 2)


def state_of_legacy(url: str) -> tuple[None, int | None]:
    """A registry without alembic_version: (None, eir_schema's version)."""
    with engine_at(url) as engine, engine.connect() as conn:
        assert "alembic_version" not in inspect(conn).get_table_names()
        return None, conn.execute(text("SELECT version FROM eir_schema")).scalar()


def apply_by_hand(url: str, sql: str) -> None:
    """As a DBA would: the printed SQL through the database's own client library."""
    path = sqlite_file(make_url(url))
    if path is not None:
        with closing(sqlite3.connect(path)) as raw:
            raw.executescript(sql)
        return
    with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://", 1), autocommit=True) as raw:
        raw.execute(sql.encode())  # several statements: the simple query protocol


def test_init_sql_prints_what_init_would_run_and_changes_nothing(empty_url: str) -> None:
    printed = run_eir(empty_url, "registry", "init", "--sql", check=False)
    assert printed.returncode == 0, printed.stderr
    with engine_at(empty_url) as engine, engine.connect() as conn:
        assert inspect(conn).get_table_names() == []  # nothing made (SQLite: an empty file at most)
    assert "CREATE TABLE equipment" in printed.stdout and "WHERE msisdn IS NOT NULL" in printed.stdout
    apply_by_hand(empty_url, printed.stdout)
    assert state(empty_url) == (HEAD, 2)
    assert no_differences(empty_url) == []
    with Registry(empty_url, create=False, writable=True) as opened:
        assert opened.schema == "verified"
    again = run_eir(empty_url, "registry", "init", "--sql", check=False)
    assert again.returncode == 0 and again.stdout.endswith(f"already at schema revision {HEAD}, nothing to run\n")


def test_init_sql_from_an_older_revision_and_not_for_a_registry_before_migrations(sqlite_url: str) -> None:
    Registry(sqlite_url).close()
    with engine_at(sqlite_url) as engine, engine.connect() as conn, conn.begin():
        command.downgrade(config(conn), REVISIONS[0])
    printed = run_eir(sqlite_url, "registry", "init", "--sql", check=False)
    assert printed.returncode == 0 and "CREATE TABLE" not in printed.stdout
    assert f"UPDATE alembic_version SET version_num='{HEAD}'" in printed.stdout
    apply_by_hand(sqlite_url, printed.stdout)
    assert state(sqlite_url) == (HEAD, 2)
    drop_everything(sqlite_url)
    make_legacy(sqlite_url)
    refused = run_eir(sqlite_url, "registry", "init", "--sql", check=False)
    assert refused.returncode == 2 and refused.stdout == ""
    assert refused.stderr.startswith("eir registry init: cannot read registry ")
    assert "made before migrations" in refused.stderr and len(refused.stderr.splitlines()) == 1
