"""Time adding and removing many VIPs on one interface, batched vs one request each.

    sudo python bench/bench_vips.py [--count N] [--repeat R] [--fast] [--methods M,...]
                                    [--rcvbuf BYTES]

Runs in a private namespace lab (fastvrrp.netlab) on one veth interface. Methods:

  fastvrrp batch      VipManager.add/remove: requests without NLM_F_ACK and a NOOP
                      sentinel per write; only failures and the sentinel are answered.
                      The VipSpecs are built once, outside the timing, as the daemon
                      builds them at config load.
  pyroute2 batch      IPRoute.nlm_request_batch (one write; failed acks are dropped)
  pyroute2 per addr   IPRoute.addr("add"/"del") per address (a round trip each)
  ip -batch           one `ip -batch -` process (a round trip per line)
  ip per addr         one `ip addr add` process per address (what scripts do)

--rcvbuf sets SO_RCVBUF on fastvrrp's socket as a host with a small net.core.rmem_max
would (Debian's default is 212992).

IPv4 VIPs come from the documentation ranges only (DESIGN.md test network rules), which
hold 768 addresses, so the IPv4 count is capped there; IPv6 uses 2001:db8::/32.
Times are the best of R runs (wall clock, ms).
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from ipaddress import IPv4Address, IPv4Interface, IPv6Interface

from fastvrrp import netlab
from fastvrrp.net.vips import VipManager, VipSpec

IPV4_POOL = [IPv4Address(f"{net}.{host}") for net in ("192.0.2", "198.51.100", "203.0.113")
             for host in range(256)]
IFNAME = "eth0"

Addrs = list[IPv4Interface | IPv6Interface]


def addresses(family: int, count: int) -> Addrs:
    if family == 4:
        return [IPv4Interface(f"{ip}/32") for ip in IPV4_POOL[:count]]
    return [IPv6Interface(f"2001:db8:ffff::{i + 1:x}/128") for i in range(count)]


# Each method: (add, remove) callables taking the address list; run inside the namespace.
RCVBUF: int | None = None  # --rcvbuf, for fastvrrp batch


def fastvrrp_batch() -> tuple[Callable[[Addrs], None], Callable[[Addrs], None]]:
    mgr = VipManager()
    if RCVBUF is not None:
        with socket.socket(fileno=os.dup(mgr.fileno())) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RCVBUF)
    ifindex = mgr.resolve(IFNAME).ifindex  # type: ignore[union-attr]
    built: dict[int, list[VipSpec]] = {}

    def specs(addrs: Addrs) -> list[VipSpec]:
        if id(addrs) not in built:
            built[id(addrs)] = [VipSpec(a, ifindex=ifindex) for a in addrs]
        return built[id(addrs)]

    def add(addrs: Addrs) -> None:
        r = mgr.add(specs(addrs))
        assert len(r.changed) == len(addrs), (len(r.failed), r.failed[:3])

    def remove(addrs: Addrs) -> None:
        r = mgr.remove(specs(addrs))
        assert len(r.changed) == len(addrs), (len(r.failed), r.failed[:3])

    add.prepare = specs  # type: ignore[attr-defined]
    return add, remove


def pyroute2_batch() -> tuple[Callable[[Addrs], None], Callable[[Addrs], None]]:
    from pyroute2 import IPRoute
    from pyroute2.netlink import NLM_F_ACK, NLM_F_CREATE, NLM_F_EXCL, NLM_F_REQUEST
    from pyroute2.netlink.rtnl.ifaddrmsg import ifaddrmsg

    ipr = IPRoute()
    ifindex = ipr.link_lookup(ifname=IFNAME)[0]

    def msgs(addrs: Addrs, kind: int, flags: int) -> list[ifaddrmsg]:
        out = []
        for a in addrs:
            m = ifaddrmsg()
            m["family"] = 2 if a.version == 4 else 10
            m["prefixlen"] = a.network.prefixlen
            m["index"] = ifindex
            m["attrs"] = [("IFA_LOCAL", str(a.ip))]
            m["header"]["type"] = kind
            m["header"]["flags"] = flags
            out.append(m)
        return out

    def add(addrs: Addrs) -> None:
        acks = ipr.nlm_request_batch(msgs(addrs, 20, NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE
                                          | NLM_F_EXCL), noraise=True)
        assert len(acks) == len(addrs)

    def remove(addrs: Addrs) -> None:
        acks = ipr.nlm_request_batch(msgs(addrs, 21, NLM_F_REQUEST | NLM_F_ACK), noraise=True)
        assert len(acks) == len(addrs)

    return add, remove


def pyroute2_each() -> tuple[Callable[[Addrs], None], Callable[[Addrs], None]]:
    from pyroute2 import IPRoute

    ipr = IPRoute()
    ifindex = ipr.link_lookup(ifname=IFNAME)[0]

    def add(addrs: Addrs) -> None:
        for a in addrs:
            ipr.addr("add", index=ifindex, address=str(a.ip), prefixlen=a.network.prefixlen)

    def remove(addrs: Addrs) -> None:
        for a in addrs:
            ipr.addr("del", index=ifindex, address=str(a.ip), prefixlen=a.network.prefixlen)

    return add, remove


def ip_batch() -> tuple[Callable[[Addrs], None], Callable[[Addrs], None]]:
    def run(verb: str, addrs: Addrs) -> None:
        lines = "".join(f"addr {verb} {a} dev {IFNAME}\n" for a in addrs)
        subprocess.run(["ip", "-batch", "-"], input=lines, text=True, check=True)

    return (lambda addrs: run("add", addrs)), (lambda addrs: run("del", addrs))


def ip_each() -> tuple[Callable[[Addrs], None], Callable[[Addrs], None]]:
    def run(verb: str, addrs: Addrs) -> None:
        for a in addrs:
            subprocess.run(["ip", "addr", verb, str(a), "dev", IFNAME], check=True)

    return (lambda addrs: run("add", addrs)), (lambda addrs: run("del", addrs))


METHODS: dict[str, Callable[[], tuple[Callable[[Addrs], None], Callable[[Addrs], None]]]] = {
    "fastvrrp batch": fastvrrp_batch,
    "pyroute2 batch": pyroute2_batch,
    "pyroute2 per addr": pyroute2_each,
    "ip -batch": ip_batch,
    "ip per addr": ip_each,
}


def measure(method: str, family: int, count: int, repeat: int,
            rcvbuf: int | None = None) -> tuple[float, float]:
    """Best add and remove times (ms). Runs inside the lab node's namespace."""
    global RCVBUF
    RCVBUF = rcvbuf
    add, remove = METHODS[method]()
    addrs = addresses(family, count)
    prepare = getattr(add, "prepare", None)
    if prepare is not None:  # what a daemon does once, at config load
        prepare(addrs)
    adds, removes = [], []
    for _ in range(repeat):
        t0 = time.perf_counter()
        add(addrs)
        t1 = time.perf_counter()
        remove(addrs)
        t2 = time.perf_counter()
        adds.append((t1 - t0) * 1e3)
        removes.append((t2 - t1) * 1e3)
    return min(adds), min(removes)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=1000,
                        help="VIPs per family (IPv4 capped at 768)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--fast", action="store_true", help="smoke run: 50 VIPs, 1 repeat")
    parser.add_argument("--methods", default=",".join(METHODS),
                        help="comma-separated subset of: " + ", ".join(METHODS))
    parser.add_argument("--rcvbuf", type=int, default=None,
                        help="SO_RCVBUF for fastvrrp's socket (e.g. 212992)")
    args = parser.parse_args()
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        parser.error(f"unknown method(s): {', '.join(unknown)}")
    if args.fast:
        args.count, args.repeat = 50, 1
    reason = netlab.netns_usable()
    if reason:
        print(f"cannot run: {reason}", file=sys.stderr)
        return 2
    with netlab.Lab() as lab:
        node = lab.node("bench", [], ifname=IFNAME)
        for family in (4, 6):
            count = min(args.count, len(IPV4_POOL)) if family == 4 else args.count
            print(f"\nIPv{family}: {count} VIPs on one veth, best of {args.repeat} (ms)")
            print(f"{'method':<20}{'add':>10}{'remove':>10}{'add x':>9}{'remove x':>10}")
            base: tuple[float, float] | None = None
            for method in methods:
                add_ms, remove_ms = node.call(measure, method, family, count, args.repeat,
                                              args.rcvbuf, timeout=600)
                if base is None:
                    base = (add_ms, remove_ms)
                print(f"{method:<20}{add_ms:>10.2f}{remove_ms:>10.2f}"
                      f"{add_ms / base[0]:>9.1f}{remove_ms / base[1]:>10.1f}")
    print(f"\n'x' columns: time relative to the {methods[0]}.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
