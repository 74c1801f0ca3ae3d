"""SIGTRAN: M3UA, SCCP, TCAP and MAP CheckIMEI, sans-I/O.

- ``m3ua`` (codec), ``asp`` (the ASP state machines), ``m3ua_streams`` (which SCTP stream
  and PPID each M3UA message rides);
- ``sccp`` (UDT/XUDT/UDTS/XUDTS, addresses), ``routing`` (the EIR subsystem's SCCP router:
  Protocol Data in, what goes back out, the answering function given as a callable);
- ``ber``, ``tcap``, ``tcap_values``, ``map`` (CheckIMEI v1-v3).

Only ``sigtran.link`` touches the event loop: the M3UA link over TCP or kernel SCTP (sockets
from ``netio``), used by the agent, the MSC emulator and the MAP load generator alike.
"""
