"""The Diameter dictionary as data: RFC 6733 base plus the S13 application (TS 29.272).

AVPs are rows of a table; commands and Grouped AVPs are written in the RFC's own
Command Code Format (RFC 6733 3.2) and parsed once at import into rules that the one
generic codec checks. Adding an application means adding rows and ABNF text here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from diameter.constants import APP_COMMON, AVP_FLAG_M, AVP_FLAG_V, VENDOR_3GPP
from diameter.types import DECODERS, ENCODERS, AvpType, Decoder, Encoder, FlagRule

__all__ = ["AvpDef", "AvpType", "CommandDef", "Dictionary", "FlagRule", "Grammar", "Presence", "Rule", "avp_key"]




@dataclass(frozen=True, slots=True)
class AvpDef:
    name: str
    code: int
    type: AvpType
    m_bit: FlagRule
    vendor_id: int = 0
    values: dict[int, str] | None = None  # Enumerated: the defined values
    # Derived once from the fields above, so the codec's hot path does no lookups:
    key: int = field(init=False, repr=False, compare=False)
    flags: int = field(init=False, repr=False, compare=False)  # V when vendor-specific, M when MUST
    decode: Decoder = field(init=False, repr=False, compare=False)
    encode: Encoder = field(init=False, repr=False, compare=False)
    grouped: bool = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        derived = {
            "key": avp_key(self.code, self.vendor_id),
            "flags": (AVP_FLAG_V if self.vendor_id else 0) | (AVP_FLAG_M if self.m_bit is FlagRule.MUST else 0),
            "decode": DECODERS[self.type],
            "encode": ENCODERS[self.type],
            "grouped": self.type is AvpType.GROUPED,
        }
        for name, value in derived.items():
            object.__setattr__(self, name, value)


def avp_key(code: int, vendor_id: int) -> int:
    """One integer per (code, vendor): cheaper to hash than a tuple on the hot path."""
    return (vendor_id << 32) | code


M, MAY, NOT = FlagRule.MUST, FlagRule.MAY, FlagRule.MUST_NOT
T = AvpType
G = VENDOR_3GPP

# name, code, type, M bit rule, vendor, enumerated values.
# RFC 6733 4.5 (base), RFC 7944 (DRMP), TS 29.272 7.3 (S13).
_AVP_TABLE: tuple[tuple[str, int, AvpType, FlagRule, int, dict[int, str] | None], ...] = (
    ("User-Name", 1, T.UTF8_STRING, M, 0, None),
    ("Class", 25, T.OCTET_STRING, M, 0, None),
    ("Session-Timeout", 27, T.UNSIGNED32, M, 0, None),
    ("Proxy-State", 33, T.OCTET_STRING, M, 0, None),
    ("Acct-Session-Id", 44, T.OCTET_STRING, M, 0, None),
    ("Acct-Multi-Session-Id", 50, T.UTF8_STRING, M, 0, None),
    ("Event-Timestamp", 55, T.TIME, M, 0, None),
    ("Acct-Interim-Interval", 85, T.UNSIGNED32, M, 0, None),
    ("Host-IP-Address", 257, T.ADDRESS, M, 0, None),
    ("Auth-Application-Id", 258, T.UNSIGNED32, M, 0, None),
    ("Acct-Application-Id", 259, T.UNSIGNED32, M, 0, None),
    ("Vendor-Specific-Application-Id", 260, T.GROUPED, M, 0, None),
    ("Redirect-Host-Usage", 261, T.ENUMERATED, M, 0, {
        0: "DONT_CACHE", 1: "ALL_SESSION", 2: "ALL_REALM", 3: "REALM_AND_APPLICATION",
        4: "ALL_APPLICATION", 5: "ALL_HOST", 6: "ALL_USER"}),
    ("Redirect-Max-Cache-Time", 262, T.UNSIGNED32, M, 0, None),
    ("Session-Id", 263, T.UTF8_STRING, M, 0, None),
    ("Origin-Host", 264, T.DIAMETER_IDENTITY, M, 0, None),
    ("Supported-Vendor-Id", 265, T.UNSIGNED32, M, 0, None),
    ("Vendor-Id", 266, T.UNSIGNED32, M, 0, None),
    ("Firmware-Revision", 267, T.UNSIGNED32, NOT, 0, None),
    ("Result-Code", 268, T.UNSIGNED32, M, 0, None),
    ("Product-Name", 269, T.UTF8_STRING, NOT, 0, None),
    ("Session-Binding", 270, T.UNSIGNED32, M, 0, None),
    ("Session-Server-Failover", 271, T.ENUMERATED, M, 0, {
        0: "REFUSE_SERVICE", 1: "TRY_AGAIN", 2: "ALLOW_SERVICE", 3: "TRY_AGAIN_ALLOW_SERVICE"}),
    ("Multi-Round-Time-Out", 272, T.UNSIGNED32, M, 0, None),
    ("Disconnect-Cause", 273, T.ENUMERATED, M, 0, {
        0: "REBOOTING", 1: "BUSY", 2: "DO_NOT_WANT_TO_TALK_TO_YOU"}),
    ("Auth-Request-Type", 274, T.ENUMERATED, M, 0, {
        1: "AUTHENTICATE_ONLY", 2: "AUTHORIZE_ONLY", 3: "AUTHORIZE_AUTHENTICATE"}),
    ("Auth-Grace-Period", 276, T.UNSIGNED32, M, 0, None),
    ("Auth-Session-State", 277, T.ENUMERATED, M, 0, {
        0: "STATE_MAINTAINED", 1: "NO_STATE_MAINTAINED"}),
    ("Origin-State-Id", 278, T.UNSIGNED32, M, 0, None),
    ("Failed-AVP", 279, T.GROUPED, M, 0, None),
    ("Proxy-Host", 280, T.DIAMETER_IDENTITY, M, 0, None),
    ("Error-Message", 281, T.UTF8_STRING, NOT, 0, None),
    ("Route-Record", 282, T.DIAMETER_IDENTITY, M, 0, None),
    ("Destination-Realm", 283, T.DIAMETER_IDENTITY, M, 0, None),
    ("Proxy-Info", 284, T.GROUPED, M, 0, None),
    ("Re-Auth-Request-Type", 285, T.ENUMERATED, M, 0, {
        0: "AUTHORIZE_ONLY", 1: "AUTHORIZE_AUTHENTICATE"}),
    ("Accounting-Sub-Session-Id", 287, T.UNSIGNED64, M, 0, None),
    ("Authorization-Lifetime", 291, T.UNSIGNED32, M, 0, None),
    ("Redirect-Host", 292, T.DIAMETER_URI, M, 0, None),
    ("Destination-Host", 293, T.DIAMETER_IDENTITY, M, 0, None),
    ("Error-Reporting-Host", 294, T.DIAMETER_IDENTITY, NOT, 0, None),
    ("Termination-Cause", 295, T.ENUMERATED, M, 0, {
        1: "DIAMETER_LOGOUT", 2: "DIAMETER_SERVICE_NOT_PROVIDED", 3: "DIAMETER_BAD_ANSWER",
        4: "DIAMETER_ADMINISTRATIVE", 5: "DIAMETER_LINK_BROKEN",
        6: "DIAMETER_AUTH_EXPIRED", 7: "DIAMETER_USER_MOVED",
        8: "DIAMETER_SESSION_TIMEOUT"}),
    ("Origin-Realm", 296, T.DIAMETER_IDENTITY, M, 0, None),
    ("Experimental-Result", 297, T.GROUPED, M, 0, None),
    ("Experimental-Result-Code", 298, T.UNSIGNED32, M, 0, None),
    ("Inband-Security-Id", 299, T.UNSIGNED32, M, 0, None),
    ("DRMP", 301, T.ENUMERATED, MAY, 0, {i: f"PRIORITY_{i}" for i in range(16)}),
    ("Accounting-Record-Type", 480, T.ENUMERATED, M, 0, {
        1: "EVENT_RECORD", 2: "START_RECORD", 3: "INTERIM_RECORD", 4: "STOP_RECORD"}),
    ("Accounting-Realtime-Required", 483, T.ENUMERATED, M, 0, {
        1: "DELIVER_AND_GRANT", 2: "GRANT_AND_STORE", 3: "GRANT_AND_LOSE"}),
    ("Accounting-Record-Number", 485, T.UNSIGNED32, M, 0, None),
    # TS 29.272 7.3: the S13 AVPs, all vendor 3GPP with M and V set.
    ("Terminal-Information", 1401, T.GROUPED, M, G, None),
    ("IMEI", 1402, T.UTF8_STRING, M, G, None),
    ("Software-Version", 1403, T.UTF8_STRING, M, G, None),
    ("Equipment-Status", 1445, T.ENUMERATED, M, G, {
        0: "WHITELISTED", 1: "BLACKLISTED", 2: "GREYLISTED"}),
    ("3GPP2-MEID", 1471, T.OCTET_STRING, M, G, None),
)

# AVPs whose values repeat across the requests of one peer (its identities, the session
# state, the application it names, the route a relay adds). The codec memoizes their
# decoding by their octets; AVPs whose values change per request are never memoized.
_STABLE_AVPS = frozenset({
    "Origin-Host", "Origin-Realm", "Destination-Host", "Destination-Realm", "Route-Record",
    "Auth-Session-State", "Auth-Application-Id", "Acct-Application-Id", "Vendor-Id",
    "Supported-Vendor-Id", "Vendor-Specific-Application-Id", "Result-Code", "Origin-State-Id",
    "Software-Version", "Equipment-Status", "DRMP",
})

# Command Code Format text (RFC 6733 3.2 and 5, TS 29.272 7.2.9 and 7.2.10).
_COMMANDS_CCF = """
<CER> ::= < Diameter Header: 257, REQ >
          { Origin-Host }
          { Origin-Realm }
       1* { Host-IP-Address }
          { Vendor-Id }
          { Product-Name }
          [ Origin-State-Id ]
        * [ Supported-Vendor-Id ]
        * [ Auth-Application-Id ]
        * [ Inband-Security-Id ]
        * [ Acct-Application-Id ]
        * [ Vendor-Specific-Application-Id ]
          [ Firmware-Revision ]
        * [ AVP ]

<CEA> ::= < Diameter Header: 257 >
          { Result-Code }
          { Origin-Host }
          { Origin-Realm }
       1* { Host-IP-Address }
          { Vendor-Id }
          { Product-Name }
          [ Origin-State-Id ]
          [ Error-Message ]
          [ Failed-AVP ]
        * [ Supported-Vendor-Id ]
        * [ Auth-Application-Id ]
        * [ Inband-Security-Id ]
        * [ Acct-Application-Id ]
        * [ Vendor-Specific-Application-Id ]
          [ Firmware-Revision ]
        * [ AVP ]

<DWR> ::= < Diameter Header: 280, REQ >
          { Origin-Host }
          { Origin-Realm }
          [ Origin-State-Id ]
        * [ AVP ]

<DWA> ::= < Diameter Header: 280 >
          { Result-Code }
          { Origin-Host }
          { Origin-Realm }
          [ Error-Message ]
          [ Failed-AVP ]
          [ Origin-State-Id ]
        * [ AVP ]

<DPR> ::= < Diameter Header: 282, REQ >
          { Origin-Host }
          { Origin-Realm }
          { Disconnect-Cause }
        * [ AVP ]

<DPA> ::= < Diameter Header: 282 >
          { Result-Code }
          { Origin-Host }
          { Origin-Realm }
          [ Error-Message ]
          [ Failed-AVP ]
        * [ AVP ]

<ECR> ::= < Diameter Header: 324, REQ, PXY, 16777252 >
          < Session-Id >
          [ DRMP ]
          [ Vendor-Specific-Application-Id ]
          { Auth-Session-State }
          { Origin-Host }
          { Origin-Realm }
          [ Destination-Host ]
          { Destination-Realm }
          { Terminal-Information }
          [ User-Name ]
        * [ AVP ]
        * [ Proxy-Info ]
        * [ Route-Record ]

<ECA> ::= < Diameter Header: 324, PXY, 16777252 >
          < Session-Id >
          [ DRMP ]
          [ Vendor-Specific-Application-Id ]
          [ Result-Code ]
          [ Experimental-Result ]
          { Auth-Session-State }
          { Origin-Host }
          { Origin-Realm }
          [ Equipment-Status ]
        * [ AVP ]
          [ Failed-AVP ]
        * [ Proxy-Info ]
        * [ Route-Record ]
"""

_GROUPED_CCF = """
Vendor-Specific-Application-Id ::= < AVP Header: 260 >
          { Vendor-Id }
          [ Auth-Application-Id ]
          [ Acct-Application-Id ]

Failed-AVP ::= < AVP Header: 279 >
       1* { AVP }

Proxy-Info ::= < AVP Header: 284 >
          { Proxy-Host }
          { Proxy-State }
        * [ AVP ]

Experimental-Result ::= < AVP Header: 297 >
          { Vendor-Id }
          { Experimental-Result-Code }

Terminal-Information ::= < AVP Header: 1401 10415 >
          [ IMEI ]
          [ 3GPP2-MEID ]
          [ Software-Version ]
        * [ AVP ]
"""

# RFC 6733 7.2: an answer with the E bit follows this grammar, not its command's.
_ANSWER_MESSAGE_CCF = """
<answer-message> ::= < Diameter Header: code, ERR [, PXY] >
                0*1< Session-Id >
                   { Origin-Host }
                   { Origin-Realm }
                   { Result-Code }
                   [ Origin-State-Id ]
                   [ Error-Message ]
                   [ Error-Reporting-Host ]
                   [ Failed-AVP ]
                   [ Experimental-Result ]
                 * [ Proxy-Info ]
                 * [ AVP ]
"""


class Presence(Enum):
    FIXED = "<>"
    REQUIRED = "{}"
    OPTIONAL = "[]"


UNBOUNDED = 1 << 30


@dataclass(frozen=True, slots=True)
class Rule:
    """One line of a CCF: which AVP, how it must appear, and how often (min..max)."""

    name: str
    presence: Presence
    min: int
    max: int
    avp: AvpDef | None  # None for the wildcard "AVP"


@dataclass(frozen=True, slots=True)
class Grammar:
    """The parsed body of a command or Grouped AVP definition."""

    rules: tuple[Rule, ...]
    fixed: tuple[Rule, ...]  # the < > rules, in order, at the head of the message
    any_avp: bool  # a "* [ AVP ]" line: AVPs not listed are allowed
    by_key: dict[int, Rule] = field(default_factory=dict)
    required: tuple[Rule, ...] = ()  # rules with a minimum above zero, in CCF order
    fixed_index: dict[int, int] = field(default_factory=dict)  # key of a < > AVP -> its position
    # Sequences of AVP keys already found to satisfy this grammar (the check depends on
    # nothing else); bounded, cleared when full.
    clean_shapes: dict[tuple[int, ...], None] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class CommandDef:
    name: str
    code: int
    request: bool
    proxiable: bool
    application_id: int
    grammar: Grammar


_HEADER_RE = re.compile(
    r"<\s*(?P<name>[\w-]+)\s*>\s*::=\s*<\s*Diameter Header:\s*(?P<code>\d+)(?P<flags>[^>]*)>")
_GROUP_RE = re.compile(r"(?P<name>[\w-]+)\s*::=\s*<\s*AVP Header:\s*(?P<code>\d+)(\s+(?P<vendor>\d+))?\s*>")
_RULE_RE = re.compile(
    r"^\s*(?P<qual>(?P<min>\d*)\s*\*\s*(?P<max>\d*))?\s*(?P<open>[<{\[])\s*(?P<name>[\w-]+)\s*[>}\]]\s*$")


class DictionaryError(Exception):
    """The dictionary text itself is wrong: raised at import, never on the wire."""


class Dictionary:
    """AVP definitions by name and by (code, vendor), command and Grouped grammars."""

    def __init__(self, avps: list[AvpDef], commands_ccf: str, grouped_ccf: str) -> None:
        self.avps: dict[int, AvpDef] = {d.key: d for d in avps}
        # Memo of decoded stable AVPs by their octets (see _STABLE_AVPS): cleared when full.
        self.stable: frozenset[int] = frozenset(d.key for d in avps if d.name in _STABLE_AVPS)
        self.decoded: dict[bytes, Any] = {}
        self.decoded_limit = 4096
        self.by_name: dict[str, AvpDef] = {d.name: d for d in avps}
        self.grouped: dict[int, Grammar] = {}
        self.commands: dict[tuple[int, bool], CommandDef] = {}
        for block in _blocks(grouped_ccf):
            self._add_grouped(block)
        for block in _blocks(commands_ccf):
            self._add_command(block)
        self.answer_message: Grammar = self._grammar(_blocks(_ANSWER_MESSAGE_CCF)[0][1:])

    def avp_def(self, name: str) -> AvpDef:
        try:
            return self.by_name[name]
        except KeyError:
            raise DictionaryError(f"no AVP named {name!r} in the dictionary") from None

    def command(self, code: int, request: bool) -> CommandDef | None:
        return self.commands.get((code, request))

    def _add_grouped(self, block: list[str]) -> None:
        match = _GROUP_RE.match(block[0].strip())
        if not match:
            raise DictionaryError(f"bad Grouped AVP header: {block[0]!r}")
        definition = self.avp_def(match["name"])
        vendor = int(match["vendor"] or 0)
        if definition.code != int(match["code"]) or definition.vendor_id != vendor:
            raise DictionaryError(f"{definition.name}: header does not match the AVP table")
        self.grouped[definition.key] = self._grammar(block[1:])

    def _add_command(self, block: list[str]) -> None:
        match = _HEADER_RE.match(block[0].strip())
        if not match:
            raise DictionaryError(f"bad command header: {block[0]!r}")
        flags = [f.strip() for f in match["flags"].split(",") if f.strip()]
        app_ids = [int(f) for f in flags if f.isdigit()]
        definition = CommandDef(
            name=match["name"],
            code=int(match["code"]),
            request="REQ" in flags,
            proxiable="PXY" in flags,
            application_id=app_ids[0] if app_ids else APP_COMMON,
            grammar=self._grammar(block[1:]),
        )
        self.commands[(definition.code, definition.request)] = definition

    def _grammar(self, lines: list[str]) -> Grammar:
        rules = [self._rule(line) for line in lines]
        by_key = {r.avp.key: r for r in rules if r.avp is not None}
        fixed = tuple(r for r in rules if r.presence is Presence.FIXED)
        any_avp = any(r.avp is None for r in rules)
        required = tuple(r for r in rules if r.avp is not None and r.min > 0)
        fixed_index = {r.avp.key: i for i, r in enumerate(fixed) if r.avp is not None}
        return Grammar(tuple(rules), fixed, any_avp, by_key, required, fixed_index)

    def _rule(self, line: str) -> Rule:
        match = _RULE_RE.match(line)
        if not match:
            raise DictionaryError(f"bad CCF line: {line!r}")
        presence = {"<": Presence.FIXED, "{": Presence.REQUIRED, "[": Presence.OPTIONAL}[match["open"]]
        name = match["name"]
        avp = None if name == "AVP" else self.avp_def(name)
        if match["qual"]:
            # RFC 6733 3.2: qual = [min] "*" [max]; a required AVP occurs at least once.
            default_min = 0 if presence is Presence.OPTIONAL else 1
            low = int(match["min"]) if match["min"] else default_min
            high = int(match["max"]) if match["max"] else UNBOUNDED
        else:
            low = 0 if presence is Presence.OPTIONAL else 1
            high = 1
        return Rule(name, presence, low, high, avp)


def _blocks(text: str) -> list[list[str]]:
    """Split CCF text into definitions separated by blank lines."""
    blocks: list[list[str]] = []
    current: list[str] = []
    for line in text.splitlines():
        if line.strip():
            current.append(line)
        elif current:
            blocks.append(current)
            current = []
    if current:
        blocks.append(current)
    return blocks


def _table() -> list[AvpDef]:
    return [AvpDef(name, code, kind, m_bit, vendor, values)
            for name, code, kind, m_bit, vendor, values in _AVP_TABLE]


BASE_S13 = Dictionary(_table(), _COMMANDS_CCF, _GROUPED_CCF)
"""The dictionary of this product: Diameter base plus S13."""

