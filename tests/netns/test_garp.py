"""GarpSender on real interfaces: what an observer on the LAN receives and learns."""

from __future__ import annotations

import asyncio
import json
import subprocess
import time
from collections import Counter
from collections.abc import Callable, Iterator
from ipaddress import IPv4Address, IPv6Address, ip_address
from pathlib import Path

import pytest
from scapy.layers.inet6 import ICMPv6ND_NA
from scapy.layers.l2 import ARP, Ether
from scapy.utils import rdpcap

from fastvrrp import netlab
from fastvrrp.net.garp import GarpSender
from fastvrrp.net.vips import VipManager, VipSpec
from fastvrrp.netlab import Lab, Node

pytestmark = pytest.mark.netns

FAKE_MAC = "02:aa:aa:aa:aa:aa"
CAPTURE_FILTER = "arp or (icmp6 and ip6[40] == 136)"


@pytest.fixture(scope="module", autouse=True)
def _needs_netns() -> None:
    reason = netlab.netns_usable()
    if reason:
        pytest.skip(reason)


@pytest.fixture
def lab() -> Iterator[Lab]:
    with Lab() as lab:
        yield lab


def _burst(vips: list[str], repeat: int) -> int:
    """Runs inside the sender's namespace."""
    with VipManager() as mgr, GarpSender() as sender:
        link = mgr.resolve("eth0")
        assert link is not None
        return sender.send_burst(link, [ip_address(v) for v in vips], repeat)


def _add_vips_and_burst(vips: list[str], repeat: int) -> int:
    with VipManager() as mgr:
        result = mgr.add([VipSpec.parse(v, ifname="eth0") for v in vips])
        assert result.ok, result.failed
    return _burst(vips, repeat)


def _paced(vips: list[str], garp_interval: float, gna_interval: float) -> int:
    async def run() -> int:
        with VipManager() as mgr, GarpSender() as sender:
            link = mgr.resolve("eth0")
            assert link is not None
            return await sender.send_paced(link, [ip_address(v) for v in vips], 1,
                                           garp_interval, gna_interval)
    return asyncio.run(run())


def _captured(lab: Lab, observer: Node, tmp_path: Path, send: Callable[[], object],
              expect: int = 1) -> list[Ether]:
    """Frames of the capture filter seen by `observer` while `send` runs (waiting, on a
    busy machine, until at least `expect` frames are written, or 5 s)."""
    pcap = tmp_path / "garp.pcap"
    # A short snaplen and a 4 MiB buffer: with tcpdump's defaults the capture itself
    # sometimes lost part of a 45-frame burst on a busy machine (13 frames once in eight
    # tries, its "dropped by kernel" count), which read as frames never sent.
    cap = lab.capture(observer, "eth0", CAPTURE_FILTER, pcap, snaplen=256, buffer_kib=4096)
    send()
    # Frames cross a veth/bridge LAN in microseconds; tcpdump -U writes each at once.
    netlab.wait_until(lambda: pcap.stat().st_size > 24, 5, what="frames in the capture")
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and _count(pcap) < expect:
        time.sleep(0.05)
    time.sleep(0.2)  # anything beyond what was expected shows too
    cap.stop()
    assert not cap.dropped_by_kernel, f"the observer's capture lost {cap.dropped_by_kernel} frame(s)"
    return list(rdpcap(str(pcap)))


def _count(pcap: Path) -> int:
    try:
        return len(rdpcap(str(pcap)))
    except Exception:  # a record still being written
        return 0


def _neigh_mac(node: Node, ip: str) -> str | None:
    family = "-6" if ":" in ip else "-4"
    entries = json.loads(node.ip("-j", family, "neigh", "show", ip, "dev", "eth0").stdout or "[]")
    return entries[0].get("lladdr") if entries else None


def test_observer_sees_repeat_frames_per_vip_with_keepalived_fields(lab: Lab,
                                                                   tmp_path: Path) -> None:
    a = lab.node("a", ["192.0.2.1/24", "2001:db8::1/64"])
    obs = lab.node("obs", ["192.0.2.2/24", "2001:db8::2/64"])
    mac = a.link().mac
    v4 = [f"192.0.2.{n}" for n in range(50, 60)]
    v6 = [f"2001:db8::{n:x}" for n in range(0x50, 0x55)]
    sent = 0

    def send() -> None:
        nonlocal sent
        sent = a.call(_burst, v4 + v6, 3)

    frames = _captured(lab, obs, tmp_path, send, expect=3 * (len(v4) + len(v6)))
    assert sent == 3 * (len(v4) + len(v6))
    arps = [f for f in frames if ARP in f and f.src == mac]
    nas = [f for f in frames if ICMPv6ND_NA in f and f.src == mac]
    assert Counter(f[ARP].psrc for f in arps) == {v: 3 for v in v4}
    assert Counter(str(IPv6Address(f[ICMPv6ND_NA].tgt)) for f in nas) == {v: 3 for v in v6}
    for f in arps:
        assert (f.dst, f[ARP].op, f[ARP].hwsrc, f[ARP].hwdst) == ("ff:ff:ff:ff:ff:ff", 1, mac,
                                                                  "ff:ff:ff:ff:ff:ff")
        assert f[ARP].pdst == f[ARP].psrc
    for f in nas:
        na = f[ICMPv6ND_NA]
        assert (f.dst, na.O, na.S, na.R, f.hlim) == ("33:33:00:00:00:01", 1, 0, 0, 255)
        assert f["IPv6"].src == na.tgt and f["IPv6"].dst == "ff02::1"


def test_router_flag_set_when_the_interface_forwards_ipv6(lab: Lab, tmp_path: Path) -> None:
    a = lab.node("a", ["2001:db8::1/64"], sysctls={"net/ipv6/conf/all/forwarding": 1})
    obs = lab.node("obs", ["2001:db8::2/64"])
    frames = _captured(lab, obs, tmp_path, lambda: a.call(_burst, ["2001:db8::60"], 1))
    nas = [f[ICMPv6ND_NA] for f in frames if ICMPv6ND_NA in f and f.src == a.link().mac]
    assert [(na.tgt, na.R, na.O) for na in nas] == [("2001:db8::60", 1, 1)]


def test_garp_and_na_move_the_observers_neighbour_entry_to_the_new_mac(lab: Lab) -> None:
    a = lab.node("a", ["192.0.2.1/24", "2001:db8::1/64"])
    obs = lab.node("obs", ["192.0.2.2/24", "2001:db8::2/64"])
    vips = ["192.0.2.70", "2001:db8::70"]
    # The observer believes the VIPs live at another MAC (the previous master's).
    for vip in vips:
        obs.ip("neigh", "replace", vip, "lladdr", FAKE_MAC, "dev", "eth0", "nud", "stale")
    assert [_neigh_mac(obs, v) for v in vips] == [FAKE_MAC, FAKE_MAC]
    # Linux ignores an ARP update within locktime (1 s) of the last one, except a
    # gratuitous one (is_garp in arp_process): no wait is needed here.
    assert a.call(_add_vips_and_burst, vips, 1) == 2
    mac = a.link().mac
    for vip in vips:
        netlab.wait_until(lambda vip=vip: _neigh_mac(obs, vip) == mac, 3,
                          what=f"{vip} -> {mac} on the observer")
    obs.run(["ping", "-c", "1", "-W", "2", "192.0.2.70"])  # and the VIP answers there


def test_paced_burst_spaces_arps_and_nas_independently(lab: Lab, tmp_path: Path) -> None:
    a = lab.node("a", ["192.0.2.1/24", "2001:db8::1/64"])
    obs = lab.node("obs", ["192.0.2.2/24", "2001:db8::2/64"])
    v4 = ["192.0.2.80", "192.0.2.81", "192.0.2.82", "192.0.2.83"]
    v6 = ["2001:db8::80", "2001:db8::81"]
    garp_interval, gna_interval = 0.05, 0.0
    frames = _captured(lab, obs, tmp_path,
                       lambda: a.call(_paced, v4 + v6, garp_interval, gna_interval))
    mac = a.link().mac
    arp_times = [float(f.time) for f in frames if ARP in f and f.src == mac]
    na_times = [float(f.time) for f in frames if ICMPv6ND_NA in f and f.src == mac]
    assert len(arp_times) == 4 and len(na_times) == 2
    gaps = [b - t for t, b in zip(arp_times, arp_times[1:])]
    assert min(gaps) >= garp_interval * 0.95, gaps  # sleeps are never shorter
    # NAs are not held behind the paced ARPs: both went out before the second ARP.
    assert max(na_times) < arp_times[1]


def test_frames_to_a_vanished_interface_are_counted_not_raised(lab: Lab) -> None:
    a = lab.node("a", ["192.0.2.1/24"])

    def burst_after_delete() -> tuple[int, int]:
        with VipManager() as mgr, GarpSender() as sender:
            link = mgr.resolve("eth0")
            assert link is not None
            subprocess.run(["ip", "link", "del", "eth0"], check=True)
            sent = sender.send_burst(link, [IPv4Address("192.0.2.90")], 2)
            return sent, sender.errors

    assert a.call(burst_after_delete) == (0, 2)


def test_a_thousand_vip_burst_goes_out_whole(lab: Lab) -> None:
    a = lab.node("a", ["192.0.2.1/24"])
    vips = ([f"198.51.100.{i}" for i in range(250)] + [f"203.0.113.{i}" for i in range(250)]
            + [f"2001:db8::{i + 1:x}" for i in range(500)])

    def burst() -> tuple[int, int]:
        with VipManager() as mgr, GarpSender() as sender:
            link = mgr.resolve("eth0")
            assert link is not None
            sent = sender.send_burst(link, [ip_address(v) for v in vips], 5)
            return sent, sender.errors

    # 5000 frames: none may find the (non-blocking) socket's buffer full.
    assert a.call(burst) == (5000, 0)


def _bursts(groups: list[list[str]], repeat: int) -> int:
    with VipManager() as mgr, GarpSender() as sender:
        link = mgr.resolve("eth0")
        assert link is not None
        return sender.send_bursts([(link, [ip_address(v) for v in g]) for g in groups], repeat)


def test_many_bursts_go_out_round_by_round(lab: Lab, tmp_path: Path) -> None:
    a = lab.node("a", ["192.0.2.1/24", "2001:db8::1/64"])
    obs = lab.node("obs", ["192.0.2.2/24", "2001:db8::2/64"])
    mac = a.link().mac
    # Three instances' VIPs (one with an IPv6 VIP too), three rounds.
    groups = [["192.0.2.60", "192.0.2.61"], ["192.0.2.62"], ["192.0.2.63", "2001:db8::63"]]
    sent = 0

    def send() -> None:
        nonlocal sent
        sent = a.call(_bursts, groups, 3)

    frames = _captured(lab, obs, tmp_path, send, expect=15)
    assert sent == 15
    arps = [f[ARP].psrc for f in frames if ARP in f and f.src == mac]
    nas = [str(IPv6Address(f[ICMPv6ND_NA].tgt)) for f in frames
           if ICMPv6ND_NA in f and f.src == mac]
    v4 = ["192.0.2.60", "192.0.2.61", "192.0.2.62", "192.0.2.63"]
    # Every VIP's first frame before any repeat: round by round, in the bursts' order.
    assert arps == v4 * 3
    assert nas == ["2001:db8::63"] * 3
