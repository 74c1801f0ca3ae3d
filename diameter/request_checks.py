"""Which requests this node serves itself (RFC 6733 6.1): the checks every request received
on an open connection goes through before the application sees it, in this order:
decoding problems (the dictionary's), routing (3005 loop, 3002 another Destination-Host,
3003 another realm), the originator's identity (5003), then application and command
support (3007, 3001). ``RequestChecks`` holds what the checks compare with: this node's
identity and the peer's, as it gave it in CER/CEA.

Peer identity. An application request names its originator in Origin-Host (RFC 6733 6.3;
relays must not change it), and every relay or proxy on its way appends a Route-Record
holding the identity of the peer it received the request from, as that peer gave it in
CER/CEA (6.1.9, 6.7.1). So a request without Route-Record came straight from its
originator: its Origin-Host must be the peer's CER Origin-Host. And in a relayed request
the first Route-Record, written by the first relay, names the node that relay received it
from, which is the originator: it must be the Origin-Host too. DiameterIdentity is an FQDN,
compared without regard to case. Only the first entry can be checked: the others name
nodes beyond our peer, and the last one names whoever our peer (the relay) received the
request from, never the peer itself, so it is not compared with the CER identity. A
direct peer can forge Route-Records as well as Origin-Host: for relayed requests the
trust rests on which relays the node admits at all (the agent's peers.allow, by name and
source address).

A request that fails either check is answered 5003 DIAMETER_AUTHORIZATION_REJECTED, with
the Origin-Host in Failed-AVP and both identities in Error-Message, and is not given to
the application or to the duplicate cache (a T-flagged request claiming another node's
Origin-Host would otherwise be sent that node's cached answer). Why 5003 (7.1.5: "a
request was received for which the user could not be authorized ... the service requested
is not permitted"): the request is well formed and reached the node that serves it; what
is refused is serving it for the identity it claims, and that will not change if the same
request is sent again, which is what a permanent failure says. The alternatives fit worse:
3010 DIAMETER_UNKNOWN_PEER is defined for "a CER ... from an unknown peer" (7.1.3), and
here answers a CER; 3002 DIAMETER_UNABLE_TO_DELIVER says no host of the realm could take
the request, inviting a retry at another EIR and hiding the cause; and a 3xxx protocol
error is handled per hop, where a relay may retry or rewrite it, whereas a relay must pass
a failure Result-Code on unchanged (6.2.2), so the originator hears it. As 7.1.5 asks for
permanent failures, the answer keeps the application's grammar (an ECA with
Auth-Session-State) and has no E bit.
"""

from __future__ import annotations

from diameter.answers import select_problem
from diameter.avp import Avp
from diameter.capabilities import LocalNode, PeerInfo
from diameter.constants import APP_COMMON, ResultCode
from diameter.errors import AvpProblem
from diameter.message import Message
from diameter.peer_events import BadMessage

SESSION_ID, ORIGIN_HOST, ROUTE_RECORD, DESTINATION_REALM, DESTINATION_HOST = 263, 264, 282, 283, 293
_ROUTING_AVPS = frozenset({ROUTE_RECORD, DESTINATION_HOST, DESTINATION_REALM, ORIGIN_HOST})
_SHOWN = 80  # characters of an identity from the wire an Error-Message repeats


def text_of(message: Message, code: int) -> str | None:
    """The text value of a base AVP of ``message``, None when it has none that decoded."""
    for avp in message.avps:
        if avp.code == code and not avp.vendor_id:
            value = avp.value
            return value if isinstance(value, str) else None
    return None


def origin_host(message: Message) -> str | None:
    """The Origin-Host AVP's value (base AVP 264), None when it has none."""
    return text_of(message, ORIGIN_HOST)


class RequestChecks:
    """The checks of one peer connection; ``peer_opened`` tells it who the peer is."""

    def __init__(self, node: LocalNode) -> None:
        self.remote: PeerInfo | None = None
        self._host_lower, self._realm_lower = node.origin_host.lower(), node.origin_realm.lower()
        self._remote_lower: str | None = None  # the peer's CER/CEA Origin-Host, lower case

    def peer_opened(self, remote: PeerInfo) -> None:
        self.remote = remote
        self._remote_lower = remote.origin_host.lower()

    def problem(self, request: Message, applications: frozenset[int]) -> AvpProblem | None:
        """Problems the node answers itself: decoding problems, then routing and identity,
        then 3007 and 3001 (``applications``: those in common with the peer)."""
        if request.problems:
            return select_problem(request.problems)
        routing = self.routing_problem(request)
        if routing is not None:
            return routing
        app = request.application_id
        if app != APP_COMMON and app not in applications:
            return AvpProblem(ResultCode.DIAMETER_APPLICATION_UNSUPPORTED, f"application {app} is not supported")
        if request.definition is None or request.definition.application_id != app:
            return AvpProblem(ResultCode.DIAMETER_COMMAND_UNSUPPORTED,
                              f"command {request.command_code} is not supported in application {app}")
        return None

    def routing_problem(self, request: Message) -> AvpProblem | None:
        """RFC 6733 6.1: this node serves requests for itself and its realm; it relays nothing.
        A Route-Record naming us is a loop (3005). Then the originator's identity (see the
        module's docstring). One pass over the AVPs: this runs per request."""
        origin = first_record = None
        for avp in request.avps:
            code = avp.code
            if code not in _ROUTING_AVPS or avp.vendor_id:
                continue
            value = avp.value
            if not isinstance(value, str):
                continue
            if code == ORIGIN_HOST:
                origin = avp
            elif code == ROUTE_RECORD:
                if value.lower() == self._host_lower:
                    return AvpProblem(ResultCode.DIAMETER_LOOP_DETECTED, "Route-Record names this node", avp)
                if first_record is None:
                    first_record = avp
            elif code == DESTINATION_HOST and value.lower() != self._host_lower:
                return AvpProblem(ResultCode.DIAMETER_UNABLE_TO_DELIVER, f"Destination-Host {value} is not this node",
                                  avp)
            elif code == DESTINATION_REALM and value.lower() != self._realm_lower:
                return AvpProblem(ResultCode.DIAMETER_REALM_NOT_SERVED, f"realm {value} is not served here", avp)
        if origin is None or request.application_id == APP_COMMON:  # base requests are the peer's own, hop by hop
            return None
        return self.identity_problem(origin, first_record)

    def identity_problem(self, origin: Avp, first_record: Avp | None) -> AvpProblem | None:
        """5003 for a request whose Origin-Host is not who sent it: the peer's CER identity
        when it came directly (no Route-Record), else the first relay's Route-Record."""
        claimed = origin.value
        if first_record is None:
            if self._remote_lower is None or claimed.lower() == self._remote_lower:
                return None
            assert self.remote is not None
            reason = (f"Origin-Host {claimed[:_SHOWN]} is not {self.remote.origin_host[:_SHOWN]}, the identity "
                      "this peer gave in CER, and no Route-Record says the request was relayed")
        else:
            recorded = first_record.value
            if claimed.lower() == recorded.lower():
                return None
            reason = (f"Origin-Host {claimed[:_SHOWN]} is not {recorded[:_SHOWN]}, the node the first relay "
                      "received the request from (its Route-Record)")
        return AvpProblem(ResultCode.DIAMETER_AUTHORIZATION_REJECTED, reason, origin)

    def refused(self, request: Message, problem: AvpProblem) -> BadMessage:
        """The event for a request answered with ``problem``. A request refused for its
        Origin-Host is reported as from the node that did send it."""
        origin = origin_host(request)
        if problem.result_code == ResultCode.DIAMETER_AUTHORIZATION_REJECTED and problem.avp is not None \
                and problem.avp.code == ORIGIN_HOST:
            origin = self.sender_of(request)
        return BadMessage(problem.result_code, problem.reason, request.name, answered=True,
                          session=text_of(request, SESSION_ID), origin_host=origin)

    def sender_of(self, request: Message) -> str | None:
        """Who sent ``request`` as far as this node knows: the first Route-Record, else the peer."""
        record = text_of(request, ROUTE_RECORD)
        return record if record is not None else self.remote.origin_host if self.remote is not None else None
