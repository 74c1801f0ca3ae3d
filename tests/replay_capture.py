"""Captures of real exchanges for the replay tests: a recording TCP relay between the simulator
and a real agent keeps every read, with its time and the real addresses of the two ends (the
simulator's own port and the agent's), and netio/pcap.py writes them as a pcap.

Also the requests the tests send (``ASKED``), and ``ask`` to send them through the relays."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from pathlib import Path

from netio.pcap import Record, write_pcap
from simulator.demo_registry import BLACK, GREY, IMSI, WHITE, imei15
from simulator.mme import send_ecr
from simulator.msc import send_checkimei

LOOPBACK = "127.0.0.1"
UNKNOWN_TAC_IMEI = "99999999000001"  # a TAC the catalogue lacks
# (interface, IMEI, IMSI, MAP version): GREY is asked once, so blocking it changes one answer
ASKED: list[tuple[str, str, str | None, int]] = [
    ("S13", imei15(WHITE), IMSI, 0), ("S13", GREY, None, 0), ("S13", imei15(BLACK), None, 0),
    ("S13", UNKNOWN_TAC_IMEI, None, 0), ("MAP", WHITE, None, 3), ("MAP", BLACK, None, 2),
    ("MAP", WHITE, IMSI, 2), ("MAP", UNKNOWN_TAC_IMEI, None, 1)]


async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, records: list[Record],
                src: tuple[str, int], dst: tuple[str, int]) -> None:
    try:
        while data := await reader.read(65536):
            records.append(Record(time.time(), src[0], src[1], dst[0], dst[1], data))
            writer.write(data)
            await writer.drain()
    except ConnectionError:
        pass
    finally:
        writer.close()


@contextlib.asynccontextmanager
async def recording_relay(upstream: tuple[str, int], records: list[Record]) -> AsyncIterator[tuple[str, int]]:
    """A relay to ``upstream``; yields its own address. Each chunk read either way is recorded as
    sent between the client's address and ``upstream``."""
    tasks: list[asyncio.Task[None]] = []

    async def accepted(client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        client = client_writer.get_extra_info("peername")[:2]
        agent_reader, agent_writer = await asyncio.open_connection(*upstream)
        tasks.append(asyncio.ensure_future(_pump(client_reader, agent_writer, records, client, upstream)))
        tasks.append(asyncio.ensure_future(_pump(agent_reader, client_writer, records, upstream, client)))

    server = await asyncio.start_server(accepted, LOOPBACK, 0)
    try:
        yield LOOPBACK, server.sockets[0].getsockname()[1]
    finally:
        server.close()
        await asyncio.gather(*tasks, return_exceptions=True)


async def ask(diameter: tuple[str, int], m3ua: tuple[str, int]) -> list[str]:
    """Every request of ASKED, S13 to ``diameter``, MAP to ``m3ua``; each answer in one line."""
    answers = []
    for interface, imei, imsi, version in ASKED:
        if interface == "S13":
            ecr = await send_ecr(*diameter, imei, imsi=imsi)
            answers.append(f"{ecr.result_code} {ecr.equipment_status}")
        else:
            check = await send_checkimei(*m3ua, imei, imsi=imsi, version=version)
            answers.append(f"{check.message} {check.status} {check.error_name}")
    return answers


async def ask_recorded(diameter: tuple[str, int], m3ua: tuple[str, int], records: list[Record]) -> list[str]:
    """``ask`` through recording relays."""
    async with recording_relay(diameter, records) as s13, recording_relay(m3ua, records) as map_relay:
        return await ask(s13, map_relay)


def capture_run(path: Path, diameter: tuple[str, int], m3ua: tuple[str, int]) -> list[Record]:
    """Ask ASKED of the agent at ``diameter`` and ``m3ua`` and write the exchanges to ``path``."""
    records: list[Record] = []
    asyncio.run(ask_recorded(diameter, m3ua, records))
    write_pcap(path, records)
    return records
