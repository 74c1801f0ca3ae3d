"""The one path from a query to its decision: gather the facts the decision reads from the
registry (the IMEI's entry, its sightings, the device type of its TAC, the MSISDNs of the
subscriber data) and decide (registry/decision). The agent's EquipmentCheck (every S13 and
MAP answer, ``eir check``, ``eir registry show``) and the notification list export call
``gather_and_decide``; it reads only what the decision will look at.
"""

from __future__ import annotations

from typing import NamedTuple

from registry.decision import Decision, ListName, Query, decide, needs_device_type, needs_sightings, registry_key
from registry.imei import ImeiError, tac_of
from registry.observations import Observations, Sightings
from registry.profile import Profile


class Checked(NamedTuple):
    """A decision with what recording it needs: the registry key (None: not an IMEI) and
    the sightings read (None: not read, the pair being known today and the decision not
    looking at them)."""

    decision: Decision
    key: str | None
    sightings: Sightings | None


def gather_and_decide(reader: Observations, query: Query, profile: Profile,
                      sightings: Sightings | None = None) -> Checked:
    """The decision for ``query`` from what ``reader`` reads. ``sightings``: the IMEI's
    sightings when the caller read them already (the list exports stream them in bulk)."""
    try:
        key = registry_key(query.imei)
    except ImeiError:
        return Checked(decide(query, None, (), None, profile), None, None)
    if sightings is not None:
        equipment = reader.registry.lookup(key)
    elif reader.known_today(key, query.imsi or "", query.at):  # one B-tree, not two, for most queries
        equipment = reader.registry.lookup(key)
        sightings = reader.sightings(key) if needs_sightings(equipment, query.imsi, profile) else None
    else:
        equipment, sightings = reader.lookup(key)
    device_type = reader.device_type(tac_of(key)) if needs_device_type(equipment) else None
    msisdns = None
    if equipment is not None and equipment.list is ListName.PAIRED and not query.msisdn:
        msisdns = reader.msisdns(equipment, query.imsi, sightings or (), query.at)
    return Checked(decide(query, equipment, sightings or (), device_type, profile, key, msisdns), key, sightings)
