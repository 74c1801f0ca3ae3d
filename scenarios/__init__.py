"""The shipped scenario suites (YAML files, scenarios/README.md), installed with eir so that
``eir demo`` and ``eir sim run SUITE`` find them wherever eir is installed."""

from __future__ import annotations

from pathlib import Path

SHIPPED = Path(__file__).resolve().parent
