"""Codec benchmark: decode an ECR, then build and encode its ECA; ours against pycrate.

Prints microseconds per message (best of several rounds, one core). Run:
    python bench/bench_codec.py [--rounds 7] [--number 20000]
"""

from __future__ import annotations

import argparse
import platform
import time
from collections.abc import Callable

from diameter.answers import answer_to, constant_avp, finish_answer
from diameter.constants import APP_S13, Command, EquipmentStatus, ResultCode
from diameter.dictionary import BASE_S13
from diameter.message import Message, decode_message, make_message

ORIGIN_HOST, ORIGIN_REALM = "eir.localdomain", "localdomain"


def sample_ecr() -> bytes:
    m = make_message(Command.ME_IDENTITY_CHECK, request=True, proxiable=True, application_id=APP_S13,
                     hop_by_hop=0x1234, end_to_end=0x5678)
    m.add("Session-Id", "mme01.epc.mnc001.mcc437.3gppnetwork.org;1700000000;42")
    m.avps.append(m.group("Vendor-Specific-Application-Id", ("Vendor-Id", 10415), ("Auth-Application-Id", APP_S13)))
    m.add("Auth-Session-State", 1)
    m.add("Origin-Host", "mme01.epc.mnc001.mcc437.3gppnetwork.org")
    m.add("Origin-Realm", "epc.mnc001.mcc437.3gppnetwork.org")
    m.add("Destination-Realm", "epc.mnc001.mcc437.3gppnetwork.org")
    m.avps.append(m.group("Terminal-Information", ("IMEI", "35209900176148"), ("Software-Version", "01")))
    m.add("User-Name", "437011234567890")
    return m.to_bytes()


# What an S13 answerer holds ready: the AVPs every ECA repeats, encoded once.
NO_STATE_MAINTAINED = constant_avp(BASE_S13, "Auth-Session-State", 1)
STATUS = {s: constant_avp(BASE_S13, "Equipment-Status", int(s)) for s in EquipmentStatus}


def ours(wire: bytes) -> bytes:
    request = decode_message(wire)
    imei = request.find("Terminal-Information").find("IMEI").value  # type: ignore[union-attr]
    assert imei and not request.problems
    answer = answer_to(request, ORIGIN_HOST, ORIGIN_REALM, ResultCode.DIAMETER_SUCCESS)
    answer.avps += (NO_STATE_MAINTAINED, STATUS[EquipmentStatus.WHITELISTED])
    return finish_answer(request, answer).to_bytes()


def pycrate_job() -> Callable[[bytes], bytes]:
    from pycrate_diameter.Diameter3GPP import Diameter3GPP

    def job(wire: bytes) -> bytes:
        request = Diameter3GPP()
        request.from_bytes(wire)
        header = request[0]
        session = request[1][0][1].get_val()
        answer = Diameter3GPP(val={
            "DiameterHdr": {"Vers": 1, "R": 0, "P": 1, "Cmd": 324, "AppID": APP_S13,
                            "HHID": header["HHID"].get_val(), "EEID": header["EEID"].get_val()},
            "AVPs": [
                {"AVPHdr": {"Code": 263, "M": 1}, "AVPData": session},
                {"AVPHdr": {"Code": 268, "M": 1}, "AVPData": 2001},
                {"AVPHdr": {"Code": 264, "M": 1}, "AVPData": ORIGIN_HOST.encode()},
                {"AVPHdr": {"Code": 296, "M": 1}, "AVPData": ORIGIN_REALM.encode()},
                {"AVPHdr": {"Code": 277, "M": 1}, "AVPData": 1},
                {"AVPHdr": {"Code": 1445, "V": 1, "M": 1, "VendorID": 10415}, "AVPData": 0},
            ]})
        return answer.to_bytes()
    return job


def measure(job: Callable[[bytes], bytes], wire: bytes, rounds: int, number: int) -> float:
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(number):
            job(wire)
        best = min(best, (time.perf_counter() - start) / number)
    return best * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--number", type=int, default=20000)
    args = parser.parse_args()
    wire = sample_ecr()
    answer = decode_message(ours(wire))
    check: Message = answer
    assert not check.problems and check.value("Equipment-Status") == 0
    print(f"machine: {platform.machine()}, Python {platform.python_version()}, {platform.platform()}")
    print(f"ECR of {len(wire)} octets -> ECA of {len(ours(wire))} octets")
    ours_us = measure(ours, wire, args.rounds, args.number)
    print(f"ours:    {ours_us:8.1f} us per ECR decode + ECA build and encode (target <= 30)")
    reference = pycrate_job()
    pycrate_us = measure(reference, wire, max(1, args.rounds // 2), max(1, args.number // 100))
    print(f"pycrate: {pycrate_us:8.1f} us per ECR decode + ECA build and encode")
    print(f"speed-up: {pycrate_us / ours_us:.0f}x")


if __name__ == "__main__":
    main()
