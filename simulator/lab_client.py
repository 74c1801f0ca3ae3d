"""The client of an agent's lab control endpoint (``eir serve --lab-clock``, agent/lab.py):
JSON lines over its Unix socket, one request and its reply at a time. A refused request
raises LabControlError with the agent's own words; a path where no agent listens raises
LabControlError saying so."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from pathlib import Path
from typing import Any

__all__ = ["LabControl", "LabControlError", "parse_duration"]

REPLY_LIMIT = 4 * 1024 * 1024  # bytes of one reply line
UNITS = {"d": 86400.0, "h": 3600.0, "m": 60.0, "s": 1.0}
_DURATION = re.compile(r"(\d+(?:\.\d+)?)([dhms])")


class LabControlError(Exception):
    """The endpoint refused a request, or there is no endpoint; the message says which."""


def parse_duration(text: str) -> float:
    """Seconds of a duration such as ``30d``, ``12h``, ``90m``, ``45s`` or ``1d12h``
    (a number alone: seconds). ValueError for anything else."""
    cleaned = text.strip().lower()
    try:
        return float(cleaned)
    except ValueError:
        pass
    parts = _DURATION.findall(cleaned)
    if not cleaned or "".join(number + unit for number, unit in parts) != cleaned:
        raise ValueError(f"{text!r} is not a duration: a number and a unit, d h m or s (30d, 12h, 90m, 45s, 1d12h)")
    return sum(float(number) * UNITS[unit] for number, unit in parts)


class LabControl:
    """One connection to a control socket: ``await LabControl.connect(path)``, then the ops.
    Times are the agent's ISO UTC strings."""

    def __init__(self, path: Path, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.path = path
        self._reader, self._writer = reader, writer
        self._lock = asyncio.Lock()  # one request in flight: replies come in order

    @classmethod
    async def connect(cls, path: str | Path) -> LabControl:
        path = Path(path)
        try:
            reader, writer = await asyncio.open_unix_connection(str(path), limit=REPLY_LIMIT)
        except OSError as error:
            raise LabControlError(f"no control endpoint at {path}: is the agent running with --lab-clock? "
                                  f"({error.strerror or error})") from None
        return cls(path, reader, writer)

    async def request(self, request: dict[str, Any]) -> dict[str, Any]:
        """Send one request; its reply when ``ok``, else LabControlError(the agent's error)."""
        async with self._lock:
            try:
                self._writer.write(json.dumps(request).encode() + b"\n")
                await self._writer.drain()
                line = await self._reader.readline()
            except (OSError, ValueError) as error:
                raise LabControlError(f"control endpoint {self.path}: {error}") from None
        if not line:
            raise LabControlError(f"control endpoint {self.path} closed the connection (the agent stopped?)")
        reply = json.loads(line)
        if not reply.get("ok"):
            raise LabControlError(str(reply.get("error", reply)))
        return dict(reply)

    async def time(self) -> str:
        return str((await self.request({"op": "time"}))["now"])

    async def advance(self, seconds: float) -> str:
        return str((await self.request({"op": "advance", "seconds": seconds}))["now"])

    async def set(self, at: str) -> str:
        return str((await self.request({"op": "set", "at": at}))["now"])

    async def import_rows(self, kind: str, csv_text: str, strict: bool = False) -> dict[str, Any]:
        """The import report: rows, imported, blank, counts, bad [{line, reason}], refused."""
        return await self.request({"op": "import", "kind": kind, "csv": csv_text, "strict": strict})

    async def register(self, imei: str, reason: str | None = None) -> dict[str, Any]:
        return await self.request({"op": "register", "imei": imei, **({"reason": reason} if reason else {})})

    async def block(self, imei: str, reason: str) -> dict[str, Any]:
        return await self.request({"op": "block", "imei": imei, "reason": reason})

    async def unblock(self, imei: str, reason: str) -> dict[str, Any]:
        return await self.request({"op": "unblock", "imei": imei, "reason": reason})

    async def notices(self, imei: str) -> list[dict[str, Any]]:
        """Every notice queued for the IMEI, oldest first: event, deadline, imsi, msisdn, created_at."""
        return list((await self.request({"op": "notices", "imei": imei}))["notices"])

    async def close(self) -> None:
        self._writer.close()
        with contextlib.suppress(OSError):
            await self._writer.wait_closed()

    async def __aenter__(self) -> LabControl:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
