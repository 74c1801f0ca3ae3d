"""The lab control endpoint of ``eir serve --lab-clock``: the simulator (or a person, with
``eir sim lab``) moves the agent's clock and feeds its registry while it runs, as the
national system feeds an operator, so a scenario can say "registered on day 20" without
restarting anything. It exists only in lab mode; without ``--lab-clock`` there is no
socket, so nothing can move time.

Why a Unix socket and not a loopback TCP port: any local user can connect to a loopback
port, while a Unix socket is guarded by file permissions (created under umask 077, mode
0600: only the agent's user may move its clock or write its registry); and there is no
port to allocate or collide with. The socket file is removed at exit.

The protocol is JSON lines: one request object a line, one reply object a line, in order.
Every reply has ``ok``; a refused request has ``{"ok": false, "error": "<why>"}``.

- ``{"op": "time"}`` -> ``now`` (ISO 8601, UTC)
- ``{"op": "advance", "days"|"hours"|"minutes"|"seconds": N, ...}`` (the sum; never back) -> ``now``
- ``{"op": "set", "at": "<ISO time, UTC unless it says; a date alone: 00:00 UTC>"}`` (forward only) -> ``now``
- ``{"op": "import", "kind": "white|grey|...", "csv": "<CSV text, header first>", "strict": false}``
  -> the import report (rows, imported, blank, counts, bad: [{line, reason}], refused),
  written as ``eir registry import`` writes a file, with the source ``lab:import``
- ``{"op": "register", "imei": X, "reason": R?}`` (white list), ``{"op": "block", "imei": X,
  "reason": R}`` (stolen), ``{"op": "unblock", "imei": X, "reason": R}``: as
  ``eir registry block|unblock`` (registry/edits.py), sources ``lab:register|block|unblock``
- ``{"op": "notices", "imei": X}`` -> ``notices``: every notice queued for the IMEI, oldest first

A write is answered once it is committed, and the agent sees it at its next query. Bad
input (not UTF-8, not JSON, not an object, an unknown op or field, a wrong value, a line
over MAX_REQUEST bytes) is refused with a precise error, counted and logged (rate-limited:
netio/bad_input.py), and the connection goes on serving.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import os
import socket
import stat
from collections import Counter
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from io import StringIO
from pathlib import Path
from typing import Any

from netio.bad_input import BadInput
from registry.clock import LabClock, parse_moment
from registry.edits import EditError, block, edit_key, edit_reason, register, unblock
from registry.imei import luhn_check_digit
from registry.imports import CsvFormatError, ImportKind, ImportReport, import_lines
from registry.observations import Observations
from registry.outbox import notices_of
from registry.store import Registry

__all__ = ["MAX_REQUEST", "OPS", "ControlStartError", "LabEndpoint", "iso", "parse_lab_time"]

log = logging.getLogger("eir.lab")
MAX_REQUEST = 4 * 1024 * 1024  # bytes of one request line (an import's CSV text travels in one)
UNIX_PATH_MAX = 107  # bytes of a Unix socket path (sun_path holds 108 with its NUL)
DURATIONS = {"days": 86400.0, "hours": 3600.0, "minutes": 60.0, "seconds": 1.0}
FIELDS: dict[str, tuple[str, ...]] = {  # the fields each op takes, besides "op"
    "time": (), "advance": tuple(DURATIONS), "set": ("at",), "import": ("kind", "csv", "strict"),
    "register": ("imei", "reason"), "block": ("imei", "reason"), "unblock": ("imei", "reason"),
    "notices": ("imei",),
}
OPS = tuple(FIELDS)
JSON_TYPES = {list: "an array", str: "a string", int: "a number", float: "a number", bool: "true or false",
              type(None): "null"}


class ControlStartError(Exception):
    """The control socket cannot be opened; the message says why."""


class RequestError(Exception):
    """A request refused: ``kind`` for the counter (bad_input.KIND), the message for the reply."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


def parse_lab_time(text: str) -> datetime:
    """A lab time: an ISO time (UTC unless it carries an offset) or a date alone (00:00 UTC
    that day), as an aware UTC datetime. ValueError saying what is accepted."""
    try:
        return parse_moment(text, date_hour=0).astimezone(UTC)
    except ValueError:
        raise ValueError(f"{text!r} is not an ISO time (2026-01-31T08:00:00, UTC unless it says) "
                         "or a date (2026-01-31: 00:00 UTC)") from None


def iso(at: datetime) -> str:
    """A time as the endpoint says it: ISO 8601 in UTC (``2026-01-31T00:00:00+00:00``)."""
    return at.astimezone(UTC).isoformat()


class LabEndpoint:
    """The control socket at ``path`` of an agent on ``clock``, writing to ``registry``;
    ``observations``: the recorder whose device-type cache a TAC import makes stale."""

    def __init__(self, path: Path, clock: LabClock, registry: Registry,
                 observations: Observations | None = None) -> None:
        self.path = path
        self.clock = clock
        self.registry = registry
        self.observations = observations
        self.counters: Counter[str] = Counter()
        self.bad = BadInput(log, self.counters)
        self._server: asyncio.AbstractServer | None = None
        self._identity: tuple[int, int] | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._writes = asyncio.Lock()  # one registry write at a time, in the order asked
        self._connections = 0
        self._ops: dict[str, Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]] = {
            "time": self._time, "advance": self._advance, "set": self._set, "import": self._import,
            "register": self._register, "block": self._block, "unblock": self._unblock, "notices": self._notices}

    async def start(self) -> None:
        """Listen on ``path`` (mode 0600); ControlStartError when it cannot."""
        where = str(self.path)
        if len(os.fsencode(where)) > UNIX_PATH_MAX:
            raise ControlStartError(f"path {where} is longer than {UNIX_PATH_MAX} bytes")
        _clear_stale(self.path)
        umask = os.umask(0o077)  # the file is never readable by others, not even for a moment
        try:
            self._server = await asyncio.start_unix_server(self._serve, where, limit=MAX_REQUEST)
        except OSError as error:
            raise ControlStartError(os.strerror(error.errno) if error.errno else str(error)) from None
        finally:
            os.umask(umask)
        os.chmod(where, 0o600)
        found = os.stat(where)
        self._identity = (found.st_dev, found.st_ino)

    async def close(self) -> None:
        """Stop listening, close every connection, let a write under way commit (the registry
        is closed next), and remove the socket file (if still ours)."""
        server, self._server = self._server, None
        if server is None:
            return
        server.close()
        for writer in list(self._writers):
            writer.close()
        async with self._writes:
            pass
        with contextlib.suppress(OSError):
            found = os.stat(self.path)
            if (found.st_dev, found.st_ino) == self._identity:
                self.path.unlink()
        await server.wait_closed()
        log.info("lab control: %s", dict(self.counters))

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._connections += 1
        peer = f"lab control connection {self._connections}"
        self._writers.add(writer)
        try:
            while (line := await _read_line(reader)) is not None:
                reply = await self.answer(line, peer)
                if reply is not None:
                    writer.write(json.dumps(reply).encode() + b"\n")
                    await writer.drain()
        except ConnectionError:
            pass  # the client went away: nothing to answer
        finally:
            self._writers.discard(writer)
            writer.close()

    async def answer(self, line: bytes, peer: str = "lab control") -> dict[str, Any] | None:
        """The reply to one request line (None for a blank line: no request); TOO_LONG
        stands for a line over MAX_REQUEST bytes."""
        try:
            request = _request(line)
            if request is None:
                return None
            op = request["op"]
            self.counters[f"requests.{op}"] += 1
            return {"ok": True, **await self._ops[op](request)}
        except RequestError as error:
            self.bad(error.kind, str(error), peer)
            return {"ok": False, "error": str(error)}
        except EditError as error:
            self.bad("field", str(error), peer)
            return {"ok": False, "error": str(error)}

    # -- the ops -----------------------------------------------------------------------

    async def _time(self, _request: dict[str, Any]) -> dict[str, Any]:
        return {"now": iso(self.clock.now())}

    async def _advance(self, request: dict[str, Any]) -> dict[str, Any]:
        given = [name for name in DURATIONS if name in request]
        if not given:
            raise RequestError("field", "advance needs days, hours, minutes or seconds (a number)")
        moves = {name: _number(request, name) for name in given}
        for name, value in moves.items():
            if value < 0:
                raise RequestError("time", f"a clock never goes back (asked to move {value:g} {name}); "
                                           f"the clock stays at {iso(self.clock.now())}")
        seconds = sum(value * DURATIONS[name] for name, value in moves.items())
        try:
            self.clock.advance(seconds)
        except (ValueError, OverflowError):
            raise RequestError("time", f"cannot move the clock by {seconds:g} s: past the last date a clock "
                                       f"holds; it stays at {iso(self.clock.now())}") from None
        return {"now": iso(self.clock.now())}

    async def _set(self, request: dict[str, Any]) -> dict[str, Any]:
        try:
            self.clock.set(parse_lab_time(_text(request, "at")))
        except ValueError as error:
            raise RequestError("time", f"{error}; the clock stays at {iso(self.clock.now())}") from None
        return {"now": iso(self.clock.now())}

    async def _import(self, request: dict[str, Any]) -> dict[str, Any]:
        kind_text = _text(request, "kind")
        if kind_text not in set(ImportKind):
            raise RequestError("field", f"kind {kind_text!r} is not one of {', '.join(ImportKind)}")
        kind, text = ImportKind(kind_text), _text(request, "csv")
        strict = request.get("strict", False)
        if not isinstance(strict, bool):
            raise RequestError("field", f"strict must be true or false, got {_json_type(strict)}")
        try:
            report = await self._write(import_lines, self.registry, kind, StringIO(text.removeprefix("\ufeff"),
                                                                                    newline=""), "lab:import", strict)
        except CsvFormatError as error:
            raise RequestError("csv", f"csv: {error}; nothing imported") from None
        if kind is ImportKind.TAC and self.observations is not None:
            self.observations.forget_types()
        return _report(report)

    async def _register(self, request: dict[str, Any]) -> dict[str, Any]:
        key = edit_key(_text(request, "imei"))
        reason = edit_reason(_text(request, "reason", required=False), required=False)
        counts = await self._write(register, self.registry, key, reason, "lab:register")
        return {"imei": _imei15(key), "list": "white", "changed": bool(counts.new or counts.changed)}

    async def _block(self, request: dict[str, Any]) -> dict[str, Any]:
        key, reason = edit_key(_text(request, "imei")), edit_reason(_text(request, "reason"))
        before = await self._write(block, self.registry, key, reason or "", "lab:block")
        return {"imei": _imei15(key), "stolen": True, "already": bool(before and before.stolen),
                "known": before is not None}

    async def _unblock(self, request: dict[str, Any]) -> dict[str, Any]:
        key, reason = edit_key(_text(request, "imei")), edit_reason(_text(request, "reason"))
        after = await self._write(unblock, self.registry, key, reason or "", "lab:unblock")
        if after is None:
            raise RequestError("state", f"IMEI {_imei15(key)} is not blocked (not reported stolen); nothing changed")
        return {"imei": _imei15(key), "stolen": False, "list": after.list.value if after.list else None}

    async def _notices(self, request: dict[str, Any]) -> dict[str, Any]:
        key = edit_key(_text(request, "imei"))
        found = await asyncio.to_thread(notices_of, self.registry, key)
        return {"imei": _imei15(key), "notices": found}

    async def _write(self, write: Callable[..., Any], *args: Any) -> Any:
        """Run a registry write off the event loop, one at a time; once it committed, the
        agent's next lookup reads a fresh snapshot."""
        async with self._writes:
            try:
                return await asyncio.to_thread(write, *args)
            finally:
                self.registry.renew()


TOO_LONG = b""  # what _read_line gives for a line over MAX_REQUEST (a read line always ends with b"\n")


async def _read_line(reader: asyncio.StreamReader) -> bytes | None:
    """The next line with its end (the last one may lack it), TOO_LONG for a line over
    MAX_REQUEST bytes (read past, never held whole), None at the end of the stream."""
    try:
        return await reader.readuntil(b"\n")
    except asyncio.IncompleteReadError as error:
        return error.partial or None
    except asyncio.LimitOverrunError as error:
        consumed = error.consumed
    while True:  # read past the rest of the overlong line, a buffer at a time
        try:
            await reader.readexactly(consumed)
            await reader.readuntil(b"\n")
            return TOO_LONG
        except asyncio.IncompleteReadError:
            return TOO_LONG
        except asyncio.LimitOverrunError as error:
            consumed = error.consumed


def _request(line: bytes) -> dict[str, Any] | None:
    """The request on one line, checked: an object with a known op and only its fields."""
    if line == TOO_LONG:
        raise RequestError("too_long", f"request line longer than {MAX_REQUEST:,} bytes; read past it")
    try:
        text = line.decode()
    except UnicodeDecodeError as error:
        raise RequestError("not_utf8", f"not UTF-8 text at byte {error.start}") from None
    if not text.strip():
        return None
    try:
        request = json.loads(text)
    except json.JSONDecodeError as error:
        raise RequestError("not_json", f"not JSON: {error}") from None
    if not isinstance(request, dict):
        raise RequestError("not_object", f"a request is one JSON object a line, got {_json_type(request)}")
    op = request.get("op")
    if op not in FIELDS:
        what = "no op" if op is None else f"unknown op {op!r}" if isinstance(op, str) else "op must be a string"
        raise RequestError("op", f"{what}; the ops are {', '.join(OPS)}")
    extra = sorted(set(request) - {"op", *FIELDS[op]})
    if extra:
        takes = ", ".join(FIELDS[op]) or "no fields"
        raise RequestError("field", f"{op} does not take {', '.join(map(repr, extra))}; it takes {takes}")
    return request


def _text(request: dict[str, Any], name: str, required: bool = True) -> str:
    value = request.get(name)
    if value is None and not required:
        return ""
    if value is None:
        raise RequestError("field", f"{request['op']} needs {name!r} (a string)")
    if not isinstance(value, str):
        raise RequestError("field", f"{name} must be a string, got {_json_type(value)}")
    return value


def _number(request: dict[str, Any], name: str) -> float:
    value = request[name]
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise RequestError("field", f"{name} must be a number, got {_json_type(value)}")
    return float(value)


def _json_type(value: Any) -> str:
    return JSON_TYPES.get(type(value), "an object")


def _imei15(key: str) -> str:
    return key + luhn_check_digit(key)


def _report(report: ImportReport) -> dict[str, Any]:
    counts = report.counts
    return {"kind": report.kind.value, "rows": report.rows, "imported": report.imported, "blank": report.blank,
            "counts": {"new": counts.new, "changed": counts.changed, "unchanged": counts.unchanged},
            "bad": [{"line": bad.line, "reason": bad.reason} for bad in report.bad], "refused": report.refused}


def _clear_stale(path: Path) -> None:
    """Remove a socket file no process listens on (left by an agent killed with -9); refuse
    a live one and anything that is not a socket."""
    try:
        found = os.lstat(path)
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(found.st_mode):
        raise ControlStartError("the path exists and is not a socket")
    with socket.socket(socket.AF_UNIX) as probe:
        try:
            probe.connect(str(path))
        except OSError:
            path.unlink(missing_ok=True)
            return
    raise ControlStartError("in use: another agent listens on it")
