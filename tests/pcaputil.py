"""Read classic pcap files (micro- or nanosecond timestamps) without scapy."""

from __future__ import annotations

import struct
from pathlib import Path

_MAGIC = {b"\xd4\xc3\xb2\xa1": ("<", 1000), b"\x4d\x3c\xb2\xa1": ("<", 1),
          b"\xa1\xb2\xc3\xd4": (">", 1000), b"\xa1\xb2\x3c\x4d": (">", 1)}


def read_pcap(path: str | Path) -> list[tuple[int, bytes]]:
    """(timestamp in ns, frame) for every record of an Ethernet capture."""
    raw = Path(path).read_bytes()
    if len(raw) < 24:
        return []
    endian, ns_per_unit = _MAGIC[raw[:4]]
    assert struct.unpack(endian + "I", raw[20:24])[0] == 1, "Ethernet captures only"
    out, pos = [], 24
    while pos + 16 <= len(raw):
        sec, frac, incl, _orig = struct.unpack(endian + "IIII", raw[pos:pos + 16])
        out.append((sec * 1_000_000_000 + frac * ns_per_unit, raw[pos + 16:pos + 16 + incl]))
        pos += 16 + incl
    return out


def vrrp_adverts(path: str | Path) -> list[tuple[int, str, int, int]]:
    """(ts_ns, source, vrid, priority) of every IPv4/IPv6 VRRP frame."""
    import ipaddress
    out = []
    for ts, frame in read_pcap(path):
        etype = frame[12:14]
        if etype == b"\x08\x00" and frame[23] == 112:
            ihl = (frame[14] & 0x0F) * 4
            vr = frame[14 + ihl:]
            out.append((ts, str(ipaddress.IPv4Address(frame[26:30])), vr[1], vr[2]))
        elif etype == b"\x86\xdd" and frame[20] == 112:
            vr = frame[54:]
            out.append((ts, str(ipaddress.IPv6Address(frame[22:38])), vr[1], vr[2]))
    return out


def arp_announcements(path: str | Path) -> list[tuple[int, str, str]]:
    """(ts_ns, sender MAC, sender IP) of every gratuitous ARP (sender IP == target IP)."""
    import ipaddress
    out = []
    for ts, frame in read_pcap(path):
        if frame[12:14] == b"\x08\x06" and frame[28:32] == frame[38:42]:
            out.append((ts, frame[22:28].hex(":"), str(ipaddress.IPv4Address(frame[28:32]))))
    return out
