"""simulator/replay_items.py: which ECR an answer belongs to when identifiers repeat, as they do in
long captures (a retransmission with the T bit is the same request; the same Hop-by-Hop and
End-to-End after an answer is a new one)."""

from __future__ import annotations

from pathlib import Path

from diameter.constants import APP_S13, FLAG_T, Command, EquipmentStatus, ResultCode
from diameter.message import Message, make_message
from netio.pcap import write_pcap
from simulator.mme import MmeIdentity, build_ecr
from simulator.replay import load_requests

MME, EIR = ("10.0.0.1", 40000), ("10.0.0.2", 3868)


def ecr(imei: str, *, retransmitted: bool = False) -> bytes:
    message = build_ecr(MmeIdentity().node(), imei, session="1;1")
    message.hop_by_hop, message.end_to_end = 5, 9
    if retransmitted:
        message.flags |= FLAG_T
    return message.to_bytes()


def eca(status: EquipmentStatus) -> bytes:
    answer: Message = make_message(Command.ME_IDENTITY_CHECK, request=False, proxiable=True,
                                   application_id=APP_S13, hop_by_hop=5, end_to_end=9)
    answer.add("Session-Id", "mme.localdomain;1;1").add("Result-Code", ResultCode.DIAMETER_SUCCESS)
    answer.add("Auth-Session-State", 1).add("Origin-Host", "eir").add("Origin-Realm", "localdomain")
    return answer.add("Equipment-Status", status).to_bytes()


def test_a_retransmission_is_one_request_and_reused_identifiers_a_new_one(tmp_path: Path) -> None:
    writes = [(MME, EIR, ecr("35209900176148")), (MME, EIR, ecr("35209900176148", retransmitted=True)),
              (EIR, MME, eca(EquipmentStatus.WHITELISTED)), (MME, EIR, ecr("35209900176149")),
              (EIR, MME, eca(EquipmentStatus.BLACKLISTED)), (MME, EIR, ecr("35209900176150"))]
    records = [(1_700_000_000 + i, src[0], src[1], dst[0], dst[1], data) for i, (src, dst, data) in enumerate(writes)]
    write_pcap(tmp_path / "ids.pcap", records)
    found = load_requests(tmp_path / "ids.pcap").requests
    assert [(r.imei, r.answer and r.answer.status) for r in found] == [
        ("35209900176148", "WHITELISTED"), ("35209900176149", "BLACKLISTED"), ("35209900176150", None)]


def test_the_report_lists_a_request_the_capture_holds_no_answer_for(tmp_path: Path) -> None:
    from simulator.replay import ReplayReport, ReplayResult
    from simulator.replay_items import Answer

    write_pcap(tmp_path / "one.pcap", [(1_700_000_000, *MME, *EIR, ecr("35209900176148"))])
    (request,) = load_requests(tmp_path / "one.pcap").requests
    report = ReplayReport("one.pcap", [ReplayResult(request, Answer("ECA", 2001, "WHITELISTED"))])
    assert report.lines() == [
        f"frame {request.frame} S13 IMEI 35209900176148: no answer in the capture; the agent answered "
        "ECA, result 2001 DIAMETER_SUCCESS, status WHITELISTED",
        "one.pcap: 1 requests (1 S13, 0 MAP): 0 same, 0 different, 1 unanswered in the capture"]
