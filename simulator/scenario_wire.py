"""How a scenario's ``attach`` travels: an S13 ECR from the emulated MME over one Diameter
connection kept for the run, or a MAP CheckIMEI from the emulated MSC over M3UA (one
association per location update, as simulator/msc.py plays it). Each answer comes back
as an ``Answer``: the status, the S13 result code or the MAP error, and the key of the
agent's answer log line (Session-Id or TCAP otid) that names the rule."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import TYPE_CHECKING

from diameter.answers import result_code_of
from diameter.capabilities import LocalNode
from diameter.constants import ResultCode
from diameter.transport import PeerConnection, connect
from simulator.mme import build_ecr, status_name
from simulator.msc import CheckImeiFailed, CheckImeiOutcome, send_checkimei
from simulator.scenario_model import Via

if TYPE_CHECKING:
    from netio.capture import Capture

MME = LocalNode("mme.scenario.localdomain", "localdomain", product_name="eir-scenario-mme")
# the MAP version of an attach no step pins: v2 with the IMSI after the IMEI (the vendor
# variant MSCs send), so S13 and MAP runs ask about the same SIM
DEFAULT_MAP = Via.MAP_V2
STATUS_WORDS = {"WHITELISTED": "white", "BLACKLISTED": "black", "GREYLISTED": "grey",
                "WHITE_LISTED": "white", "BLACK_LISTED": "black", "GREY_LISTED": "grey"}
TIMEOUT = 5.0


@dataclass(frozen=True)
class Answer:
    via: str  # "s13", "map-v2"...
    status: str | None  # white, grey, black (None: no status came)
    result: int | None = None  # S13: the Diameter result code
    error: str | None = None  # MAP: the error, reject or abort; or why nothing came
    log_key: str | None = None  # the answer log's "session" of this answer

    def text(self) -> str:
        if self.via == "s13":
            found = f"{self.result} {self.status or ''}".strip() if self.result is not None else self.error or "?"
            return f"ECA {found}"
        return f"CheckIMEI {self.via[4:]} {self.status or self.error or '?'}"


class Network:
    """The MME and the MSC of one scenario run, aimed at the agent under test."""

    def __init__(self, s13: tuple[str, int] | None, m3ua: tuple[str, int] | None, run: str,
                 capture: Capture | None = None) -> None:
        self.s13 = s13
        self.m3ua = m3ua
        self.capture = capture  # every connection recorded there (--pcap)
        self.run = run  # a tag making this run's Session-Ids unique
        self._connection: PeerConnection | None = None
        self._sessions = itertools.count(1)

    async def attach(self, via: Via, imei: str, imsi: str | None) -> Answer:
        if via is Via.S13:
            return await self._ecr(imei, imsi)
        return await self._check_imei(via, imei, imsi)

    async def _ecr(self, imei: str, imsi: str | None) -> Answer:
        if self.s13 is None:
            return Answer("s13", None, error="no S13 address to ask")
        try:
            if self._connection is None or self._connection.closed.done():
                self._connection = await connect(MME, *self.s13, timeout=TIMEOUT, capture=self.capture)
            session = f"{self.run};{next(self._sessions)}"
            answer = await self._connection.request(build_ecr(MME, imei, imsi, session=session), TIMEOUT)
        except (OSError, TimeoutError, ConnectionError) as error:
            return Answer("s13", None, error=f"no ECA: {error or type(error).__name__}")
        code = result_code_of(answer)
        value = answer.value("Equipment-Status")
        status = STATUS_WORDS.get(status_name(value)) if value is not None else None
        if code == ResultCode.DIAMETER_SUCCESS and status is None:
            status = "?"
        return Answer("s13", status, result=code, log_key=f"{MME.origin_host};{session}")

    async def _check_imei(self, via: Via, imei: str, imsi: str | None) -> Answer:
        version = int(via.value[-1])
        if self.m3ua is None:
            return Answer(via.value, None, error="no M3UA address to ask")
        try:
            outcome = await send_checkimei(*self.m3ua, imei, imsi=imsi if version < 3 else None, version=version,
                                           timeout=TIMEOUT, capture=self.capture)
        except ValueError as error:
            return Answer(via.value, None, error=f"cannot be sent over MAP: {error}")
        except CheckImeiFailed as error:
            return Answer(via.value, None, error=f"no answer: {error}")
        return Answer(via.value, _map_status(outcome), error=_map_error(outcome), log_key=outcome.otid)

    async def close(self) -> None:
        if self._connection is not None and not self._connection.closed.done():
            await self._connection.disconnect(timeout=2.0)


def _map_status(outcome: CheckImeiOutcome) -> str | None:
    return None if outcome.status is None else STATUS_WORDS.get(outcome.status.name, outcome.status.name)


def _map_error(outcome: CheckImeiOutcome) -> str | None:
    if outcome.status is not None:
        return None
    return outcome.error_name or outcome.reject or outcome.abort_cause or outcome.problem or outcome.message
