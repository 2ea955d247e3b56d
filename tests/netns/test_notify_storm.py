"""A notify storm at N=1000: the master of 1000 instances (over four interfaces, VRRPv3,
advert_int 0.1 s) is killed, and the backup's 1000 instances go BACKUP -> MASTER at
once. Every instance has a generic `notify` script that takes real time (20 ms) and
logs its start and end; the backup runs with `--max-notify-scripts 8` and a
`notify_fifo` read by the test.

What must hold, each checked so that it fails if the feature is broken:
  (a) per instance, its scripts ran in its own order: BACKUP (at start-up), then
      MASTER, the first finished before the second started;
  (b) at no moment did more than 8 scripts run (from the scripts' own start/end
      timestamps; more than 8 would show if the option did not reach the runner, whose
      default is 32), yet several ran at once (not one by one on the loop);
  (c) the FIFO carried exactly keepalived's lines for the same events
      (`INSTANCE "VI_0_1" MASTER 100`), in order per instance, every MASTER line long
      before the scripts were done, and the daemon forked nothing but the scripts;
  (d) the storm delayed neither VIPs nor adverts: every VIP landed on the backup within
      a generous margin of its own master-down deadline (the master's last advert +
      Master_Down_Interval, from a capture on the bridges), all of them before the
      100th MASTER script had finished (1000 x 20 ms / 8 is 2.5 s of script work), and
      the new master's adverts kept their interval all through the storm.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import threading
import time
import warnings
from pathlib import Path

import pytest

from daemonlab import Daemon, wait_for
from fastvrrp import netlab
from pcaputil import vrrp_adverts
import vipclock
from vipclock import AddrMonitor

pytestmark = pytest.mark.netns

LINKS = 4
PER_LINK = 250
N = LINKS * PER_LINK
ADVERT_MS = 100
MAX_SCRIPTS = 8
SCRIPT_SLEEP = "0.02"
MASTER_PRIO, BACKUP_PRIO = 150, 100
MS = 1_000_000
# v3, advert_int 0.1 s, priority 100: 3 x 100 ms + (256 - 100) x 10 cs x 625/16 us.
MASTER_DOWN_NS = 3 * ADVERT_MS * MS + (256 - BACKUP_PRIO) * 10 * 625 // 16 * 1000

# Margins for a loaded 2-core CI machine. A broken feature misses them by seconds:
# with the scripts forked inline, unbounded (keepalived's way; tried by patching
# NotifyRunner.submit), the last VIP came 2.4 s after its deadline and after the
# 100th script had ended, and 17 scripts ran at once.
# Measured here (shared 2-core machine): VIPs 86-310 ms and first adverts 27-280 ms
# after their deadlines (about 100 ms of it the 1000 takeovers themselves, also
# without scripts: bench/mass.py; issue 7's aim is 20 ms, warned about below), and
# adverts at most 113-121 ms apart during the storm.
TAKEOVER_LATE_MAX_MS = 600  # a VIP or first advert after its master-down deadline
ADVERT_GAP_MAX_MS = 2 * ADVERT_MS + 50  # two adverts of one VRID once the takeover is done

NOTIFY_SH = """#!/bin/bash
# notify.sh LOG INSTANCE NAME STATE PRIORITY: one line at the start, one at the end
# ($EPOCHREALTIME: CLOCK_REALTIME in us, no fork), with our pid; 20 ms of real time.
log=$1
echo "S $EPOCHREALTIME $$ $3 $4 $5" >> "$log"
sleep {sleep}
echo "E $EPOCHREALTIME $$ $3 $4 $5" >> "$log"
"""


@pytest.fixture(scope="module", autouse=True)
def _needs_netns() -> None:
    reason = netlab.netns_usable()
    if reason:
        pytest.skip(reason)


def names() -> list[tuple[int, int, str]]:
    return [(link, vrid, f"VI_{link}_{vrid}") for link in range(LINKS) for vrid in range(1, PER_LINK + 1)]


def vip(vrid: int) -> str:
    return f"192.0.2.{vrid + 2}"


def config(prio: int, *, notify: str | None = None, fifo: str | None = None) -> str:
    """garp_master_delay 0: no second GARP burst 5 s after a takeover. At N=1000 that
    burst (5000 ARPs) holds a daemon's loop for 100-250 ms here, which shows as an
    advert gap of its own (in the storm's window) and, on a loaded machine, can make
    the peer take over; it is measured in bench/mass.py, not part of this test."""
    glob = ["global_defs {", "  script_user root"]  # no keepalived_script user needed
    if fifo:
        glob.append(f"  notify_fifo {fifo}")
    parts = ["\n".join(glob) + "\n}\n"]
    extra = f'  notify "{notify}"\n' if notify else ""
    for link, vrid, name in names():
        parts.append(f"""vrrp_instance {name} {{
  state BACKUP
  interface eth{link}
  virtual_router_id {vrid}
  priority {prio}
  version 3
  advert_int {ADVERT_MS / 1000:g}
  garp_master_delay 0
{extra}  virtual_ipaddress {{
    {vip(vrid)}/32
  }}
}}
""")
    return "".join(parts)


def status(daemon: Daemon) -> dict:
    """The control socket's JSON, read here (no `fastvrrp status` process per poll)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(10)
        s.connect(str(daemon.control))
        chunks = []
        while chunk := s.recv(1 << 16):
            chunks.append(chunk)
    return json.loads(b"".join(chunks))


def all_in(daemon: Daemon, state: str) -> bool:
    try:
        st = status(daemon)
    except OSError:
        return False
    return len(st["instances"]) == N and all(i["state"] == state for i in st["instances"].values())


def notify_idle(daemon: Daemon) -> bool:
    try:
        return status(daemon)["notify"]["pending"] == 0
    except OSError:
        return False


def tails(*daemons: Daemon, lines: int = 15) -> str:
    return "".join(f"--- {d.name} (exit {d.proc.poll()}) ---\n" + "\n".join(d.log().splitlines()[-lines:]) + "\n"
                   for d in daemons)


def settle(predicate, timeout: float, what: str, *daemons: Daemon) -> None:
    """wait_for, failing at once (with the logs) if a daemon exits."""
    def check() -> bool:
        for d in daemons:
            if d.proc.poll() is not None:
                raise AssertionError(f"{d.name} exited while waiting for {what}\n" + tails(*daemons))
        return predicate()
    try:
        wait_for(check, timeout, what)
    except AssertionError as exc:
        if "exited while" in str(exc):
            raise
        notify = ""
        if daemons and daemons[0].name == "backup":
            try:
                notify = f"; backup notify stats {status(daemons[0])['notify']}"
            except OSError as err:
                notify = f"; backup status: {err}"
        raise AssertionError(f"{exc}{notify}\n" + tails(*daemons)) from None


class FifoReader:
    """Reads the notify FIFO in a thread, stamping each line with time.time_ns()."""

    STOP = b"--stop--\n"

    def __init__(self, path: Path) -> None:
        os.mkfifo(path, 0o600)  # the daemon opens what exists (we are its owner: root)
        self.path = path
        self.fd = os.open(path, os.O_RDWR)  # O_RDWR: never EOF while the daemon restarts
        self.lines: list[tuple[int, str]] = []
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        buf = b""
        while True:
            data = os.read(self.fd, 65536)
            now = time.time_ns()
            buf += data
            *whole, buf = buf.split(b"\n")
            for line in whole:
                if line + b"\n" == self.STOP:
                    return
                self.lines.append((now, line.decode()))

    def close(self) -> list[tuple[int, str]]:
        os.write(self.fd, self.STOP)
        self.thread.join(10)
        os.close(self.fd)
        return self.lines


def script_runs(log: Path) -> list[dict]:
    """One dict per script run, in start order: name, state, prio, pid, start/end (ns)."""
    runs: dict[int, dict] = {}
    order: list[int] = []
    for line in log.read_text().splitlines():
        kind, ts, pid, name, state, prio = line.split()
        t = int(round(float(ts.replace(",", ".")) * 1e6)) * 1000
        pid_ = int(pid)
        if kind == "S":
            assert pid_ not in runs, f"pid {pid_} started twice"
            runs[pid_] = {"name": name, "state": state, "prio": int(prio), "pid": pid_, "start": t, "end": None}
            order.append(pid_)
        else:
            run = runs[pid_]
            assert (run["name"], run["state"]) == (name, state), line
            run["end"] = t
    return [runs[p] for p in order]


def max_overlap(runs: list[dict]) -> int:
    """The most runs whose [start, end] intervals overlap at one instant."""
    events = sorted([(r["start"], 1) for r in runs] + [(r["end"], -1) for r in runs])
    level = peak = 0
    for _t, step in events:  # at a tie the end (-1) sorts first: touching is not overlap
        level += step
        peak = max(peak, level)
    return peak


def test_notify_storm_at_1000_instances(tmp_path):
    script = tmp_path / "notify.sh"
    script.write_text(NOTIFY_SH.format(sleep=SCRIPT_SLEEP))
    script.chmod(0o755)
    runs_log = tmp_path / "backup-notify.log"
    with netlab.Lab() as lab:
        m = lab.node("m", ["198.51.100.1/24"], segment="s0")
        b = lab.node("b", ["198.51.100.2/24"], segment="s0")
        for link in range(1, LINKS):
            m.add_link(f"eth{link}", segment=f"s{link}", addrs=["198.51.100.1/24"])
            b.add_link(f"eth{link}", segment=f"s{link}", addrs=["198.51.100.2/24"])
        fifo = FifoReader(tmp_path / "backup.fifo")
        master = backup = clock = None
        monitor = AddrMonitor(b, tmp_path / "b-addr.txt")
        try:
            # The master first (no scripts), so the backup never sees an empty LAN.
            master = Daemon(m, tmp_path, "master", config(MASTER_PRIO)).start()
            settle(lambda: all_in(master, "MASTER"), 60, "1000 masters", master)
            backup = Daemon(b, tmp_path, "backup",
                            config(BACKUP_PRIO, notify=f"{script} {runs_log}", fifo=str(fifo.path)),
                            extra_args=("--max-notify-scripts", str(MAX_SCRIPTS))).start()
            settle(lambda: all_in(backup, "BACKUP"), 60, "1000 backups", backup, master)
            # The start-up storm (1000 BACKUP scripts) is over before the kill.
            settle(lambda: notify_idle(backup), 90, "the BACKUP scripts", backup, master)
            # Everything BACKUP right before the kill (a start-up flap is tolerated below).
            settle(lambda: all_in(backup, "BACKUP"), 30, "1000 backups before the kill", backup, master)
            caps = [lab.capture(lab.switch, f"br-s{link}", "ip proto 112", tmp_path / f"s{link}.pcap",
                                snaplen=128, buffer_kib=8192) for link in range(LINKS)]
            time.sleep(3 * ADVERT_MS / 1000)  # the master's last adverts are in the capture
            # VIP times: the kernel's where ftrace allows. The monitor stamps a line when
            # it gets to run, late by however long the storm keeps it off the CPU.
            clock_why = vipclock.available()
            if clock_why is None:
                clock = vipclock.KernelAddrClock()
                clock.arm(backup.proc.pid, vipclock.address_listeners(b.run(["cat", "/proc/net/netlink"]).stdout))

            t_kill = time.time_ns()
            os.killpg(master.proc.pid, signal.SIGKILL)
            master.proc.wait(10)

            settle(lambda: all_in(backup, "MASTER"), 30, "1000 takeovers", backup)
            settle(lambda: notify_idle(backup), 90, "the MASTER scripts", backup)
            t_storm_over = time.time_ns()
            time.sleep(0.2)
            for cap in caps:
                cap.stop()
            drops = sum(cap.dropped_by_kernel or 0 for cap in caps)
            stats = status(backup)["notify"]
            installed = monitored = monitor.adds_since(0, t_kill)
            if clock_why is None:
                installed, clock_why = clock.stamped(monitored)
        finally:
            if clock is not None:
                clock.close()
            lines = fifo.close()
            monitor.close()
            for d in (backup, master):
                if d is not None:
                    d.stop(signal.SIGKILL)  # no STOP storm at the end: not under test here
        log_text = backup.log()
        transitions = backup.transitions()

    expected = {name for _l, _v, name in names()}
    runs = script_runs(runs_log)

    # (a) Per instance, in its own order: the scripts saw exactly the transitions the
    # state machine made (BACKUP at start, MASTER after the kill), one after the other.
    per: dict[str, list[dict]] = {}
    for r in runs:
        assert r["end"] is not None, f"{r} never finished"
        per.setdefault(r["name"], []).append(r)
    assert set(per) == expected
    made: dict[str, list[str]] = {}
    for name, _old, new, _prio in transitions:
        made.setdefault(name, []).append(new)
    for name, rs in per.items():
        assert [r["state"] for r in rs] == made[name], (name, [r["state"] for r in rs], made[name])
        assert all(r["prio"] == BACKUP_PRIO for r in rs), (name, rs)
        assert all(a["end"] <= b["start"] for a, b in zip(rs, rs[1:])), f"{name}: scripts overlapped: {rs}"
        assert rs[-1]["state"] == "MASTER" and rs[-1]["start"] >= t_kill, (name, rs)
        assert len(rs) >= 2 and rs[-2]["state"] == "BACKUP" and rs[-2]["start"] < t_kill, (name, rs)
    # Normally exactly BACKUP, MASTER. A loaded machine may make a backup instance take
    # over for a moment at start-up (its loop busier than Master_Down_Interval): that
    # does not bear on the storm, but say so, and not for many.
    flapped = sorted(name for name in expected if made[name] != ["BACKUP", "MASTER"])
    if flapped:
        warnings.warn(f"{len(flapped)} backup instance(s) flapped before the kill: "
                      + ", ".join(f"{n} {made[n]}" for n in flapped[:5]), stacklevel=1)
    assert len(flapped) <= N // 20, f"{len(flapped)} instances flapped: {flapped[:10]}"
    masters = [per[name][-1] for name in expected]

    # (b) The bound held, and it was the bound that limited the storm.
    peak = max_overlap(runs)
    assert peak <= MAX_SCRIPTS, f"{peak} scripts at once, more than --max-notify-scripts {MAX_SCRIPTS}"
    assert peak >= 3, f"at most {peak} script(s) at once: the scripts ran one by one"
    assert 1 <= stats["max_running"] <= MAX_SCRIPTS, stats
    assert stats["scripts_failed"] == 0, stats

    # (c) The FIFO: keepalived's lines for the same events, in order per instance, not
    # waiting for the scripts; and nothing forked but the 2000 scripts.
    assert lines, "nothing on the FIFO"
    got: dict[str, list[str]] = {}
    rx = re.compile(r'^INSTANCE "(VI_\d_\d+)" (MASTER|BACKUP) (\d+)$')
    for _t, line in lines:
        mm = rx.match(line)
        assert mm, f"not a keepalived FIFO line: {line!r}"
        got.setdefault(mm[1], []).append(line)
    assert got == {name: [f'INSTANCE "{name}" {state} {BACKUP_PRIO}' for state in made[name]]
                   for name in expected}
    ends = sorted(r["end"] for r in masters)
    hundredth_end = ends[99]
    fifo_master = [t for t, line in lines if line.endswith(f" MASTER {BACKUP_PRIO}")]
    assert max(fifo_master) < hundredth_end, (
        f"the last FIFO MASTER line came {(max(fifo_master) - t_kill) / MS:.0f} ms after the kill, "
        f"the 100th MASTER script ended at {(hundredth_end - t_kill) / MS:.0f} ms")
    assert stats["scripts_run"] == len(runs) == len(transitions), (stats, len(runs), len(transitions))

    # (d) VIPs and adverts on time, storm or not. Per instance, its protocol deadline is
    # the master's last advert + Master_Down_Interval (both ends from the capture).
    assert drops == 0, f"the capture lost {drops} frame(s)"
    t_last_vip = max(installed.values())
    late, late_monitored, first_adv, gaps = [], [], [], []
    for link in range(LINKS):
        by: dict[tuple[str, int], list[int]] = {}
        for ts, src, vrid, prio in vrrp_adverts(tmp_path / f"s{link}.pcap"):
            if prio > 0:
                by.setdefault((src, vrid), []).append(ts)
        for vrid in range(1, PER_LINK + 1):
            name = f"VI_{link}_{vrid}"
            last_m = max((t for t in by.get(("198.51.100.1", vrid), []) if t < t_kill), default=None)
            mine = sorted(t for t in by.get(("198.51.100.2", vrid), []) if t >= t_kill)
            assert last_m is not None, f"{name}: no master advert captured before the kill"
            assert mine, f"{name}: the backup never advertised"
            deadline = last_m + MASTER_DOWN_NS
            t_vip = installed.get((f"eth{link}", vip(vrid)))
            assert t_vip is not None, f"{name}: VIP {vip(vrid)} never installed on the backup"
            late.append((t_vip - deadline, name))
            late_monitored.append(monitored[(f"eth{link}", vip(vrid))] - deadline)
            first_adv.append((mine[0] - deadline, name))
            # Once the takeover is done (every VIP in place), the storm alone is left:
            # the new master's adverts must keep their interval through it.
            storm = [t for t in mine if t_last_vip <= t <= t_storm_over]
            gaps.extend((b_ - a_, name) for a_, b_ in zip(storm, storm[1:]))
    worst_vip, worst_first = max(late), max(first_adv)
    worst_gap = max(gaps, default=(0, "no advert after the takeover"))
    summary = (f"VIP after its deadline: max {worst_vip[0] / MS:.1f} ms ({worst_vip[1]}); first advert after "
               f"it: max {worst_first[0] / MS:.1f} ms; advert gap during the storm: max {worst_gap[0] / MS:.1f} ms "
               f"({worst_gap[1]}); last VIP {(t_last_vip - t_kill) / MS:.0f} ms, 100th MASTER script end "
               f"{(hundredth_end - t_kill) / MS:.0f} ms, last {(ends[-1] - t_kill) / MS:.0f} ms after the kill; "
               f"peak {peak} scripts at once; VIP clock: "
               + ("the kernel's" if clock_why is None else f"the monitor's ({clock_why})")
               + f", by the monitor's stamps max {max(late_monitored) / MS:.1f} ms")
    print(summary)
    # The storm went on long after the takeover, so the gaps below cover it.
    assert ends[-1] - t_last_vip > 1000 * MS, summary
    assert t_last_vip < hundredth_end, summary
    assert worst_vip[0] <= TAKEOVER_LATE_MAX_MS * MS, summary
    assert worst_first[0] <= TAKEOVER_LATE_MAX_MS * MS, summary
    assert worst_gap[0] <= ADVERT_GAP_MAX_MS * MS, summary
    if worst_vip[0] > 20 * MS:
        warnings.warn(f"issue 7's aim (every VIP within Master_Down_Interval + 20 ms of its timer) not met "
                      f"under a notify storm: {summary}", stacklevel=1)
    assert "Traceback" not in log_text
