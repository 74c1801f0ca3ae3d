"""Diameter base protocol (RFC 6733) and the S13 application (TS 29.272), sans-I/O.

Only ``diameter.transport`` touches sockets; everything else is fed bytes and time.
``diameter.framing`` is the one place that cuts messages out of a byte stream.
``diameter.peer`` is the peer state machine, a (state, event) table in the terms of
RFC 6733 5.6; each of its procedures has a module of its own: ``capabilities`` (CER/CEA),
``watchdog`` (RFC 3539), ``disconnect`` (DPR/DPA), ``pending`` (ids, request timers,
retransmission with the T flag), ``duplicates`` (answers kept for T-flagged requests),
``request_checks`` (the checks a request passes before the application sees it); the events
it returns are in ``peer_events``.
"""
