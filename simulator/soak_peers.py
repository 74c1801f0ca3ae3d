"""The soak run's hostile peers, in a process of their own so that they do not slow the
measuring load: side connections that send fuzzed Diameter and M3UA frames, idle
connections that never say a word, and an MME that sends requests and never reads its
answers. Each keeps at it through the agent's restarts (reconnecting) until its window
closes; the counts are printed as one JSON line at the end.

    python -m simulator.soak_peers '{"host": ..., "s13_port": ..., "m3ua_port": ..., ...}'

Windows are (start, end) in ``time.monotonic()`` seconds, which on Linux is one clock for
every process of the machine.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import socket
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from typing import Any

from diameter.capabilities import LocalNode, build_cer
from simulator.mme import build_ecr
from simulator.msc import MscIdentity, encode_request
from simulator.soak_population import FUZZ_TAC, LOCAL_PREFIX, TACS

FUZZER = LocalNode("fuzz.soak.localdomain", "localdomain", product_name="eir-soak-fuzzer")
SILENT = LocalNode("mute.soak.localdomain", "localdomain", product_name="eir-soak-mute")
FUZZ_GT = "992900000666"  # the fuzzing MSC's calling address: not the measuring MSC's
ASPUP = bytes.fromhex("0100030100000008")
ASPAC = bytes.fromhex("0100040100000008")
BATCHES_PER_S = 20
WRITE_LIMIT = 1 << 20  # bytes our side may queue for a peer that stopped reading us


# --- mutations -------------------------------------------------------------------------------

def mutate(frame: bytes, rng: random.Random, header: int, length_at: slice, keep_framing: bool) -> bytes:
    """``frame`` with one to four byte-level changes (set, insert, delete, truncate) past its
    ``header`` octets; with ``keep_framing`` the length field is made true again (padded to
    4 octets), so the stream stays readable and the body is what is judged; otherwise the
    header is fair game too."""
    data = bytearray(frame)
    low = header if keep_framing else 0
    for _ in range(rng.randint(1, 4)):
        at = rng.randrange(low, len(data) + 1)
        operation = rng.choice(("set", "set", "insert", "delete", "truncate"))
        if operation == "set" and at < len(data):
            data[at] = rng.randrange(256)
        elif operation == "insert":
            data.insert(at, rng.randrange(256))
        elif operation == "delete" and at < len(data):
            del data[at]
        elif operation == "truncate" and at > low:
            del data[at:]
    if keep_framing:
        data.extend(bytes(-len(data) % 4))
        width = length_at.stop - length_at.start
        data[length_at] = len(data).to_bytes(width, "big")
    return bytes(data)


def diameter_frame(rng: random.Random, base: bytes) -> bytes:
    """A mutated ECR with fresh Hop-by-Hop and End-to-End ids (a tenth with a broken header)."""
    frame = bytearray(base)
    frame[12:20] = rng.randbytes(8)
    return mutate(bytes(frame), rng, 20, slice(1, 4), keep_framing=rng.random() < 0.9)


def m3ua_frame(rng: random.Random, base: bytes) -> bytes:
    """A mutated M3UA DATA carrying a CheckIMEI (a tenth with a broken header)."""
    return mutate(base, rng, 8, slice(4, 8), keep_framing=rng.random() < 0.9)


# --- the peers -----------------------------------------------------------------------------------

async def _open(host: str, port: int, limit: int = 1 << 16) -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | None:
    try:
        return await asyncio.wait_for(asyncio.open_connection(host, port, limit=limit), 2)
    except (OSError, TimeoutError):
        await asyncio.sleep(0.2)
        return None


async def connections(host: str, port: int, window: tuple[float, float], limit: int = 1 << 16
                      ) -> AsyncIterator[tuple[asyncio.StreamReader, asyncio.StreamWriter]]:
    """Connections to ``host:port`` from the window's start to its end, one at a time: the
    next is opened once the caller is done with the last (the agent closed it, or went
    away), a failed attempt tried again after 0.2 s."""
    await _until(window[0])
    while time.monotonic() < window[1]:
        opened = await _open(host, port, limit)
        if opened is not None:
            yield opened


async def _discard(reader: asyncio.StreamReader) -> None:
    with contextlib.suppress(OSError):
        while await reader.read(1 << 16):
            pass


async def fuzz(host: str, port: int, window: tuple[float, float], rate: int, hello: bytes,
               frame: Callable[[random.Random], bytes], counts: Counter[str], name: str, seed: int) -> None:
    """Mutated frames at ``rate`` a second on one connection (reopened when the agent closes
    it), after ``hello`` (CER; ASPUP and ASPAC); the answers are read and dropped."""
    rng = random.Random(seed)
    async for reader, writer in connections(host, port, window):
        counts[f"{name}_connections"] += 1
        drain = asyncio.create_task(_discard(reader))
        try:
            writer.write(hello)
            while time.monotonic() < window[1] and not drain.done():
                batch = [frame(rng) for _ in range(max(1, rate // BATCHES_PER_S))]
                writer.write(b"".join(batch))
                counts[f"{name}_frames"] += len(batch)
                await asyncio.wait_for(writer.drain(), 2)
                await asyncio.sleep(1 / BATCHES_PER_S)
        except (OSError, TimeoutError):
            pass
        finally:
            writer.close()
            drain.cancel()
            await asyncio.gather(drain, return_exceptions=True)


async def idle(host: str, port: int, window: tuple[float, float], counts: Counter[str], name: str) -> None:
    """One connection that never sends a byte, reopened a second after the agent closes it."""
    async for reader, writer in connections(host, port, window):
        counts[f"{name}_opened"] += 1
        try:
            await asyncio.wait_for(reader.read(1 << 16), max(0.0, window[1] - time.monotonic()))
            counts[f"{name}_closed_by_agent"] += 1
            await asyncio.sleep(1)
        except (OSError, TimeoutError):
            pass
        finally:
            writer.close()


async def non_reader(host: str, port: int, window: tuple[float, float], rate: int, counts: Counter[str]) -> None:
    """An MME that sends CER and then white-list ECRs at ``rate`` a second and never reads
    an answer: our receive buffer is kept small, so the agent's answers pile up on its side.
    When the agent stops reading us (our writes stop draining) we stop writing too."""
    key = TACS["white"] + "000000"
    base = build_ecr(SILENT, key, LOCAL_PREFIX + "0000000000", session="mute;0").to_bytes()
    rng = random.Random(3)
    async for _, writer in connections(host, port, window, limit=4096):
        counts["non_reader_connections"] += 1
        sock = writer.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        try:
            writer.write(build_cer(SILENT).to_bytes())
            while time.monotonic() < window[1] and not writer.is_closing():
                if writer.transport.get_write_buffer_size() < WRITE_LIMIT:
                    batch = bytearray()
                    for _ in range(max(1, rate // BATCHES_PER_S)):
                        frame = bytearray(base)
                        frame[12:20] = rng.randbytes(8)
                        batch += frame
                    writer.write(bytes(batch))
                    counts["non_reader_requests"] += max(1, rate // BATCHES_PER_S)
                else:
                    counts["non_reader_stalled_batches"] += 1
                await asyncio.sleep(1 / BATCHES_PER_S)
        except OSError:
            pass
        finally:
            writer.transport.abort()
        await asyncio.sleep(0.2)


async def _until(at: float) -> None:
    await asyncio.sleep(max(0.0, at - time.monotonic()))


async def run(plan: dict[str, Any]) -> Counter[str]:
    """Every hostile peer of ``plan`` (see ``simulator.soak.Schedule.hostile_plan``)."""
    host, s13, m3ua = plan["host"], plan["s13_port"], plan["m3ua_port"]
    counts: Counter[str] = Counter()
    ecr = build_ecr(FUZZER, FUZZ_TAC + "000001", LOCAL_PREFIX + "9999999999", session="fuzz;0").to_bytes()
    data = encode_request(MscIdentity(calling_gt=FUZZ_GT), bytes(4), FUZZ_TAC + "0000010", 3)
    cer = build_cer(FUZZER).to_bytes()
    tasks = []
    for number, window in enumerate(plan["fuzz"]):
        tasks.append(fuzz(host, s13, window, plan["fuzz_rate"], cer, lambda rng: diameter_frame(rng, ecr),
                          counts, "diameter_fuzz", 100 + number))
        tasks.append(fuzz(host, m3ua, window, plan["fuzz_rate"], ASPUP + ASPAC, lambda rng: m3ua_frame(rng, data),
                          counts, "m3ua_fuzz", 200 + number))
    for window in plan["idle"]:
        tasks += [idle(host, port, window, counts, name) for port, name in ((s13, "idle_s13"), (m3ua, "idle_m3ua"))
                  for _ in range(plan["idle_count"])]
    for window in plan["non_reader"]:
        tasks.append(non_reader(host, s13, window, plan["non_reader_rate"], counts))
    await asyncio.gather(*tasks)
    return counts


def main() -> None:
    counts = asyncio.run(run(json.loads(sys.argv[1])))
    print(json.dumps(dict(counts)), flush=True)


if __name__ == "__main__":
    main()
