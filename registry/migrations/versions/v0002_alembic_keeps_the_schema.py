"""Alembic keeps the schema from here on: eir_schema's version becomes 2.

Registries are now versioned by Alembic's alembic_version table. eir_schema stays, one
row, at version 2 for good: an eir from before Alembic (which knows version 1 only) then
refuses the registry as made by a newer eir instead of opening a schema it does not know.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

SCHEMA = sa.table("eir_schema", sa.column("version", sa.Integer()))


def upgrade() -> None:
    op.execute(SCHEMA.update().values(version=2))


def downgrade() -> None:
    op.execute(SCHEMA.update().values(version=1))
