"""Baseline: the registry's schema as eir made it before Alembic (eir_schema version 1).

Written out here, not taken from registry/models.py: later revisions are diffs against
this fixed point. A table or index that is already there is left alone, so the baseline
also adopts a registry made by an older eir (complete at version 1, or made before schema
versions and lacking an index or a table): what it lacks is made, nothing is changed.
Constraint names are the ones SQLAlchemy gave before (PostgreSQL's equipment_pkey,
pairing_imei_fkey, ...), so later revisions can name them.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import context, op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

LEGACY_VERSION = 1  # eir_schema's version of this schema


def _tables() -> set[str]:
    if context.is_offline_mode():
        return set()
    return set(sa.inspect(op.get_bind()).get_table_names())


def _table(existing: set[str], name: str, *items: Any, **options: Any) -> None:
    if name not in existing:
        op.create_table(name, *items, **options)


def _index(existing: set[str], name: str, table: str, columns: list[str], **options: Any) -> None:
    if table in existing and name in {index["name"] for index in sa.inspect(op.get_bind()).get_indexes(table)}:
        return
    op.create_index(name, table, columns, **options)


def upgrade() -> None:
    existing = _tables()
    _table(existing, "equipment",
           sa.Column("imei", sa.String(14), primary_key=True),
           sa.Column("list", sa.String(8)),  # white, grey, black, paired; NULL: known only as stolen
           sa.Column("reason", sa.String()),
           sa.Column("source", sa.String(), nullable=False),
           sa.Column("stolen", sa.Boolean(), nullable=False),
           sa.Column("stolen_reason", sa.String()),
           sa.Column("created_at", sa.DateTime(), nullable=False),
           sa.Column("updated_at", sa.DateTime(), nullable=False),
           sqlite_with_rowid=False)
    _table(existing, "tac",
           sa.Column("tac", sa.String(8), primary_key=True),
           sa.Column("brand", sa.String()),
           sa.Column("model", sa.String()),
           sa.Column("device_type", sa.String()))
    _table(existing, "history",
           sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
           sa.Column("imei", sa.String(14), nullable=False),
           sa.Column("at", sa.DateTime(), nullable=False),
           sa.Column("field", sa.String(8), nullable=False),  # list, stolen, pairing
           sa.Column("old", sa.String()),
           sa.Column("new", sa.String()),
           sa.Column("reason", sa.String()),
           sa.Column("source", sa.String(), nullable=False))
    _index(existing, "ix_history_imei", "history", ["imei"])
    _table(existing, "sighting",
           sa.Column("imei", sa.String(14), primary_key=True),
           sa.Column("imsi", sa.String(15), primary_key=True),
           sa.Column("msisdn", sa.String(15)),
           sa.Column("first_seen", sa.DateTime(), nullable=False),
           sa.Column("last_seen", sa.DateTime(), nullable=False),
           sa.Column("interface", sa.String(8)),
           sqlite_with_rowid=False)
    msisdn_known = sa.text("msisdn IS NOT NULL")
    _index(existing, "ix_sighting_imsi_msisdn", "sighting", ["imsi"], sqlite_where=msisdn_known,
           postgresql_where=msisdn_known)
    _table(existing, "notice",
           sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
           sa.Column("imei", sa.String(14), nullable=False),
           sa.Column("imsi", sa.String(15), nullable=False),
           sa.Column("msisdn", sa.String(15)),
           sa.Column("event", sa.String(16), nullable=False),
           sa.Column("deadline", sa.DateTime()),
           sa.Column("reason", sa.String()),
           sa.Column("created_at", sa.DateTime(), nullable=False),
           sa.Column("exported_at", sa.DateTime()),
           sa.UniqueConstraint("imei", "imsi", "event", name="notice_once"))
    _table(existing, "subscriber",
           sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
           sa.Column("imsi", sa.String(15), nullable=False),
           sa.Column("msisdn", sa.String(15), nullable=False),
           sa.Column("valid_from", sa.DateTime()),
           sa.Column("valid_until", sa.DateTime()),
           sa.Column("source", sa.String(), nullable=False))
    _index(existing, "ix_subscriber_msisdn", "subscriber", ["msisdn", "valid_until"])
    _index(existing, "ix_subscriber_imsi", "subscriber", ["imsi", "valid_until"])
    _table(existing, "pairing",
           sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
           sa.Column("imei", sa.String(14), sa.ForeignKey("equipment.imei"), nullable=False),
           sa.Column("imsi", sa.String(15)),
           sa.Column("msisdn", sa.String(15)),
           sa.Column("created_at", sa.DateTime(), nullable=False),
           sa.CheckConstraint("imsi IS NOT NULL OR msisdn IS NOT NULL", name="pairing_has_identity"))
    _index(existing, "ix_pairing_imei", "pairing", ["imei"])
    _version_row(existing)


def _version_row(existing: set[str]) -> None:
    """eir_schema: one row, the version older eirs read (they refuse any but theirs)."""
    schema = sa.table("eir_schema", sa.column("id", sa.Integer()), sa.column("version", sa.Integer()))
    if "eir_schema" not in existing:
        op.create_table("eir_schema",
                        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=False),
                        sa.Column("version", sa.Integer(), nullable=False))
    elif op.get_bind().execute(sa.select(sa.func.count()).select_from(schema)).scalar():
        return
    op.bulk_insert(schema, [{"id": 1, "version": LEGACY_VERSION}])


def downgrade() -> None:
    for index, table in (("ix_pairing_imei", "pairing"), ("ix_subscriber_imsi", "subscriber"),
                         ("ix_subscriber_msisdn", "subscriber"), ("ix_sighting_imsi_msisdn", "sighting"),
                         ("ix_history_imei", "history")):
        op.drop_index(index, table_name=table)
    for table in ("eir_schema", "pairing", "subscriber", "notice", "sighting", "history", "tac", "equipment"):
        op.drop_table(table)
