"""Wire conformance checks: what a telecom engineer runs against ANY EIR, ours or not.

Each check is a named coroutine that opens its own connection(s) to ``host, port``
(Diameter over TCP for the S13 checks, M3UA over TCP for the MAP ones), performs one
exchange like a real MME or MSC would, and returns what it OBSERVED as a
``WireObservation``; it never decides pass or fail (a scenario's expectation does).
``CHECKS`` is the catalogue by name (simulator/conformance_diameter.py and
simulator/conformance_map.py list the fields each returns); ``run_check`` runs one and
never hangs: no answer in time gives ``{"timeout": True}``, no connection
``{"connect_error": "<why>"}``.
"""

from __future__ import annotations

import asyncio

from simulator.conformance_common import (
    DEFAULT_IMEI,
    DEFAULT_UNKNOWN_ORIGIN_HOST,
    CheckOptions,
    CheckStopped,
    WireCheck,
    WireObservation,
)
from simulator.conformance_diameter import DIAMETER_CHECKS
from simulator.conformance_map import MAP_CHECKS

__all__ = ["CHECKS", "DEFAULT_IMEI", "DEFAULT_UNKNOWN_ORIGIN_HOST", "CheckOptions", "WireCheck", "WireObservation",
           "checks_for", "run_check"]

CHECKS: dict[str, WireCheck] = {check.name: check for check in (*DIAMETER_CHECKS, *MAP_CHECKS)}


def checks_for(interface: str) -> list[str]:
    """The names of the checks of ``interface`` ("diameter" or "map"), in catalogue order."""
    return [name for name, check in CHECKS.items() if check.interface == interface]


async def run_check(name: str, host: str, port: int, *, options: CheckOptions | None = None) -> WireObservation:
    """Run the check ``name`` against ``host, port``. KeyError for a name not in CHECKS.

    However the EIR behaves, this returns within a bound of a few times ``options.timeout``
    plus ``options.close_wait``: the check's own waits are bounded, and this bounds them again."""
    check = CHECKS[name]
    options = options or CheckOptions()
    bound = 4 * options.timeout + options.close_wait + 2.0
    try:
        return await asyncio.wait_for(check.run(host, port, options), bound)
    except CheckStopped as stopped:
        return WireObservation(name, stopped.fields, stopped.detail)
    except TimeoutError:
        return WireObservation(name, {"timeout": True}, f"the check did not finish within {bound:g} s")
    except ConnectionError as exc:
        return WireObservation(name, {"connection_lost": str(exc) or type(exc).__name__},
                               f"{host}:{port}: the connection broke: {exc}")
