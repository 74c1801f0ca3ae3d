"""Moved to ``netio.pcap`` (the capture tap of ``netio.capture`` writes through it); this name
stays for code written before the move."""

from netio.pcap import DEFAULT_MSS, DEFAULT_WINDOW, PcapFlowWriter, Record, merge_pcaps, write_pcap

__all__ = ["DEFAULT_MSS", "DEFAULT_WINDOW", "PcapFlowWriter", "Record", "merge_pcaps", "write_pcap"]
