"""Seeded frames for socket-level fuzzing, one source per layer, each keeping the framing
below the fuzzed layer valid so that a well-behaved agent must answer or drop the frame
and keep the connection (issue 12, Proof):

- ``diameter``: a 20-octet header of version 1 whose length matches the frame (a multiple
  of 4, under the agent's maximum), with mutated header bits and AVPs of an ECR or DWR;
- ``m3ua``: an M3UA common header (version 1, length that matches, a multiple of 4) with
  mutated message class, type and parameters;
- ``sccp``: a valid M3UA DATA (SI 3) carrying a mutated SCCP UDT, XUDT or UDTS;
- ``tcap``: a valid M3UA DATA and SCCP UDT to the EIR's SSN 9 carrying a mutated TCAP
  message (mostly a MAP CheckIMEI Begin).

The mutations are those of ``tests/fuzzing.py`` (set, insert, delete and truncate octets)
driven by a ``random.Random`` instead of Hypothesis, plus structural ones per layer
(random AVPs and parameters, header fields, BER tags and lengths). Every source also
makes the *probes*: valid CheckIMEI / ECR requests for a white IMEI, numbered, whose
answers the driver checks. A probe's number sits where no fuzzed frame puts it (the
Hop-by-Hop id or the TCAP otid starting with 0xF), so its answer is known for certain.
"""

from __future__ import annotations

import random
import struct
from collections.abc import Callable
from dataclasses import dataclass

from diameter.answers import result_code_of
from diameter.capabilities import LocalNode, build_cer
from diameter.constants import APP_COMMON, APP_S13, Command
from diameter.dictionary import BASE_S13
from diameter.message import decode_message, make_message
from sigtran import tcap
from sigtran.m3ua import Kind, Message, Tag, TrafficMode, build_aspac, build_data, build_notify, error_message, u32
from sigtran.sccp import SSN_EIR, SSN_MSC, Udt, Udts, Xudt, Xudts, ssn_address
from simulator.demo_registry import WHITE, imei15
from simulator.load_map_wire import AnswerReader
from simulator.mme import build_ecr
from simulator.msc import MscIdentity, check_imei_begin, check_imei_udt, encode_request, map_imei

LAYERS = ("diameter", "m3ua", "sccp", "tcap")
PROBE_MARK = 0xF0000000  # probes' Hop-by-Hop ids and otids: 0xF followed by their number
PROBE_MASK = 0xF0000000
MAX_BODY = 2048  # fuzzed frames stay well under the agent's maximum message lengths
MAX_ANSWER = 1 << 20
MAX_LARGE = 65_000  # the rare large frame, under the agent's 65,536-octet maximum
RARE = 0.003  # the share of frames that are large, long or deep
MAX_TCAP = 230  # what fits a UDT's one-octet data length with room for mutations
FUZZ_NODE = LocalNode("fuzz-mme.localdomain", "localdomain", product_name="eir-fuzz")
WHITE_IMEI = WHITE  # the demo registry's white IMEI (simulator.demo), 14 digits
MAP_IDENTITY = MscIdentity()
_HEADER = struct.Struct(">IIIII")
_U32 = struct.Struct(">I")
_M3UA_HEADER = struct.Struct(">BBBBI")
_TLV = struct.Struct(">HH")
_BARRIER = b"barrier:"  # heartbeat data of the driver's BEATs
_DATA_HEADER = struct.Struct(">BBBBIHHIIBBBB")
_DPR, _FLAG_R = int(Command.DISCONNECT_PEER), 0x80
_COMMANDS = [257, 280, 282, 324, 316, 318, 272]  # CER, DWR, DPR, ECR, ULR, AIR, CCR
_KNOWN_AVP_CODES = sorted({d.code for d in BASE_S13.avps.values()})
_GROUPED_CODES = sorted({key & 0xFFFFFFFF for key in BASE_S13.grouped})
_M3UA_TAGS = [int(t) for t in Tag] + [0x0001, 0x0002, 0x0003, 0x0005, 0x0008, 0x000A, 0x0010, 0x0014, 0x0016]
_ASPUP = Message(Kind.ASPUP).to_bytes()
_ASPAC = Message(Kind.ASPAC).to_bytes()
# (class, type) that may move our ASP's state: after a batch holding one comes what brings
# the ASP back to ASP-ACTIVE, as a real ASP would, so that the probe after it is served
# (the frames of the batch after the fuzzed one meet the ASP in whatever state it left).
_RESTORE = {(3, 1): _ASPAC, (4, 1): _ASPAC, (4, 2): _ASPAC, (3, 2): _ASPUP + _ASPAC}


def mutate_octets(rng: random.Random, wire: bytes, count: int) -> bytes:
    """``count`` of set, insert, delete and truncate at random places (tests/fuzzing.py's)."""
    mutated = bytearray(wire)
    for _ in range(count):
        operation = rng.randrange(8)
        index = rng.randrange(len(mutated) + 1)
        if operation < 4 and index < len(mutated):
            mutated[index] = rng.getrandbits(8)
        elif operation < 6:
            mutated.insert(index, rng.getrandbits(8))
        elif operation == 6 and index < len(mutated):
            del mutated[index]
        elif operation == 7 and rng.random() < 0.5:
            del mutated[index:]
    return bytes(mutated)


def _not_a_probe(value: int) -> int:
    return value ^ 0x80000000 if value & PROBE_MASK == PROBE_MARK else value


def _pad4(body: bytes) -> bytes:
    return body + bytes(-len(body) % 4)


@dataclass
class Probe:
    """A valid request the driver interleaves with the fuzz: ``key`` finds its answer."""

    key: int
    wire: bytes


class FrameSource:
    """The frames of one layer: ``frame()`` the next fuzzed frame (a fuzzed message, maybe
    followed by valid ones that restore the association's state), ``probe()`` the next
    valid request, ``handshake`` what opens the connection, ``answer_key``/``answer_ok``
    to read the answers."""

    layer = ""
    framing = ""  # "diameter" or "m3ua": how the driver cuts frames

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.probes = 0

    def frame(self) -> bytes:
        raise NotImplementedError

    def batch_end(self) -> bytes:
        """Valid messages that undo what the frames made so far did to the association."""
        return b""

    def barrier(self, key: int) -> bytes:
        """A message the agent answers in any state, or b"": what the driver sends after a
        batch and waits for the answer of before it sends ``batch_end()`` and the probe, so
        that the restoring messages are not read together with the frames they repair."""
        return b""

    def barrier_key(self, frame: bytes) -> int | None:
        """The key of the barrier ``frame`` answers, or None."""
        return None

    def probe(self) -> Probe:
        raise NotImplementedError

    def handshake(self) -> bytes:
        raise NotImplementedError

    def handshake_done(self, frame: bytes) -> bool:
        """Whether ``frame`` is the agent's answer that ends the handshake (CEA, ASPAC-ACK)."""
        raise NotImplementedError

    def probe_key(self, frame: bytes) -> int | None:
        """The probe number an answer belongs to, or None for answers to fuzzed frames."""
        raise NotImplementedError

    def answer_ok(self, frame: bytes) -> tuple[bool, str]:
        """Whether a probe's answer says what a white IMEI must get, and what it said."""
        raise NotImplementedError

    def _next_probe_key(self) -> int:
        self.probes += 1
        return PROBE_MARK | (self.probes & 0x0FFFFFFF)


# --- Diameter -------------------------------------------------------------------------------

class DiameterFrames(FrameSource):
    layer = framing = "diameter"

    def __init__(self, seed: int, node: LocalNode = FUZZ_NODE) -> None:
        super().__init__(seed)
        self.node = node
        ecr = build_ecr(node, WHITE_IMEI, "436011111111111", software_version="01", session="fuzz;0")
        bare = build_ecr(node, WHITE_IMEI, session="fuzz;1")
        dwr = make_message(Command.DEVICE_WATCHDOG, request=True, application_id=APP_COMMON)
        dwr.add("Origin-Host", node.origin_host).add("Origin-Realm", node.origin_realm)
        self.bases = [m.to_bytes() for m in (ecr, ecr, ecr, bare, dwr)]
        self._mutations: list[Callable[[bytearray, bytes], bytes]] = [
            self._header, self._octets, self._octets, self._avp, self._avp, self._drop_avp, self._random_body]
        self._rare: list[Callable[[bytes], bytes]] = [self._big, self._many, self._deep]

    def handshake(self) -> bytes:
        cer = build_cer(self.node)
        cer.hop_by_hop = cer.end_to_end = PROBE_MARK
        return cer.to_bytes()

    def handshake_done(self, frame: bytes) -> bool:
        return frame[5:8] == b"\x00\x01\x01" and not frame[4] & _FLAG_R  # CEA

    def frame(self) -> bytes:
        base = self.rng.choice(self.bases)
        header, body = bytearray(base[:20]), base[20:]
        for _ in range(1 + (self.rng.random() < 0.3)):
            body = self.rng.choice(self._mutations)(header, body)
        body = body[:MAX_BODY]
        if self.rng.random() < RARE:
            body = self.rng.choice(self._rare)(body)[:MAX_LARGE - 20]
        body = _pad4(body)
        flags_command = _U32.unpack_from(header, 4)[0]
        if flags_command >> 24 & _FLAG_R and flags_command & 0xFFFFFF == _DPR:
            header[7] ^= 0x01  # a DPR is a request to close: the fuzz never asks for that
        hop_by_hop = _not_a_probe(_U32.unpack_from(header, 12)[0])
        _U32.pack_into(header, 0, (1 << 24) | (20 + len(body)))
        _U32.pack_into(header, 12, hop_by_hop)
        return bytes(header) + body

    def _header(self, header: bytearray, body: bytes) -> bytes:
        field = self.rng.randrange(5)
        if field == 0:
            header[4] = self.rng.getrandbits(8)  # flags R P E T and reserved bits
        elif field == 1:
            code = self.rng.choice([*_COMMANDS, self.rng.getrandbits(24)])  # command code
            header[5:8] = code.to_bytes(3, "big")
        elif field == 2:
            _U32.pack_into(header, 8, self.rng.choice([APP_COMMON, APP_S13, 0xFFFFFFFF, self.rng.getrandbits(32)]))
        else:
            _U32.pack_into(header, 12 if field == 3 else 16, self.rng.getrandbits(32))
        return body

    def _octets(self, header: bytearray, body: bytes) -> bytes:
        return mutate_octets(self.rng, body, self.rng.randint(1, 4))

    def _avp(self, header: bytearray, body: bytes) -> bytes:
        """A random AVP inserted at, or replacing the one at, an AVP boundary."""
        starts = _avp_starts(body)
        at = self.rng.randrange(len(starts) + 1)
        start = starts[at] if at < len(starts) else len(body)
        end = start
        if at < len(starts) and self.rng.random() < 0.5:
            end = starts[at + 1] if at + 1 < len(starts) else len(body)
        return body[:start] + random_avp(self.rng) + body[end:]

    def _drop_avp(self, header: bytearray, body: bytes) -> bytes:
        starts = _avp_starts(body)
        if not starts:
            return body
        at = self.rng.randrange(len(starts))
        end = starts[at + 1] if at + 1 < len(starts) else len(body)
        if self.rng.random() < 0.5:
            return body[:starts[at]] + body[end:]
        return body[:end] + body[starts[at]:end] * self.rng.randint(1, 3) + body[end:]  # repeated

    def _random_body(self, header: bytearray, body: bytes) -> bytes:
        return self.rng.randbytes(4 * self.rng.randint(0, 64))

    def _big(self, body: bytes) -> bytes:
        """One AVP of up to 60,000 octets: a Session-Id, User-Name or an unknown one."""
        code = self.rng.choice([263, 1, 1402, self.rng.getrandbits(32)])
        data = bytes([self.rng.randrange(32, 127)]) * self.rng.randint(1000, 60_000)
        return _pad4(struct.pack(">IB", code, 0x40) + (8 + len(data)).to_bytes(3, "big") + data) + body

    def _many(self, body: bytes) -> bytes:
        """Up to 5,000 small AVPs (repeats of one AVP of the message, or empty unknown ones)."""
        starts = _avp_starts(body)
        one = body[starts[0]:starts[1]] if len(starts) > 1 else struct.pack(">IBHB", 99999, 0, 0, 8)
        return body + one * self.rng.randint(100, 5000)

    def _deep(self, body: bytes) -> bytes:
        """Terminal-Information (Grouped) nested up to 100 deep."""
        inner = random_avp(self.rng, 3)
        for _ in range(self.rng.randint(2, 100)):
            inner = _grouped(1401, inner)
        return body + inner

    def probe(self) -> Probe:
        key = self._next_probe_key()
        request = build_ecr(self.node, WHITE_IMEI, "436011111111111", software_version="01", session=f"probe;{key}")
        request.hop_by_hop = request.end_to_end = key
        return Probe(key, request.to_bytes())

    def probe_key(self, frame: bytes) -> int | None:
        hop_by_hop = _U32.unpack_from(frame, 12)[0]
        if hop_by_hop & PROBE_MASK != PROBE_MARK or frame[4] & _FLAG_R:
            return None
        return int(hop_by_hop)

    def answer_ok(self, frame: bytes) -> tuple[bool, str]:
        answer = decode_message(frame, max_length=MAX_ANSWER)
        code, status = result_code_of(answer), answer.value("Equipment-Status")
        return code == 2001 and status == 0, f"Result-Code {code}, Equipment-Status {status}"


def _grouped(code: int, inner: bytes) -> bytes:
    return struct.pack(">IBBHI", code, 0xC0, (12 + len(inner)) >> 16, (12 + len(inner)) & 0xFFFF, 10415) + inner


def _avp_starts(body: bytes) -> list[int]:
    """Where the AVPs of ``body`` start, as far as their lengths can be followed."""
    starts, offset = [], 0
    while offset + 8 <= len(body):
        length = int.from_bytes(body[offset + 5:offset + 8], "big")
        if length < 8:
            break
        starts.append(offset)
        offset += (length + 3) & ~3
    return starts


def random_avp(rng: random.Random, depth: int = 0) -> bytes:
    """An AVP-shaped run of octets (as tests/test_fuzz.py's): a known or random code, random
    flags and vendor, a length that is right, off or absurd; Grouped codes nest more."""
    code = rng.choice(_KNOWN_AVP_CODES) if rng.random() < 0.8 else rng.getrandbits(32)
    vendor = rng.choice([None, None, 10415, 0, rng.getrandbits(32)])
    flags = rng.choice([0x40, 0x00, 0xC0, rng.getrandbits(8)]) & 0x7F
    if depth < 3 and rng.random() < 0.25:
        code = rng.choice(_GROUPED_CODES)
        data = b"".join(random_avp(rng, depth + 1) for _ in range(rng.randint(0, 4)))
    else:
        data = rng.randbytes(rng.choice([0, 1, 3, 4, 8, 15, 16, rng.randint(0, 300)]))
    if vendor is not None:
        flags |= 0x80
    head = 12 if vendor is not None else 8
    length = head + len(data)
    if rng.random() < 0.15:
        length = rng.choice([0, 1, head - 1, length + 1, length + 4, 0xFFFFFF, rng.getrandbits(24)])
    out = struct.pack(">IB", code, flags) + (length & 0xFFFFFF).to_bytes(3, "big")
    if vendor is not None:
        out += _U32.pack(vendor)
    return _pad4(out + data)


# --- M3UA, SCCP, TCAP ------------------------------------------------------------------------

class _M3uaBased(FrameSource):
    framing = "m3ua"

    def __init__(self, seed: int) -> None:
        super().__init__(seed)
        self.reader = AnswerReader(version=3)

    def handshake(self) -> bytes:
        return _ASPUP + _ASPAC

    def handshake_done(self, frame: bytes) -> bool:
        return frame[2:4] == b"\x04\x03"  # ASPAC-ACK

    def barrier(self, key: int) -> bytes:
        return Message(Kind.BEAT).add(Tag.HEARTBEAT_DATA, _BARRIER + _U32.pack(key)).to_bytes()

    def barrier_key(self, frame: bytes) -> int | None:
        if frame[2:4] != b"\x03\x06" or frame[12:20] != _BARRIER or len(frame) < 24:  # BEAT-ACK, our data
            return None
        return int(_U32.unpack_from(frame, 20)[0])

    def probe(self) -> Probe:
        key = self._next_probe_key()
        wire = encode_request(MAP_IDENTITY, key.to_bytes(4, "big"), map_imei(imei15(WHITE_IMEI)), 3, sls=key & 0x0F)
        return Probe(key, wire)

    def probe_key(self, frame: bytes) -> int | None:
        if frame[2:4] != b"\x01\x01" or b"\x49\x04\xf0" not in frame:  # DATA with a dtid 0xF...
            return None
        dtid, _ = self.reader.read(frame, 0, len(frame))
        return dtid if dtid is not None and dtid & PROBE_MASK == PROBE_MARK else None

    def answer_ok(self, frame: bytes) -> tuple[bool, str]:
        _, outcome = self.reader.read_fully(frame)
        return outcome == ("result", 0), f"{outcome[0]} {outcome[1]}"

    def data(self, sccp: bytes) -> bytes:
        """A valid M3UA DATA with the MSC's routing label carrying ``sccp`` (what ``build_data``
        encodes, written out here because the fuzz makes a million of them)."""
        identity = MAP_IDENTITY
        size = 16 + len(sccp)
        return _DATA_HEADER.pack(1, 0, 1, 1, 8 + size + (-size % 4), 0x0210, size, identity.opc, identity.dpc, 3,
                                 identity.network_indicator, 0, self.rng.randrange(16)) + _pad4(sccp)

    def begin(self) -> bytes:
        """A CheckIMEI TCAP Begin of a random version, IMEI and otid (never a probe's)."""
        otid = _not_a_probe(self.rng.getrandbits(32)).to_bytes(4, "big")
        digits = self.rng.choice([map_imei(imei15(WHITE_IMEI)), "352099001761490", "1234", "1" * 16])
        return check_imei_begin(otid, digits, self.rng.choice((1, 2, 3)))

    def begins(self, count: int = 64) -> list[bytes]:
        return [self.begin() for _ in range(count)]


class M3uaFrames(_M3uaBased):
    layer = "m3ua"

    def __init__(self, seed: int) -> None:
        super().__init__(seed)
        udt = check_imei_udt(MAP_IDENTITY, check_imei_begin(b"\x00\x00\x00\x01", map_imei(imei15(WHITE_IMEI)), 3))
        self.bases = [
            build_data(2, 1, 3, 2, 0, 1, udt).to_bytes(),
            build_data(2, 1, 3, 2, 0, 1, udt, routing_context=7).to_bytes(),
            Message(Kind.BEAT).add(Tag.HEARTBEAT_DATA, b"fuzz").to_bytes(),
            build_notify(1, 3, (7,)).to_bytes(), error_message(0x06, b"\x01\x00\x01\x01").to_bytes(),
            Message(Kind.DAUD).add(Tag.AFFECTED_POINT_CODE, u32(1)).to_bytes(),
            Message(Kind.DUNA).add(Tag.AFFECTED_POINT_CODE, u32(5)).add(Tag.INFO_STRING, b"x").to_bytes(),
            Message(Kind.SCON).add(Tag.AFFECTED_POINT_CODE, u32(5)).add(Tag.CONGESTION_INDICATIONS, u32(2)).to_bytes(),
            Message(Kind.ASPUP).add(Tag.ASP_IDENTIFIER, u32(5)).to_bytes(),
            build_aspac(TrafficMode.LOADSHARE, (7,)).to_bytes(),
            Message(Kind.ASPUP_ACK).to_bytes(), Message(Kind.BEAT_ACK).to_bytes(),
        ]
        self.restore = b""

    def frame(self) -> bytes:
        base = self.rng.choice(self.bases)
        header, body = bytearray(base[:8]), base[8:]
        for _ in range(1 + (self.rng.random() < 0.3)):
            choice = self.rng.randrange(6)
            if choice == 0:
                header[2], header[3] = self.rng.choice([(self.rng.randrange(12), self.rng.randrange(12)),
                                                        (self.rng.getrandbits(8), self.rng.getrandbits(8))])
            elif choice == 1:
                header[1] = self.rng.getrandbits(8)  # reserved
            elif choice in (2, 3):
                body = mutate_octets(self.rng, body, self.rng.randint(1, 4))
            elif choice == 4:
                body = self._parameter(body)
            else:
                body = self.rng.randbytes(4 * self.rng.randint(0, 32))
        body = body[:MAX_BODY]
        if self.rng.random() < RARE:  # a long Info String, or many parameters
            body = (self._big_parameter() if self.rng.random() < 0.5 else body * self.rng.randint(10, 500)) + body
        body = _pad4(body[:MAX_LARGE - 8])
        _M3UA_HEADER.pack_into(header, 0, 1, header[1], header[2], header[3], 8 + len(body))
        restore = _RESTORE.get((header[2], header[3]), b"")
        if len(restore) > len(self.restore):
            self.restore = restore
        return bytes(header) + body

    def batch_end(self) -> bytes:
        restore, self.restore = self.restore, b""
        return restore

    def _big_parameter(self) -> bytes:
        value = bytes([self.rng.randrange(32, 127)]) * self.rng.randint(1000, 60_000)
        return _pad4(_TLV.pack(self.rng.choice([Tag.INFO_STRING, Tag.HEARTBEAT_DATA, Tag.DIAGNOSTIC_INFORMATION]),
                               4 + len(value)) + value)

    def _parameter(self, body: bytes) -> bytes:
        """A random parameter (known or unknown tag, a length right, short or long) added,
        or put in place of the first one."""
        value = self.rng.randbytes(self.rng.choice([0, 1, 2, 4, 8, self.rng.randint(0, 64)]))
        length = 4 + len(value)
        if self.rng.random() < 0.2:
            length = self.rng.choice([0, 3, length + 1, length + 4, 0xFFFF, self.rng.getrandbits(16)])
        parameter = _pad4(_TLV.pack(self.rng.choice(_M3UA_TAGS), length) + value)
        if self.rng.random() < 0.5 and len(body) >= 4:
            first = (_TLV.unpack_from(body, 0)[1] + 3) & ~3
            return parameter + body[max(first, 4):]
        at = self.rng.randrange(len(body) // 4 + 1) * 4
        return body[:at] + parameter + body[at:]


class SccpFrames(_M3uaBased):
    layer = "sccp"

    def __init__(self, seed: int) -> None:
        super().__init__(seed)
        self.bases = [self._sccp(begin) for begin in self.begins(256)]

    def _sccp(self, begin: bytes) -> bytes:
        """A UDT, XUDT, UDTS or XUDTS between the MSC's and the EIR's addresses (or SSN only)."""
        called, calling = MAP_IDENTITY.called(), MAP_IDENTITY.calling()
        if self.rng.random() < 0.2:
            called, calling = ssn_address(SSN_EIR, 1), ssn_address(SSN_MSC, 2)
        kind = self.rng.randrange(4)
        if kind == 0:
            return Udt(called, calling, begin, self.rng.randrange(2), self.rng.random() < 0.5).to_bytes()
        if kind == 1:
            return Xudt(called, calling, begin, self.rng.randrange(2), self.rng.random() < 0.5,
                        hop_counter=self.rng.randint(1, 15), importance=self.rng.choice([None, 3])).to_bytes()
        if kind == 2:
            return Udts(called, calling, begin, self.rng.randrange(256)).to_bytes()
        return Xudts(called, calling, begin, self.rng.randrange(256)).to_bytes()

    def frame(self) -> bytes:
        sccp = self.rng.choice(self.bases)
        choice = self.rng.randrange(5)
        if choice == 0:  # the message type, the protocol class or a pointer
            sccp = _set(sccp, self.rng.randrange(min(6, len(sccp))), self.rng.getrandbits(8))
        elif choice == 4:
            sccp = self.rng.randbytes(self.rng.randint(0, 60_000 if self.rng.random() < RARE else 300))
        else:
            sccp = mutate_octets(self.rng, sccp, self.rng.randint(1, 4))
        return self.data(sccp[:MAX_LARGE - 24])


class TcapFrames(_M3uaBased):
    layer = "tcap"

    def __init__(self, seed: int) -> None:
        super().__init__(seed)
        self.bases = [self._message() for _ in range(256)]
        udt = Udt(MAP_IDENTITY.called(), MAP_IDENTITY.calling(), b"T", 1, True).to_bytes()
        self.udt_prefix = udt[:-2]  # the data part comes last: its length octet and the octets

    def frame(self) -> bytes:
        message = self.rng.choice(self.bases)
        choice = self.rng.randrange(6)
        if choice <= 2:
            message = mutate_octets(self.rng, message, self.rng.randint(1, 4))
        elif choice == 3:
            message = _mutate_element(self.rng, message)
        elif choice == 4:
            message = _mutate_element(self.rng, _mutate_element(self.rng, message))
        else:
            message = self.rng.randbytes(self.rng.randint(0, 120))
        if self.rng.random() < RARE:  # constructed elements nested deep, indefinite or definite
            depth = self.rng.randint(10, 110)
            message = b"\x62\x80" + b"\x30\x80" * depth + b"\x00\x00" * (depth + 1)
        message = message[:MAX_TCAP] or b"\x62"
        return self.data(self.udt_prefix + bytes([len(message)]) + message)

    def _message(self) -> bytes:
        tid = _not_a_probe(self.rng.getrandbits(32)).to_bytes(4, "big")
        kind = self.rng.randrange(10)
        if kind < 7:
            return self.begin()
        invoke = tcap.Invoke(1, 43, b"\x04\x08" + bytes(8))
        if kind == 7:
            return tcap.encode_continue(tid, tid, (invoke,))
        if kind == 8:
            return tcap.encode_end(tid, (invoke,))
        return tcap.encode_abort(tid, tcap.PAbortCause(self.rng.randrange(5)))


def _set(data: bytes, index: int, value: int) -> bytes:
    return data[:index] + bytes([value]) + data[index + 1:]


def _elements(data: bytes) -> list[tuple[int, int]]:
    """(where the tag is, where the length is) of the BER elements that can be followed."""
    found: list[tuple[int, int]] = []
    stack = [(0, len(data))]
    while stack and len(found) < 64:
        offset, end = stack.pop()
        while offset + 2 <= end:
            tag_at, length_at = offset, offset + 1
            length = data[length_at]
            header = 2
            if length & 0x80:
                octets = length & 0x7F
                if octets == 0 or octets > 2 or length_at + octets >= end:
                    break
                length = int.from_bytes(data[length_at + 1:length_at + 1 + octets], "big")
                header += octets
            found.append((tag_at, length_at))
            if data[tag_at] & 0x20:
                stack.append((offset + header, min(end, offset + header + length)))
            offset += header + length
    return found


def _mutate_element(rng: random.Random, data: bytes) -> bytes:
    """Change one BER element's tag or length, or make it indefinite, or repeat it."""
    elements = _elements(data)
    if not elements:
        return mutate_octets(rng, data, 1)
    tag_at, length_at = rng.choice(elements)
    choice = rng.randrange(5)
    if choice == 0:
        return _set(data, tag_at, rng.choice([rng.getrandbits(8), data[tag_at] ^ 0x20, 0x1F, 0x00]))
    if choice == 1:
        return _set(data, length_at, rng.choice([rng.getrandbits(8), 0x80, 0x81, 0x84, 0xFF, 0x00]))
    if choice == 2:
        return _set(data, length_at, (data[length_at] + rng.choice([-2, -1, 1, 2])) & 0xFF)
    if choice == 3:  # indefinite form with an end-of-contents after it
        return data[:length_at] + b"\x80" + data[length_at + 1:] + b"\x00\x00"
    return data[:tag_at] + data[tag_at:] * 2  # the element and what follows, twice


SOURCES: dict[str, type[FrameSource]] = {
    "diameter": DiameterFrames, "m3ua": M3uaFrames, "sccp": SccpFrames, "tcap": TcapFrames}


def source_for(layer: str, seed: int) -> FrameSource:
    """The frame source of ``layer`` (one of LAYERS), seeded with ``seed`` and the layer's name."""
    if layer not in SOURCES:
        raise ValueError(f"layer {layer!r}: one of {', '.join(LAYERS)}")
    return SOURCES[layer](seed * 31 + LAYERS.index(layer))
