"""The scratch folder the import benchmarks work in: a temporary one, or --keep DIR."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def workdir(keep: Path | None, csv_name: str) -> Iterator[tuple[Path, Path, str]]:
    """(folder, CSV path, URL of a registry made afresh in the folder)."""
    with tempfile.TemporaryDirectory(prefix="eir-bench-") as scratch:
        folder = keep or Path(scratch)
        folder.mkdir(parents=True, exist_ok=True)
        for stale in folder.glob("registry.db*"):
            stale.unlink()
        yield folder, folder / csv_name, f"sqlite:///{folder / 'registry.db'}"


def registry_megabytes(folder: Path) -> float:
    return sum(p.stat().st_size for p in folder.glob("registry.db*")) / 1e6
