"""What the root ``eir`` command hands to every subcommand through click's context."""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_REGISTRY = "sqlite:///eir.db"


@dataclass
class CliContext:
    registry_url: str = DEFAULT_REGISTRY
