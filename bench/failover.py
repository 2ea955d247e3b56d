"""Failover benchmark: fastvrrp and keepalived, same configs, same lab, same capture.

    sudo python bench/failover.py --fast
    sudo python bench/failover.py --impl both --scenario both --version 3 --advert-int 0.1 \
        --instances 1 --trials 20
    sudo python bench/failover.py --matrix --instances 1 --trials 20   # v2 1 s, v3 1 s, v3 0.1 s

The lab (fastvrrp.netlab, documentation addresses only, removed on exit): a master
router `m` (priority 150) and a backup router `b` (priority 100), one interface each per
segment, and an observer `obs` with one interface on every segment. N instances are
spread evenly over max(1, ceil(N/250)) segments (VRIDs 1..250 per interface), one VIP
each. Both routers run the *same generated keepalived.conf* (only router_id and
priority differ) under keepalived 2.x or `fastvrrp run`.

A trial:
  crash     the master's switch port(s) are set down over a pre-opened netlink socket
            in the switch namespace and its daemon's process group gets SIGKILL; the
            kill instant is time.time_ns() just before the first port-down message.
  graceful  SIGTERM to the master daemon (a priority-0 advert, then VIPs removed); the
            kill instant is time.time_ns() just before kill().
The observer captures VRRP and ARP on every segment (tcpdump, nanosecond timestamps,
CLOCK_REALTIME like time.time_ns(); the lab checks the two clocks agree at start-up
and records the offset). `ip -ts monitor address` runs in the backup's namespace for
the whole run, so the moment each VIP lands there is known too. Per trial and instance:

  a  kill -> the backup's first advert (priority > 0) for that VRID
  b  kill -> the backup's first gratuitous ARP for that VIP
  c  kill -> the last VIP of all N installed on the backup (netlink event time from
     `ip -ts monitor`, microseconds); c_garp is the same from the last first-GARP
  d  the overhead beyond the protocol's own bound:
       crash:    takeover - (Master_Down_Interval - age of the master's last advert at
                 the kill) = t(backup's first advert) - t(master's last advert) - MDI,
                 the last advert being the last on the wire (one a burst in progress
                 sent a few µs after the kill's timestamp counts)
       graceful: t(backup's first advert) - t(master's priority-0 advert) - Skew_Time
     with MDI = 3 x advert_int + Skew_Time and Skew_Time as keepalived computes it
     (v2: (256-prio)/256 s; v3: (256-prio) x advert_int_cs x 625/16 us), prio = 100.
  e  per VIP: its install on the backup (netlink event) minus the same protocol bound,
     i.e. how long after its timer had to expire each VIP landed (the issue-6 goal:
     every VIP within Master_Down_Interval + 20 ms, i.e. max e <= 20 ms)

Between trials the port comes up, the master's leftover VIPs are flushed, the master
restarts, and the bench waits until the master holds all VIPs and the backup none, and
until the backup's delayed second GARP burst (garp_master_delay, 5 s) is over, so no
stale GARP can fall into the next trial's window. The kill comes a random fraction of
an advert interval after at least one advert of pre-roll, so the age of the last
advert is sampled uniformly. Implementations alternate in blocks of --block trials
(each block starts a fresh pair of daemons), crash and graceful alternate per trial.

Writes bench/results/failover-<tag>.json (every sample, microseconds) and, when
matplotlib is importable, failover-<tag>.png (CDFs, both implementations per plot).
"""

from __future__ import annotations

import argparse
import ctypes
import json
import math
import os
import platform
import random
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))  # pcaputil
if (ROOT / "src").is_dir():
    sys.path.insert(0, str(ROOT / "src"))

from fastvrrp import netlab  # noqa: E402
from pcaputil import arp_announcements, read_pcap, vrrp_adverts  # noqa: E402
from vipclock import AddrMonitor  # noqa: E402

RESULTS = ROOT / "bench" / "results"
MASTER_PRIO, BACKUP_PRIO = 150, 100
PER_IFACE = 250
GARP_MASTER_DELAY_S = 5.0  # keepalived's default; both implementations use it
BPF = "ip proto 112 or arp"
MS = 1_000_000

# VIP pool: documentation ranges only. 192.0.2.0-63 is kept for router interfaces.
VIP_POOL = ([f"198.51.100.{h}" for h in range(1, 255)] + [f"203.0.113.{h}" for h in range(1, 255)]
            + [f"192.0.2.{h}" for h in range(64, 255)])

METRICS = {
    "a": "kill -> first advert",
    "b": "kill -> first GARP (per VIP)",
    "c": "kill -> last VIP installed",
    "c_garp": "kill -> last VIP's first GARP",
    "d": "overhead beyond RFC bound",
    "e": "VIP installed beyond RFC bound (per VIP)",
}


# --------------------------------------------------------------------------- protocol


def skew_ns(version: int, prio: int, advert_cs: int) -> int:
    """keepalived's VRRP_TIMER_SKEW (vrrp.h), microsecond arithmetic, in ns."""
    if version == 3:
        return ((256 - prio) * advert_cs * 625 // 16) * 1000
    return ((256 - prio) * 1_000_000 // 256) * 1000


def master_down_ns(version: int, prio: int, advert_cs: int) -> int:
    return 3 * advert_cs * 10 * MS + skew_ns(version, prio, advert_cs)


# --------------------------------------------------------------------------- layout


class Layout:
    """Which instance lives on which segment, its VRID and VIP; the config text."""

    def __init__(self, n: int, version: int, advert: str) -> None:
        self.n, self.version, self.advert = n, version, advert
        self.advert_cs = round(float(advert) * 100)
        self.segments = max(1, math.ceil(n / PER_IFACE))
        if self.segments > 20:
            raise SystemExit("at most 5000 instances (20 segments)")
        self.instances: list[tuple[int, int, str]] = []  # (segment, vrid, vip)
        used: dict[int, set[str]] = {s: set() for s in range(self.segments)}
        cursor = 0
        for i in range(n):
            seg, vrid = i % self.segments, i // self.segments + 1
            # Unique VIPs while the pool lasts; beyond it reuse addresses, never twice
            # on one segment (each segment is its own LAN).
            while VIP_POOL[cursor % len(VIP_POOL)] in used[seg]:
                cursor += 1
            vip = VIP_POOL[cursor % len(VIP_POOL)]
            cursor += 1
            used[seg].add(vip)
            self.instances.append((seg, vrid, vip))
        self.reused_vips = n > len(VIP_POOL)

    @staticmethod
    def ifname(seg: int) -> str:
        return f"eth{seg}"

    @staticmethod
    def router_addr(role: str, seg: int) -> str:
        return f"192.0.2.{(1 if role == 'm' else 21) + seg}"

    def config(self, role: str) -> str:
        prio = MASTER_PRIO if role == "m" else BACKUP_PRIO
        out = [f"global_defs {{\n    router_id bench_{role}\n}}\n"]
        for seg, vrid, vip in self.instances:
            out.append(f"""
vrrp_instance VI_{seg}_{vrid} {{
    state BACKUP
    interface {self.ifname(seg)}
    virtual_router_id {vrid}
    priority {prio}
    version {self.version}
    advert_int {self.advert}
    virtual_ipaddress {{
        {vip}/32
    }}
}}
""")
        return "".join(out)

    @property
    def mdi_ns(self) -> int:
        return master_down_ns(self.version, BACKUP_PRIO, self.advert_cs)

    @property
    def skew_ns(self) -> int:
        return skew_ns(self.version, BACKUP_PRIO, self.advert_cs)

    @property
    def tag(self) -> str:
        return f"v{self.version}-{float(self.advert):g}s-n{self.n}"


# --------------------------------------------------------------------------- lab helpers


_CLONE_NEWNET = 0x40000000
_RTM_NEWLINK, _NLM_F_REQUEST, _NLM_F_ACK, _IFF_UP = 16, 1, 4, 1


class PortSwitch:
    """A NETLINK_ROUTE socket opened inside the switch namespace, so setting ports down
    costs one sendmsg each (no fork/exec between the recorded instant and the cut)."""

    def __init__(self, ns: str) -> None:
        box: dict[str, object] = {}

        def make() -> None:  # setns only affects this short-lived thread
            try:
                libc = ctypes.CDLL(None, use_errno=True)
                fd = os.open(f"/run/netns/{ns}", os.O_RDONLY)
                try:
                    if libc.setns(fd, _CLONE_NEWNET) != 0:
                        raise OSError(ctypes.get_errno(), "setns")
                finally:
                    os.close(fd)
                s = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE)
                s.bind((0, 0))
                box["sock"] = s
            except BaseException as exc:  # noqa: BLE001
                box["error"] = exc

        t = threading.Thread(target=make)
        t.start()
        t.join()
        if "error" in box:
            raise box["error"]  # type: ignore[misc]
        self.sock: socket.socket = box["sock"]  # type: ignore[assignment]
        self.seq = 0

    def send(self, ifindexes: list[int], up: bool) -> int:
        for idx in ifindexes:
            self.seq += 1
            body = struct.pack("=BxHiII", socket.AF_UNSPEC, 0, idx, _IFF_UP if up else 0, _IFF_UP)
            self.sock.send(struct.pack("=LHHLL", 16 + len(body), _RTM_NEWLINK,
                                       _NLM_F_REQUEST | _NLM_F_ACK, self.seq, 0) + body)
        return len(ifindexes)

    def acks(self, count: int) -> None:
        for _ in range(count):
            data = self.sock.recv(65536)
            _len, mtype, _f, _seq, _pid = struct.unpack("=LHHLL", data[:16])
            if mtype == 2:  # NLMSG_ERROR
                err = struct.unpack("=i", data[16:20])[0]
                if err:
                    raise OSError(-err, f"port up/down: {os.strerror(-err)}")

    def close(self) -> None:
        self.sock.close()


def pair_nodes(lab: netlab.Lab, layout: Layout) -> tuple[netlab.Node, netlab.Node, netlab.Node]:
    """The master `m`, the backup `b` and the observer `obs`, each with one interface
    on every segment of `layout` (the routers addressed as layout.router_addr says)."""
    m = lab.node("m", [f"{layout.router_addr('m', 0)}/24"], segment="s0")
    b = lab.node("b", [f"{layout.router_addr('b', 0)}/24"], segment="s0")
    obs = lab.node("obs", [], segment="s0")
    for s in range(1, layout.segments):
        m.add_link(layout.ifname(s), segment=f"s{s}", addrs=[f"{layout.router_addr('m', s)}/24"])
        b.add_link(layout.ifname(s), segment=f"s{s}", addrs=[f"{layout.router_addr('b', s)}/24"])
        obs.add_link(layout.ifname(s), segment=f"s{s}")
    return m, b, obs


def vips_on(node: netlab.Node, vipset: set[tuple[str, str]]) -> int:
    """How many of (ifname, address) are configured on `node`."""
    out = json.loads(node.run(["ip", "-j", "addr", "show"]).stdout)
    have = {(link["ifname"], a["local"]) for link in out for a in link.get("addr_info", [])}
    return len(vipset & have)


def flush_vips(node: netlab.Node, vips: list[tuple[str, str]]) -> None:
    batch = "".join(f"addr del {vip}/32 dev {ifn}\n" for ifn, vip in vips)
    node.run(["ip", "-force", "-batch", "-"], check=False, input=batch)


def clock_check(lab: netlab.Lab, src: netlab.Node, obs: netlab.Node, tmp: Path) -> dict:
    """Send UDP broadcasts from `src` with time.time_ns() around each send, and compare
    with the observer's tcpdump timestamps: both must be CLOCK_REALTIME."""
    path = tmp / "clock.pcap"
    cap = lab.capture(obs, "eth0", "udp port 9", path)

    def send(n: int) -> list[tuple[int, int]]:
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, b"eth0")
        out = []
        for i in range(n):
            t0 = time.time_ns()
            s.sendto(struct.pack("!I", i) + b"clock", ("192.0.2.255", 9))
            out.append((t0, time.time_ns()))
            time.sleep(0.02)
        return out

    sent = src.call(send, 10)
    time.sleep(0.2)
    cap.stop()
    got = {struct.unpack("!I", f[42:46])[0]: ts for ts, f in read_pcap(path) if len(f) >= 46}
    offsets = sorted(got[i] - sent[i][0] for i in got if i < len(sent))
    if not offsets:
        raise RuntimeError("clock check: no packet captured")
    med = offsets[len(offsets) // 2]
    if not 0 <= med < 5 * MS:
        raise RuntimeError(f"clock check: capture - send = {med / 1000:.1f} us; tcpdump's "
                           "timestamps are not CLOCK_REALTIME?")
    return {"capture_minus_send_us": [round(o / 1000, 1) for o in offsets],
            "median_us": round(med / 1000, 1)}


# --------------------------------------------------------------------------- daemons


class Daemon:
    """One keepalived or fastvrrp process of the pair, restartable."""

    def __init__(self, impl: str, node: netlab.Node, workdir: Path, config: str) -> None:
        self.impl, self.node, self.workdir, self.config = impl, node, workdir, config
        self.proc: subprocess.Popen | None = None
        self.starts = 0
        workdir.mkdir(parents=True, exist_ok=True)

    def start(self) -> None:
        self.starts += 1
        if self.impl == "keepalived":
            for p in self.workdir.glob("*.pid"):
                p.unlink()
            ka = self.node.start_keepalived(self.config, self.workdir)
            self.proc = ka.proc  # its log is rewritten at every start
        else:
            conf = self.workdir / "fastvrrp.conf"
            conf.write_text(self.config)
            log = open(self.workdir / "fastvrrp.log", "a")  # noqa: SIM115
            try:
                # A control socket of its own: master and backup share the filesystem
                # (with the default path the second daemon refuses to start).
                self.proc = self.node.popen(
                    [sys.executable, "-m", "fastvrrp", "run", "-f", str(conf),
                     "--control", str(self.workdir / "control.sock")],
                    stdout=log, stderr=subprocess.STDOUT)
            finally:
                log.close()

    def log_tail(self, lines: int = 30) -> str:
        name = "keepalived.log" if self.impl == "keepalived" else "fastvrrp.log"
        try:
            return "\n".join((self.workdir / name).read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return ""

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10.0) -> None:
        """Signal, wait, then SIGKILL whatever is left of our process group."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            try:
                os.kill(self.proc.pid, sig)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                pass
        self.reap()

    def reap(self) -> None:
        if self.proc is None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)  # our own session: pgid == pid
        except (ProcessLookupError, PermissionError):
            pass
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            pass


# --------------------------------------------------------------------------- the bench


class Bench:
    def __init__(self, layout: Layout, args: argparse.Namespace, lab: netlab.Lab, tmp: Path) -> None:
        self.L, self.args, self.lab, self.tmp = layout, args, lab, tmp
        segs = range(layout.segments)
        self.m, self.b, self.obs = pair_nodes(lab, layout)
        self.vips = [(layout.ifname(s), vip) for s, _v, vip in layout.instances]
        self.vipset = set(self.vips)
        ports = [self.m.link(layout.ifname(s)).port for s in segs]
        links = json.loads(lab.switch.ip("-j", "link", "show").stdout)
        index = {link["ifname"]: link["ifindex"] for link in links}
        self.port_index = [index[p] for p in ports]
        self.ports = PortSwitch(lab.switch.ns)
        self.clock = clock_check(lab, self.b, self.obs, tmp)
        self.monitor = AddrMonitor(self.b, tmp / "b-addr-monitor.txt")
        self.last_backup_takeover_ns = 0
        self.mac_b = {s: self.b.link(layout.ifname(s)).mac for s in segs}

    def close(self) -> None:
        self.monitor.close()
        self.ports.close()

    # -- pair lifecycle

    def wait_settled(self, timeout: float) -> float:
        """Until the master holds every VIP and the backup none. Returns when (wall)."""
        n = len(self.vipset)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if vips_on(self.m, self.vipset) == n and vips_on(self.b, self.vipset) == 0:
                return time.time()
            time.sleep(0.1)
        raise RuntimeError(f"election did not settle in {timeout:.0f} s "
                           f"(master {vips_on(self.m, self.vipset)}/{n} VIPs, "
                           f"backup {vips_on(self.b, self.vipset)})")

    def settle_timeout(self) -> float:
        return 20 + 8 * self.L.advert_cs / 100 + self.L.n * 0.02

    # -- one trial

    def trial(self, impl: str, scenario: str, master: Daemon, backup: Daemon, index: int) -> dict:
        L = self.L
        adv_s = L.advert_cs / 100
        preroll = adv_s + 0.25
        # Not before the backup's delayed GARP burst of the last trial is over.
        earliest_kill = self.last_backup_takeover_ns / 1e9 + GARP_MASTER_DELAY_S + 0.5 + 0.05 * L.n / 100
        kill_at = max(time.time() + preroll, earliest_kill) + random.uniform(0, adv_s)
        time.sleep(max(0.0, kill_at - preroll - time.time()))
        paths = [self.tmp / f"{impl}-{scenario}-{index}-s{s}.pcap" for s in range(L.segments)]
        # 128 bytes hold every header we parse; an 8 MiB ring keeps a 1000-instance
        # takeover burst whole (the default 2 MiB ring dropped frames at N=100).
        caps = [self.lab.capture(self.obs, L.ifname(s), BPF, paths[s], snaplen=128,
                                 buffer_kib=8192) for s in range(L.segments)]
        mon_off = self.monitor.offset()
        time.sleep(max(0.0, kill_at - time.time()))

        pid = master.proc.pid
        if scenario == "crash":
            t_kill = time.time_ns()
            sent = self.ports.send(self.port_index, up=False)
            os.killpg(pid, signal.SIGKILL)
            t_sig = time.time_ns()
            self.ports.acks(sent)
        else:
            t_kill = time.time_ns()
            os.kill(pid, signal.SIGTERM)
            t_sig = time.time_ns()

        # Wait for every VIP on the backup (from the monitor file: no process spawned
        # while the takeover happens), then a little for the GARPs to be captured. The
        # first look comes after the takeover should be over, so the bench takes no CPU
        # from the daemons while they work.
        bound = (L.mdi_ns if scenario == "crash" else L.skew_ns) / 1e9
        deadline = time.monotonic() + bound + 10 + L.n * 0.02
        installed: dict[tuple[str, str], int] = {}
        time.sleep(max(0.0, t_kill / 1e9 + bound + 0.1 + L.n * 0.0002 - time.time()))
        while time.monotonic() < deadline:
            installed = self.monitor.adds_since(mon_off, t_kill)
            if len(self.vipset & installed.keys()) == len(self.vipset):
                break
            time.sleep(0.02)
        time.sleep(0.3 + L.n * 0.002)
        for cap in caps:
            cap.stop()
        capture_drops = sum(cap.dropped_by_kernel or 0 for cap in caps)
        complete = len(self.vipset & installed.keys()) == len(self.vipset)
        if installed:
            self.last_backup_takeover_ns = max(self.last_backup_takeover_ns, min(installed.values()))
        else:
            self.last_backup_takeover_ns = time.time_ns()

        result = self.analyse(paths, t_kill, scenario, installed)
        result.update(t_kill_ns=t_kill, signal_spread_us=round((t_sig - t_kill) / 1000, 1),
                      all_installed=complete, capture_drops=capture_drops)
        if capture_drops:
            result["anomalies"].append(
                f"the observer's capture lost {capture_drops} frame(s): trial not valid")
            result["anomaly_count"] += 1
        for p in paths:
            if not self.args.keep_pcaps:
                p.unlink(missing_ok=True)

        # Restore: master's port(s) up, its leftovers gone, restarted, election settled.
        master.stop(signal.SIGKILL if scenario == "crash" else signal.SIGTERM, timeout=10)
        flush_vips(self.m, self.vips)
        if scenario == "crash":
            self.ports.acks(self.ports.send(self.port_index, up=True))
        master.start()
        try:
            self.wait_settled(self.settle_timeout())
        except RuntimeError as exc:
            raise RuntimeError(f"{impl} {scenario} trial {index}: {exc}\n--- master log ---\n"
                               f"{master.log_tail()}\n--- backup log ---\n{backup.log_tail()}") from None
        return result

    def analyse(self, paths: list[Path], t_kill: int, scenario: str,
                installed: dict[tuple[str, str], int]) -> dict:
        L = self.L
        a, b, d, e, age, missing = [], [], [], [], [], []
        anomalies = []
        for s, path in enumerate(paths):
            adverts: dict[tuple[str, int], list[tuple[int, int]]] = {}
            for ts, src, vrid, prio in vrrp_adverts(path):
                adverts.setdefault((src, vrid), []).append((ts, prio))
            garps: dict[str, int] = {}
            mac_b = self.mac_b[s]
            for ts, mac, ip in arp_announcements(path):
                if mac == mac_b and ts >= t_kill:
                    garps.setdefault(ip, ts)
            msrc, bsrc = L.router_addr("m", s), L.router_addr("b", s)
            for seg, vrid, vip in L.instances:
                if seg != s:
                    continue
                mas = adverts.get((msrc, vrid), [])
                bas = adverts.get((bsrc, vrid), [])
                # The master's last advert, even one it sent after t_kill: a SIGKILL
                # lands a few µs after the bench's timestamp, and a burst in progress
                # goes on until then (those adverts re-armed the backup's timer too;
                # counting only earlier ones put the bound one interval early).
                last_m = max((ts for ts, p in mas if p > 0), default=None)
                p0 = min((ts for ts, p in mas if ts >= t_kill and p == 0), default=None)
                first_b = min((ts for ts, p in bas if ts >= t_kill and p > 0), default=None)
                if any(ts < t_kill for ts, _p in bas):
                    anomalies.append(f"VI_{s}_{vrid}: backup advertised before the kill")
                g = garps.get(vip)
                if first_b is None:
                    missing.append(f"VI_{s}_{vrid}: no advert from the backup")
                    continue
                a.append(first_b - t_kill)
                if g is not None:
                    b.append(g - t_kill)
                    if g < first_b - MS:
                        anomalies.append(f"VI_{s}_{vrid}: GARP {(first_b - g) / 1e6:.1f} ms before the advert")
                else:
                    missing.append(f"VI_{s}_{vrid}: no GARP for {vip}")
                # The protocol's own bound: when this instance's timer must expire.
                bound = None
                if scenario == "crash":
                    if last_m is None:
                        missing.append(f"VI_{s}_{vrid}: no master advert")
                    else:
                        age.append(t_kill - last_m)
                        bound = last_m + L.mdi_ns
                else:
                    if p0 is None:
                        missing.append(f"VI_{s}_{vrid}: no priority-0 advert")
                    else:
                        bound = p0 + L.skew_ns
                if bound is not None:
                    d.append(first_b - bound)
                    t_vip = installed.get((L.ifname(s), vip))
                    if t_vip is not None:
                        e.append(t_vip - bound)
        inst = [installed[v] for v in self.vips if v in installed]
        us = lambda xs: [round(x / 1000, 1) for x in xs]  # noqa: E731
        return {
            "a_us": us(a), "b_us": us(b), "d_us": us(d), "e_us": us(e), "age_us": us(age),
            "c_us": round((max(inst) - t_kill) / 1000, 1) if len(inst) == len(self.vips) else None,
            "c_garp_us": round(max(b) / 1000, 1) if len(b) == len(self.vips) else None,
            "missing": missing[:20], "missing_count": len(missing),
            "anomalies": anomalies[:20], "anomaly_count": len(anomalies),
        }

    # -- a block of trials for one implementation

    def block(self, impl: str, scenarios: list[str], count: int, first_index: int,
              out: dict[str, list[dict]], progress) -> None:
        work = self.tmp / impl
        master = Daemon(impl, self.m, work / "m", self.L.config("m"))
        backup = Daemon(impl, self.b, work / "b", self.L.config("b"))
        flush_vips(self.m, self.vips)
        flush_vips(self.b, self.vips)
        master.start()
        backup.start()
        try:
            try:
                settled = self.wait_settled(self.settle_timeout())
            except RuntimeError as exc:
                raise RuntimeError(f"{impl}: {exc}\n--- master log ---\n{master.log_tail()}\n"
                                   f"--- backup log ---\n{backup.log_tail()}") from None
            # The backup may have been master for a moment while both started.
            self.last_backup_takeover_ns = max(self.last_backup_takeover_ns, int(settled * 1e9))
            for j in range(count):
                order = scenarios if (first_index + j) % 2 == 0 else scenarios[::-1]
                for scenario in order:
                    r = self.trial(impl, scenario, master, backup, first_index + j)
                    out[scenario].append(r)
                    progress(impl, scenario, r)
        finally:
            master.stop()
            backup.stop()
            flush_vips(self.m, self.vips)
            flush_vips(self.b, self.vips)


# --------------------------------------------------------------------------- statistics


def quantile(xs: list[float], q: float) -> float | None:
    """Linear interpolation between closest ranks (numpy's default)."""
    if not xs:
        return None
    s = sorted(xs)
    pos = (len(s) - 1) * q
    lo = math.floor(pos)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (pos - lo)


def samples(trials: list[dict], metric: str) -> list[float]:
    """Pooled samples in us: per instance for a, b, d; per trial for c, c_garp."""
    key = f"{metric}_us"
    out: list[float] = []
    for t in trials:
        v = t.get(key)
        if isinstance(v, list):
            out.extend(v)
        elif v is not None:
            out.append(v)
    return out


def summarise(trials: list[dict]) -> dict:
    out = {}
    for m in METRICS:
        xs = samples(trials, m)
        out[m] = {"n": len(xs), "p50_us": quantile(xs, 0.5), "p95_us": quantile(xs, 0.95),
                  "max_us": max(xs) if xs else None}
    out["trials"] = len(trials)
    out["missing"] = sum(t["missing_count"] for t in trials)
    out["anomalies"] = sum(t["anomaly_count"] for t in trials)
    out["capture_drops"] = sum(t.get("capture_drops", 0) for t in trials)
    return out


def fmt_ms(v: float | None) -> str:
    return "—" if v is None else f"{v / 1000:.3f}"


def table(result: dict) -> str:
    impls = list(result["results"])
    lines = [f"### {result['title']}", "",
             "| scenario | metric | " + " | ".join(f"{i} p50 / p95 / max (ms)" for i in impls) + " |",
             "|---|---|" + "---|" * len(impls)]
    scenarios = [s for s in ("crash", "graceful") if any(s in result["results"][i] for i in impls)]
    for sc in scenarios:
        for m, label in METRICS.items():
            cells = []
            for i in impls:
                st = result["results"][i].get(sc, {}).get("summary")
                if not st:
                    cells.append("—")
                    continue
                x = st[m]
                cells.append(f"{fmt_ms(x['p50_us'])} / {fmt_ms(x['p95_us'])} / {fmt_ms(x['max_us'])}")
            lines.append(f"| {sc} | {m}: {label} | " + " | ".join(cells) + " |")
    counts = []
    for i in impls:
        for sc in scenarios:
            st = result["results"][i].get(sc, {}).get("summary")
            if st:
                counts.append(f"{i} {sc}: {st['trials']} trials, {st['missing']} missing, "
                              f"{st['anomalies']} anomalies, "
                              f"{st.get('capture_drops', 0)} frames lost by the capture")
    lines += ["", "; ".join(counts)]
    return "\n".join(lines)


def plot(result: dict, path: Path) -> str:
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "matplotlib is not installed: no PNG (pip install matplotlib)"
    impls = list(result["results"])
    scenarios = [s for s in ("crash", "graceful") if any(s in result["results"][i] for i in impls)]
    metrics = ["a", "b", "c", "d", "e"]
    fig, axes = plt.subplots(len(scenarios), len(metrics), figsize=(4.2 * len(metrics), 3.4 * len(scenarios)),
                             squeeze=False)
    colours = {"fastvrrp": "tab:blue", "keepalived": "tab:orange"}
    for r, sc in enumerate(scenarios):
        for c, m in enumerate(metrics):
            ax = axes[r][c]
            for i in impls:
                trials = result["results"][i].get(sc, {}).get("trials", [])
                xs = sorted(x / 1000 for x in samples(trials, m))
                if not xs:
                    continue
                ys = [0.0] + [(k + 1) / len(xs) for k in range(len(xs))]
                ax.step([xs[0]] + xs, ys, where="post", label=f"{i} (n={len(xs)})", color=colours.get(i))
            ax.set_title(f"{sc}: {m} {METRICS[m]}", fontsize=9)
            ax.set_xlabel("ms")
            ax.set_ylabel("CDF")
            ax.set_ylim(0, 1.02)
            ax.grid(alpha=0.3)
            ax.legend(fontsize=7)
    fig.suptitle(result["title"], fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return f"wrote {path}"


# --------------------------------------------------------------------------- main


def run_config(args: argparse.Namespace, version: int, advert: str) -> dict:
    layout = Layout(args.instances, version, advert)
    impls = ["fastvrrp", "keepalived"] if args.impl == "both" else [args.impl]
    scenarios = ["crash", "graceful"] if args.scenario == "both" else [args.scenario]
    title = (f"VRRPv{version} advert_int {float(advert):g} s, N={layout.n} instance(s) on "
             f"{layout.segments} interface(s), {args.trials} trial(s) per scenario")
    print(f"== {title}", flush=True)
    results: dict[str, dict[str, list[dict]]] = {i: {s: [] for s in scenarios} for i in impls}
    started = time.time()
    tmp = Path(tempfile.mkdtemp(prefix="fv-failover-"))
    try:
        with netlab.Lab(prefix="fb" + os.urandom(3).hex()) as lab:
            bench = Bench(layout, args, lab, tmp)
            print(f"lab {lab.prefix}; clock check: capture - time.time_ns() at send = "
                  f"{bench.clock['median_us']} us (median of {len(bench.clock['capture_minus_send_us'])})",
                  flush=True)

            def progress(impl: str, sc: str, r: dict) -> None:
                a = r["a_us"]
                d = r["d_us"]
                print(f"  {impl:10s} {sc:8s} #{len(results[impl][sc]):3d} "
                      f"a={max(a) / 1000 if a else float('nan'):9.3f} ms "
                      f"d(max)={max(d) / 1000 if d else float('nan'):8.3f} ms "
                      f"c={(r['c_us'] or float('nan')) / 1000:9.3f} ms"
                      + (f" missing={r['missing_count']}" if r["missing_count"] else "")
                      + (f" anomalies={r['anomaly_count']}" if r["anomaly_count"] else ""), flush=True)

            try:
                done, rnd = 0, 0
                while done < args.trials:
                    count = min(args.block, args.trials - done)
                    order = impls if rnd % 2 == 0 else impls[::-1]
                    for impl in order:
                        bench.block(impl, scenarios, count, done, results[impl], progress)
                    done += count
                    rnd += 1
            finally:
                bench.close()
                if args.keep_logs:
                    print(f"logs and captures kept in {tmp}")
            clock = bench.clock
    finally:
        if not args.keep_logs:
            shutil.rmtree(tmp, ignore_errors=True)
    result = {
        "title": title,
        "command": "python " + " ".join([os.path.relpath(sys.argv[0], ROOT)] + sys.argv[1:]),
        "date": datetime.now().astimezone().isoformat(timespec="seconds"),
        "host": {"kernel": platform.release(), "cpus": os.cpu_count(),
                 "loadavg_after": os.getloadavg(), "python": platform.python_version()},
        "keepalived": subprocess.run(["keepalived", "-v"], capture_output=True, text=True).stderr.splitlines()[:1],
        "config": {"version": version, "advert_int": advert, "instances": layout.n,
                   "segments": layout.segments, "master_priority": MASTER_PRIO,
                   "backup_priority": BACKUP_PRIO, "master_down_interval_us": layout.mdi_ns / 1000,
                   "skew_time_us": layout.skew_ns / 1000, "reused_vips": layout.reused_vips},
        "clock_check": clock,
        "elapsed_s": round(time.time() - started, 1),
        "results": {i: {s: {"summary": summarise(results[i][s]), "trials": results[i][s]}
                        for s in scenarios} for i in impls},
    }
    return result


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--impl", choices=("fastvrrp", "keepalived", "both"), default="both")
    p.add_argument("--scenario", choices=("crash", "graceful", "both"), default="both")
    p.add_argument("--version", type=int, choices=(2, 3), default=3)
    p.add_argument("--advert-int", default="0.1", help="seconds: 1 for v2; 0.01-40.95 for v3 (default 0.1)")
    p.add_argument("--instances", type=int, default=1)
    p.add_argument("--trials", type=int, default=20, help="trials per scenario and implementation")
    p.add_argument("--block", type=int, default=5,
                   help="trials in a row per implementation before switching (default 5)")
    p.add_argument("--matrix", action="store_true",
                   help="run v2 1 s, v3 1 s and v3 0.1 s one after the other")
    p.add_argument("--fast", action="store_true",
                   help="smoke run: N=1, 3 trials, v3 0.1 s, both implementations and scenarios")
    p.add_argument("--out", default=None, help="result file stem (default bench/results/failover-<config>)")
    p.add_argument("--keep-logs", action="store_true", help="keep the temp dir with daemon logs")
    p.add_argument("--keep-pcaps", action="store_true", help="keep each trial's captures (with --keep-logs)")
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--report", nargs="+", metavar="JSON", default=None,
                   help="no lab: print the tables of earlier result files and redraw their PNGs")
    args = p.parse_args(argv)
    if args.report:
        for name in args.report:
            path = Path(name)
            result = json.loads(path.read_text())
            print(table(result))
            print(f"({result['command']}; {result['elapsed_s']} s)")
            print(plot(result, path.with_suffix(".png")))
            print()
        return 0
    if args.fast:
        args.instances, args.trials, args.version, args.advert_int = 1, 3, 3, "0.1"
        args.impl = args.scenario = "both"
        args.block = 3
    reason = netlab.netns_usable()
    if reason:
        print(f"failover bench needs root and network namespaces: {reason}", file=sys.stderr)
        return 1
    for tool in ("tcpdump", "ip") + (("keepalived",) if args.impl != "fastvrrp" else ()):
        if shutil.which(tool) is None:
            print(f"failover bench needs {tool}", file=sys.stderr)
            return 1
    random.seed(args.seed)
    configs = [(2, "1"), (3, "1"), (3, "0.1")] if args.matrix else [(args.version, args.advert_int)]
    for version, advert in configs:
        if version == 2 and float(advert) != int(float(advert)):
            print("VRRPv2 advert_int is whole seconds", file=sys.stderr)
            return 2
    RESULTS.mkdir(parents=True, exist_ok=True)
    for version, advert in configs:
        result = run_config(args, version, advert)
        stem = args.out or f"failover-{'smoke' if args.fast else Layout(args.instances, version, advert).tag}"
        if args.matrix and args.out:
            stem = f"{args.out}-{Layout(args.instances, version, advert).tag}"
        jpath = RESULTS / f"{stem}.json"
        jpath.write_text(json.dumps(result, indent=1) + "\n")
        print()
        print(table(result))
        print(f"\nwrote {jpath}; {plot(result, RESULTS / f'{stem}.png')}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
