"""What every wire conformance check shares: the options it runs with, what it returns
(``WireObservation``), its entry in the catalogue (``WireCheck``), and how it stops early.

A check observes; it does not judge. The scenario file that runs it holds the
expectation, and the runner compares. So a check returns the fields it saw on the wire
(a Result-Code, a TCAP component, whether the connection closed...), and a check that saw
nothing returns that too: ``{"timeout": True}`` when no answer came in time,
``{"connect_error": "<why>"}`` when no connection could be made.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from simulator.mme import DEFAULT_ORIGIN_HOST, DEFAULT_REALM
from simulator.msc import MscIdentity

if TYPE_CHECKING:
    from netio.capture import Capture

DEFAULT_IMEI = "490154203237518"  # 15 digits, TAC 49015420, a valid Luhn check digit (8)
DEFAULT_UNKNOWN_ORIGIN_HOST = "stranger.conformance.invalid"  # .invalid: a name no operator allows (RFC 2606)


@dataclass(frozen=True)
class CheckOptions:
    """How the emulated MME and MSC present themselves, and how long they wait.

    ``unknown_origin_host`` is the Origin-Host the ``unknown-peer`` check presents: one the
    EIR under test must NOT allow (its configuration decides; our agent refuses it when
    started with ``--allow-peer 'mme*.localdomain'``). ``close_wait`` bounds the wait for
    the EIR to close the connection after a DPA or a refusing CEA. ``capture``: where the
checks' connections are recorded (``netio.capture``), if anywhere."""

    origin_host: str = DEFAULT_ORIGIN_HOST
    origin_realm: str = DEFAULT_REALM
    destination_realm: str = DEFAULT_REALM
    timeout: float = 5.0
    imei: str = DEFAULT_IMEI
    unknown_origin_host: str = DEFAULT_UNKNOWN_ORIGIN_HOST
    close_wait: float = 10.0
    msc: MscIdentity = field(default_factory=MscIdentity)
    capture: Capture | None = None  # every connection of the check recorded there (--pcap)


@dataclass
class WireObservation:
    """What one check saw: ``fields`` by name (see each check), and one human line."""

    check: str
    fields: dict[str, object]
    detail: str

    def line(self) -> str:
        """"cer  command=CEA result_code=2001 ...": the check's name and its fields, one line."""
        shown = " ".join(f"{name}={value_text(value)}" for name, value in self.fields.items())
        return f"{self.check:<30} {shown}"


def value_text(value: object) -> str:
    if isinstance(value, list | tuple):
        return "[" + ",".join(value_text(v) for v in value) + "]"
    return str(value)


CheckFunction = Callable[[str, int, CheckOptions], Awaitable[WireObservation]]


@dataclass(frozen=True)
class WireCheck:
    """One named check: ``interface`` "diameter" (Diameter over TCP) or "map" (M3UA over
    TCP), a one-line ``description`` (what it sends, what the standard says comes back, and
    where), and the coroutine function that runs it against ``host, port``."""

    name: str
    interface: str
    description: str
    run: CheckFunction


class CheckStopped(Exception):
    """A check ended before its answer: ``fields`` and ``detail`` are its observation."""

    def __init__(self, fields: dict[str, object], detail: str) -> None:
        super().__init__(detail)
        self.fields = fields
        self.detail = detail


def timed_out(what: str, seconds: float) -> CheckStopped:
    return CheckStopped({"timeout": True}, f"no {what} within {seconds:g} s")


def unreachable(peer: str, why: str) -> CheckStopped:
    return CheckStopped({"connect_error": why}, f"cannot connect to {peer}: {why}")
