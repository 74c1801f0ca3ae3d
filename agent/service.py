"""The one EquipmentCheck service: every interface (S13, MAP, the CLI) asks it and only
translates its Decision to the wire. The decision is ``registry.check.gather_and_decide``:
``registry.decision.decide`` over the registry's facts, the IMEI's observations and the
country profile; answering a query also records it (``answer``), checking one does not
(``check``). In the agent the registry's health is watched (agent/dbhealth.py): a query the
registry cannot be read for is answered at once by the profile's ``database_unreachable``
(rule database-unreachable; ``Unanswerable`` when that says to answer that the EIR cannot
comply)."""

from __future__ import annotations

import enum
from collections.abc import Callable
from datetime import datetime

from sqlalchemy.exc import DBAPIError

from agent.dbhealth import DatabaseHealth, Unanswerable, unreachable
from registry.check import Checked, gather_and_decide
from registry.clock import SYSTEM_CLOCK, Clock, parse_stamp, stamp
from registry.deadline import Expired, within
from registry.decision import Decision, Query, Rule, Status, registry_key
from registry.imei import IdentityError, ImeiError, parse_imsi, parse_msisdn
from registry.observations import Observations, Recorder
from registry.profile import Profile
from registry.store import Registry

__all__ = ["MALFORMED", "Decision", "EquipmentCheck", "Interface", "Query", "Status", "Unanswerable", "as_received",
           "malformed", "malformed_imei", "malformed_imsi"]


class Interface(enum.StrEnum):
    S13 = "s13"
    MAP = "map"
    CLI = "cli"


class MillisecondClock:
    """The clock's now (an aware UTC datetime), read at most once a millisecond of its
    monotonic time: the queries of one burst share it (making a datetime costs more than a
    whole policy decision's date work)."""

    __slots__ = ("_at", "_monotonic", "_now", "_until")

    def __init__(self, clock: Clock = SYSTEM_CLOCK) -> None:
        self._now = clock.now
        self._monotonic = clock.monotonic
        self._at = self._now()
        self._until = self._monotonic() + 0.001

    def __call__(self) -> datetime:
        now = self._monotonic()
        if now >= self._until:
            self._at = self._now()
            self._until = now + 0.001
        return self._at


# The IMEI forms each interface carries: S13's IMEI AVP holds 14 or 15 digits (TS 29.272
# 7.3.4; the software version is an AVP of its own); MAP's TBCD string 15 (TAC, SNR and a
# spare or check digit) or 16 (an IMEISV), 14 as some MSCs send it; a person may type any.
IMEI_LENGTHS = {Interface.S13: (14, 15), Interface.MAP: (14, 15, 16), Interface.CLI: (14, 15, 16)}
MALFORMED = Rule.MALFORMED_REQUEST  # the rule of a query the wire refuses (S13 5004, MAP unexpectedDataValue)


def malformed_imei(text: str, interface: Interface) -> str | None:
    """Why an interface refuses ``text`` as an IMEI before any decision (letters, a wrong
    length), None when it does not: a well-formed IMEI with a bad check digit or an
    all-zero TAC is for the decision (rule invalid-imei)."""
    lengths = IMEI_LENGTHS[interface]
    if len(text) in lengths and text.isascii() and text.isdigit():
        return None
    if interface is Interface.S13:
        return f"IMEI must be 14 or 15 digits (TS 29.272 7.3.4), got {text!r}"
    shown = " or ".join(str(n) for n in lengths[-2:])
    return f"IMEI must be {lengths[0]}, {shown} digits, got {text!r}"


def as_received(parse: Callable[[str], str], value: object) -> str:
    """The registry's own parser, on a value exactly as it came from the wire: the parsers
    forgive surrounding whitespace in files; a wire value with any is refused."""
    if not isinstance(value, str):
        raise IdentityError(f"not text: {value!r}")
    parsed = parse(value)
    if parsed != value:
        raise IdentityError(f"{value!r} has characters around its digits")
    return parsed


def malformed_imsi(value: object) -> str | None:
    """Why ``value`` is not an IMSI exactly as received (digits only, 6 to 15), None when it is."""
    try:
        as_received(parse_imsi, value)
    except IdentityError as error:
        why = str(error)  # parse_imsi names the IMSI; as_received's own refusals do not
        return why if why.startswith("IMSI") else f"IMSI {why}"
    return None


def malformed(query: Query, interface: Interface) -> str | None:
    """Why the wire would refuse this query's identities, None when it would not: one
    validation for S13, MAP and ``eir check`` (which says what the wire would answer)."""
    problem = malformed_imei(query.imei, interface)
    if problem is None and query.imsi is not None:
        problem = malformed_imsi(query.imsi)
        problem = problem and f"User-Name (IMSI): {problem}"
    if problem is None and query.msisdn is not None:
        try:
            parse_msisdn(query.msisdn)
        except IdentityError as error:
            problem = f"MSISDN: {error}"
    return problem


class EquipmentCheck:
    """Decisions from the registry under one profile. ``recorder``: where answered
    queries are recorded (None: nothing is recorded, as for ``eir check``). ``clock``: the
    registry's unless given; ``now()`` is the time the interfaces ask their queries at (so
    the date every policy deadline counts from). ``health``: the agent's watch on the
    registry (None: a read that fails raises, as for ``eir check``)."""

    def __init__(self, registry: Registry, profile: Profile, recorder: Recorder | None = None, *,
                 clock: Clock | None = None, health: DatabaseHealth | None = None) -> None:
        self.registry = registry
        self.profile = profile
        self.recorder = recorder
        self.clock = registry.clock if clock is None else clock
        self.now = MillisecondClock(self.clock)
        self.health = health
        self._reader = recorder or Observations(registry, clock=self.clock)
        self._stamped: tuple[datetime | None, str] = (None, "")

    def check(self, query: Query) -> Decision:
        """The decision, from what the registry holds; records nothing. Identities the wire
        would refuse (``malformed``) are Decision(INVALID, "malformed-request", why)."""
        problem = malformed(query, Interface(query.interface))
        if problem is not None:
            return Decision(Status.INVALID, MALFORMED, problem)
        return gather_and_decide(self._reader, query, self.profile).decision

    def answer(self, query: Query) -> Decision:
        """The decision for a query the network asked, recorded (``record``)."""
        return self.record(query)[0]

    def record(self, query: Query) -> tuple[Decision, bool]:
        """The decision for a query the network asked, recorded as a sighting with the
        notices it makes due; and whether it rests on rows not on disk yet: then its answer
        leaves only once they are (agent/durable.py GroupCommit.wait, or Recorder.commit),
        decided again by ``settled``. With a ``health`` watch: while the registry cannot be read, the profile's
        ``database_unreachable`` answer (never resting on anything unwritten), or
        Unanswerable."""
        health = self.health
        if health is None:
            return self._record(query)
        if not health.readable:
            return self._without_registry(health, query)
        try:
            decision, durable = self._bounded_record(health.read_seconds, query)
        except Exception as error:
            if not unreachable(error):
                raise
            health.failed(error)
            return self._without_registry(health, query)
        if not durable:  # an answer waiting for its first sight to be on disk may yet be refused
            health.remember(decision.imei, query, decision)
        return decision, durable

    def _bounded_record(self, seconds: float | None, query: Query) -> tuple[Decision, bool]:
        """``_record`` with each of its reads' waits ending after ``seconds`` (None: SQLite,
        whose lookups are bounded by their lock wait). A pooled connection the database
        closed (it restarted) fails at once: tried again, once, on a new one."""
        if seconds is None:
            return self._record(query)
        with within(seconds):
            try:
                return self._record(query)
            except DBAPIError as error:
                if not error.connection_invalidated or isinstance(error.orig, Expired):
                    raise
            return self._record(query)

    def _record(self, query: Query) -> tuple[Decision, bool]:
        query, (decision, key, sightings) = self._gather_live(query)
        if key is not None and self.recorder is not None:
            return decision, self.recorder.observe(key, query, sightings, decision)
        return decision, False

    def settled(self, query: Query, decision: Decision) -> Decision:
        """A held answer's decision once the rows it waited for are on disk: the same, unless
        another agent stored a first sight of its IMEI first, with another time than this one
        assumed (``Recorder.moved``: several agents on one registry). Then it is decided again
        from what the registry holds, and the notices that decision makes due are queued
        (``Recorder.renotice``): the answer, its deadline and its notices rest on the one
        stored first sight."""
        recorder = self.recorder
        if recorder is None or decision.imei is None or not recorder.moved(decision.imei):
            return decision
        query, checked = self._gather_live(query)
        if checked.key is not None and checked.decision.notices:
            recorder.renotice(checked.key, query, checked.decision)
        return checked.decision

    def _stamp(self, at: datetime) -> str:
        """``at`` as the registry stores times, remembered for the burst that shares it
        (``MillisecondClock``): formatting costs more than the comparison it is for."""
        if at is not self._stamped[0]:
            self._stamped = (at, stamp(at))
        return self._stamped[1]

    def _gather_live(self, query: Query) -> tuple[Query, Checked]:
        """The decision for a query the network asks now. Agents' clocks differ a little:
        when the registry holds the pair's first sight at a later time than the query's
        (another agent's, whose clock reads ahead), the query is decided as of that first
        sight, so that its answer rests on the one stored fact, not on a first sight of its own."""
        checked = gather_and_decide(self._reader, query, self.profile)
        if checked.sightings is not None:
            first = checked.sightings.first_seen(query.imsi or "")
            if first is not None and first > self._stamp(query.at):
                if self.recorder is not None:
                    self.recorder.first_sights_ahead += 1
                query = query._replace(at=parse_stamp(first))
                checked = gather_and_decide(self._reader, query, self.profile)
        return query, checked

    def _without_registry(self, health: DatabaseHealth, query: Query) -> tuple[Decision, bool]:
        try:
            key = registry_key(query.imei)
        except ImeiError:  # not an IMEI: the policy judges it without a fact, and nothing is recorded
            return self._record(query)
        return health.answer(key, query), False
