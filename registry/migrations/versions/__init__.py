"""The registry's schema revisions, oldest first (Alembic reads them; never imported)."""
