"""Configs and the checks every interop scenario shares.

Timing bounds (RFC 3768 / RFC 5798, as keepalived computes them):
  Skew_Time            v2: (256 - prio) / 256 s     v3: (256 - prio) * advert / 256
  Master_Down_Interval 3 * advert + Skew_Time
A crash takeover (last advert of the dead master on the wire -> the survivor's first
advert) must fall within Master_Down_Interval + SLACK; a graceful one (priority-0
advert -> first advert of the new master) within Skew_Time + SLACK.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from fastvrrp import netlab
from pcaputil import vrrp_adverts

from peers import FrrPeer, Peer, addresses

MS = 1_000_000
SLACK_NS = 40 * MS  # "a few tens of ms" on a loaded 2-core machine
EARLY_NS = 10 * MS  # a takeover this much before the bound is a bug too (FRR rounds to cs)
VRID = 51
HI, LO = 200, 100

# Node addresses (conftest.lab) and the VIPs of the scenarios.
ADDR = {("a", 4): "192.0.2.1", ("b", 4): "192.0.2.2",
        ("a", 6): "2001:db8::1", ("b", 6): "2001:db8::2"}
VIP = {4: "192.0.2.100", 6: "2001:db8::100"}


@dataclass(frozen=True)
class Variant:
    """One protocol set-up of the matrix."""
    id: str
    version: int = 3
    family: int = 4
    advert: float = 0.1
    auth: str | None = None
    unicast: bool = False

    @property
    def advert_ns(self) -> int:
        return round(self.advert * 1000) * MS

    def skew_ns(self, prio: int) -> int:
        if self.version == 2:
            return (256 - prio) * 1000 * MS // 256
        return (256 - prio) * self.advert_ns // 256

    def master_down_ns(self, prio: int) -> int:
        return 3 * self.advert_ns + self.skew_ns(prio)

    def settle_s(self, intervals: int = 10) -> float:
        return intervals * self.advert


def vrrp_conf(node: str, prio: int, v: Variant, *, name: str = "VI_1", vrid: int = VRID,
              version: int | None = None, advert: float | None = None,
              auth: str | None = None) -> str:
    """keepalived.conf text that keepalived and fastvrrp both run."""
    other = "b" if node == "a" else "a"
    version = version or v.version
    advert = v.advert if advert is None else advert
    auth = auth or v.auth
    lines = [
        f"vrrp_instance {name} {{",
        "  state BACKUP",
        "  interface eth0",
        f"  virtual_router_id {vrid}",
        f"  priority {prio}",
        f"  version {version}",
        f"  advert_int {advert:g}",
    ]
    if auth:
        lines += ["  authentication {", "    auth_type PASS", f"    auth_pass {auth}", "  }"]
    if v.unicast:
        lines += [f"  unicast_src_ip {ADDR[node, v.family]}",
                  "  unicast_peer {", f"    {ADDR[other, v.family]}", "  }"]
    plen = 24 if v.family == 4 else 64
    lines += ["  virtual_ipaddress {", f"    {VIP[v.family]}/{plen}", "  }", "}", ""]
    return "\n".join(lines)


def frr_conf(prio: int, v: Variant, vrid: int = VRID) -> str:
    """vrrpd.conf body (interface part) for one family, as in the recipe."""
    kw = "ip" if v.family == 4 else "ipv6"
    return (f"interface eth0\n vrrp {vrid} version 3\n vrrp {vrid} priority {prio}\n"
            f" vrrp {vrid} advertisement-interval {round(v.advert * 1000)}\n"
            f" vrrp {vrid} {kw} {VIP[v.family]}\nexit\n")


def capture(lab: netlab.Lab, name: str) -> netlab.Capture:
    bridge = lab.segment("lan")
    return lab.capture(lab.switch, bridge, "ip proto 112 or ip6 proto 112",
                       lab.tmp / f"{name}.pcap")


def holds_vip(peer: Peer, family: int) -> bool:
    """Does the node answer for the VIP? (FRR: its macvlan is not protodown.)"""
    if isinstance(peer, FrrPeer):
        dev = peer.macvlans[0]
        out = peer.node.ip("-d", "link", "show", "dev", dev).stdout
        return "protodown on" not in out and "state UP" in out
    return VIP[family] in addresses(peer.node, "eth0")


def wait_for(pred, timeout: float, what: str) -> None:
    netlab.wait_until(pred, timeout, what=what)


class Wire:
    """Adverts of one VRID from a capture: (ts_ns, src, prio)."""

    def __init__(self, cap: netlab.Capture, vrid: int = VRID) -> None:
        self.cap = cap
        self.vrid = vrid

    def adverts(self) -> list[tuple[int, str, int]]:
        return [(t, s, p) for t, s, vr, p in vrrp_adverts(self.cap.path) if vr == self.vrid]

    def wait(self, pred, timeout: float, what: str) -> list[tuple[int, str, int]]:
        """Poll the capture (tcpdump writes each packet at once) until pred(adverts)."""
        deadline = time.monotonic() + timeout
        while True:
            adv = self.adverts()
            if pred(adv):
                return adv
            if time.monotonic() > deadline:
                raise AssertionError(f"wire: timed out waiting for {what}; adverts "
                                     f"(last 10): {adv[-10:]}")
            time.sleep(0.05)


def last_with(adverts, prio: int, before_ns: int) -> int:
    ts = [t for t, _s, p in adverts if p == prio and t <= before_ns]
    assert ts, f"no advert with priority {prio} before the event"
    return max(ts)


def first_with(adverts, prio: int, after_ns: int) -> int | None:
    ts = [t for t, _s, p in adverts if p == prio and t > after_ns]
    return min(ts) if ts else None


# --------------------------------------------------------------------------- checks


def assert_roles(master: Peer, m_inst: str, backup: Peer, b_inst: str, family: int) -> None:
    assert master.state(m_inst) == "MASTER", (master, master.transitions(m_inst))
    assert backup.state(b_inst) == "BACKUP", (backup, backup.transitions(b_inst))
    assert holds_vip(master, family), f"{master} is MASTER but does not hold the VIP"
    assert not holds_vip(backup, family), f"{backup} is BACKUP but holds the VIP"


def settle_and_check(wire: Wire, v: Variant, master: Peer, m_inst: str, m_prio: int,
                     backup: Peer, b_inst: str) -> None:
    """Exactly one master, and nothing moves for ~10 advert intervals: no transition on
    either side, and the wire carries only the master's adverts at its priority."""
    t_m, t_b = len(master.transitions(m_inst)), len(backup.transitions(b_inst))
    # Wait one interval first: an advert sent before the backup settled must not count.
    time.sleep(v.advert)
    start = time.time_ns()
    time.sleep(v.settle_s())
    end = time.time_ns()
    assert master.transitions(m_inst)[t_m:] == [], f"{master} moved: {master.transitions(m_inst)}"
    assert backup.transitions(b_inst)[t_b:] == [], f"{backup} flapped: {backup.transitions(b_inst)}"
    window = [(t, s, p) for t, s, p in wire.adverts() if start <= t <= end]
    others = [a for a in window if a[2] != m_prio]
    assert not others, f"adverts other than the master's (prio {m_prio}) while settled: {others[:5]}"
    # ~10 adverts expected; allow for the edges of the window.
    assert len(window) >= v.settle_s() / v.advert - 2, f"only {len(window)} adverts in the window"


def takeover_time_ns(wire: Wire, survivor: Peer, s_inst: str, s_prio: int,
                     after_ns: int) -> int:
    """When the survivor took over: its first advert after `after_ns` on the wire. For FRR
    the time of its Backup -> Master log line (its first IPv6 advert after a takeover is
    always lost: recipe gotcha 11) -- vrrpd logs wall-clock time with ms precision."""
    if isinstance(survivor, FrrPeer):
        t = survivor.master_since(s_inst, after_ns)
        assert t is not None, f"{survivor} logged no Backup -> Master after the event"
        return t
    adv = wire.wait(lambda a: first_with(a, s_prio, after_ns) is not None, 3,
                    f"first advert of {survivor} (prio {s_prio})")
    t = first_with(adv, s_prio, after_ns)
    assert t is not None
    return t


def crash_handover(wire: Wire, v: Variant, master: Peer, m_inst: str, m_prio: int,
                   backup: Peer, b_inst: str, b_prio: int) -> None:
    crashed = time.time_ns()
    master.crash()
    backup.wait_state(b_inst, "MASTER", v.master_down_ns(b_prio) / 1e9 + 3)
    wait_for(lambda: holds_vip(backup, v.family), 2, f"VIP on {backup}")
    # The dead master's last advert that reached the segment. Not "before `crashed`":
    # one sent while the port was being cut carries a later timestamp and still reset
    # the survivor's timer. Nothing else advertises m_prio until the master restarts.
    last = last_with(wire.adverts(), m_prio, time.time_ns())
    assert last >= crashed - v.advert_ns - 5 * MS, "the master was silent before the crash"
    took = takeover_time_ns(wire, backup, b_inst, b_prio, last)
    gap = took - last
    bound = v.master_down_ns(b_prio)
    assert bound - EARLY_NS <= gap <= bound + SLACK_NS, (
        f"crash takeover by {backup} {gap / MS:.1f} ms after the last advert; "
        f"Master_Down_Interval is {bound / MS:.1f} ms")


def graceful_handover(wire: Wire, v: Variant, master: Peer, m_inst: str, m_prio: int,
                      backup: Peer, b_inst: str, b_prio: int) -> None:
    stopped = time.time_ns()
    master.graceful()
    backup.wait_state(b_inst, "MASTER", v.skew_ns(b_prio) / 1e9 + 3)
    wait_for(lambda: holds_vip(backup, v.family), 2, f"VIP on {backup}")
    assert not holds_vip(master, v.family), f"{master} kept the VIP after SIGTERM"
    adv = wire.adverts()
    zeros = [t for t, _s, p in adv if p == 0 and t >= stopped]
    assert len(zeros) == 1, f"{master}: want exactly one priority-0 advert on SIGTERM, saw {len(zeros)}"
    took = takeover_time_ns(wire, backup, b_inst, b_prio, zeros[0])
    gap = took - zeros[0]
    bound = v.skew_ns(b_prio)
    assert gap <= bound + SLACK_NS, (
        f"graceful takeover by {backup} {gap / MS:.1f} ms after the priority-0 advert; "
        f"Skew_Time is {bound / MS:.1f} ms")


def preempt_back(v: Variant, master: Peer, m_inst: str, backup: Peer, b_inst: str) -> None:
    """The higher-priority side, restarted, becomes MASTER again; the other BACKUP."""
    before = len(backup.transitions(b_inst))
    master.restart()
    # start-up (~0.5 s for a Python daemon) + Master_Down_Interval + margin
    master.wait_state(m_inst, "MASTER", v.master_down_ns(1) / 1e9 + 5)
    backup.wait_state(b_inst, "BACKUP", v.advert + 2)
    assert backup.transitions(b_inst)[before:] == ["BACKUP"], (
        f"{backup} should go MASTER -> BACKUP once: {backup.transitions(b_inst)}; "
        f"{master} meanwhile: {master.transitions(m_inst)}")
    wait_for(lambda: holds_vip(master, v.family), 2, f"VIP on {master}")
    wait_for(lambda: not holds_vip(backup, v.family), 2, f"VIP gone from {backup}")


def lifecycle(lab: netlab.Lab, v: Variant, master: Peer, m_inst: str, m_conf: str,
              backup: Peer, b_inst: str, b_conf: str, name: str) -> None:
    """Election, no flapping, crash handover, preemption back, graceful handover,
    preemption back: master has priority HI, backup LO."""
    wire = Wire(capture(lab, name))
    master.start(m_conf)
    master.wait_state(m_inst, "MASTER", v.master_down_ns(HI) / 1e9 + 5)
    backup.start(b_conf)
    backup.wait_state(b_inst, "BACKUP", 5)
    settle_and_check(wire, v, master, m_inst, HI, backup, b_inst)
    assert_roles(master, m_inst, backup, b_inst, v.family)
    assert backup.transitions(b_inst) == ["BACKUP"], backup.transitions(b_inst)

    crash_handover(wire, v, master, m_inst, HI, backup, b_inst, LO)
    preempt_back(v, master, m_inst, backup, b_inst)

    time.sleep(min(3 * v.advert, 1.0))
    graceful_handover(wire, v, master, m_inst, HI, backup, b_inst, LO)
    preempt_back(v, master, m_inst, backup, b_inst)
    time.sleep(min(3 * v.advert, 1.0))
    assert_roles(master, m_inst, backup, b_inst, v.family)
