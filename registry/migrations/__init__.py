"""The registry's schema migrations (Alembic): ``upgrade`` makes a registry, adopts one an
older eir made, or brings it to this eir's head revision; ``differences`` compares a
registry's tables with registry/models.py.

The revisions live in versions/ (a baseline of the schema as it was before Alembic, then
one file per change); env.py runs them. No alembic.ini: the Config is built here, so the
installed package is all that is needed. Only ``eir registry init``, ``eir registry
import`` into an absent registry and ``Registry(create=True)`` import this module (and
Alembic): opening a registry at head reads its revision and nothing else
(registry/schema.py).

A new revision: change registry/models.py, then
``python3 -m registry.migrations revision "what and why"`` writes versions/vNNNN_*.py from
the differences (review it: Alembic does not see every change, e.g. a partial index's
WHERE), and registry/schema.py's REVISIONS gets the new id at its end.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, text

from registry.connections import open_engine, parse_url
from registry.models import Base
from registry.schema import (
    HEAD,
    SCHEMA,
    SchemaState,
    SchemaVersionError,
    newer_registry,
    schema_state,
    sqlite_file,
)

FOLDER = Path(__file__).resolve().parent
LOCK_KEY = 0x65_69_72_5F_69_6E_69_74  # "eir_init": PostgreSQL's advisory lock of one upgrade at a time
LOCK_TIMEOUT_MS = 10_000  # PostgreSQL: how long an upgrade waits for a table's lock before it gives up


def config(connection: Connection | None = None) -> Config:
    """Alembic's Config for the registry's migrations, ``connection`` handed to env.py."""
    made = Config()
    made.set_main_option("script_location", str(FOLDER).replace("%", "%%"))
    made.attributes["connection"] = connection
    return made


def script() -> ScriptDirectory:
    """The revisions, as Alembic reads them."""
    return ScriptDirectory.from_config(config())


def upgrade(engine: Engine) -> str:
    """Bring the registry to HEAD in one transaction (BEGIN IMMEDIATE on SQLite; on
    PostgreSQL an advisory lock first, so concurrent upgrades run one after the other, and
    each table lock waited for at most LOCK_TIMEOUT_MS, then nothing is changed):
    "created" (no registry table was there), "upgraded", or "current" (already at HEAD,
    e.g. made meanwhile by another process). A registry made by a newer eir is refused
    (SchemaVersionError) and left alone."""
    with engine.connect() as conn:
        conn = conn.execution_options(eir_write=True)
        with conn.begin():
            if conn.dialect.name == "postgresql":
                conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": LOCK_KEY})
                # A table's change waits for the transactions using it, and every agent's query
                # would queue behind that wait: give up after a while rather than stall them.
                conn.execute(text(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT_MS}ms'"))
            state = schema_state(conn)
            refusal = newer_registry(state)
            if refusal is not None:
                raise refusal
            if state.revision == HEAD:
                return "current"
            command.upgrade(config(conn), "head")
    return "upgraded" if state.registry_tables else "created"


def registry_sql(url: str) -> str:
    """``upgrade_sql`` for the registry at ``url``: its state read from the database (a
    SQLite file not made yet: the whole schema). Raises what opening or reading it raised."""
    parsed = parse_url(url)
    path = sqlite_file(parsed)
    state = SchemaState(frozenset(), None, None)
    if path is None or path.exists():
        engine = open_engine(parsed)
        try:
            with engine.connect() as conn:
                state = schema_state(conn)
        finally:
            engine.dispose()
    return upgrade_sql(parsed.get_dialect().name, state)


def upgrade_sql(dialect: str, state: SchemaState) -> str:
    """The SQL that would bring a registry in ``state`` (registry.schema.schema_state; an
    empty one for a database not made yet) to HEAD on ``dialect``, for a person to review
    and run (Alembic's offline mode): from its revision, or the whole schema; "" when it is
    at HEAD. A registry made before migrations, or by a newer eir, is refused
    (SchemaVersionError): `eir registry init` adopts the first itself."""
    refusal = newer_registry(state)
    if refusal is not None:
        raise refusal
    if state.revision == HEAD:
        return ""
    if state.revision is None and (state.registry_tables or state.legacy is not None):
        raise SchemaVersionError("it was made before migrations: adopting it reads its tables, which written SQL "
                                 "cannot; run `eir registry init` on it once")
    written = io.StringIO()
    made = Config(output_buffer=written)
    made.set_main_option("script_location", str(FOLDER).replace("%", "%%"))
    made.attributes["dialect"] = dialect
    command.upgrade(made, f"{state.revision}:head" if state.revision else "head", sql=True)
    return written.getvalue()


def differences(conn: Connection) -> list[Any]:
    """What Alembic finds different between the database's tables and registry/models.py
    (with eir_schema): empty when the schema is exactly the models'."""
    context = MigrationContext.configure(conn, opts={"compare_type": True})
    both: Any = [Base.metadata, SCHEMA.metadata]  # Alembic compares a sequence of metadata (typed as one)
    return list(compare_metadata(context, both))
