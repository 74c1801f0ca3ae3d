"""The PostgreSQL lookups' held connection (registry/pg_lookup.py): the same facts and
sightings as SQLAlchemy reads, in autocommit (no transaction left open between lookups),
used by its own thread only, and a connection the server drops is raised as SQLAlchemy
raises it (connection_invalidated) and replaced at the next read."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import DBAPIError

from registry.observations import Observations
from registry.store import Registry
from simulator.agent_process import run_eir
from tests.postgres import reset

PAIRED, WHITE, UNKNOWN = "35999000011111", "35999000022222", "35999000033333"


@pytest.fixture
def pg_registry(postgres_url: str, tmp_path) -> Iterator[Registry]:  # type: ignore[no-untyped-def]
    reset(postgres_url)
    white = tmp_path / "white.csv"
    white.write_text(f"imei,reason\n{WHITE},customs\n")
    paired = tmp_path / "paired.csv"
    paired.write_text(f"imei,imsi,msisdn\n{PAIRED},436011111111111,\n{PAIRED},436012222222222,\n")
    observations = tmp_path / "observations.csv"
    observations.write_text(f"date,imei,imsi,msisdn\n2026-11-01,{WHITE},436013333333333,\n")
    for kind, path in (("white", white), ("paired", paired), ("observations", observations)):
        run_eir(postgres_url, "registry", "import", kind, str(path))
    with Registry(postgres_url) as registry:
        yield registry


def core_reads(registry: Registry, key: str) -> tuple[object, list[tuple[object, ...]]]:
    """The same reads through SQLAlchemy (another thread: the held connection is not its)."""
    found: list[tuple[object, list[tuple[object, ...]]]] = []
    thread = threading.Thread(target=lambda: found.append((registry.lookup(key), registry.lookup_observed(key)[1])))
    thread.start()
    thread.join()
    return found[0]


@pytest.mark.parametrize("key", [PAIRED, WHITE, UNKNOWN])
def test_the_held_connection_reads_what_sqlalchemy_reads(pg_registry: Registry, key: str) -> None:
    facts, rows = pg_registry.lookup_observed(key)
    assert pg_registry.lookup(key) == facts
    core_facts, core_rows = core_reads(pg_registry, key)  # rows ending in (imsi, first_seen, last_seen)
    assert (facts, [tuple(row[-3:]) for row in rows]) == (core_facts, [tuple(row[-3:]) for row in core_rows])
    assert (facts is None) == (key == UNKNOWN)
    if key == PAIRED:
        assert facts is not None and len(facts.pairings) == 2


def test_no_transaction_is_left_open_between_lookups(pg_registry: Registry, postgres_url: str) -> None:
    Observations(pg_registry).lookup(WHITE)
    engine = create_engine(postgres_url)
    try:
        with engine.connect() as conn:
            idle = conn.execute(text("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                                     "AND state = 'idle in transaction'")).scalar()
    finally:
        engine.dispose()
    assert idle == 0


def test_a_dropped_connection_is_raised_as_invalidated_and_replaced(pg_registry: Registry, postgres_url: str) -> None:
    assert pg_registry.lookup_observed(WHITE)[0] is not None
    engine = create_engine(postgres_url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:  # the server ends every other session: the held one among them
            ended = conn.execute(text("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                                      "WHERE datname = current_database() AND pid <> pg_backend_pid()")).scalar()
    finally:
        engine.dispose()
    assert ended
    with pytest.raises(DBAPIError) as raised:
        pg_registry.lookup_observed(WHITE)
    assert raised.value.connection_invalidated
    facts, rows = pg_registry.lookup_observed(WHITE)  # a new connection
    assert facts is not None and [row[-3] for row in rows] == ["436013333333333"]


def test_a_pooled_connection_the_server_dropped_is_raised_as_invalidated(pg_registry: Registry,
                                                                        postgres_url: str) -> None:
    """The held connection is taken from the pool, where the agent's health probe leaves
    connections open: one the server ended meanwhile fails as it is taken, and that too is
    raised as SQLAlchemy raises it (the health watch's retry then takes the next)."""
    pg_registry.probe(3)  # open connections left in the pool, none held yet
    engine = create_engine(postgres_url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                              "WHERE datname = current_database() AND pid <> pg_backend_pid()"))
    finally:
        engine.dispose()
    for _ in range(3):
        try:
            facts, _rows = pg_registry.lookup_observed(WHITE)
        except DBAPIError as error:
            assert error.connection_invalidated
            continue
        assert facts is not None
        return
    facts, _rows = pg_registry.lookup_observed(WHITE)  # the pool makes a new one
    assert facts is not None
