"""CSV imports into the registry and exports from it (the same format both ways).

Every file has a header row naming its columns (any order, case-insensitive):

| kind                      | columns                               |
|---------------------------|---------------------------------------|
| white, grey, black, stolen | ``imei`` and an optional ``reason``  |
| paired                    | ``imei,imsi,msisdn`` (one of the last two may be empty) |
| tac                       | ``tac,brand,model,device_type`` (brand, model, device_type optional) |
| observations              | ``date,imei,imsi,msisdn`` (imsi may be empty; msisdn optional) |
| subscribers               | ``imsi,msisdn`` and an optional ``date`` (the HLR/HSS export) |

An observations row is a sight of an IMEI with an IMSI at ``date``: an ISO date
(YYYY-MM-DD, 00:00 UTC) or time (UTC unless it says), not in the future. It seeds the
agent's sightings (see ``registry.sightings``); a pair may appear on many rows. A
subscribers row says which MSISDN an IMSI holds, from ``date`` when given (see
``registry.subscribers``); an IMSI or an MSISDN appears on one row only.

Bad rows: by default the good rows are imported and every bad row is reported with its
line number and reason; with ``strict`` any bad row refuses the whole file and nothing is
written. A report lists the first ``BAD_LISTED`` bad rows (by line) and counts them all, so
a file of millions of bad rows costs no more memory than a good one. A file that cannot be
read as such (no header, unknown or missing column, not UTF-8) raises ``CsvFormatError``
and nothing is written. Blank lines are skipped (and counted); a row is never dropped
without a report.

Duplicates: a row whose key (IMEI, TAC, or a pairing's whole binding) an earlier row gave
is a bad row ("duplicate: ... already on line N") and the first one is imported. The
import finds them in the database (registry/bulk.py stages the rows and keeps the first of
each key), so memory does not grow with the file. Subscribers (an IMSI or an MSISDN on
one row only, judged row by row) are still de-duplicated as they are read.
"""

from __future__ import annotations

import csv
import enum
import heapq
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import NoReturn, TextIO

from registry.bulk import CHUNK, Bulk, Counts, Duplicate
from registry.clock import SYSTEM_CLOCK, Clock
from registry.decision import ListName
from registry.imei import IdentityError, imei15_key, imei_key, luhn_check_digit, parse_imsi, parse_msisdn, parse_tac
from registry.observations import stamp
from registry.sightings import SightingLoader, iso_utc, iter_observations
from registry.store import Registry
from registry.subscribers import SubscriberLoader, iter_subscribers


class ImportKind(enum.StrEnum):
    WHITE = "white"
    GREY = "grey"
    BLACK = "black"
    PAIRED = "paired"
    STOLEN = "stolen"
    TAC = "tac"
    OBSERVATIONS = "observations"
    SUBSCRIBERS = "subscribers"


IMEI_KINDS = frozenset({ImportKind.WHITE, ImportKind.GREY, ImportKind.BLACK, ImportKind.STOLEN})
LISTS = {ImportKind.WHITE: ListName.WHITE, ImportKind.GREY: ListName.GREY, ImportKind.BLACK: ListName.BLACK}

# (required columns, optional columns), in the order exports write them
COLUMNS: dict[ImportKind, tuple[tuple[str, ...], tuple[str, ...]]] = {
    **{kind: (("imei",), ("reason",)) for kind in (*LISTS, ImportKind.STOLEN)},
    ImportKind.PAIRED: (("imei", "imsi", "msisdn"), ()),
    ImportKind.TAC: (("tac",), ("brand", "model", "device_type")),
    ImportKind.OBSERVATIONS: (("date", "imei", "imsi"), ("msisdn",)),
    ImportKind.SUBSCRIBERS: (("imsi", "msisdn"), ("date",)),
}
EARLIEST = datetime(1990, 1, 1, tzinfo=UTC)  # an observation dated before this is a typo
BAD_LISTED = 1000  # bad rows a report lists with their lines; the rest are only counted


Row = tuple[str | int | None, ...]  # a parsed row; ParsedRows and sinks get it with its line (int) last
RowParser = Callable[[list[str]], Row]


class CsvFormatError(ValueError):
    """The file as a whole cannot be read as this kind of CSV; nothing is written."""


@dataclass(frozen=True, slots=True)
class BadRow:
    line: int  # 1-based line number in the file (the header is line 1)
    reason: str


@dataclass
class ImportReport:
    kind: ImportKind
    source: str  # what history records as the source, e.g. "import:white.csv"
    strict: bool
    rows: int = 0  # data rows read (blank lines not included)
    blank: int = 0  # blank lines skipped
    counts: Counts = field(default_factory=Counts)
    bad: list[BadRow] = field(default_factory=list)  # the first BAD_LISTED bad rows, by line
    bad_total: int = 0  # every bad row, listed or not
    seconds: float = 0.0

    @property
    def refused(self) -> bool:
        """True when strict and some rows were bad: nothing was written."""
        return self.strict and self.bad_total > 0

    @property
    def imported(self) -> int:
        return self.counts.new + self.counts.changed + self.counts.unchanged

    def summary(self) -> str:
        c = self.counts
        if self.kind is ImportKind.OBSERVATIONS:
            counted = f"{c.new} new pairs, {c.changed} merged into known pairs"
        else:
            counted = f"{c.new} new, {c.changed} changed, {c.unchanged} unchanged"
        text = f"{self.kind.value}: {self.rows} rows read, {self.imported} imported ({counted}), {self.bad_total} bad"
        if self.bad_total > len(self.bad):
            text += f" (the first {len(self.bad)} listed)"
        if self.blank:
            text += f", {self.blank} blank lines skipped"
        if self.refused:
            text += "; file refused (--strict): nothing written"
        return f"{text}; {self.seconds:.2f} s"


@dataclass
class ParsedRows:
    """What a parse found: the good rows not yet handed to the sink (in file order, each
    with its line appended), the first ``listed`` bad rows with their reasons, how many bad
    rows in all, and how many rows and blank lines were read."""

    rows: list[Row] = field(default_factory=list)
    bad: list[BadRow] = field(default_factory=list)
    read: int = 0
    blank: int = 0
    bad_total: int = 0
    listed: int = BAD_LISTED

    def reject(self, line: int, reason: str) -> None:
        """Count a bad row; keep it (line and reason) while fewer than ``listed`` are kept."""
        self.bad_total += 1
        if len(self.bad) < self.listed:
            self.bad.append(BadRow(line, reason))


Sink = Callable[[list[Row]], None]


def import_file(registry: Registry, kind: ImportKind, path: str | Path, strict: bool = False) -> ImportReport:
    """Read ``path`` as a ``kind`` CSV and write its good rows (``import_lines``); history
    records the source as ``import:NAME``. OSError when the file cannot be opened."""
    path = Path(path)
    with path.open(newline="", encoding="utf-8-sig") as stream:
        return import_lines(registry, kind, stream, f"import:{path.name}", strict)


def import_lines(registry: Registry, kind: ImportKind, lines: Iterable[str], source: str,
                 strict: bool = False) -> ImportReport:
    """Read ``lines`` (a text stream, or lines of text with their ends) as a ``kind`` CSV and
    write its good rows, in one transaction (nothing at all when ``strict`` and a row is
    bad); ``source`` is what history records (``import:white.csv``, ``lab:import``).
    Text-level problems raise CsvFormatError and write nothing. Dates are checked against
    the registry's clock."""
    started = time.perf_counter()
    report = ImportReport(kind, source, strict)
    parsed = ParsedRows()
    with registry.bulk() as bulk:
        loader = _loader(bulk, kind, report.source)
        sink = loader.add if loader is not None else _stager(bulk, kind)
        try:
            parse_rows(kind, lines, parsed, sink, clock=registry.clock)
        except UnicodeDecodeError as error:
            last = 1 + parsed.read + parsed.blank
            raise CsvFormatError(f"not UTF-8 text after line {last} ({error.reason}); save the file as UTF-8") from None
        except csv.Error as error:
            raise CsvFormatError(f"not readable as CSV: {error}") from None
        report.rows, report.blank = parsed.read, parsed.blank
        report.bad, report.bad_total = parsed.bad, parsed.bad_total
        if loader is None:
            bulk.stage()  # the database finds the duplicates: bad rows too, and a refusal lists them
            _add_duplicates(report, kind, bulk, parsed.listed)
        if report.refused:
            bulk.cancel()  # nothing was applied (sightings already upserted are rolled back)
        else:
            report.counts = loader.counts() if loader is not None else _put(bulk, kind, report.source)
    report.seconds = time.perf_counter() - started
    return report


def _add_duplicates(report: ImportReport, kind: ImportKind, bulk: Bulk, listed: int) -> None:
    """The duplicates the bulk write found, among the report's bad rows in line order."""
    if not bulk.duplicate_count:
        return
    found = [BadRow(d.line, _duplicate(kind, d)) for d in bulk.duplicates]
    report.bad = list(heapq.merge(report.bad, found, key=lambda bad: bad.line))[:listed]
    report.bad_total += bulk.duplicate_count


def _duplicate(kind: ImportKind, duplicate: Duplicate) -> str:
    return f"duplicate: {_what(kind, duplicate.key)} already on line {duplicate.first}"


def _loader(bulk: Bulk, kind: ImportKind, source: str) -> SightingLoader | SubscriberLoader | None:
    """The kinds written by a loader of their own rather than the registry's bulk lists."""
    if kind is ImportKind.OBSERVATIONS:
        return SightingLoader(bulk)
    if kind is ImportKind.SUBSCRIBERS:
        return SubscriberLoader(bulk, source)
    return None


def _stager(bulk: Bulk, kind: ImportKind) -> Sink:
    """Where a kind's rows (their lines last) are loaded."""
    add = bulk.add_pairings if kind is ImportKind.PAIRED else bulk.add_tacs if kind is ImportKind.TAC \
        else bulk.add_entries
    return lambda rows: add(rows, numbered=True)


def _put(bulk: Bulk, kind: ImportKind, source: str) -> Counts:
    if kind in LISTS:
        return bulk.put_list(LISTS[kind], source)
    if kind is ImportKind.STOLEN:
        return bulk.put_stolen(source)
    if kind is ImportKind.PAIRED:
        return bulk.put_pairings(source)
    return bulk.put_tacs()


MAX_LINE = 65536  # characters: a longer line is a bad row, read past without being held whole


class CsvLines:
    """The records of a CSV text, one a physical line: none of the files spans a field over
    lines, so a quote left open (which would swallow every following row into one field),
    bad quoting, or a line over MAX_LINE characters (read past in pieces, never held
    whole) is one bad row, reported with its line number, and the next line is read
    afresh. A line without a quote is split on commas; one with quotes goes through
    csv.reader (strict). ``number`` is the line last read."""

    def __init__(self, lines: Iterable[str]) -> None:
        self.number = 0
        self._readline = getattr(lines, "readline", None)
        self._lines = iter(lines)

    def records(self, bad: Callable[[int, str], None]) -> Iterator[list[str]]:
        """The records, one a line; a line that is not one goes to ``bad(line, reason)``.
        (One loop, kept flat: it runs once per row of files of millions of rows.)"""
        readline = self._readline
        if readline is None:
            lines = self._lines
            readline = lambda _limit: next(lines, "")  # noqa: E731 - the same call for both sources
        limit = MAX_LINE + 1
        while text := readline(limit):
            self.number += 1
            if len(text) > MAX_LINE and (len(text) > limit or text[-1] != "\n"):  # over MAX_LINE
                while text and text[-1] != "\n" and self._readline is not None:  # read past it, in pieces
                    text = readline(1 << 20)
                bad(self.number, f"line longer than {MAX_LINE:,} characters")
                continue
            if '"' not in text:
                body = text.rstrip("\r\n")
                yield body.split(",") if body else []
                continue
            try:
                yield next(csv.reader((text,), strict=True), [])
            except csv.Error as error:
                if "unexpected end of data" in str(error):
                    bad(self.number, "a quote is opened and not closed on this line (fields cannot span lines)")
                else:
                    bad(self.number, f"not readable as CSV: {error}")


def parse_rows(kind: ImportKind, lines: Iterable[str], parsed: ParsedRows | None = None, sink: Sink | None = None,
               chunk: int = CHUNK, *, clock: Clock = SYSTEM_CLOCK) -> ParsedRows:
    """Validate a whole CSV text (header first), one record a line (``CsvLines``). Good rows
    (IMEIs as 14-digit keys), each with its line appended, go to ``sink`` every ``chunk``
    rows and at the end; without a sink they stay in ``rows``; bad ones, with their line, in
    ``bad`` (the first ``parsed.listed``; ``bad_total`` counts them all). Duplicates are
    left to the import (the database finds them), except for subscribers. ``clock``: what
    "in the future" means for dated rows."""
    parsed = parsed if parsed is not None else ParsedRows()
    source = CsvLines(lines)
    header = _header(kind, source)

    def bad(line: int, reason: str) -> None:
        parsed.read += 1
        parsed.reject(line, reason)

    records = source.records(bad)
    parser = _Parser(kind, header, parsed, sink, chunk, clock.now())
    if kind in IMEI_KINDS and header == ["imei", "reason"]:
        parser.fast_imei_rows(records, source)
    else:
        for fields in records:
            parser.row(fields, source.number)
    parser.flush()
    return parser.parsed


class _Parser:
    def __init__(self, kind: ImportKind, header: list[str], parsed: ParsedRows, sink: Sink | None, chunk: int,
                 now: datetime):
        self.kind, self.header, self.parsed, self.sink, self.chunk = kind, header, parsed, sink, chunk
        self.shortest = max(header.index(name) for name in COLUMNS[kind][0]) + 1  # trailing optional fields may go
        self.parse = _ROW_PARSERS[kind](header, now)
        # Subscribers only: IMSI and MSISDN -> the line they were first seen on. Other kinds
        # are de-duplicated by the database; observations add up (a pair on many rows).
        self.seen: dict[object, int] = {}
        self.unique = kind is ImportKind.SUBSCRIBERS

    def flush(self) -> None:
        if self.sink is not None and self.parsed.rows:
            self.sink(self.parsed.rows[:])
            self.parsed.rows.clear()

    def fast_imei_rows(self, records: Iterator[list[str]], source: CsvLines) -> None:
        """The whole of an ``imei,reason`` file, with its common row (a valid 15-digit IMEI
        and a reason) inlined; any other row goes to ``row``."""
        parsed = self.parsed
        append, key_of, read = parsed.rows.append, imei15_key, 0
        limit = self.chunk if self.sink is not None else -1
        for fields in records:
            line = source.number
            if len(fields) == 2:
                key = key_of(fields[0])
                if key is not None:
                    read += 1
                    append((key, fields[1].strip() or None, line))
                    if len(parsed.rows) == limit:
                        self.flush()
                    continue
            self.row(fields, line)
        parsed.read += read

    def row(self, fields: list[str], line: int) -> None:
        """Judge one row: blank, bad (with the reason) or good."""
        parsed, header = self.parsed, self.header
        if not fields or (len(fields) == 1 and not fields[0].strip()):
            parsed.blank += 1
            return
        parsed.read += 1
        try:
            if len(fields) != len(header):
                if not self.shortest <= len(fields) < len(header):
                    raise IdentityError(_field_count(header, fields))
                fields = fields + [""] * (len(header) - len(fields))
            row = self.parse(fields)
        except IdentityError as error:
            parsed.reject(line, str(error))
            return
        if self.unique and not self._first_subscriber(row, line):
            return
        parsed.rows.append((*row, line))
        if self.sink is not None and len(parsed.rows) >= self.chunk:
            self.flush()


    def _first_subscriber(self, row: Row, line: int) -> bool:
        """Whether a subscriber row's IMSI and MSISDN are on no earlier good row (one IMSI
        holds a number at a time); if not, the row is rejected as a duplicate."""
        first = self.seen.setdefault(row[0], line)
        if first != line:
            self.parsed.reject(line, f"duplicate: {_what(self.kind, row)} already on line {first}")
            return False
        first = self.seen.setdefault(("msisdn", row[1]), line)
        if first != line:
            del self.seen[row[0]]
            self.parsed.reject(line, f"duplicate: MSISDN {row[1]} already on line {first}")
            return False
        return True


def _header(kind: ImportKind, source: CsvLines) -> list[str]:
    required, optional = COLUMNS[kind]
    expected = ",".join((*required, *optional))
    for fields in source.records(lambda line, why: _refuse(f"line {line}: {why}; the header row must be one line")):
        line = source.number
        if not fields or (len(fields) == 1 and not fields[0].strip()):
            continue
        names = [name.strip().lower() for name in fields]
        if any(name.isdigit() for name in names):
            raise CsvFormatError(f"line {line}: no header row; the first row must name the columns ({expected})")
        for name in names:
            if name not in required and name not in optional:
                raise CsvFormatError(f"line {line}: unknown column {name!r}; {kind.value} files have "
                                     f"columns {expected}")
            if names.count(name) > 1:
                raise CsvFormatError(f"line {line}: column {name!r} appears twice")
        missing = [name for name in required if name not in names]
        if missing:
            raise CsvFormatError(f"line {line}: missing column {missing[0]!r}; {kind.value} files have "
                                 f"columns {expected}")
        return names
    raise CsvFormatError(f"empty file: no header row ({expected})")


def _refuse(message: str) -> NoReturn:
    raise CsvFormatError(message)


def _field_count(header: list[str], fields: list[str]) -> str:
    if len(fields) < len(header):
        return f"missing column {header[len(fields)]!r} ({len(fields)} fields, the header has {len(header)})"
    return f"{len(fields)} fields, the header has {len(header)}"


def _what(kind: ImportKind, row: Sequence[object]) -> str:
    if kind is ImportKind.TAC:
        return f"TAC {row[0]}"
    if kind is ImportKind.PAIRED:
        return f"pairing of IMEI {row[0]} with IMSI {row[1] or '-'} and MSISDN {row[2] or '-'}"
    if kind is ImportKind.SUBSCRIBERS:
        return f"IMSI {row[0]}"
    return f"IMEI {row[0]}"


def _text(value: str) -> str | None:
    value = value.strip()
    return value or None


def _key(value: str) -> str:
    try:
        return imei_key(value)
    except IdentityError as error:
        raise IdentityError(f"bad IMEI {value.strip()!r}: {error}") from None


def _list_row(header: list[str], _now: datetime) -> RowParser:
    at_imei = header.index("imei")
    at_reason = header.index("reason") if "reason" in header else None

    def parse(fields: list[str]) -> tuple[str | None, ...]:
        return _key(fields[at_imei]), None if at_reason is None else _text(fields[at_reason])

    return parse


def _paired_row(header: list[str], _now: datetime) -> RowParser:
    at_imei, at_imsi, at_msisdn = header.index("imei"), header.index("imsi"), header.index("msisdn")

    def parse(fields: list[str]) -> tuple[str | None, ...]:
        key = _key(fields[at_imei])
        imsi, msisdn = _text(fields[at_imsi]), _text(fields[at_msisdn])
        if imsi is None and msisdn is None:
            raise IdentityError("neither IMSI nor MSISDN given: a pairing needs one of them")
        return key, _checked("IMSI", parse_imsi, imsi), _checked("MSISDN", parse_msisdn, msisdn)

    return parse


def _tac_row(header: list[str], _now: datetime) -> RowParser:
    at_tac = header.index("tac")
    at_details = [header.index(name) if name in header else None for name in ("brand", "model", "device_type")]

    def parse(fields: list[str]) -> Row:
        tac = _checked("TAC", parse_tac, fields[at_tac].strip())
        return tac, *(None if at is None else _text(fields[at]) for at in at_details)

    return parse


def _observation_row(header: list[str], now: datetime) -> RowParser:
    at_date, at_imei, at_imsi = header.index("date"), header.index("imei"), header.index("imsi")
    at_msisdn = header.index("msisdn") if "msisdn" in header else None
    stamps = _Stamps(now)

    def parse(fields: list[str]) -> Row:
        key, at = _key(fields[at_imei]), stamps.of(fields[at_date].strip())
        imsi = _checked("IMSI", parse_imsi, _text(fields[at_imsi])) or ""  # "": the SIM is not known
        msisdn = None if at_msisdn is None else _checked("MSISDN", parse_msisdn, _text(fields[at_msisdn]))
        return key, imsi, msisdn, at

    return parse


def _subscriber_row(header: list[str], now: datetime) -> RowParser:
    at_imsi, at_msisdn = header.index("imsi"), header.index("msisdn")
    at_date = header.index("date") if "date" in header else None
    stamps = _Stamps(now)

    def parse(fields: list[str]) -> Row:
        imsi = _checked("IMSI", parse_imsi, _text(fields[at_imsi]))
        msisdn = _checked("MSISDN", parse_msisdn, _text(fields[at_msisdn]))
        if imsi is None or msisdn is None:
            raise IdentityError(f"{'IMSI' if imsi is None else 'MSISDN'} is empty: a subscriber row needs both")
        date = None if at_date is None else _text(fields[at_date])
        return imsi, msisdn, None if date is None else stamps.of(date)

    return parse


class _Stamps:
    """Dates of observation rows as the registry stores times (``observations.stamp``);
    plain dates, shared by many rows, are converted once."""

    def __init__(self, now: datetime) -> None:
        self.now = now
        self.days: dict[str, str] = {}

    def of(self, value: str) -> str:
        found = self.days.get(value)
        if found is not None:
            return found
        if not value:
            raise IdentityError("date is empty")
        try:
            at = datetime.fromisoformat(value)
        except ValueError:
            raise IdentityError(f"bad date {value!r}: not an ISO date (YYYY-MM-DD) or time "
                                "(YYYY-MM-DDTHH:MM:SS, UTC unless it says)") from None
        at = at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)
        if at > self.now:
            raise IdentityError(f"date {value} is in the future")
        if at < EARLIEST:
            raise IdentityError(f"date {value} is before {EARLIEST:%Y}")
        found = stamp(at)
        if len(value) == 10 and len(self.days) < 65536:
            self.days[value] = found
        return found


def _checked(what: str, parse: Callable[[str], str], value: str | None) -> str | None:
    if value is None:
        return None
    try:
        return parse(value)
    except IdentityError as error:
        raise IdentityError(f"bad {what} {value!r}: {error}") from None


_ROW_PARSERS = {
    **{kind: _list_row for kind in (*LISTS, ImportKind.STOLEN)},
    ImportKind.PAIRED: _paired_row,
    ImportKind.TAC: _tac_row,
    ImportKind.OBSERVATIONS: _observation_row,
    ImportKind.SUBSCRIBERS: _subscriber_row,
}


# -- exports ---------------------------------------------------------------------------

def export_rows(registry: Registry, kind: ImportKind) -> Iterator[tuple[str | None, ...]]:
    """The rows of ``kind`` as an import reads them (IMEIs as 15 digits, with check digit)."""
    if kind in LISTS:
        for key, reason in registry.iter_list(LISTS[kind]):
            yield key + luhn_check_digit(key), reason
    elif kind is ImportKind.STOLEN:
        for key, reason in registry.iter_stolen():
            yield key + luhn_check_digit(key), reason
    elif kind is ImportKind.PAIRED:
        for key, imsi, msisdn in registry.iter_pairings():
            yield key + luhn_check_digit(key), imsi, msisdn
    elif kind is ImportKind.OBSERVATIONS:  # one row per pair, dated at its first sight
        for key, imsi, msisdn, first in iter_observations(registry):
            yield iso_utc(first), key + luhn_check_digit(key), imsi, msisdn
    elif kind is ImportKind.SUBSCRIBERS:  # the numbers held now, dated when the start is known
        yield from iter_subscribers(registry)
    else:
        yield from registry.iter_tacs()


def export_csv(registry: Registry, kind: ImportKind, out: TextIO) -> int:
    """Write ``kind`` to ``out`` as CSV with its header; returns the number of data rows."""
    required, optional = COLUMNS[kind]
    return write_csv(out, (*required, *optional), export_rows(registry, kind))


def write_csv(out: TextIO, header: Iterable[str], rows: Iterable[Iterable[str | None]]) -> int:
    """Write a header and ``rows`` (None as an empty field) as CSV; returns the number of rows."""
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    count = 0
    for row in rows:
        writer.writerow(["" if value is None else value for value in row])
        count += 1
    return count
