"""VipManager: batched VIP changes over rtnetlink, read back with `ip -j addr`."""

from __future__ import annotations

import errno
import json
import os
import select
import socket
import struct
import subprocess
from collections.abc import Iterator
from ipaddress import IPv4Address, ip_interface
from typing import Any

import pytest
from pyroute2.netlink.rtnl.marshal import MarshalRtnl

from fastvrrp import netlab
from fastvrrp.config.model import VirtualAddress
from fastvrrp.net.vips import (
    IFA_F_MCAUTOJOIN,
    IFA_F_NODAD,
    IFA_F_NOPREFIXROUTE,
    NLM_F_ACK,
    NLM_F_CREATE,
    NLM_F_EXCL,
    AddrEvent,
    LinkEvent,
    NetlinkMonitor,
    VipManager,
    VipSpec,
    encode_addr_request,
    scope_number,
)
from fastvrrp.netlab import Lab, Node

needs_netns = pytest.mark.netns


@pytest.fixture(scope="module")
def lab() -> Iterator[Lab]:
    reason = netlab.netns_usable()
    if reason:
        pytest.skip(reason)
    with Lab() as lab:
        yield lab


@pytest.fixture
def node(lab: Lab) -> Node:
    """A fresh node per test (one lab per module keeps the suite fast)."""
    name = "n" + str(len(lab.nodes))
    return lab.node(name, ["198.51.100.1/24", "2001:db8:1::1/64"])


def addr_info(node: Node, ifname: str = "eth0") -> list[dict[str, Any]]:
    shown = json.loads(node.ip("-j", "addr", "show", "dev", ifname).stdout)
    return shown[0]["addr_info"]


def find(info: list[dict[str, Any]], local: str) -> list[dict[str, Any]]:
    return [a for a in info if a["local"] == local]


# --------------------------------------------------------------------------- encoding
# Checked against pyroute2's parser: an independent reading of the same wire format.


def test_add_request_decodes_with_pyroute2() -> None:
    spec = VipSpec.parse("192.0.2.10/24", ifindex=5, broadcast="192.0.2.255", scope="link",
                         label="eth0:vip")
    msg = next(iter(MarshalRtnl().parse(encode_addr_request(spec, 5, add=True, seq=42))))
    assert msg["header"]["type"] == 20  # RTM_NEWADDR
    assert msg["header"]["flags"] & (NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL) == (
        NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL)
    assert msg["header"]["sequence_number"] == 42
    assert (msg["family"], msg["prefixlen"], msg["scope"], msg["index"]) == (2, 24, 253, 5)
    assert msg.get("IFA_LOCAL") == "192.0.2.10"
    assert msg.get("IFA_BROADCAST") == "192.0.2.255"
    assert msg.get("IFA_LABEL") == "eth0:vip"
    assert msg.get("IFA_ADDRESS") is None  # no peer: the kernel takes IFA_LOCAL


def test_ipv6_add_sets_nodad_and_delete_carries_only_the_address() -> None:
    spec = VipSpec.parse("2001:db8::5", ifindex=3)
    add = next(iter(MarshalRtnl().parse(encode_addr_request(spec, 3, add=True, seq=1))))
    assert add["prefixlen"] == 128 and add.get("IFA_LOCAL") == "2001:db8::5"
    assert add.get("IFA_FLAGS") == IFA_F_NODAD
    delete = next(iter(MarshalRtnl().parse(encode_addr_request(spec, 3, add=False, seq=2))))
    assert delete["header"]["type"] == 21  # RTM_DELADDR
    assert delete["header"]["flags"] & NLM_F_CREATE == 0
    assert delete.get("IFA_FLAGS") is None and delete.get("IFA_LOCAL") == "2001:db8::5"


def test_spec_from_config_uses_instance_interface_and_keepalived_flags() -> None:
    vip = VirtualAddress(address=ip_interface("2001:db8::7/64"), flags=frozenset({"noprefixroute"}))
    spec = VipSpec.from_config(vip, "eth1")
    assert (spec.ifname, spec.nodad, spec.extra_flags) == ("eth1", True, IFA_F_NOPREFIXROUTE)
    vip = VirtualAddress(address=ip_interface("192.0.2.7/32"), device="eth2", scope="host",
                         label="eth2:x", flags=frozenset({"-nodad"}))
    spec = VipSpec.from_config(vip, "eth1")
    assert (spec.ifname, spec.scope, spec.label, spec.nodad) == ("eth2", 254, "eth2:x", False)


def test_spec_validation() -> None:
    assert VipSpec.parse("192.0.2.1", ifindex=1).address.network.prefixlen == 32
    with pytest.raises(ValueError):
        VipSpec.parse("192.0.2.1")  # neither ifindex nor ifname
    with pytest.raises(ValueError):
        VipSpec.parse("2001:db8::1", ifindex=1, broadcast="192.0.2.255")
    with pytest.raises(ValueError):
        VipSpec.parse("192.0.2.1", ifindex=1, label="x" * 16)
    with pytest.raises(ValueError):
        scope_number("galactic")


# --------------------------------------------------------------------------- in a namespace


def _add(specs: list[VipSpec]) -> tuple[list[VipSpec], list[VipSpec], list[tuple[VipSpec, int]]]:
    with VipManager() as mgr:
        r = mgr.add(specs)
    return r.changed, r.unchanged, [(f.spec, f.errno) for f in r.failed]


def _remove(specs: list[VipSpec]) -> tuple[list[VipSpec], list[VipSpec], list[tuple[VipSpec, int]]]:
    with VipManager() as mgr:
        r = mgr.remove(specs)
    return r.changed, r.unchanged, [(f.spec, f.errno) for f in r.failed]


MIXED = [
    VipSpec.parse("192.0.2.10/24", ifname="eth0", broadcast="192.0.2.255", scope="link",
                  label="eth0:vip1"),
    VipSpec.parse("192.0.2.11", ifname="eth0", scope="host"),
    VipSpec.parse("192.0.2.12", ifname="eth0", peer="192.0.2.99"),
    VipSpec.parse("2001:db8::10", ifname="eth0"),
    VipSpec.parse("2001:db8::11/64", ifname="eth0"),
]


@needs_netns
def test_batch_add_configures_every_option(node: Node) -> None:
    changed, unchanged, failed = node.call(_add, MIXED)
    assert (len(changed), unchanged, failed) == (len(MIXED), [], [])
    info = addr_info(node)
    [a] = find(info, "192.0.2.10")
    assert (a["prefixlen"], a["broadcast"], a["scope"], a["label"]) == (24, "192.0.2.255", "link",
                                                                        "eth0:vip1")
    [a] = find(info, "192.0.2.11")
    assert (a["prefixlen"], a["scope"]) == (32, "host")
    [a] = find(info, "192.0.2.12")
    assert (a["prefixlen"], a["address"]) == (32, "192.0.2.99")
    for local, plen in (("2001:db8::10", 128), ("2001:db8::11", 64)):
        [a] = find(info, local)
        assert a["prefixlen"] == plen
        assert a.get("nodad") is True  # usable at once, never "tentative"
        assert not a.get("tentative")


@needs_netns
def test_add_and_remove_are_idempotent(node: Node) -> None:
    node.call(_add, MIXED)
    changed, unchanged, failed = node.call(_add, MIXED)
    assert (changed, len(unchanged), failed) == ([], len(MIXED), [])
    locals_ = [a["local"] for a in addr_info(node)]
    assert all(locals_.count(str(s.address.ip)) == 1 for s in MIXED)

    changed, unchanged, failed = node.call(_remove, MIXED)
    assert (len(changed), unchanged, failed) == (len(MIXED), [], [])
    assert not {str(s.address.ip) for s in MIXED} & {a["local"] for a in addr_info(node)}
    changed, unchanged, failed = node.call(_remove, MIXED)
    assert (changed, len(unchanged), failed) == ([], len(MIXED), [])
    # The node's own addresses were not touched.
    assert {"198.51.100.1", "2001:db8:1::1"} <= {a["local"] for a in addr_info(node)}


@needs_netns
def test_a_bad_entry_fails_alone_and_the_rest_of_the_batch_is_applied(node: Node) -> None:
    batch = [
        VipSpec.parse("192.0.2.20", ifname="eth0"),
        VipSpec.parse("192.0.2.21", ifindex=99999),  # no such interface
        VipSpec.parse("192.0.2.22", ifname="fvnosuch0"),  # no such name
        VipSpec.parse("2001:db8::21", ifindex=99999),
        VipSpec.parse("2001:db8::20", ifname="eth0"),
    ]
    changed, unchanged, failed = node.call(_add, batch)
    assert changed == [batch[0], batch[4]]
    assert unchanged == []
    assert failed == [(batch[1], errno.ENODEV), (batch[2], errno.ENODEV), (batch[3], errno.ENODEV)]
    assert {"192.0.2.20", "2001:db8::20"} <= {a["local"] for a in addr_info(node)}
    # Removing from an interface that does not exist is "already gone" (keepalived:
    # no point deleting an address of a deleted interface).
    changed, unchanged, failed = node.call(_remove, batch)
    assert (changed, unchanged, failed) == ([batch[0], batch[4]], batch[1:4], [])


@needs_netns
def test_kernel_refusal_is_reported_with_its_reason(node: Node) -> None:
    node.set_sysctls({"net/ipv6/conf/eth0/disable_ipv6": 1})
    batch = [VipSpec.parse("2001:db8::30", ifname="eth0"),
             VipSpec.parse("192.0.2.30", ifname="eth0")]

    def add() -> list[tuple[int, str]]:
        with VipManager() as mgr:
            r = mgr.add(batch)
        assert r.changed == [batch[1]]
        return [(f.errno, f.message) for f in r.failed]

    [(err, message)] = node.call(add)
    assert err != 0 and message  # e.g. EACCES "Permission denied: IPv6 is disabled..."


@needs_netns
def test_large_batches_span_several_writes(node: Node) -> None:
    # 250 IPv4 + 2750 IPv6 requests (~52 bytes each) do not fit one 64 KiB write.
    batch = [VipSpec(ip_interface(f"203.0.113.{i}/32") if i < 250 else
                     ip_interface(f"2001:db8:2::{i:x}/128"), ifname="eth0") for i in range(3000)]

    def run() -> tuple[int, int, int, int]:
        with VipManager() as mgr:
            added = mgr.add(batch)
            present = len(mgr.present(batch))
            removed = mgr.remove(batch)
            left = len(mgr.present(batch))
        assert not added.failed and not removed.failed
        return len(added.changed), present, len(removed.changed), left

    assert node.call(run) == (3000, 3000, 3000, 0)


@needs_netns
def test_present_and_dump_read_back_what_is_configured(node: Node) -> None:
    node.call(_add, MIXED[:3])

    def read() -> tuple[set[VipSpec], list[Any], Any]:
        with VipManager() as mgr:
            link = mgr.resolve("eth0")
            return mgr.present(MIXED), mgr.dump(link.ifindex), link

    present, dumped, link = node.call(read)
    assert present == set(MIXED[:3])
    by_ip = {str(a.address.ip): a for a in dumped}
    assert by_ip["192.0.2.10"].label == "eth0:vip1"
    assert by_ip["192.0.2.10"].broadcast == IPv4Address("192.0.2.255")
    assert by_ip["192.0.2.12"].peer == IPv4Address("192.0.2.99")
    assert all(a.ifindex == link.ifindex for a in dumped)


@needs_netns
def test_resolve_reports_mac_mtu_and_up(node: Node) -> None:
    def resolve() -> tuple[Any, Any, list[str]]:
        with VipManager() as mgr:
            names = [link.ifname for link in mgr.interfaces()]
            return mgr.resolve("eth0"), mgr.resolve("fvnosuch0"), names

    link, missing, names = node.call(resolve)
    assert link.mac == bytes.fromhex(node.link().mac.replace(":", ""))
    assert (link.mtu, link.up, missing) == (1500, True, None)
    assert sorted(names) == ["eth0", "lo"]
    node.ip("link", "set", "eth0", "mtu", "1400", "down")
    link = node.call(resolve)[0]
    assert (link.mtu, link.up) == (1400, False)
    node.ip("link", "set", "eth0", "up")


@needs_netns
def test_monitor_reports_address_and_link_changes(node: Node) -> None:
    def watch() -> list[LinkEvent | AddrEvent]:
        with NetlinkMonitor() as mon:
            assert mon.read() == []  # non-blocking when nothing happened
            subprocess.run(["ip", "addr", "add", "192.0.2.40/32", "dev", "eth0"], check=True)
            subprocess.run(["ip", "addr", "del", "192.0.2.40/32", "dev", "eth0"], check=True)
            subprocess.run(["ip", "link", "set", "eth0", "down"], check=True)
            events: list[LinkEvent | AddrEvent] = []
            while select.select([mon.fileno()], [], [], 0.5)[0]:
                events += mon.read()
            return events

    events = node.call(watch)
    addr = [(e.deleted, str(e.addr.address)) for e in events if isinstance(e, AddrEvent)
            and e.addr.address.version == 4]
    assert addr[:2] == [(False, "192.0.2.40/32"), (True, "192.0.2.40/32")]
    links = [e.link for e in events if isinstance(e, LinkEvent) and e.link.ifname == "eth0"]
    assert links and links[-1].up is False
    node.ip("link", "set", "eth0", "up")


# ------------------------------------------------------------------ failures, small buffers

SO_MEMINFO, SK_MEMINFO_DROPS = 55, 8
NETLINK_ADD_MEMBERSHIP = 1
RTNLGRP_IPV4_IFADDR, RTNLGRP_IPV4_ROUTE, RTNLGRP_IPV6_IFADDR, RTNLGRP_IPV6_ROUTE = 5, 7, 9, 11


def _shrink(mgr: VipManager, rcvbuf: int | None) -> None:
    """Set SO_RCVBUF on the manager's own socket, as a host whose net.core.rmem_max is
    small would (the kernel doubles the value, and keeps at least 2304 bytes)."""
    if rcvbuf is not None:
        sock = socket.socket(fileno=os.dup(mgr.fileno()))
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        finally:
            sock.close()


def _drops(mgr: VipManager) -> int:
    sock = socket.socket(fileno=os.dup(mgr.fileno()))
    try:
        return struct.unpack("9I", sock.getsockopt(socket.SOL_SOCKET, SO_MEMINFO, 36))[
            SK_MEMINFO_DROPS]
    finally:
        sock.close()


def _mixed_failures(ifindex: int) -> tuple[list[VipSpec], dict[int, int], set[int]]:
    """A batch whose failures are spread through it: (specs, index -> errno of the
    failures, indexes of addresses added beforehand)."""
    specs: list[VipSpec] = []
    failing: dict[int, int] = {}
    for i in range(240):
        ip = f"203.0.113.{i}/32" if i < 200 else f"2001:db8:4::{i:x}/128"
        if i % 9 == 4:  # autojoin of a unicast address: the kernel refuses it (EINVAL)
            specs.append(VipSpec(ip_interface(ip), ifindex=ifindex,
                                 extra_flags=IFA_F_MCAUTOJOIN))
            failing[i] = errno.EINVAL
        elif i % 31 == 7:  # an interface that does not exist (ENODEV from the kernel)
            specs.append(VipSpec(ip_interface(ip), ifindex=99999))
            failing[i] = errno.ENODEV
        else:
            specs.append(VipSpec(ip_interface(ip), ifindex=ifindex))
    return specs, failing, {i for i in range(0, 240, 13) if i not in failing}


@needs_netns
@pytest.mark.parametrize("rcvbuf", [None, 4096, 1], ids=["default", "8k", "minimum"])
def test_failures_spread_through_a_batch_go_to_their_own_specs(node: Node,
                                                               rcvbuf: int | None) -> None:
    def run() -> tuple[Any, ...]:
        ifindex = socket.if_nametoindex("eth0")
        specs, failing, before = _mixed_failures(ifindex)
        with VipManager() as mgr:
            mgr.add([specs[i] for i in sorted(before)])
            _shrink(mgr, rcvbuf)
            added = mgr.add(specs)
            removed = mgr.remove(specs)
            return specs, failing, before, added, removed, _drops(mgr)

    specs, failing, before, added, removed, drops = node.call(run)
    assert [(f.spec, f.errno) for f in added.failed] == [(specs[i], e) for i, e in
                                                          failing.items()]
    assert all(f.message for f in added.failed)
    assert added.unchanged == [specs[i] for i in sorted(before)]  # EEXIST: already there
    good = [s for i, s in enumerate(specs) if i not in failing]
    assert added.changed == [s for s in good if s not in added.unchanged]
    # Removing: the refused ones are absent (EADDRNOTAVAIL) or on no interface (ENODEV).
    assert (removed.changed, removed.failed) == (good, [])
    assert removed.unchanged == [specs[i] for i in failing]
    assert drops == 0  # every answer fitted the receive buffer
    assert not {str(s.address.ip) for s in specs} & {a["local"] for a in addr_info(node)}


@needs_netns
@pytest.mark.parametrize("rcvbuf", [212992, 4096, 1], ids=["debian-rmem_max", "8k", "minimum"])
def test_a_small_receive_buffer_loses_no_outcome(node: Node, rcvbuf: int) -> None:
    # Re-adding and re-removing make every request of the batch answer with an error,
    # the most a batch can ask of the receive buffer. 600 answers (832 bytes each) do
    # not fit the 416 KiB that SO_RCVBUF gets under Debian's net.core.rmem_max.
    v4 = [f"{net}.{host}" for net in ("192.0.2", "203.0.113") for host in range(1, 151)]
    batch = [VipSpec.parse(ip, ifname="eth0") for ip in v4] + [
        VipSpec.parse(f"2001:db8:3::{i:x}", ifname="eth0") for i in range(1, 301)]

    def run() -> list[tuple[int, int, int, int]]:
        with VipManager() as mgr:
            _shrink(mgr, rcvbuf)
            counts = []
            for step in (mgr.add, mgr.add, mgr.remove, mgr.remove):
                r = step(batch)
                counts.append((len(r.changed), len(r.unchanged), len(r.failed), _drops(mgr)))
            return counts

    n = len(batch)
    assert node.call(run, timeout=120) == [(n, 0, 0, 0), (0, n, 0, 0), (n, 0, 0, 0),
                                           (0, n, 0, 0)]
    assert not {str(s.address.ip) for s in batch} & {a["local"] for a in addr_info(node)}


@needs_netns
def test_answers_lost_to_an_overrun_are_settled_by_reading_back(node: Node) -> None:
    # Address and route notifications on the manager's own socket (two or three per
    # added address) fill its small receive buffer behind the batch's back: errors and
    # sentinels are dropped (ENOBUFS). The outcome must still be what the kernel did,
    # not "all failed".
    def run() -> tuple[Any, ...]:
        ifindex = socket.if_nametoindex("eth0")
        specs, failing, before = _mixed_failures(ifindex)
        with VipManager() as mgr:
            mgr.add([specs[i] for i in sorted(before)])
            sock = socket.socket(fileno=os.dup(mgr.fileno()))
            for group in (RTNLGRP_IPV4_IFADDR, RTNLGRP_IPV4_ROUTE, RTNLGRP_IPV6_IFADDR,
                          RTNLGRP_IPV6_ROUTE):
                sock.setsockopt(270, NETLINK_ADD_MEMBERSHIP, group)  # SOL_NETLINK
            sock.close()
            _shrink(mgr, 8192)
            added = mgr.add(specs)
            drops = _drops(mgr)
            removed = mgr.remove(specs)
            present = mgr.present(specs)
            return specs, failing, before, added, removed, drops, present

    specs, failing, before, added, removed, drops, present = node.call(run)
    assert drops > 0  # the overrun happened
    good = [s for i, s in enumerate(specs) if i not in failing]
    # Lost answers: an address present after the add counts as added, even one that
    # was there before (its EEXIST may be lost); a refused one as failed (EINVAL, or
    # ENOBUFS when its error was lost).
    assert sorted(added.changed + added.unchanged, key=specs.index) == good
    assert set(added.unchanged) <= {specs[i] for i in before}
    assert [f.spec for f in added.failed] == [specs[i] for i in failing]
    assert {f.errno for f in added.failed} <= {errno.EINVAL, errno.ENODEV, errno.ENOBUFS}
    assert removed.failed == [] and present == set()
    assert set(removed.changed) >= set(good)


@needs_netns
def test_prepared_requests_are_not_encoded_again(node: Node) -> None:
    # The daemon prepares every VIP at start-up, so its first mass takeover spends
    # nothing on encoding (2.6 µs per VIP).
    from fastvrrp.net import vips as vips_mod

    def run() -> tuple[Any, ...]:
        specs = [VipSpec(ip_interface(f"203.0.113.{i}/32"), ifname="eth0") for i in range(1, 41)]
        encoded = []
        real = vips_mod.encode_addr_request

        def counting(*args: Any, **kw: Any) -> bytes:
            encoded.append(args[2])  # add or remove
            return real(*args, **kw)

        vips_mod.encode_addr_request = counting
        try:
            with VipManager() as mgr:
                mgr.prepare(specs)
                prepared = len(encoded)
                added = mgr.add(specs)
                removed = mgr.remove(specs)
        finally:
            vips_mod.encode_addr_request = real
        return prepared, len(encoded), len(added.changed), len(removed.changed)

    prepared, total, added, removed = node.call(run)
    assert (prepared, total) == (80, 80)  # add and remove of each, and nothing after
    assert (added, removed) == (40, 40)
