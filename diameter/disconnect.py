"""Disconnecting a peer (RFC 6733 5.4): Disconnect-Peer-Request and its answer.

Either side may send DPR; the other answers DPA and the connection goes to Closing
(RFC 6733 5.6: Stop -> Snd-DPR, Rcv-DPR -> Snd-DPA). The side that sent DPR closes the
transport on DPA; the side that answered expects the peer to close it. Either way, if the
close does not come within ``dpa_timeout``, the Peer closes the connection itself. Once
the peer has sent DPR it has nothing more to ask: its requests other than DWR are
answered 3002 DIAMETER_UNABLE_TO_DELIVER.
"""

from __future__ import annotations

from diameter.capabilities import LocalNode
from diameter.constants import APP_COMMON, Command, DisconnectCause, ResultCode
from diameter.errors import AvpProblem
from diameter.message import Message, make_message


def build_dpr(node: LocalNode, cause: DisconnectCause) -> Message:
    dpr = make_message(Command.DISCONNECT_PEER, request=True, application_id=APP_COMMON)
    dpr.add("Origin-Host", node.origin_host).add("Origin-Realm", node.origin_realm)
    dpr.add("Disconnect-Cause", int(cause))
    return dpr


def disconnect_cause(dpr: Message) -> int | None:
    """The Disconnect-Cause of a DPR received, None when it has none."""
    cause: int | None = dpr.value("Disconnect-Cause")
    return cause


def after_peer_dpr(request: Message) -> AvpProblem | None:
    """The answer to a request from a peer that has sent DPR: 3002, except for DWR."""
    if request.command_code == Command.DEVICE_WATCHDOG:
        return None
    return AvpProblem(ResultCode.DIAMETER_UNABLE_TO_DELIVER,
                      f"{request.name} after the peer's own DPR: the connection is closing")


def closing_timeout_reason(peer_left: bool) -> str:
    """Why the Peer closes a connection that stayed in Closing for ``dpa_timeout``."""
    if peer_left:
        return "the peer sent DPR but did not close the connection in time"
    return "no DPA in time"
