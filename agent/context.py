"""What the root ``eir`` command hands to every subcommand through click's context."""

from __future__ import annotations

from dataclasses import dataclass, field

from registry.clock import Clock, SystemClock

DEFAULT_REGISTRY = "sqlite:///eir.db"


@dataclass
class CliContext:
    """``clock``: the one clock of the process, handed to everything that reads the time."""

    registry_url: str = DEFAULT_REGISTRY
    clock: Clock = field(default_factory=SystemClock)
