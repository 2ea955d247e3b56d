"""`fastvrrp demo`: two fastvrrp routers and a client in network namespaces.

Builds the lab (documentation addresses only, everything removed on exit or Ctrl-C),
starts two daemons from a generated keepalived.conf, shows the election, kills the
master with SIGKILL while the client pings the virtual IP every 5 ms, and prints how
long the client went without an answer and the state of both routers.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import select
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from fastvrrp import netlab

VIP = "192.0.2.100"
CONFIG = """\
global_defs {{
    router_id {name}
}}
vrrp_instance DEMO {{
    state BACKUP
    interface eth0
    virtual_router_id 51
    priority {priority}
    version 3
    advert_int {advert_int}
    virtual_ipaddress {{
        {vip}/24
    }}
}}
"""
TRANSITION = re.compile(r"DEMO: (\w+) -> (\w+)")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--advert-int", default="0.1", help="VRRPv3 advert interval in seconds (default 0.1)")


def _checksum(data: bytes) -> int:
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    s = (s & 0xFFFF) + (s >> 16)
    return ~(s + (s >> 16)) & 0xFFFF


def ping_gaps(target: str, duration: float, interval: float = 0.005) -> list[tuple[float, float]]:
    """Echo requests every `interval` for `duration` s; returns (sent, replied) times,
    replied 0.0 for none. Runs inside the client namespace (raw ICMP socket)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
    ident = os.getpid() & 0xFFFF
    sent: dict[int, float] = {}
    replied: dict[int, float] = {}
    seq = 0
    start = time.monotonic()
    next_send = start
    while True:
        now = time.monotonic()
        if now - start > duration:
            break
        if now >= next_send:
            header = struct.pack("!BBHHH", 8, 0, 0, ident, seq)
            pkt = struct.pack("!BBHHH", 8, 0, _checksum(header), ident, seq)
            sock.sendto(pkt, (target, 0))
            sent[seq] = now
            seq = (seq + 1) & 0xFFFF
            next_send += interval
        if select.select([sock], [], [], max(0.0, next_send - time.monotonic()))[0]:
            data = sock.recv(2048)
            ihl = (data[0] & 0x0F) * 4
            kind, _code, _c, rid, rseq = struct.unpack("!BBHHH", data[ihl:ihl + 8])
            if kind == 0 and rid == ident and rseq in sent:
                replied.setdefault(rseq, time.monotonic())
    return [(sent[s], replied.get(s, 0.0)) for s in sorted(sent)]


def _longest_outage(samples: list[tuple[float, float]], after: float) -> float:
    """Longest time between two consecutive answers that ends after `after`."""
    answered = sorted(r for _s, r in samples if r)
    gaps = [b - a for a, b in zip(answered, answered[1:]) if b > after]
    return max(gaps) if gaps else float("nan")


def _state(log: Path) -> str:
    found = TRANSITION.findall(log.read_text())
    return found[-1][1] if found else "starting"


def _wait(predicate, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return False


def _has_vip(node: netlab.Node) -> bool:
    out = json.loads(node.run(["ip", "-j", "addr", "show", "dev", "eth0"]).stdout)
    return any(a.get("local") == VIP for link in out for a in link.get("addr_info", []))


def run(args: argparse.Namespace) -> int:
    reason = netlab.netns_usable()
    if reason:
        print(f"fastvrrp demo needs root and network namespaces: {reason}", file=sys.stderr)
        return 1
    advert = float(args.advert_int)
    with tempfile.TemporaryDirectory(prefix="fastvrrp-demo-") as tmp, netlab.Lab() as lab:
        work = Path(tmp)
        print(f"lab {lab.prefix}: routers r1 (192.0.2.1, priority 150) and r2 (192.0.2.2, "
              f"priority 100), client 192.0.2.10; VIP {VIP}; VRRPv3 advert_int {advert:g} s")
        routers = {"r1": 150, "r2": 100}
        nodes = {name: lab.node(name, [f"192.0.2.{i + 1}/24"]) for i, name in enumerate(routers)}
        client = lab.node("client", ["192.0.2.10/24"])
        procs, logs = {}, {}
        for name, prio in routers.items():
            conf = work / f"{name}.conf"
            conf.write_text(CONFIG.format(name=name, priority=prio, advert_int=args.advert_int, vip=VIP))
            logs[name] = work / f"{name}.log"
            procs[name] = nodes[name].popen(
                [sys.executable, "-m", "fastvrrp", "run", "-f", str(conf), "--control",
                 str(work / f"{name}.sock")],
                stdout=subprocess.DEVNULL, stderr=open(logs[name], "w"))
        def settled() -> bool:
            # One MASTER and one BACKUP, and no transition for ten advert intervals.
            before = {n: logs[n].read_text() for n in routers}
            if {_state(logs[n]) for n in routers} != {"MASTER", "BACKUP"}:
                return False
            time.sleep(10 * advert)
            return before == {n: logs[n].read_text() for n in routers}

        if not _wait(settled, 15):
            for n in routers:
                print(f"--- {n} log ---\n{logs[n].read_text()}")
            print("election did not settle", file=sys.stderr)
            return 1
        master = next(n for n in routers if _state(logs[n]) == "MASTER")
        backup = next(n for n in routers if n != master)
        _wait(lambda: _has_vip(nodes[master]), 2)
        print(f"election: {master} is MASTER, {backup} is BACKUP; the VIP is on {master}")

        duration = 3.0 + 6 * advert
        result: dict[str, list] = {}
        prober = threading.Thread(target=lambda: result.update(
            samples=client.call(ping_gaps, VIP, duration, timeout=duration + 30)))
        prober.start()
        time.sleep(1.0)
        # A crash of the whole router: its daemon dies and its link goes dark at once
        # (killing only the daemon would leave the VIP answering from its kernel).
        killed = time.monotonic()
        lab.switch.ip("link", "set", nodes[master].link("eth0").port, "down")
        procs[master].send_signal(signal.SIGKILL)
        print(f"crashed {master} (link down + SIGKILL); the client pings {VIP} every 5 ms ...")
        took_over = _wait(lambda: _state(logs[backup]) == "MASTER", 10 + 4 * advert)
        prober.join()
        outage = _longest_outage(result.get("samples", []), killed)
        master_down = 3 * advert + (256 - routers[backup]) / 256 * advert
        print(f"failover: {backup} is {_state(logs[backup])}; the client went "
              f"{outage * 1000:.1f} ms without an answer (Master_Down_Interval {master_down * 1000:.1f} ms)")
        print(f"state: {master}: down; {backup}: {_state(logs[backup])}, "
              f"VIP {'present' if _has_vip(nodes[backup]) else 'absent'}")
        procs[backup].send_signal(signal.SIGTERM)
        procs[backup].wait(10)
        return 0 if took_over else 1
