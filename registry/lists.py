"""The list files a national system hands to each operator, one operator (home PLMN) at a time.

- notification: one row per (IMEI, IMSI) sighting with an IMSI of the operator, where
  the IMEI is grey under the country profile at the given time: the operator tells the
  subscriber the deadline. Columns ``imei,imsi,msisdn,deadline,reason``; the MSISDN is the
  sighting's, else the one the subscriber data give the IMSI at that time.
- exception: the paired-white IMEIs with their bound IMSIs of the operator, which the
  operator must let through with those SIMs only. Columns ``imei,imsi``.

IMEIs are written with 15 digits (check digit), times as ISO UTC. Both are streamed: the
sightings are read in key order and judged one IMEI at a time, so memory does not grow
with the registry.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from itertools import groupby
from operator import itemgetter
from typing import Any, TextIO

from sqlalchemy import select

from registry.check import gather_and_decide
from registry.decision import ListName, Query, Status
from registry.imei import luhn_check_digit
from registry.imports import write_csv
from registry.observations import Observations, Sightings, parse_stamp
from registry.profile import Profile, plmn_digits
from registry.sightings import SIGHTING, iso_utc, stream
from registry.store import EQUIPMENT, PAIRING, Registry

NOTIFICATION_COLUMNS = ("imei", "imsi", "msisdn", "deadline", "reason")
EXCEPTION_COLUMNS = ("imei", "imsi")
INTERFACE = "list"  # the queries the notification list asks the policy


class OperatorError(ValueError):
    """An operator that is not MCC-MNC, or not one of the profile's home PLMNs."""


def operator_prefix(text: str, profile: Profile) -> str:
    """The MCC+MNC digits of an operator given as MCC-MNC, checked against the profile."""
    digits = plmn_digits(text.strip())
    if digits is None:
        raise OperatorError(f"operator {text!r} is not MCC-MNC (3 digits, dash, 2 or 3 digits, e.g. 436-01)")
    if digits not in profile.home_plmns:
        homes = ", ".join(f"{plmn[:3]}-{plmn[3:]}" for plmn in profile.home_plmns)
        raise OperatorError(f"operator {text.strip()} is not a home PLMN of profile {profile.name} ({homes})")
    return digits


def notification_rows(registry: Registry, profile: Profile, prefix: str,
                      at: datetime) -> Iterator[tuple[str, str, str | None, str | None, str]]:
    """(imei15, imsi, msisdn, deadline, reason) of each pair first seen by ``at`` with an IMSI
    starting ``prefix`` whose IMEI is grey at ``at``, by IMEI and IMSI."""
    s = SIGHTING.c
    query = select(s.imei, s.imsi, s.msisdn, s.first_seen, s.last_seen).order_by(s.imei, s.imsi)
    observations = Observations(registry)
    for key, group in groupby(stream(registry, query), key=itemgetter(0)):
        rows = list(group)  # one IMEI's sightings: a handful
        if not any(imsi.startswith(prefix) for _, imsi, _, _, _ in rows):
            continue
        ours = [(imsi, msisdn) for _, imsi, msisdn, first, _ in rows
                if imsi.startswith(prefix) and parse_stamp(first) <= at]
        if ours:
            sightings = Sightings([(imsi, first, last) for _, imsi, _, first, last in rows])
            yield from _grey_pairs(key, ours, sightings, observations, profile, at)


def _grey_pairs(key: str, pairs: list[tuple[str, str | None]], sightings: Sightings, observations: Observations,
                profile: Profile, at: datetime) -> Iterator[tuple[str, str, str | None, str | None, str]]:
    """The grey ones of an IMEI's pairs: each decided as the agent decides (registry/check.py),
    from the sightings streamed in bulk."""
    imei15 = key + luhn_check_digit(key)
    for imsi, msisdn in pairs:
        query = Query(key, INTERFACE, at, imsi=imsi, msisdn=msisdn)
        decision = gather_and_decide(observations, query, profile, sightings).decision
        if decision.status is Status.GREY:
            deadline = iso_utc(decision.deadline) if decision.deadline else None
            yield imei15, imsi, msisdn or observations.msisdn(imsi, at), deadline, decision.reason


def exception_rows(registry: Registry, prefix: str) -> Iterator[tuple[str, str]]:
    """(imei15, imsi) of each paired-white IMEI (not reported stolen) bound to an IMSI
    starting ``prefix``, by IMEI and IMSI. Bindings to an MSISDN alone name no operator."""
    e, p = EQUIPMENT.c, PAIRING.c
    query: Any = (select(p.imei, p.imsi).distinct().join_from(PAIRING, EQUIPMENT, e.imei == p.imei)
                  .where(e.list == ListName.PAIRED, e.stolen.is_(False), p.imsi.startswith(prefix, autoescape=True))
                  .order_by(p.imei, p.imsi))
    for key, imsi in stream(registry, query):
        yield key + luhn_check_digit(key), imsi


def write_notification(registry: Registry, profile: Profile, prefix: str, at: datetime, out: TextIO) -> int:
    return write_csv(out, NOTIFICATION_COLUMNS, notification_rows(registry, profile, prefix, at))


def write_exception(registry: Registry, prefix: str, out: TextIO) -> int:
    return write_csv(out, EXCEPTION_COLUMNS, exception_rows(registry, prefix))
