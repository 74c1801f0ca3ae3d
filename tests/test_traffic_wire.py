"""The traffic run's wire helpers (simulator/traffic_wire.py): the requests encoded once per
line carry that line's IMEI and IMSI, the ids written in place are the keys the answer
log gives back, and the pacer holds a run to its rate."""

from __future__ import annotations

import time

from diameter.message import decode_message
from sigtran import map as mapv
from sigtran import tcap
from sigtran.m3ua import decode_message as decode_m3ua
from sigtran.sccp import decode_message as decode_sccp
from simulator.mme import MmeIdentity
from simulator.msc import MscIdentity
from simulator.traffic_wire import (
    COUNTER_WIDTH,
    DAY_SPAN,
    OTID_DAY_SHIFT,
    LineChecks,
    LineEcrs,
    Pacer,
    map_position,
    map_word,
    s13_position,
    s13_word,
)

LINES = [("352099001761481", "436010000000001"), ("353325100000003", "250010000000002")]


def test_each_ecr_carries_its_lines_imei_and_imsi_and_the_counter_names_day_and_position() -> None:
    identity = MmeIdentity(origin_host="mme.traffic.localdomain")
    ecrs = LineEcrs(identity, LINES, "traffic1;")
    for (imei, imsi), request in zip(LINES, ecrs.requests, strict=True):
        out = bytearray(request)
        out[ecrs.counter_at:ecrs.counter_at + COUNTER_WIDTH] = b"%012d" % (12 * DAY_SPAN + 345)
        message = decode_message(bytes(out))
        assert message.value("User-Name") == imsi
        assert message.value("Terminal-Information")[0].value == imei
        session = message.value("Session-Id")
        assert session == "mme.traffic.localdomain;traffic1;001200000345"
        assert s13_position(session) == (12, 345)


def test_each_check_imei_carries_its_lines_imei_and_imsi_at_a_known_otid() -> None:
    checks = LineChecks(MscIdentity(), LINES)
    otid = 7 << OTID_DAY_SHIFT | 99
    for (imei, imsi), request, at in zip(LINES, checks.requests, checks.otid_at, strict=True):
        out = bytearray(request)
        out[at:at + 4] = otid.to_bytes(4, "big")
        begin = tcap.decode(decode_sccp(decode_m3ua(bytes(out)).protocol_data.user_data).data)
        assert begin.otid == otid.to_bytes(4, "big")
        argument = mapv.decode_check_imei(2, begin.components[0].parameter)
        assert argument.imei == imei[:14] + "0" and argument.imsi == imsi
    assert map_position(f"{otid:08x}") == (7, 99)
    assert map_position("not hex") is None


def test_answers_in_words() -> None:
    assert [s13_word((2001, status)) for status in (0, 1, 2)] == ["white", "black", "grey"]
    assert s13_word((5004, None)) == "result 5004" and s13_word(None) == "no answer"
    assert map_word(("result", 2)) == "grey" and map_word(("unknownEquipment", None)) == "unknownEquipment"


def test_the_pacer_holds_a_run_to_its_rate() -> None:
    assert Pacer(None).take(10_000) == 10_000 and Pacer(None).wait() == 0.0
    pacer = Pacer(1000.0)
    started = time.monotonic()
    sent = 0
    while time.monotonic() - started < 0.3:
        sent += pacer.take(50)
        time.sleep(pacer.wait())
    assert 200 <= sent <= 400  # 1,000 a second for 0.3 s, give or take a burst of 0.1 s
