"""The M3UA ASP state machines (RFC 4666 4.3), sans-I/O, one per connection.

``AspServer`` is our side when an ASP connects to us (we act as SGP or IPSP): it answers
ASPUP, ASPAC, ASPIA, ASPDN and BEAT, reports DATA from an active ASP, and answers every
bad or unexpected message with ERR, then keeps serving. ``AspClient`` is our side when we
connect to a signalling gateway as an ASP: ASPUP, then ASPAC, then traffic, and ASPDN to
leave. Both are fed bytes and the time (``receive_data(data, now)``, ``handle_timer(now)``),
return events and queue bytes for ``data_to_send()``, like ``diameter.peer.Peer``. Only the
framing errors of ``sigtran.m3ua.FramingError`` end the connection (``CloseConnection``).
The model is one AS per connection: the AS is active exactly when this ASP is.

Both are driven by (state, trigger) tables in RFC 4666 4.3 terms (``sigtran.asp_endpoint``
says how): ``AspServer.MESSAGES``/``LOCAL`` in ``sigtran.asp_server``,
``AspClient.MESSAGES``/``LOCAL`` in ``sigtran.asp_client``. In short (4.3.1, Figure 3):

    ASP-DOWN      --ASPUP-->            ASP-INACTIVE   (server; client: on ASPUP-ACK)
    ASP-INACTIVE  --ASPAC-->            ASP-ACTIVE     (server; client: on ASPAC-ACK)
    ASP-ACTIVE    --ASPIA, ASPUP-->     ASP-INACTIVE   (server; the AS is AS-PENDING for T(r))
    any           --ASPDN, SCTP CDI-->  ASP-DOWN       (client: on ASPDN-ACK)

BEAT, BEAT-ACK, ERR and NTFY are accepted in every state; DATA only in ASP-ACTIVE; every
message without a row in the current state is answered ERR Unexpected Message (0x06).

DATA is sent only to an active ASP, and ``send_data`` never raises. An answer can be ready
after the ASP left ASP-ACTIVE: a DATA and an ASPIA read together are handled in order, so
the request was accepted while active but its answer is built once the ASP is inactive.
RFC 4666 4.3.2 says what an SGP does then: the AS is AS-PENDING, T(r) runs, and the SGP
SHOULD queue the AS's messages; if the ASP is active again before T(r) expires they are
sent to it (after ASPAC-ACK and the NTFY), otherwise they are discarded. ``AspServer``
does exactly that, whether the ASP went ASP-INACTIVE or ASP-DOWN (at most
``ServerSettings.max_pending`` messages; beyond, and when T(r) expires or the connection
goes, they are reported as ``DataDiscarded``).
Where there is no AS-PENDING (the ASP is down, the AS inactive, or we are the ASP),
``send_data`` drops the message and returns False for the caller to count and log. The
association is never aborted for it.

``AspServer.connection_made(now)`` starts the activation timer (``activation_timeout``):
an association whose ASP is not ASP-ACTIVE that long after it connected, or after it left
ASP-ACTIVE, is closed (``CloseConnection``), so idle connections cannot pile up. An
active ASP may stay quiet as long as it likes (BEAT is optional in RFC 4666).
"""

from sigtran.asp_client import AspClient, ClientSettings
from sigtran.asp_endpoint import (
    AspActive,
    AspDown,
    AspInactive,
    AspState,
    AspUp,
    BadMessage,
    CloseConnection,
    DataDiscarded,
    DataReceived,
    ErrorReceived,
    Event,
    MessageReceived,
    NotifyReceived,
)
from sigtran.asp_server import AspServer, ServerSettings

__all__ = [
    "AspActive",
    "AspClient",
    "AspDown",
    "AspInactive",
    "AspServer",
    "AspState",
    "AspUp",
    "BadMessage",
    "ClientSettings",
    "CloseConnection",
    "DataDiscarded",
    "DataReceived",
    "ErrorReceived",
    "Event",
    "MessageReceived",
    "NotifyReceived",
    "ServerSettings",
]
