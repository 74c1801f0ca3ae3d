"""The rule a decision names: a stable name for the answer log, the counters and people.

The policy's rules come first (registry/decision/policy.py says when each matches), then
the rules of answers the interfaces give without the policy: a request the wire refuses,
a failure below the interface's boundary, a first sight that could not be made durable in
time, too many requests in flight, a protocol error.
"""

from __future__ import annotations

import enum


class Rule(enum.StrEnum):
    # the policy, first match wins
    INVALID_IMEI = "invalid-imei"
    STOLEN = "stolen"
    BLACK_LIST = "black-list"
    ROAMER = "roamer"
    PAIRED_MATCH = "paired-match"
    PAIRED_MISMATCH = "paired-mismatch"
    WHITE_LIST = "white-list"
    GREY_LIST = "grey-list"
    GREY_LIST_EXPIRED = "grey-list-expired"
    GRANDFATHERED = "grandfathered"
    AUTO_ENTERED = "auto-entered"
    UNKNOWN_TAC = "unknown-tac"
    GRACE = "grace"
    GRACE_EXPIRED = "grace-expired"
    NO_GRACE = "no-grace"
    NOT_REGISTERED = "not-registered"
    # the interfaces, answering without the policy
    MALFORMED_REQUEST = "malformed-request"  # S13 5004, MAP unexpectedDataValue
    SYSTEM_FAILURE = "system-failure"  # S13 5012, MAP systemFailure
    UNRECORDED = "unrecorded"  # the first sight the answer rests on is not on disk in time
    DATABASE_UNREACHABLE = "database-unreachable"  # the registry cannot be read: the profile's database_unreachable
    OVERLOAD = "overload"  # S13 3004, TCAP P-Abort resourceLimitation
    PROTOCOL_ERROR = "protocol-error"  # a request the protocol layer answered with an error


# The rules whose answer rests on the IMEI's sightings (a grace clock, a roamer's or a
# grandfather's first sight): a first sight that leads to one must be durable before the
# answer leaves. Other answers do not depend on it, and may record it a moment later.
OBSERVED_RULES = frozenset({Rule.GREY_LIST, Rule.GREY_LIST_EXPIRED, Rule.ROAMER, Rule.GRANDFATHERED, Rule.GRACE,
                            Rule.GRACE_EXPIRED, Rule.NO_GRACE, Rule.NOT_REGISTERED})

