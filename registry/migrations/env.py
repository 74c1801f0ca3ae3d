"""Alembic's environment for the registry: run by registry/migrations/__init__.py on the
connection it hands over in ``config.attributes["connection"]``, inside that connection's
transaction (one transaction for the whole upgrade; BEGIN IMMEDIATE on SQLite); or offline, without a
connection, writing the SQL for ``config.attributes["dialect"]`` (``upgrade_sql``).

There is no alembic.ini: the Config is built in code, so the wheel needs nothing else.
``target_metadata`` (what autogenerate and the schema test compare against) is the models'
tables and ``eir_schema``."""

from __future__ import annotations

from alembic import context

from registry.models import Base
from registry.schema import SCHEMA

TARGET = [Base.metadata, SCHEMA.metadata]
connection = context.config.attributes.get("connection")
if context.is_offline_mode():  # `eir registry init --sql`: the statements, for a person to run
    context.configure(dialect_name=context.config.attributes["dialect"], literal_binds=True, target_metadata=TARGET)
elif connection is None:
    raise RuntimeError("run the registry's migrations with `eir registry init` (registry.migrations), "
                       "not the alembic command")
else:
    context.configure(connection=connection, target_metadata=TARGET,
                      render_as_batch=True,  # SQLite alters a table by copying it: later revisions need batch ops
                      compare_type=True)
with context.begin_transaction():
    context.run_migrations()
