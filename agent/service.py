"""The one EquipmentCheck service: every interface (S13, MAP, the CLI) asks it and only
translates its Decision to the wire. The decision is ``registry.policy.decide`` over the
registry's facts, the IMEI's observations and the country profile; answering a query also
records it (``answer``), checking one does not (``check``)."""

from __future__ import annotations

import enum

from registry.imei import ImeiError
from registry.observations import Observations, Recorder, Sightings
from registry.policy import Decision, Query, Status, decide, needs_device_type, registry_key
from registry.profile import Profile
from registry.store import Registry

__all__ = ["Decision", "EquipmentCheck", "Interface", "Query", "Status"]


class Interface(enum.StrEnum):
    S13 = "s13"
    MAP = "map"
    CLI = "cli"


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

    def _decide(self, query: Query) -> tuple[Decision, str | None, Sightings]:
        try:
            key = registry_key(query.imei)
        except ImeiError:
            return decide(query, None, (), None, self.profile), None, Sightings([])
        equipment, sightings = self._reader.lookup(key)
        device_type = self._reader.device_type(key[:8]) if needs_device_type(equipment) else None
        return decide(query, equipment, sightings, device_type, self.profile), key, sightings
