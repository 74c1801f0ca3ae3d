"""The facts the decision reads, as plain values: an IMEI's registry entry
(``EquipmentFacts``, its list a ``ListName``) and its sightings (``Sighting``). The store
(registry/store.py) builds them from its tables and the models (registry/models.py) store
``ListName`` by its value; neither is imported here."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime
from typing import NamedTuple


class ListName(enum.StrEnum):
    WHITE = "white"
    GREY = "grey"
    BLACK = "black"
    PAIRED = "paired"  # paired white: allowed only with a bound IMSI or MSISDN


Pair = tuple[str | None, str | None]  # (imsi, msisdn)


@dataclass(frozen=True, slots=True)
class EquipmentFacts:
    """What the decision needs to know about one IMEI."""

    imei: str  # registry key, 14 digits
    list: ListName | None  # None: known only as stolen
    stolen: bool
    reason: str | None
    stolen_reason: str | None
    pairings: tuple[Pair, ...] = ()  # (imsi, msisdn); read only for the paired list


class Sighting(NamedTuple):
    """An IMEI seen with a SIM: ``imsi`` is "" when the network did not say which."""

    imsi: str
    first_seen: datetime
    last_seen: datetime | None = None
