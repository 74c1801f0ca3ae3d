"""Sockets, with no protocol knowledge: what Diameter and M3UA share below their own layers.

- ``sctp``: kernel SCTP under asyncio (one-to-one sockets, one upper-layer message per SCTP
  message with its PPID and stream), ``SctpUnavailable`` where the kernel has none;
- ``transports``: listening and connecting over TCP or SCTP with one call;
- ``flow``: backpressure (``ReadPausing``) and the requests in progress of a connection with
  their late answers written together (``InProgress``);
- ``accepting``: connection caps (``capped``, ``Refused``) and throttled accept failures;
- ``logs``: log lines a peer cannot multiply (``Throttled``, ``PerSecond``);
- ``bad_input``: ``BadInput``, the one reporter of bad input for every layer (Diameter,
  M3UA, SCCP, TCAP, MAP, S13): counted as ``bad_input.KIND``, at most 10 lines a second.

Nothing here imports ``diameter``, ``sigtran`` or ``agent``.
"""
