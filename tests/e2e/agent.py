"""The demo registry and the real agent process, shared by the end-to-end tests."""

from __future__ import annotations

from simulator.agent_process import AgentProcess, run_eir
from simulator.demo import (
    BLACK,
    GREY,
    OTHER_IMSI,
    PAIRED,
    PAIRED_IMSI,
    STOLEN,
    UNKNOWN,
    WHITE,
    build_demo_registry,
    imei15,
)

eir = run_eir
build_registry = build_demo_registry

__all__ = ["BLACK", "GREY", "OTHER_IMSI", "PAIRED", "PAIRED_IMSI", "STOLEN", "UNKNOWN", "WHITE", "AgentProcess",
           "build_registry", "eir", "imei15"]
