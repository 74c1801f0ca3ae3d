"""The one EquipmentCheck service: every interface (S13, MAP, the CLI) asks it and only
translates its Decision to the wire. The decision is ``registry.policy.decide`` over the
registry's facts, the IMEI's observations and the country profile; answering a query also
records it (``answer``), checking one does not (``check``)."""

from __future__ import annotations

import enum
from datetime import UTC, datetime
from time import time

from registry.imei import ImeiError
from registry.observations import Observations, Recorder, Sightings
from registry.policy import Decision, Query, Status, decide, needs_device_type, needs_sightings, registry_key
from registry.profile import Profile
from registry.store import Registry

__all__ = ["Decision", "EquipmentCheck", "Interface", "Query", "Status"]


class Interface(enum.StrEnum):
    S13 = "s13"
    MAP = "map"
    CLI = "cli"


class MillisecondClock:
    """Now, as an aware UTC datetime, made at most once a millisecond: the queries of one
    burst share it (datetime.now costs more than a whole policy decision's date work)."""

    __slots__ = ("_at", "_until")

    def __init__(self) -> None:
        self._at = datetime.now(UTC)
        self._until = 0.0

    def __call__(self) -> datetime:
        now = time()
        if now >= self._until:
            self._at = datetime.fromtimestamp(now, UTC)
            self._until = now + 0.001
        return self._at


class EquipmentCheck:
    """Decisions from the registry under one profile. ``recorder``: where answered
    queries are recorded (None: nothing is recorded, as for ``eir check``)."""

    def __init__(self, registry: Registry, profile: Profile, recorder: Recorder | None = None) -> None:
        self.registry = registry
        self.profile = profile
        self.recorder = recorder
        self._reader = recorder or Observations(registry)

    def check(self, query: Query) -> Decision:
        """The decision, from what the registry holds; records nothing."""
        return self._decide(query)[0]

    def answer(self, query: Query) -> Decision:
        """The decision for a query the network asked, recorded as a sighting with the
        notices it makes due. When ``self.recorder.waiting`` afterwards, the caller must
        ``commit()`` it before the answer leaves."""
        decision, key, sightings = self._decide(query)
        if key is not None and self.recorder is not None:
            self.recorder.observe(key, query, sightings, decision)
        return decision

    def _decide(self, query: Query) -> tuple[Decision, str | None, Sightings | None]:
        """The decision, the key, and the sightings read (None: not read, the pair being
        known today and the decision not looking at them)."""
        try:
            key = registry_key(query.imei)
        except ImeiError:
            return decide(query, None, (), None, self.profile), None, None
        reader = self._reader
        sightings: Sightings | None
        if reader.known_today(key, query.imsi or "", query.at):  # one B-tree, not two, for most queries
            equipment = self.registry.lookup(key)
            sightings = reader.sightings(key) if needs_sightings(equipment, query.imsi, self.profile) else None
        else:
            equipment, sightings = reader.lookup(key)
        device_type = reader.device_type(key[:8]) if needs_device_type(equipment) else None
        return decide(query, equipment, sightings or (), device_type, self.profile, key), key, sightings
