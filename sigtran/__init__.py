"""SIGTRAN: M3UA, SCCP, TCAP and MAP CheckIMEI, sans-I/O (a later issue)."""
