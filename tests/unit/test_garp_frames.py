"""GARP and unsolicited NA frames decode (with scapy) to what keepalived sends."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv6Address

import pytest
from hypothesis import given
from hypothesis import strategies as st
from scapy.layers.inet6 import ICMPv6ND_NA, ICMPv6NDOptDstLLAddr, IPv6, in6_chksum
from scapy.layers.l2 import ARP, Ether

from fastvrrp.net.garp import (
    GarpLink,
    GarpSender,
    garp_frame,
    icmpv6_checksum,
    unsolicited_na_frame,
)

MAC = bytes.fromhex("020000000101")
MAC_TEXT = "02:00:00:00:01:01"
VIP4 = IPv4Address("192.0.2.10")
VIP6 = IPv6Address("2001:db8::10")
LINK_LOCAL = IPv6Address("fe80::ff:fe00:101")

macs = st.binary(min_size=6, max_size=6)
ipv6s = st.binary(min_size=16, max_size=16)


def test_garp_is_a_broadcast_request_with_sender_and_target_the_vip() -> None:
    frame = garp_frame(MAC, VIP4.packed)
    assert len(frame) == 42  # keepalived sends it unpadded
    eth = Ether(frame)
    arp = eth[ARP]
    assert (eth.dst, eth.src, eth.type) == ("ff:ff:ff:ff:ff:ff", MAC_TEXT, 0x0806)
    assert (arp.hwtype, arp.ptype, arp.hwlen, arp.plen) == (1, 0x0800, 6, 4)
    assert arp.op == 1  # request, not reply (vrrp_arp.c ARPOP_REQUEST)
    assert (arp.hwsrc, arp.psrc) == (MAC_TEXT, str(VIP4))
    assert (arp.hwdst, arp.pdst) == ("ff:ff:ff:ff:ff:ff", str(VIP4))


def test_na_fields_match_keepalived_ndisc() -> None:
    frame = unsolicited_na_frame(MAC, None, VIP6.packed, router=False)
    assert len(frame) == 86
    eth = Ether(frame)
    ip6 = eth[IPv6]
    na = eth[ICMPv6ND_NA]
    assert (eth.dst, eth.src, eth.type) == ("33:33:00:00:00:01", MAC_TEXT, 0x86DD)
    assert (ip6.src, ip6.dst, ip6.hlim, ip6.nh, ip6.plen) == (str(VIP6), "ff02::1", 255, 58, 32)
    assert (na.type, na.code, na.R, na.S, na.O, na.tgt) == (136, 0, 0, 0, 1, str(VIP6))
    opt = eth[ICMPv6NDOptDstLLAddr]  # scapy's name for option type 2 in an NA
    assert (opt.type, opt.len, opt.lladdr) == (2, 1, MAC_TEXT)


def test_na_router_flag_follows_argument() -> None:
    assert Ether(unsolicited_na_frame(MAC, None, VIP6.packed, router=True))[ICMPv6ND_NA].R == 1
    assert Ether(unsolicited_na_frame(MAC, None, VIP6.packed, router=False))[ICMPv6ND_NA].R == 0


@pytest.mark.parametrize("src", [None, LINK_LOCAL])
def test_na_checksum_is_what_scapy_computes(src: IPv6Address | None) -> None:
    frame = unsolicited_na_frame(MAC, src.packed if src else None, VIP6.packed, router=True)
    eth = Ether(frame)
    assert eth[IPv6].src == str(src or VIP6)
    rebuilt = eth.copy()
    del rebuilt[ICMPv6ND_NA].cksum
    assert eth[ICMPv6ND_NA].cksum == Ether(bytes(rebuilt))[ICMPv6ND_NA].cksum
    assert bytes(Ether(bytes(rebuilt))) == frame


@given(src=ipv6s, dst=ipv6s, payload=st.binary(max_size=64))
def test_icmpv6_checksum_agrees_with_scapy(src: bytes, dst: bytes, payload: bytes) -> None:
    pkt = IPv6(src=str(IPv6Address(src)), dst=str(IPv6Address(dst)), nh=58)
    assert icmpv6_checksum(src, dst, payload) == in6_chksum(58, pkt, payload)


@given(mac=macs, vip=ipv6s, router=st.booleans())
def test_every_na_verifies(mac: bytes, vip: bytes, router: bool) -> None:
    frame = unsolicited_na_frame(mac, None, vip, router)
    icmp = frame[14 + 40:]
    # A correct checksum makes the sum over pseudo-header + message fold to zero.
    assert icmpv6_checksum(vip, IPv6Address("ff02::1").packed, icmp) == 0


def test_wrong_lengths_are_refused() -> None:
    with pytest.raises(ValueError):
        garp_frame(MAC[:5], VIP4.packed)
    with pytest.raises(ValueError):
        garp_frame(MAC, VIP6.packed)
    with pytest.raises(ValueError):
        unsolicited_na_frame(MAC, None, VIP4.packed, router=False)


def test_sender_prebuilds_one_frame_per_vip_and_reuses_them() -> None:
    # No socket is opened: frames() only plans. An interface name that does not exist
    # reads as "not forwarding", so the NAs carry no Router flag.
    link = GarpLink(ifindex=7, ifname="fvnoiface0", mac=MAC)
    vips = [VIP4, VIP6, IPv4Address("192.0.2.11")]
    with GarpSender() as sender:
        first = sender.frames(link, vips)
        again = sender.frames(link, vips)
    assert [Ether(f).type for f in first] == [0x0806, 0x0806, 0x86DD]  # ARPs, then NAs
    assert [Ether(f)[ARP].psrc for f in first[:2]] == ["192.0.2.10", "192.0.2.11"]
    assert Ether(first[2])[ICMPv6ND_NA].R == 0
    assert all(a is b for a, b in zip(first, again))


def test_a_mass_takeovers_bursts_are_built_once(monkeypatch) -> None:
    # A thousand instances' first round and then their repeats (router.py sends them
    # as two send_bursts calls): the frames are built for the first call only. With a
    # 256-burst cache every instance was re-planned on each call (~12 us apiece,
    # ahead of the first GARPs).
    from fastvrrp.net import garp

    built = []

    def counting_garp_frame(mac: bytes, ip: bytes) -> bytes:
        built.append(ip)
        return garp_frame(mac, ip)

    sent = []
    monkeypatch.setattr(garp, "garp_frame", counting_garp_frame)
    monkeypatch.setattr(GarpSender, "_socket", lambda self, ifindex: None)
    monkeypatch.setattr(garp._Batch, "send", lambda self, sock, ifname: sent.append(self.frames) or len(self.frames))
    link = GarpLink(ifindex=7, ifname="fvnoiface0", mac=MAC)
    bursts = [(link, [IPv4Address("198.51.100.0") + i]) for i in range(1000)]
    with GarpSender() as sender:
        assert sender.send_bursts(bursts) == 1000
        assert sender.send_bursts(bursts, repeat=4) == 4000
    assert len(built) == 1000
    assert len(sent) == 5 and all(len(frames) == 1000 for frames in sent)
    assert [Ether(f)[ARP].psrc for f in sent[0][:2]] == ["198.51.100.0", "198.51.100.1"]


def test_prepared_bursts_are_not_built_again(monkeypatch) -> None:
    from fastvrrp.net import garp

    built = []

    def counting_garp_frame(mac: bytes, ip: bytes) -> bytes:
        built.append(ip)
        return garp_frame(mac, ip)

    monkeypatch.setattr(garp, "garp_frame", counting_garp_frame)
    monkeypatch.setattr(GarpSender, "_socket", lambda self, ifindex: None)
    monkeypatch.setattr(garp._Batch, "send", lambda self, sock, ifname: len(self.frames))
    link = GarpLink(ifindex=7, ifname="fvnoiface0", mac=MAC)
    bursts = [(link, [IPv4Address("198.51.100.0") + i]) for i in range(100)]
    with GarpSender() as sender:
        sender.prepare(bursts)
        assert len(built) == 100
        assert sender.send_bursts(bursts, repeat=5) == 500
    assert len(built) == 100
