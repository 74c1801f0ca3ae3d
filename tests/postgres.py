"""A throwaway PostgreSQL server for the tests that run on both databases.

``Cluster.start`` makes a cluster in a temporary folder (``initdb``; as the user postgres
when run as root, which initdb refuses), starts it with ``pg_ctl -w`` on a free loopback
port with its unix socket in that folder, and creates one database; ``stop`` stops it and
removes the folder. fsync and synchronous_commit keep their defaults (on): the durability
tests (first sights after SIGKILL) would prove nothing without them.

``server_url`` is what the session fixture (tests/conftest.py) uses: EIR_TEST_POSTGRES when
set (a scratch database whose tables the tests drop), else a cluster of its own; where
PostgreSQL is not installed the PostgreSQL runs skip, and fail in CI (tests/tools.py).
``reset`` empties the database between tests (its public schema dropped and made again).
"""

from __future__ import annotations

import getpass
import glob
import os
import shutil
import subprocess
import tempfile
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, inspect, text

from registry.models import Base
from registry.observations import parse_stamp, stamp
from registry.schema import ALEMBIC_VERSION, SCHEMA
from simulator.agent_process import LOOPBACK, free_port

DATABASE = "eirtest"
SERVER_USER = "postgres"  # initdb runs as this user where the tests run as root
START_SECONDS = 30


def binary(name: str) -> str | None:
    """A PostgreSQL server program: on PATH, else where Debian puts it (not on PATH)."""
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), reverse=True)
    return candidates[0] if candidates else None


class Cluster:
    """One PostgreSQL cluster in a temporary folder, reachable over loopback TCP."""

    def __init__(self) -> None:
        initdb, pg_ctl = binary("initdb"), binary("pg_ctl")
        if initdb is None or pg_ctl is None:
            raise FileNotFoundError("PostgreSQL (initdb, pg_ctl) is not installed: apt-get install -y postgresql "
                                    "(see /work/shared/INTEROP.md)")
        self.initdb, self.pg_ctl = initdb, pg_ctl
        self.folder = Path(tempfile.mkdtemp(prefix="eir-pg-"))
        self.data = self.folder / "data"
        self.port = free_port(LOOPBACK)
        self.user = SERVER_USER if os.geteuid() == 0 else None
        self.started = False

    @property
    def url(self) -> str:
        role = self.user or _current_user()
        return f"postgresql+psycopg://{role}@{LOOPBACK}:{self.port}/{DATABASE}"

    def _run(self, *args: str) -> None:
        command = ["runuser", "-u", self.user, "--", *args] if self.user else list(args)
        done = subprocess.run(command, capture_output=True, text=True, timeout=START_SECONDS)
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(args[:2])} failed ({done.returncode}): {done.stderr or done.stdout}")

    def start(self) -> str:
        """Make, start and open the cluster; its database's SQLAlchemy URL."""
        if self.user:
            shutil.chown(self.folder, self.user)
        self._run(self.initdb, "-D", str(self.data), "-A", "trust", "-E", "UTF8", "--no-locale",
                  "--no-sync")  # only initdb's own files: fsync stays on for the server
        options = f"-p {self.port} -k {self.folder} -c listen_addresses={LOOPBACK}"
        self._run(self.pg_ctl, "-D", str(self.data), "-w", "-t", str(START_SECONDS), "-l",
                  str(self.folder / "server.log"), "-o", options, "start")
        self.started = True
        admin = create_engine(self.url.rsplit("/", 1)[0] + "/postgres", isolation_level="AUTOCOMMIT")
        try:
            with admin.connect() as conn:
                conn.execute(text(f"CREATE DATABASE {DATABASE}"))
        finally:
            admin.dispose()
        return self.url

    def stop(self) -> None:
        """Stop the server (fast: the tests are done with it) and remove its folder."""
        try:
            if self.started:
                self._run(self.pg_ctl, "-D", str(self.data), "-m", "immediate", "-w", "stop")
        finally:
            shutil.rmtree(self.folder, ignore_errors=True)


def _current_user() -> str:
    return getpass.getuser()


def reset(url: str) -> None:
    """Empty the database: the registry's tables truncated where the registry's whole schema
    is there (a quarter of a second less per test than making it again), else every table
    dropped with the public schema."""
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(text("SET LOCAL lock_timeout = '10s'"))  # a connection a test left open: fail, not hang
            if set(inspect(conn).get_table_names()) == {*Base.metadata.tables, SCHEMA.name, ALEMBIC_VERSION}:
                conn.execute(text(f"TRUNCATE {', '.join(Base.metadata.tables)} RESTART IDENTITY"))
            else:
                conn.execute(text("DROP SCHEMA IF EXISTS public CASCADE"))
                conn.execute(text("CREATE SCHEMA public"))
    finally:
        engine.dispose()


def empty(url: str) -> None:
    """Empty the database whole: the public schema dropped and made again (no table left,
    not even a registry's, as ``reset`` keeps them)."""
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(text("SET LOCAL lock_timeout = '10s'"))
            conn.execute(text("DROP SCHEMA IF EXISTS public CASCADE"))
            conn.execute(text("CREATE SCHEMA public"))
    finally:
        engine.dispose()


def stored_rows(engine: Engine, sql: str) -> list[tuple[Any, ...]]:
    """The rows of ``sql`` with times as SQLite stores them (naive UTC text,
    registry/observations.stamp): PostgreSQL gives datetimes, the assertions compare text."""
    with engine.connect() as conn:
        return [tuple(stamp(parse_stamp(value)) if isinstance(value, datetime) else value for value in row)
                for row in conn.exec_driver_sql(sql)]


_made: list[tuple[str, str]] = []  # (server URL, database) made by new_database, for drop_databases


def _admin(server_url: str, statement: str) -> None:
    admin = create_engine(server_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(statement))
    finally:
        admin.dispose()


def new_database(server_url: str) -> str:
    """A new, empty database on the server of ``server_url`` (a name of its own: a pytest-xdist
    worker's session database on an EIR_TEST_POSTGRES server, or a module's agents' database,
    which then never shares one with a test that resets the session's); its URL.
    ``drop_databases`` drops them."""
    name = f"{DATABASE}_{os.getpid()}_{len(_made) + 1}"
    _admin(server_url, f"CREATE DATABASE {name}")
    _made.append((server_url, name))
    base, _ = server_url.rsplit("/", 1)
    return f"{base}/{name}"


def drop_databases() -> None:
    """Drop what ``new_database`` made (the end of a session on a server it does not own)."""
    while _made:
        server_url, name = _made.pop()
        _admin(server_url, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
