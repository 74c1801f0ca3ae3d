"""The soak run's population: a throwaway registry whose right answers are known.

Each class of IMEI has its own TAC, so a key says its class. Under the agent's default
profile (tj: local SIMs 436-01 ..., 30 days of grace, unlimited roamers, an unknown TAC
treated as a phone) the right answer of every query is known before it is asked:

=============  ======================================  ========  ===============
class          query                                   status    rule
=============  ======================================  ========  ===============
white          on the white list, a local SIM          white     white-list
black          on the black list                       black     black-list
grey           on the grey list, a local SIM           grey      grey-list *
stolen         on the white list and reported stolen   black     stolen
paired         paired white, with its bound IMSI       white     paired-match
paired-other   paired white, with another IMSI         black     paired-mismatch
grace          in no list, a local SIM                 grey      grace *
roamer         in no list, a foreign SIM (MCC 250)     white     roamer *
=============  ======================================  ========  ===============

The rules marked * are in registry.decision.OBSERVED_RULES: such an answer rests on the
first sight of its (IMEI, IMSI) pair, which must be in the registry's sighting table,
first seen no later than the answer came, whatever happens to the agent afterwards.
``lost_first_sights`` counts those that are not.
"""

from __future__ import annotations

import random
import sqlite3
from contextlib import closing
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from registry.decision import OBSERVED_RULES
from registry.imei import luhn_check_digit, tac_of
from simulator.agent_process import run_eir

WHITE, BLACK, GREY = 0, 1, 2  # Equipment-Status on S13 and MAP alike
LOCAL_PREFIX = "43601"  # a Tajik operator's SIMs: local under tj
ROAMING_PREFIX = "25001"  # a Russian operator's SIMs: inbound roamers

# One TAC per class (none of them in a TAC catalogue: the registry has none).
TACS = {"white": "35100001", "black": "35100002", "grey": "35100003", "stolen": "35100004",
        "paired": "35100005", "grace": "35100006", "roamer": "35100007"}
FUZZ_TAC = "35100009"  # the fuzzers' base requests: no class's keys


@dataclass(frozen=True)
class Expected:
    status: int
    rule: str

    @property
    def observed(self) -> bool:
        """The answer rests on the pair's first sight."""
        return self.rule in OBSERVED_RULES


EXPECTED = {
    "white": Expected(WHITE, "white-list"), "black": Expected(BLACK, "black-list"),
    "grey": Expected(GREY, "grey-list"), "stolen": Expected(BLACK, "stolen"),
    "paired": Expected(WHITE, "paired-match"), "paired-other": Expected(BLACK, "paired-mismatch"),
    "grace": Expected(GREY, "grace"), "roamer": Expected(WHITE, "roamer"),
}
# Classes a query without IMSI (MAP v3) can ask: their answer does not depend on the SIM.
WITHOUT_IMSI = ("white", "black", "stolen")
UNREGISTERED = 0.34  # the share of queries (with an IMSI) about IMEIs in no list


@dataclass(frozen=True)
class Case:
    """One query to send: the class, the registry key (TAC+SNR), and the IMSI (None: none sent)."""

    kind: str
    key: str
    imsi: str | None

    @property
    def expected(self) -> Expected:
        return EXPECTED[self.kind]

    @property
    def imei15(self) -> str:
        return self.key + luhn_check_digit(self.key)


def key(kind: str, serial: int) -> str:
    return f"{TACS[kind]}{serial:06d}"


def local_imsi(number: int) -> str:
    return f"{LOCAL_PREFIX}{number:010d}"


def roaming_imsi(number: int) -> str:
    return f"{ROAMING_PREFIX}{number:010d}"


@dataclass
class Population:
    """The listed IMEIs (``size`` per list) and the unregistered ones asked so far."""

    size: int = 500
    new_share: float = 0.05  # of the queries: an unregistered IMEI asked for the first time
    rng: random.Random = field(default_factory=lambda: random.Random(12))
    next_new: dict[str, int] = field(default_factory=lambda: {"grace": 0, "roamer": 0})

    def build_registry(self, folder: Path) -> str:
        """A SQLite registry in ``folder`` with the lists imported through `eir registry import`."""
        url = f"sqlite:///{folder / 'registry.db'}"
        run_eir(url, "registry", "init")
        rows = {name: [Case(name, key(name, n), None).imei15 for n in range(self.size)]
                for name in ("white", "black", "grey", "stolen")}
        files = {
            "white": rows["white"] + rows["stolen"],  # stolen ones were cleared, then reported stolen
            "black": rows["black"], "grey": rows["grey"], "stolen": rows["stolen"],
        }
        for name, imeis in files.items():
            path = folder / f"{name}.csv"
            path.write_text("imei,reason\n" + "".join(f"{imei},soak\n" for imei in imeis))
            run_eir(url, "registry", "import", name, str(path))
        paired = folder / "paired.csv"
        paired.write_text("imei,imsi,msisdn\n" + "".join(
            f"{Case('paired', key('paired', n), None).imei15},{self.bound_imsi(n)},\n" for n in range(self.size)))
        run_eir(url, "registry", "import", "paired", str(paired))
        return url

    @staticmethod
    def bound_imsi(serial: int) -> str:
        return local_imsi(500_000 + serial)

    def listed(self, kind: str, with_imsi: bool = True) -> Case:
        serial = self.rng.randrange(self.size)
        if kind == "paired":
            return Case(kind, key(kind, serial), self.bound_imsi(serial))
        if kind == "paired-other":
            return Case(kind, key("paired", serial), local_imsi(700_000 + self.rng.randrange(1000)))
        return Case(kind, key(kind, serial), local_imsi(serial) if with_imsi else None)

    def unregistered(self, kind: str, new: bool) -> Case:
        """An IMEI in no list (``kind`` grace or roamer): a new one, or one asked before with
        its first SIM or a second one (the grace clock stays the IMEI's)."""
        asked = self.next_new[kind]
        if new or asked == 0:
            serial = self.next_new[kind] = asked + 1
            sim = 0
        else:
            serial, sim = self.rng.randrange(1, asked + 1), self.rng.randrange(2)
        number = serial * 2 + sim
        return Case(kind, key(kind, serial), local_imsi(number) if kind == "grace" else roaming_imsi(number))

    def pick(self, with_imsi: bool = True) -> Case:
        """A query of the mix: a third are unregistered IMEIs (``new_share`` of all queries
        new ones), the rest spread over the lists; ``with_imsi`` False (MAP v3): only classes
        the SIM cannot change."""
        if not with_imsi:
            return self.listed(self.rng.choice(WITHOUT_IMSI), with_imsi=False)
        draw = self.rng.random()
        if draw < UNREGISTERED:
            new = self.rng.random() < self.new_share / UNREGISTERED
            return self.unregistered("grace" if draw < UNREGISTERED * 0.75 else "roamer", new=new)
        return self.listed(self.rng.choice(("white", "white", "white", "black", "grey", "stolen", "paired",
                                            "paired-other")))


# --- the first sights answers rested on ---------------------------------------------------

@dataclass
class FirstSights:
    """The (key, IMSI) pairs an answer rested on, with when the first such answer came."""

    answered: dict[tuple[str, str], datetime] = field(default_factory=dict)

    def note(self, case: Case, at: datetime) -> None:
        pair = (case.key, case.imsi or "")
        if pair not in self.answered:
            self.answered[pair] = at

    def lost(self, database: Path, answered: dict[tuple[str, str], datetime] | None = None) -> list[tuple[str, str]]:
        """The pairs (of ``answered``, default all) whose first sight is not in the sighting
        table, or is later than the answer that rested on it (lost, then seen again as new)."""
        answered = self.answered if answered is None else answered
        stored = stored_first_sights(database, {key for key, _ in answered})
        return [pair for pair, at in answered.items() if pair not in stored or stored[pair] > at]


def stored_first_sights(database: Path, keys: set[str]) -> dict[tuple[str, str], datetime]:
    """The sighting table's first sights of ``keys`` (read with a plain SQLite connection)."""
    found: dict[tuple[str, str], datetime] = {}
    tacs = sorted({tac_of(k) for k in keys})
    with closing(sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=30)) as connection:
        for tac in tacs:
            rows = connection.execute("SELECT imei, imsi, first_seen FROM sighting WHERE imei >= ? AND imei < ?",
                                      (tac, f"{int(tac) + 1:08d}"))
            for imei, imsi, first_seen in rows:
                found[(imei, imsi or "")] = datetime.fromisoformat(first_seen).replace(tzinfo=UTC)
    return found
