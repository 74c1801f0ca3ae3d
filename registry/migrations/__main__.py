"""``python3 -m registry.migrations revision "what and why"``: write the next revision of the
registry's schema (versions/vNNNN_*.py) from what registry/models.py has and a registry at
the head revision lacks (Alembic's autogenerate, on a scratch SQLite file). Review what it
wrote, then add its id at the end of registry/schema.py's REVISIONS."""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from alembic import command

from registry.connections import open_engine, parse_url
from registry.migrations import config, upgrade
from registry.schema import HEAD


def main() -> None:
    parser = argparse.ArgumentParser(prog="python3 -m registry.migrations", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    revision = commands.add_parser("revision", help="write the next revision from the models' differences")
    revision.add_argument("message", help="what the revision changes and why (its docstring and file name)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="eir-revision-") as folder:
        engine = open_engine(parse_url(f"sqlite:///{Path(folder) / 'head.db'}"))
        try:
            upgrade(engine)
            with engine.connect() as conn, conn.begin():
                made = config(conn)
                made.set_main_option("file_template", "v%%(rev)s_%%(slug)s")
                command.revision(made, message=args.message, autogenerate=True, rev_id=f"{int(HEAD) + 1:04d}")
        finally:
            engine.dispose()
    print(f"now add {int(HEAD) + 1:04d} at the end of REVISIONS in registry/schema.py")


if __name__ == "__main__":
    main()
