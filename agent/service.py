"""The one EquipmentCheck service: every interface (S13, MAP, the CLI) asks it and only
translates its Decision to the wire. In this version the decision is the plain list
lookup; the policy engine replaces ``decide`` behind the same service."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import NamedTuple

from registry.imei import IdentityError, ImeiError, imei_key, parse_msisdn
from registry.models import ListName
from registry.store import EquipmentFacts, Registry


class Interface(enum.StrEnum):
    S13 = "s13"
    MAP = "map"
    CLI = "cli"


class Status(enum.StrEnum):
    """What the service answers. WHITE, GREY and BLACK map to Equipment-Status 0, 2, 1;
    UNKNOWN is an IMEI the registry does not hold; INVALID is input that is not an IMEI."""

    WHITE = "white"
    GREY = "grey"
    BLACK = "black"
    UNKNOWN = "unknown"
    INVALID = "invalid"


class Query(NamedTuple):
    """What an interface asks. (Query and Decision are NamedTuples: immutable, and made
    once per answer at a third of the cost of a frozen dataclass.)"""

    imei: str  # as received: 14, 15 or 16 digits, or anything else to be judged invalid
    interface: Interface
    at: datetime
    software_version: str | None = None
    imsi: str | None = None
    msisdn: str | None = None


class Decision(NamedTuple):
    status: Status
    rule: str  # the rule that matched, a stable name for logs and counters
    reason: str  # for a person
    imei: str | None = None  # the registry key (TAC+SNR) when the IMEI parsed


# A list's status, rule name and reason text, made once (an enum's .value costs on the hot path).
_LIST_DECISION = {name: (status, f"{name.value}-list", f"on the {name.value} list") for name, status in (
    (ListName.WHITE, Status.WHITE), (ListName.GREY, Status.GREY), (ListName.BLACK, Status.BLACK))}


class EquipmentCheck:
    """Answers ``check(query)`` from the registry; ``unknown`` is what an IMEI the registry
    does not hold gets (UNKNOWN by default: S13 answers it with 5422 EQUIPMENT_UNKNOWN)."""

    def __init__(self, registry: Registry, unknown: Status = Status.UNKNOWN) -> None:
        if unknown is Status.INVALID:
            raise ValueError("unknown IMEIs cannot be answered as invalid")
        self.registry = registry
        self.unknown = unknown

    def check(self, query: Query) -> Decision:
        try:
            key = imei_key(query.imei)
        except ImeiError as error:
            return Decision(Status.INVALID, "invalid-imei", str(error))
        return decide(key, self.registry.lookup(key), query, self.unknown)


def decide(key: str, facts: EquipmentFacts | None, query: Query, unknown: Status) -> Decision:
    """The plain list lookup: stolen, then the list the IMEI is on, then unknown."""
    if facts is None or (facts.list is None and not facts.stolen):
        if unknown is Status.UNKNOWN:
            return Decision(Status.UNKNOWN, "unknown", "IMEI is not in the registry", key)
        return Decision(unknown, "unknown", f"IMEI is not in the registry; unknown IMEIs are {unknown.value}", key)
    if facts.stolen:
        return Decision(Status.BLACK, "stolen", _with("reported stolen or lost", facts.stolen_reason), key)
    if facts.list is ListName.PAIRED:
        return _paired(key, facts, query)
    assert facts.list is not None
    status, rule, text = _LIST_DECISION[facts.list]
    return Decision(status, rule, f"{text} ({facts.reason})" if facts.reason else text, key)


def _paired(key: str, facts: EquipmentFacts, query: Query) -> Decision:
    """Paired white: allowed with a bound IMSI or MSISDN, refused with any other."""
    used_msisdn = _normal_msisdn(query.msisdn)
    for imsi, msisdn in facts.pairings:
        if imsi is not None and imsi == query.imsi:
            return Decision(Status.WHITE, "paired-match", f"paired white, used with its bound IMSI {imsi}", key)
        if msisdn is not None and msisdn == used_msisdn:
            return Decision(Status.WHITE, "paired-match", f"paired white, used with its bound MSISDN {msisdn}", key)
    seen = query.imsi or query.msisdn or "no subscriber identity"
    return Decision(Status.BLACK, "paired-mismatch", f"paired white, but used with {seen}, which is not bound to it",
                    key)


def _normal_msisdn(text: str | None) -> str | None:
    """The registry stores MSISDNs as digits without '+'; compare the same way."""
    if text is None:
        return None
    try:
        return parse_msisdn(text)
    except IdentityError:
        return None


def _with(text: str, reason: str | None) -> str:
    return f"{text} ({reason})" if reason else text
