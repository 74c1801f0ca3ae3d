"""The enforcement decision, pure: no database, no wire, no clock of its own.

- ``facts``: what the decision reads about an IMEI (``EquipmentFacts``, ``ListName``,
  ``Sighting``), as plain values the store builds from its tables.
- ``rules``: ``Rule``, the names of the rules a decision can match (those of the policy and
  those the interfaces answer with on their own), and ``OBSERVED_RULES``.
- ``policy``: ``decide``, a function of (query, facts, profile), and its values
  (``Query``, ``Decision``, ``Status``, ``Notice``).

Gathering the facts for a query from the registry is registry/check.py's job: the agent,
``eir check``, ``eir registry show`` and the list exports all go through it. This package
imports nothing that touches a database (tests/test_decision_purity.py proves it).
"""

from registry.decision.facts import EquipmentFacts, ListName, Pair, Sighting
from registry.decision.policy import (
    DAY,
    Decision,
    Event,
    Notice,
    Query,
    Status,
    decide,
    last_imsi,
    needs_device_type,
    needs_sightings,
    registry_key,
)
from registry.decision.rules import OBSERVED_RULES, Rule

__all__ = ["DAY", "OBSERVED_RULES", "Decision", "EquipmentFacts", "Event", "ListName", "Notice", "Pair", "Query",
           "Rule", "Sighting", "Status", "decide", "last_imsi", "needs_device_type", "needs_sightings",
           "registry_key"]
