"""fastvrrp daemons between network namespaces: election, failover, VIPs, GARP, notify.

Each test builds its own lab (routers r1, r2 [, r3] and an observer on one bridge),
runs real `fastvrrp run` processes and checks the wire from the observer's capture.
"""

from __future__ import annotations

import os
import signal
import socket
from pathlib import Path
import time

import pytest

from daemonlab import Daemon, addresses, wait_for
from fastvrrp import netlab
from pcaputil import arp_announcements, read_pcap, vrrp_adverts

pytestmark = pytest.mark.netns

MS = 1_000_000


@pytest.fixture(scope="module", autouse=True)
def _needs_netns() -> None:
    reason = netlab.netns_usable()
    if reason:
        pytest.skip(reason)


def instance(prio: int, *, name: str = "VI_1", vrid: int = 51, version: int = 3,
             advert: str = "0.1", vips: tuple[str, ...] = ("192.0.2.100/24",),
             extra: str = "") -> str:
    vip_lines = "\n".join(f"    {v}" for v in vips)
    return f"""
vrrp_instance {name} {{
  state BACKUP
  interface eth0
  virtual_router_id {vrid}
  priority {prio}
  version {version}
  advert_int {advert}
  garp_master_delay 1
{extra}
  virtual_ipaddress {{
{vip_lines}
  }}
}}
"""


@pytest.fixture
def lab(tmp_path):
    with netlab.Lab() as lab:
        lab.node("r1", ["192.0.2.1/24", "2001:db8::1/64"])
        lab.node("r2", ["192.0.2.2/24", "2001:db8::2/64"])
        lab.node("obs", ["192.0.2.9/24", "2001:db8::9/64"])
        lab.tmp = tmp_path
        yield lab


def daemon(lab, node: str, config: str, name: str | None = None) -> Daemon:
    return Daemon(lab.nodes[node], lab.tmp, name or node, config).start()


def capture(lab, name: str, bpf: str = "ip proto 112 or ip6 proto 112 or arp"):
    return lab.capture(lab.nodes["obs"], "eth0", bpf, lab.tmp / f"{name}.pcap")


def test_election_by_priority_and_vips_only_on_master(lab):
    r1 = daemon(lab, "r1", instance(150))
    r1.wait_state("VI_1", "MASTER")  # first, so the backup never sees an empty LAN
    # A copy of the VIP left behind by an earlier run goes at start-up (keepalived
    # vrrp_daemon.c); an address that is not a VIP of ours stays.
    lab.nodes["r2"].ip("addr", "add", "192.0.2.100/24", "dev", "eth0")
    lab.nodes["r2"].ip("addr", "add", "192.0.2.101/24", "dev", "eth0")
    r2 = daemon(lab, "r2", instance(100))
    r2.wait_state("VI_1", "BACKUP")
    time.sleep(0.5)  # several advert intervals: no flapping
    assert r2.state("VI_1") == "BACKUP" and r1.state("VI_1") == "MASTER"
    assert "192.0.2.100" in addresses(lab.nodes["r1"])
    assert "192.0.2.100" not in addresses(lab.nodes["r2"])
    assert "192.0.2.101" in addresses(lab.nodes["r2"])
    assert "removed 1 stale VIP(s)" in r2.log()
    assert [t[2] for t in r2.transitions()] == ["BACKUP"]


def test_equal_priority_goes_to_the_higher_address(lab):
    # A backup does not preempt a master of equal priority (RFC 5798 6.4.2); the
    # address decides when two masters meet, e.g. after a partition heals.
    r1 = daemon(lab, "r1", instance(100))
    r1.wait_state("VI_1", "MASTER")
    # Detach r1's port from the bridge: both ends stay up, so r1 sees no link change
    # (no FAULT) and simply stops hearing r2, which becomes master too.
    link = lab.nodes["r1"].link("eth0")
    lab.switch.ip("link", "set", link.port, "nomaster")
    r2 = daemon(lab, "r2", instance(100))
    r2.wait_state("VI_1", "MASTER")
    lab.switch.ip("link", "set", link.port, "master", lab.segment(link.segment))
    r1.wait_state("VI_1", "BACKUP", 3)
    time.sleep(0.5)
    assert r1.state("VI_1") == "BACKUP" and r2.state("VI_1") == "MASTER"
    assert [t[2] for t in r1.transitions()] == ["BACKUP", "MASTER", "BACKUP"]  # no FAULT
    assert "192.0.2.100" in addresses(lab.nodes["r2"])
    assert "192.0.2.100" not in addresses(lab.nodes["r1"])


def _takeover(adverts, old: str, new: str, after_ns: int):
    """Last advert of `old` before `after_ns` and first non-zero advert of `new` after it."""
    last_old = max(t for t, src, _v, p in adverts if src == old and p > 0 and t <= after_ns)
    first_new = min(t for t, src, _v, p in adverts if src == new and p > 0 and t > last_old)
    return last_old, first_new


def test_crash_failover_is_inside_the_protocol_bound(lab):
    cap = capture(lab, "crash")
    r1 = daemon(lab, "r1", instance(150))
    r2 = daemon(lab, "r2", instance(100))
    r1.wait_state("VI_1", "MASTER")
    r2.wait_state("VI_1", "BACKUP")
    time.sleep(0.3)
    killed = time.time_ns()
    r1.stop(signal.SIGKILL)
    r2.wait_state("VI_1", "MASTER", 5)
    wait_for(lambda: "192.0.2.100" in addresses(lab.nodes["r2"]), 2, "VIP on r2")
    time.sleep(0.2)
    cap.stop()
    adverts = vrrp_adverts(cap.path)
    last_r1, first_r2 = _takeover(adverts, "192.0.2.1", "192.0.2.2", killed)
    # v3, advert_int 0.1 s, priority 100: Master_Down = 3 x 100 ms + (256-100)/256 x 100 ms.
    master_down = 300 * MS + (256 - 100) * 100 * MS // 256
    gap = first_r2 - last_r1
    assert master_down - 100 * MS <= gap <= master_down + 20 * MS, gap / MS


def test_graceful_failover_within_skew_time(lab):
    cap = capture(lab, "graceful")
    r1 = daemon(lab, "r1", instance(150))
    r2 = daemon(lab, "r2", instance(100))
    r1.wait_state("VI_1", "MASTER")
    r2.wait_state("VI_1", "BACKUP")
    time.sleep(0.3)
    assert r1.stop(signal.SIGTERM) == 0
    r2.wait_state("VI_1", "MASTER", 2)
    time.sleep(0.2)
    cap.stop()
    adverts = vrrp_adverts(cap.path)
    zero = [t for t, src, _v, p in adverts if src == "192.0.2.1" and p == 0]
    assert len(zero) == 1, "exactly one priority-0 advert on SIGTERM, as keepalived"
    first_r2 = min(t for t, src, _v, p in adverts if src == "192.0.2.2" and t > zero[0])
    skew = (256 - 100) * 100 * MS // 256  # 60.9 ms
    assert first_r2 - zero[0] <= skew + 10 * MS, (first_r2 - zero[0]) / MS
    assert "192.0.2.100" not in addresses(lab.nodes["r1"])  # removed on stop
    assert "STOP" in r1.log()


def test_preemption_back_and_nopreempt(lab):
    r1 = daemon(lab, "r1", instance(150))
    r2 = daemon(lab, "r2", instance(100))
    r1.wait_state("VI_1", "MASTER")
    r1.stop(signal.SIGKILL)
    r2.wait_state("VI_1", "MASTER", 5)
    r1 = daemon(lab, "r1", instance(150), name="r1-again")
    r1.wait_state("VI_1", "MASTER", 5)  # preempts the lower priority
    r2.wait_state("VI_1", "BACKUP", 2)
    r1.stop(signal.SIGKILL)
    r2.wait_state("VI_1", "MASTER", 5)
    r1 = daemon(lab, "r1", instance(150, extra="  nopreempt"), name="r1-nopreempt")
    r1.wait_state("VI_1", "BACKUP", 5)
    time.sleep(1.0)  # many master-down intervals: it must not take over
    assert r1.state("VI_1") == "BACKUP" and r2.state("VI_1") == "MASTER"


def test_unicast(lab):
    cap = lab.capture(lab.switch, "br-lan", "ip proto 112", lab.tmp / "unicast.pcap")
    peer = "  unicast_src_ip {src}\n  unicast_peer {{\n    {peer}\n  }}"
    r1 = daemon(lab, "r1", instance(150, extra=peer.format(src="192.0.2.1", peer="192.0.2.2")))
    r2 = daemon(lab, "r2", instance(100, extra=peer.format(src="192.0.2.2", peer="192.0.2.1")))
    r1.wait_state("VI_1", "MASTER")
    r2.wait_state("VI_1", "BACKUP")
    # A sender r2 does not list, with a higher priority, must not move it.
    stranger = daemon(lab, "obs", instance(200, extra=peer.format(src="192.0.2.9", peer="192.0.2.2")))
    stranger.wait_state("VI_1", "MASTER")
    time.sleep(0.5)
    assert r2.state("VI_1") == "BACKUP" and r1.state("VI_1") == "MASTER"
    assert r2.status()["drops_in_python"].get("unicast source not a peer", 0) > 0
    # Nor must its priority-0 advert when it stops (C leaves unicast ones to Python).
    # (r2 may have been master for a moment while both started; only what follows counts.)
    # Whether C or Python sees the priority-0 advert depends on whose advert came
    # just before it (the stranger's disarms the entry), so it is tried three times.
    before = r2.transitions()
    for attempt in range(3):
        if attempt:
            stranger.start()
            stranger.wait_state("VI_1", "MASTER")
            time.sleep(0.3)
        stranger.stop(signal.SIGTERM)
        time.sleep(0.3)
        assert r2.transitions() == before and r2.state("VI_1") == "BACKUP"
    r1.stop(signal.SIGKILL)
    r2.wait_state("VI_1", "MASTER", 5)
    cap.stop()
    assert "192.0.2.100" in addresses(lab.nodes["r2"])
    # Every advert went to its configured peer, never to the multicast group.
    pairs = set()
    for _ts, frame in read_pcap(cap.path):
        if frame[12:14] == b"\x08\x00" and frame[23] == 112:
            pairs.add((".".join(map(str, frame[26:30])), ".".join(map(str, frame[30:34]))))
    assert pairs == {("192.0.2.1", "192.0.2.2"), ("192.0.2.2", "192.0.2.1"), ("192.0.2.9", "192.0.2.2")}


def test_wrong_password_does_not_take_over(lab):
    auth = "  authentication {{\n    auth_type PASS\n    auth_pass {pw}\n  }}"
    r1 = daemon(lab, "r1", instance(100, version=2, advert="1", extra=auth.format(pw="secret")))
    r1.wait_state("VI_1", "MASTER", 6)
    intruder = daemon(lab, "r2", instance(200, version=2, advert="1", extra=auth.format(pw="other")))
    intruder.wait_state("VI_1", "MASTER", 6)  # it ignores r1 too
    time.sleep(1.5)
    assert r1.state("VI_1") == "MASTER", r1.log()
    assert "AUTH_FAILURE" in r1.log()


def test_gratuitous_arp_bursts_on_the_wire(lab):
    cap = capture(lab, "garp", "arp")
    r1 = daemon(lab, "r1", instance(150, vips=("192.0.2.100/24", "192.0.2.101/24")))
    r1.wait_state("VI_1", "MASTER")
    time.sleep(1.4)  # garp_master_delay 1: the second burst
    cap.stop()
    mac = lab.nodes["r1"].link("eth0").mac
    garps = [g for g in arp_announcements(cap.path) if g[1] == mac]
    for vip in ("192.0.2.100", "192.0.2.101"):
        times = sorted(t for t, _m, ip in garps if ip == vip)
        assert len(times) == 10, (vip, len(times))  # 5 now, 5 after garp_master_delay
        assert 0.9e9 <= times[5] - times[0] <= 1.2e9


def test_notify_scripts_run_in_order_with_keepalived_arguments(lab):
    out = lab.tmp / "notify.out"
    script = lab.tmp / "notify.sh"
    script.write_text(f'#!/bin/sh\necho "$@" >> {out}\n')
    script.chmod(0o755)
    extra = (f'  notify_master "{script} master-arg"\n  notify_backup "{script} backup-arg"\n'
             f'  notify_stop "{script} stop-arg"\n  notify "{script} generic"')
    r1 = daemon(lab, "r1", instance(150, extra=extra))
    r1.wait_state("VI_1", "MASTER")
    time.sleep(0.2)
    assert r1.stop(signal.SIGTERM) == 0
    assert out.read_text().splitlines() == [
        "backup-arg",
        "generic INSTANCE VI_1 BACKUP 150",
        "master-arg",
        "generic INSTANCE VI_1 MASTER 150",
        "stop-arg",
        "generic INSTANCE VI_1 STOP 150",
    ]


def test_ipv6(lab):
    cfg = instance(150, vips=("fe80::100/64", "2001:db8::100/64"))
    r1 = daemon(lab, "r1", cfg)
    r2 = daemon(lab, "r2", cfg.replace("priority 150", "priority 100"))
    r1.wait_state("VI_1", "MASTER")
    r2.wait_state("VI_1", "BACKUP")
    assert "2001:db8::100" in addresses(lab.nodes["r1"])
    assert "2001:db8::100" not in addresses(lab.nodes["r2"])
    r1.stop(signal.SIGTERM)
    r2.wait_state("VI_1", "MASTER", 2)
    wait_for(lambda: "2001:db8::100" in addresses(lab.nodes["r2"]), 2, "IPv6 VIP on r2")


def test_reload_keeps_unchanged_instances_and_survives_a_broken_config(lab):
    cap = capture(lab, "reload", "ip proto 112")
    # advert_int 1 s: a reload on a loaded 2-core machine must not look like a dead master.
    def inst(prio, **kw):
        return instance(prio, advert="1", **kw)

    two = inst(150) + inst(150, name="VI_2", vrid=52, vips=("192.0.2.102/24",))
    r1 = daemon(lab, "r1", two)
    r2 = daemon(lab, "r2", inst(100) + inst(100, name="VI_2", vrid=52, vips=("192.0.2.102/24",)))
    for name in ("VI_1", "VI_2"):
        r1.wait_state(name, "MASTER")
        r2.wait_state(name, "BACKUP")
    time.sleep(1.0)

    # VI_1 unchanged, VI_2 changed (priority), VI_3 new.
    r1.conf.write_text(inst(150) + inst(140, name="VI_2", vrid=52, vips=("192.0.2.102/24",))
                       + inst(150, name="VI_3", vrid=53, vips=("192.0.2.103/24",)))
    reloaded_at = time.time_ns()
    r1.proc.send_signal(signal.SIGHUP)
    r1.wait_state("VI_3", "MASTER", 8)
    wait_for(lambda: [t[2] for t in r1.transitions("VI_2")][-2:] == ["BACKUP", "MASTER"], 8,
             "VI_2 restarted and master again")
    time.sleep(1.0)
    assert [t[2] for t in r1.transitions("VI_1")] == ["BACKUP", "MASTER"]  # never left MASTER
    assert [t[2] for t in r2.transitions("VI_1")] == ["BACKUP"]
    assert "192.0.2.100" in addresses(lab.nodes["r1"]) and "192.0.2.103" in addresses(lab.nodes["r1"])

    # A broken config changes nothing.
    r1.conf.write_text(two + "vrrp_instance BROKEN {\n  priorty 1\n}\n")
    r1.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: "keeping the running one" in r1.log(), 5, "the reload to be refused")
    assert r1.proc.poll() is None
    assert r1.status()["instances"]["VI_3"]["state"] == "MASTER"
    cap.stop()
    zero = {(src, vrid) for t, src, vrid, prio in vrrp_adverts(cap.path) if prio == 0 and t > reloaded_at}
    assert zero == {("192.0.2.1", 52)}  # only the changed instance handed over


def test_track_script_lowers_priority_and_faults(lab):
    flag = lab.tmp / "healthy"
    flag.touch()
    script = f"""
vrrp_script chk_flag {{
  script "/usr/bin/test -e {flag}"
  interval 0.1
  weight -60
  fall 2
  rise 2
}}
vrrp_script chk_hard {{
  script "/usr/bin/test -e {flag}.hard"
  interval 0.1
}}
"""
    weighted = instance(150, extra="  track_script {\n    chk_flag\n  }")
    r1 = daemon(lab, "r1", script + weighted)
    r2 = daemon(lab, "r2", instance(100))
    r1.wait_state("VI_1", "MASTER")
    r2.wait_state("VI_1", "BACKUP")
    flag.unlink()  # 150 - 60 = 90 < 100: the backup preempts
    r2.wait_state("VI_1", "MASTER", 5)
    r1.wait_state("VI_1", "BACKUP", 2)
    assert r1.status()["instances"]["VI_1"]["priority"] == 90
    flag.touch()
    r1.wait_state("VI_1", "MASTER", 5)  # back to 150, preempts again

    r1.stop()
    hard = instance(150, extra="  track_script {\n    chk_hard\n  }")
    Path(f"{flag}.hard").touch()
    r1 = daemon(lab, "r1", script + hard, name="r1-hard")
    r1.wait_state("VI_1", "MASTER", 5)
    Path(f"{flag}.hard").unlink()  # weight 0: a failure is a FAULT
    r1.wait_state("VI_1", "FAULT", 5)
    r2.wait_state("VI_1", "MASTER", 5)
    assert "192.0.2.100" not in addresses(lab.nodes["r1"])


def test_a_second_daemon_with_a_live_control_socket_refuses_to_start(lab):
    # Two daemons on one host (one per namespace) given the same --control: the second
    # must stop before it touches the network, not steal the first one's socket (or
    # die half-started when both bind at once).
    r1 = daemon(lab, "r1", instance(150))
    r1.wait_state("VI_1", "MASTER")
    second = Daemon(lab.nodes["r2"], lab.tmp, "r2", instance(100))
    second.control = r1.control
    second.start()
    assert second.proc.wait(15) == 1
    assert "in use by a running daemon" in second.log()
    assert "VI_1" not in second.log()  # no instance was started
    assert r1.status()["instances"]["VI_1"]["state"] == "MASTER"  # r1 still answers
    # A previous run's socket (nobody listening) is replaced.
    r1.stop()
    stale = lab.tmp / "stale.sock"
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(str(stale))
    s.close()
    third = Daemon(lab.nodes["r2"], lab.tmp, "r3", instance(100))
    third.control = stale
    third.start()
    third.wait_state("VI_1", "MASTER")
    assert third.status()["instances"]["VI_1"]["state"] == "MASTER"
    third.stop()


def sched_of(pid: int) -> tuple[int, int, int]:
    """(nice, rt_priority, policy) of a process's main thread, from /proc (fields 19, 40, 41)."""
    rest = Path(f"/proc/{pid}/task/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(rest[19 - 3]), int(rest[40 - 3]), int(rest[41 - 3])


def locked_kib(pid: int) -> int:
    line = next(x for x in Path(f"/proc/{pid}/status").read_text().splitlines() if x.startswith("VmLck"))
    return int(line.split()[1])


def test_vrrp_rt_priority_and_vrrp_priority_reach_the_daemon_not_its_scripts(lab):
    # keepalived's global_defs scheduling: real time, memory lock and affinity for the
    # VRRP process, reset for the scripts it starts (affinity stays); then a reload
    # to a nice value.
    out = lab.tmp / "sched.out"
    script = lab.tmp / "sched.sh"
    script.write_text(f"#!/bin/sh\ncat /proc/$$/stat >> {out}\n")
    script.chmod(0o755)
    inst = instance(150, extra=f'  notify_master "{script}"')
    r1 = daemon(lab, "r1", "global_defs {\n  vrrp_rt_priority 20\n  vrrp_no_swap\n  vrrp_cpu_affinity 0\n}\n"
                + inst)
    r1.wait_state("VI_1", "MASTER")
    wait_for(lambda: out.exists() and out.read_text().strip(), 5, "the notify_master script")
    pid, nice = r1.proc.pid, os.getpriority(os.PRIO_PROCESS, 0)
    assert sched_of(pid) == (nice, 20, os.SCHED_RR)
    assert locked_kib(pid) > 0
    assert os.sched_getaffinity(pid) == {0}
    rest = out.read_text().splitlines()[0].rsplit(")", 1)[1].split()
    assert (int(rest[19 - 3]), int(rest[40 - 3]), int(rest[41 - 3])) == (nice, 0, os.SCHED_OTHER)
    assert "scheduling: SCHED_RR 20" in r1.log()

    r1.conf.write_text("global_defs {\n  vrrp_priority -5\n}\n" + inst)
    r1.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: "scheduling: SCHED_OTHER, nice -5" in r1.log(), 5, "the new scheduling")
    assert sched_of(pid) == (-5, 0, os.SCHED_OTHER)
    assert locked_kib(pid) == 0
    assert os.sched_getaffinity(pid) == set(range(os.cpu_count()))
    assert r1.state("VI_1") == "MASTER"
    assert r1.stop(signal.SIGTERM) == 0
