"""A small registry with one IMEI on each list (white, grey, black, stolen, paired), built
with the real ``eir registry import`` commands: what the end-to-end and interop tests,
the socket fuzzer and the benchmarks ask about. (The demo itself is a scenario now:
scenarios/tajikistan/enforcement_tour.yaml.)"""

from __future__ import annotations

from pathlib import Path

from registry.imei import luhn_check_digit
from simulator.agent_process import run_eir


def imei15(key: str) -> str:
    return key + luhn_check_digit(key)


# The demo registry: one IMEI per case. Keys are 14 digits (TAC+SNR).
WHITE = "35209900176148"
GREY = "35209900176149"
BLACK = "35209900176150"
STOLEN = "35209900176151"  # on the white list, and reported stolen
PAIRED = "35209900176152"
PAIRED_IMSI = "436011234567890"
OTHER_IMSI = "436059999999999"
UNKNOWN = "35209900999999"  # in no list: the tj profile's grace rules decide
ROAMER = "35209900888888"
IMSI = "436011111111111"
ROAMING_IMSI = "250011234567890"  # an inbound roamer's SIM (MCC 250)

def build_demo_registry(folder: Path, url: str | None = None) -> str:
    """A registry with one IMEI per list, imported through the real CLI: at ``url`` (an empty
    database), else a SQLite file in ``folder``; its URL."""
    url = url or f"sqlite:///{folder / 'registry.db'}"
    files = {
        "white": f"imei,reason\n{imei15(WHITE)},customs cleared\n{STOLEN},entered automatically\n",
        "grey": f"imei,reason\n{GREY},awaiting registration\n",
        "black": f"imei,reason\n{imei15(BLACK)},grace period over\n",
        "stolen": f"imei,reason\n{STOLEN},police report 2026-118\n",
        "paired": f"imei,imsi,msisdn\n{PAIRED},{PAIRED_IMSI},\n",
    }
    for name, text in files.items():
        path = folder / f"{name}.csv"
        path.write_text(text)
        run_eir(url, "registry", "import", name, str(path))
    return url
