"""Diameter base protocol (RFC 6733) and the S13 application (TS 29.272), sans-I/O.

Only ``diameter.transport`` touches sockets; everything else is fed bytes and time.
``diameter.framing`` is the one place that cuts messages out of a byte stream.
"""
