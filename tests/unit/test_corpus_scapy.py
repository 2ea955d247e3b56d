"""The keepalived capture corpus (tests/data) agrees with corpus.json, checked with scapy
and an independent RFC 1071 checksum, so fastvrrp's codec tests can trust both."""

from __future__ import annotations

import ipaddress
import json
import struct
from pathlib import Path
from typing import Any

import pytest

scapy_all = pytest.importorskip("scapy.all")
from scapy.layers.inet import IP  # noqa: E402
from scapy.layers.inet6 import IPv6  # noqa: E402
from scapy.layers.l2 import Ether  # noqa: E402
from scapy.layers.vrrp import VRRP, VRRPv3  # noqa: E402
from scapy.packet import Packet  # noqa: E402

DATA = Path(__file__).resolve().parents[1] / "data"
CORPUS: dict[str, Any] = json.loads((DATA / "corpus.json").read_text())
CAPTURES: dict[str, dict[str, Any]] = CORPUS["captures"]
VRRP_MCAST4 = "224.0.0.18"


def inet_checksum_sum(data: bytes) -> int:
    """One's-complement sum (RFC 1071), folded; 0xffff over data that includes a valid checksum."""
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return total


def verifies(data: bytes) -> bool:
    return inet_checksum_sum(data) == 0xFFFF


def pseudo4(src: str, dst: str, length: int) -> bytes:
    return (ipaddress.IPv4Address(src).packed + ipaddress.IPv4Address(dst).packed
            + struct.pack("!BBH", 0, 112, length))


def pseudo6(src: str, dst: str, length: int) -> bytes:
    return (ipaddress.IPv6Address(src).packed + ipaddress.IPv6Address(dst).packed
            + struct.pack("!I3xB", length, 112))


def load(name: str) -> list[Packet]:
    return list(scapy_all.rdpcap(str(DATA / name)))


def ip_layer(pkt: Packet) -> Packet:
    return pkt[IP] if IP in pkt else pkt[IPv6]


def vrrp_layer(pkt: Packet) -> Packet:
    return pkt[VRRPv3] if VRRPv3 in pkt else pkt[VRRP]


def vrrp_bytes(pkt: Packet) -> bytes:
    """The VRRP message as sent (IP payload, trimmed to the IP length: no Ethernet padding)."""
    ip = ip_layer(pkt)
    if isinstance(ip, IP):
        return bytes(ip)[ip.ihl * 4: ip.len]
    return bytes(ip)[40: 40 + ip.plen]


def multicast_mac(dst: str) -> str:
    addr = ipaddress.ip_address(dst)
    if addr.version == 4:
        low = addr.packed[1:]
        return "01:00:5e:" + ":".join(f"{b & (0x7F if i == 0 else 0xFF):02x}"
                                       for i, b in enumerate(low))
    return "33:33:" + ":".join(f"{b:02x}" for b in addr.packed[-4:])


@pytest.fixture(params=sorted(CAPTURES), name="capture")
def capture_fixture(request: pytest.FixtureRequest) -> tuple[str, dict[str, Any], list[Packet]]:
    name: str = request.param
    return name, CAPTURES[name], load(name)


def test_corpus_lists_every_pcap() -> None:
    on_disk = {p.name for p in DATA.glob("*.pcap")}
    assert on_disk == set(CAPTURES)
    assert len(CAPTURES) >= 7


def test_files_are_small(capture: tuple[str, dict[str, Any], list[Packet]]) -> None:
    name, _, packets = capture
    assert (DATA / name).stat().st_size < 4096
    assert 3 <= len(packets) <= 12


def test_ip_header_facts(capture: tuple[str, dict[str, Any], list[Packet]]) -> None:
    _, facts, packets = capture
    hosts = facts["hosts"]
    src_macs = {h["ipv4"]: h["mac"] for h in hosts.values()}
    src_macs |= {h["link_local"]: h["mac"] for h in hosts.values()}
    dst_mac = (multicast_mac(facts["dst"]) if not facts["unicast"]
               else next(h["mac"] for h in hosts.values() if h["ipv4"] == facts["dst"]))
    sources = {s for v in facts["vrids"].values() for s in v["sources"]}
    for pkt in packets:
        ip = ip_layer(pkt)
        assert (isinstance(ip, IP) and facts["family"] == "ipv4") or (
            isinstance(ip, IPv6) and facts["family"] == "ipv6")
        assert ip.src in sources
        assert ip.dst == facts["dst"]
        if isinstance(ip, IP):
            assert (ip.ttl, ip.tos, ip.proto, ip.flags.value, ip.frag) == (
                facts["ttl"], facts["tos"], 112, 0, 0)
        else:
            assert (ip.hlim, ip.tc, ip.nh) == (facts["ttl"], facts["tos"], 112)
            assert ipaddress.IPv6Address(ip.src).is_link_local
        assert pkt[Ether].src == src_macs[ip.src]
        assert pkt[Ether].dst == dst_mac


def test_vrrp_fields(capture: tuple[str, dict[str, Any], list[Packet]]) -> None:
    _, facts, packets = capture
    for pkt in packets:
        v = vrrp_layer(pkt)
        want = facts["vrids"][str(v.vrid)]
        assert v.version == facts["version"]
        assert v.type == 1  # ADVERTISEMENT
        assert v.priority in want["priorities"]
        assert v.ipcount == len(want["vips"])
        assert [str(a) for a in v.addrlist] == want["vips"]
        assert v.adv == want["advert_int"]
        addr_len = 4 if facts["family"] == "ipv4" else 16
        auth_len = 8 if facts["version"] == 2 else 0
        assert len(vrrp_bytes(pkt)) == 8 + addr_len * len(want["vips"]) + auth_len
        if facts["version"] == 2:
            assert v.authtype == want["auth_type"]
            auth = struct.pack("!II", v.auth1, v.auth2)
            assert auth == vrrp_bytes(pkt)[-8:]
            expected = bytes.fromhex(want["auth_bytes_hex"]) if want["auth_bytes_hex"] else bytes(8)
            assert auth == expected
        else:
            assert v.res == 0


def test_sequence_of_sources_and_priorities(
        capture: tuple[str, dict[str, Any], list[Packet]]) -> None:
    _, facts, packets = capture
    runs: dict[str, list[list[Any]]] = {}
    for pkt in packets:
        v = vrrp_layer(pkt)
        seq = runs.setdefault(str(v.vrid), [])
        here = [ip_layer(pkt).src, v.priority]
        if not seq or seq[-1] != here:
            seq.append(here)
    assert runs == {vrid: f["sequence"] for vrid, f in facts["vrids"].items()}
    if facts["packets"] is not None:
        assert len(packets) == facts["packets"]


def test_checksum_form(capture: tuple[str, dict[str, Any], list[Packet]]) -> None:
    """Independent RFC 1071 check of the form corpus.json names, and that the other
    plausible forms do *not* verify (so the form is really distinguished)."""
    _, facts, packets = capture
    for pkt in packets:
        ip = ip_layer(pkt)
        body = vrrp_bytes(pkt)
        if facts["checksum"] == "v2":
            assert verifies(body)
        elif facts["family"] == "ipv4":
            # keepalived's v3/IPv4 default: pseudo-header with the real destination.
            assert verifies(pseudo4(ip.src, ip.dst, len(body)) + body)
            assert not verifies(body), "would also pass as RFC 9568 (no pseudo-header)"
            if facts["unicast"]:
                # keepalived < 1.3.7 (and old_unicast_checksum) used 224.0.0.18 here.
                assert not verifies(pseudo4(ip.src, VRRP_MCAST4, len(body)) + body)
        else:
            assert verifies(pseudo6(ip.src, ip.dst, len(body)) + body)
            assert not verifies(body)


def test_scapy_recomputes_same_checksum(
        capture: tuple[str, dict[str, Any], list[Packet]]) -> None:
    """scapy's own builder (VRRP: no pseudo-header; VRRPv3: in4/in6_chksum) agrees."""
    _, _, packets = capture
    for pkt in packets:
        rebuilt = pkt.copy()
        original = vrrp_layer(pkt).chksum
        layer = vrrp_layer(rebuilt)
        del layer.chksum
        assert vrrp_layer(Ether(bytes(rebuilt))).chksum == original


def test_pass_auth_bytes_follow_keepalived_parser() -> None:
    """Zero padding below 8 characters, truncation above (vrrp_auth_pass_handler)."""
    seen: dict[str, bytes] = {}
    for facts in CAPTURES.values():
        for v in facts["vrids"].values():
            if v["auth_name"] == "PASS":
                pw = v["configured_password"]
                assert bytes.fromhex(v["auth_bytes_hex"]) == pw.encode()[:8].ljust(8, b"\0")
                seen[pw] = bytes.fromhex(v["auth_bytes_hex"])
    assert any(len(p) < 8 for p in seen), "corpus lacks a short (padded) password"
    assert any(len(p) > 8 for p in seen), "corpus lacks a long (truncated) password"


def test_priority_zero_capture_has_one_prio0_advert() -> None:
    facts = CAPTURES["keepalived-prio0.pcap"]
    prio0 = [p for p in load("keepalived-prio0.pcap") if vrrp_layer(p).priority == 0]
    assert len(prio0) == 1
    (vrid,) = facts["vrids"]
    assert ip_layer(prio0[0]).src == facts["vrids"][vrid]["sequence"][0][0]
