"""What the enforcement report draws from a traffic run (``eir sim traffic``): one
``TrafficDay`` per day played. Scenario runs are drawn from their ``RunResult`` steps
(simulator/scenario_run.py); this is the traffic generator's side of the same report."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date


@dataclass
class TrafficDay:
    day: int  # 1 = the first day played
    local_date: date  # that day in the profile's local time
    answers: dict[str, int] = field(default_factory=dict)  # by status: white, grey, black (and errors by name)
    rules: dict[str, int] = field(default_factory=dict)  # by the rule that decided
    notices: dict[str, int] = field(default_factory=dict)  # queued that day, by event: grey, reminder-7d, black
    cut_off: int = 0  # devices answered black that day for the first time
    devices: int = 0  # devices that attached that day
