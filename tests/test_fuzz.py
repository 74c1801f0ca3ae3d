"""Fuzzing the decoder (the h11 invariant): whatever the octets, ``decode_message`` and
``MessageReader.feed`` raise nothing but FramingError, repr never raises, and a decoded
request with problems gets an error answer that encodes, decodes, and carries the chosen
problem's Result-Code, with no fault of its own.

Each test is marked ``fuzz`` and runs the Hypothesis profile's count: 10,000 examples in CI.
"""

from __future__ import annotations

import random
import struct

import pytest
from hypothesis import event, example, given, note
from hypothesis import strategies as st

from diameter.answers import error_answer, result_code_of, select_problem
from diameter.avp import Avp
from diameter.constants import APP_COMMON, APP_S13, AVP_FLAG_V, ResultCode, is_protocol_error
from diameter.dictionary import BASE_S13, avp_key
from diameter.errors import FramingError
from diameter.message import Message, MessageReader, decode_message, frame_length
from tests.diameter_samples import SAMPLES, raw_avp, sample_bytes

pytestmark = pytest.mark.fuzz

ORIGIN_HOST, ORIGIN_REALM = "eir.localdomain", "localdomain"
NAMES = sorted(SAMPLES)
WIRES = {name: sample_bytes(name) for name in NAMES}
KNOWN_CODES = sorted({d.code for d in BASE_S13.avps.values()})
COMMANDS = [257, 280, 282, 324]
GROUPED_CODES = sorted({key & 0xFFFFFFFF for key in BASE_S13.grouped})
SESSION_ID, PROXY_INFO = (BASE_S13.avp_def(n) for n in ("Session-Id", "Proxy-Info"))
OURS = {"Origin-Host", "Origin-Realm", "Result-Code", "Error-Message"}  # every error answer has these


# --- the invariant ---------------------------------------------------------------------


def _clean(request: Message, avp: Avp | None) -> bool:
    named = {id(a) for p in request.problems for a in (p.avp, *p.path)}
    return avp is not None and avp.value is not None and id(avp) not in named


def unexplained(request: Message, answer: Message) -> list[object]:
    """The answer's problems that are not the request's own.

    RFC 6733 6.2 has the answer carry the request's Session-Id and Proxy-Info AVPs as they
    came, faults and all; and an AVP the answer's grammar requires but the request gave no
    usable copy of (Auth-Session-State of an ECA, say) cannot be made up. Anything else
    wrong in our answer is our fault.
    """
    echoed = [a for a in answer.avps
              if (a.code, a.vendor_id) in {(SESSION_ID.code, 0), (PROXY_INFO.code, 0)} and a in request.avps]
    left: list[object] = []
    for problem in answer.problems:
        top = problem.path[0] if problem.path else problem.avp
        if any(top is a for a in echoed):
            continue
        missing = problem.avp
        if (problem.result_code == ResultCode.DIAMETER_MISSING_AVP and not problem.path and missing is not None
                and missing.definition is not None and missing.definition.name not in OURS
                and not _clean(request, request.find(missing.definition.name))):
            continue
        left.append(problem)
    return left


def exercise(wire: bytes) -> Message | None:
    """Decode ``wire`` every way; check the invariants; the message when it decoded."""
    try:
        message: Message | None = decode_message(wire)
    except FramingError:
        message = None
    reader = MessageReader()
    try:
        frames: list[bytes] | None = reader.feed(wire)
    except FramingError:
        frames = None
    # A whole message decodes exactly when the reader sees one frame and nothing after.
    assert (message is not None) == (frames == [wire] and reader.buffered == 0)
    for frame in frames or ():
        assert frame_length(frame) == len(frame)
    if message is None:
        event("framing error")
        return None
    # Re-encoding keeps every AVP as received (only undecodable tails and padding are lost).
    again = decode_message(message.to_bytes())
    assert again.avps == message.avps
    assert again.to_bytes() == message.to_bytes()
    assert repr(message)  # every AVP's repr within
    assert repr(message.problems)
    if message.is_request and message.problems:
        check_error_answer(message)
    else:
        event("answer" if not message.is_request else "clean request")
    return message


def check_error_answer(request: Message) -> None:
    problem = select_problem(request.problems)
    assert problem is not None
    event(f"answered {problem.result_code}")
    answer = error_answer(request, ORIGIN_HOST, ORIGIN_REALM, problem)
    assert repr(answer)
    wire = answer.to_bytes()
    back = decode_message(wire, max_length=1 << 24)
    assert result_code_of(back) == problem.result_code
    assert back.is_error == is_protocol_error(problem.result_code)
    assert not back.is_request
    assert (back.hop_by_hop, back.end_to_end) == (request.hop_by_hop, request.end_to_end)
    assert unexplained(request, back) == []
    assert repr(back)


# --- (a) random octets -----------------------------------------------------------------


@given(st.binary(max_size=400))
@example(b"")
@example(b"\x01\x00\x00\x14" + b"\x00" * 16)
def test_random_octets(wire: bytes) -> None:
    exercise(wire)


def _header(length: int, flags: int, command: int, app: int) -> bytes:
    return struct.pack(">IIIII", (1 << 24) | length, (flags << 24) | command, app, 0x11, 0x22)


@given(flags=st.integers(0, 255), command=st.sampled_from(COMMANDS) | st.integers(0, 0xFFFFFF),
       app=st.sampled_from([APP_COMMON, APP_S13]) | st.integers(0, 2**32 - 1),
       seed=st.integers(0, 2**64 - 1))
@example(flags=0x80, command=280, app=0, seed=0)
def test_valid_header_random_body(flags: int, command: int, app: int, seed: int) -> None:
    rng = random.Random(seed)
    body = rng.randbytes(4 * rng.randint(0, 100))
    exercise(_header(20 + len(body), flags, command, app) + body)


def random_avp(rng: random.Random, depth: int = 0) -> bytes:
    """An AVP-shaped run of octets: a known or random code, random flags and vendor, a
    length that is right, or off, or absurd; Grouped codes nest more of the same."""
    code = rng.choice(KNOWN_CODES) if rng.random() < 0.8 else rng.getrandbits(32)
    vendor = rng.choice([None, None, 10415, 0, rng.getrandbits(32)])
    flags = rng.choice([0x40, 0x00, 0xC0, rng.getrandbits(8)]) & ~AVP_FLAG_V
    if depth < 3 and rng.random() < 0.25:
        code = rng.choice(GROUPED_CODES)
        data = b"".join(random_avp(rng, depth + 1) for _ in range(rng.randint(0, 4)))
    else:
        data = rng.randbytes(rng.choice([0, 1, 2, 4, 5, 6, 8, 14, 18, rng.randint(0, 40)]))
    length = None if rng.random() < 0.8 else rng.choice([0, 4, 7, 8, 11, 12, 13, 1000, rng.getrandbits(24)])
    return raw_avp(code, data, flags=flags, vendor=vendor, length=length, pad=rng.random() < 0.9)


@given(flags=st.sampled_from([0x80, 0xC0, 0x00, 0x40, 0xA0]), command=st.sampled_from(COMMANDS),
       app=st.sampled_from([APP_COMMON, APP_S13]), seed=st.integers(0, 2**64 - 1))
def test_valid_header_avp_shaped_body(flags: int, command: int, app: int, seed: int) -> None:
    rng = random.Random(seed)
    body = b"".join(random_avp(rng) for _ in range(rng.randint(0, 10)))
    body += b"\0" * (-len(body) % 4)
    wire = _header(20 + len(body), flags, command, app) + body
    note(f"wire: {wire.hex()}")
    exercise(wire)


# --- (b) mutations of the valid samples ----------------------------------------------------


def avp_offsets(data: bytes, start: int, end: int) -> list[int]:
    """Offsets of every AVP header in ``data[start:end]``, Grouped members included."""
    found: list[int] = []
    offset = start
    while offset + 8 <= end:
        code, flags_length = struct.unpack_from(">II", data, offset)
        flags, length = flags_length >> 24, flags_length & 0xFFFFFF
        header = 12 if flags & AVP_FLAG_V else 8
        vendor = struct.unpack_from(">I", data, offset + 8)[0] if header == 12 else 0
        found.append(offset)
        if avp_key(code, vendor) in BASE_S13.grouped:
            found.extend(avp_offsets(data, offset + header, offset + length))
        offset += (length + 3) & ~3
    return found


def top_level_avps(wire: bytes) -> list[bytes]:
    return [avp.to_bytes() for avp in decode_message(wire).avps]


OFFSETS = {name: avp_offsets(wire, 20, len(wire)) for name, wire in WIRES.items()}
TOP_AVPS = {name: top_level_avps(wire) for name, wire in WIRES.items()}


def mutate(name: str, rng: random.Random) -> bytes:
    """A sample with a few whole-AVP edits, then a few octet edits, usually with the
    message length field put right again so the damage reaches the AVP decoder."""
    avps = list(TOP_AVPS[name])
    for _ in range(rng.choice([0, 0, 1, 2])):
        if not avps:
            break
        i, j = rng.randrange(len(avps)), rng.randrange(len(avps))
        edit = rng.choice(["swap", "drop", "duplicate", "foreign"])
        if edit == "swap":
            avps[i], avps[j] = avps[j], avps[i]
        elif edit == "drop":
            del avps[i]
        elif edit == "duplicate":
            avps.insert(j, avps[i])
        else:  # an AVP of another sample
            avps.insert(i, rng.choice(TOP_AVPS[rng.choice(NAMES)]))
    wire = bytearray(WIRES[name][:20] + b"".join(avps))
    struct.pack_into(">I", wire, 0, (1 << 24) | len(wire))
    offsets = [at for at in OFFSETS[name] if at + 8 <= len(wire)]
    for _ in range(rng.randint(1, 4)):
        op = rng.choice(["flip", "overwrite", "insert", "delete", "truncate", "avp-length", "avp-length",
                         "avp-flags", "avp-code", "header-flags"])
        size = len(wire)
        at = rng.randrange(size + 1)
        if op == "flip" and at < size:
            wire[at] ^= 1 << rng.randrange(8)
        elif op == "overwrite":
            chunk = rng.randbytes(rng.randint(1, 8))
            wire[at:at + len(chunk)] = chunk
        elif op == "insert":
            wire[at:at] = rng.randbytes(rng.randint(1, 16))
        elif op == "delete":
            del wire[at:at + rng.randint(1, 16)]
        elif op == "truncate":
            del wire[at:]
        elif op.startswith("avp-") and offsets:
            at = rng.choice(offsets)
            if at + 8 > size:
                continue
            code, flags_length = struct.unpack_from(">II", wire, at)
            flags, length = flags_length >> 24, flags_length & 0xFFFFFF
            if op == "avp-length":
                length = rng.choice([0, 1, 7, 8, 11, 12, length - 4, length - 1, length + 1, length + 4,
                                     0xFFFFFF, rng.getrandbits(24)]) & 0xFFFFFF
            elif op == "avp-flags":
                flags = rng.getrandbits(8)
            else:
                code = rng.choice(KNOWN_CODES) if rng.random() < 0.8 else rng.getrandbits(32)
            struct.pack_into(">II", wire, at, code, (flags << 24) | length)
        elif op == "header-flags" and size > 4:
            wire[4] = rng.getrandbits(8)
    if rng.random() < 0.9 and len(wire) >= 4:
        if rng.random() < 0.5:
            wire += b"\0" * (-len(wire) % 4)
        struct.pack_into(">I", wire, 0, (1 << 24) | len(wire))
    return bytes(wire)


# One test per command and direction, each drawing among that message's samples.
KINDS = {name.split("-")[0]: [n for n in NAMES if n.split("-")[0] == name.split("-")[0]] for name in NAMES}


@pytest.mark.parametrize("kind", sorted(KINDS))
@given(seed=st.integers(0, 2**64 - 1))
def test_mutated_sample(kind: str, seed: int) -> None:
    rng = random.Random(seed)
    wire = mutate(rng.choice(KINDS[kind]), rng)
    note(f"wire: {wire.hex()}")
    exercise(wire)


# --- the stream reader ---------------------------------------------------------------------


@given(seed=st.integers(0, 2**64 - 1))
def test_reader_on_any_stream(seed: int) -> None:
    """Samples and garbage back to back, fed in random cuts."""
    rng = random.Random(seed)
    pieces = [rng.choice(list(WIRES.values())) if rng.random() < 0.7 else rng.randbytes(rng.randint(0, 40))
              for _ in range(rng.randint(0, 8))]
    cuts = [rng.randint(1, 64) for _ in range(rng.randint(0, 20))]
    stream = b"".join(pieces)
    note(f"stream: {stream.hex()} cuts: {cuts}")
    reader = MessageReader()
    frames: list[bytes] = []
    at = 0
    try:
        for size in [*cuts, len(stream)]:
            frames.extend(reader.feed(stream[at:at + size]))
            at += size
    except FramingError:
        pass
    # Frames are exactly the stream's prefix, cut where the length fields say.
    assert b"".join(frames) == stream[:sum(map(len, frames))]
    for frame in frames:
        assert frame_length(frame) == len(frame)
        decode_message(frame)  # a frame is one whole message: no FramingError
