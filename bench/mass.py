"""Start-up and mass change: fastvrrp and keepalived on the same generated configs.

    sudo python bench/mass.py --fast          # ~2 min: 1 start-up trial, storms at N=100/1000, crash
    sudo python bench/mass.py                 # 3 trials each, crash and graceful (~11 min)
    sudo python bench/mass.py --report bench/results/mass-full.json

Two parts, one lab (fastvrrp.netlab, documentation addresses, removed on exit): a
master router `m` (priority 150), a backup `b` (priority 100) and an observer `obs`,
with one interface each on max(1, ceil(N/250)) segments; the configs, VIPs and
addresses are bench/failover.py's (`Layout`: VRRPv3, advert_int 0.1 s by default,
`state BACKUP` everywhere, one /32 VIP per instance).

start-up (N instances, default 1000)
  The master is started alone on the LAN, then the backup next to the running master.
  Times are from the exec of the daemon (time.time_ns() just before Popen): its first
  log line; its readiness (fastvrrp: sd_notify READY=1 on a NOTIFY_SOCKET the bench
  listens on; keepalived 2.2.7 does not send READY outside systemd, so its VRRP child's
  "Startup complete" line); the first and the last instance entering BACKUP (every
  instance starts as a backup); the first advert on the wire and the last instance's
  first advert; the last VIP installed (netlink, `ip -ts monitor address`); the
  process tree's CPU time when it got there. The master's steady state is "all N
  MASTER and all N VIPs installed"; its protocol wait is Master_Down_Interval at
  priority 150 (3 x advert_int + Skew_Time: 341.4 ms at 0.1 s), during which a
  `state BACKUP` instance must hear nobody (keepalived's vrrp_init_state() does the
  same: ms_down_timer = 3 x adver_int + skew, so no head start for either), so
  overhead = last VIP - exec - Master_Down_Interval. The backup's steady state is
  "all N BACKUP"; it has no protocol wait. fastvrrp also logs its own breakdown (config
  parse, imports, set-up of interfaces/sockets/machines, start), which is reported.

storm (N = 100 and 1000)
  With the pair steady (and the backup's start-up notify scripts all done), the master
  is killed (crash: SIGKILL to its process group; graceful: SIGTERM), so the backup's
  N instances take over together, once with no notify scripts and once with a
  generic `notify` script per instance that logs its start/end and sleeps
  --script-sleep (10 ms). From the kill: the last instance's first advert (observer
  capture) and the last VIP installed on the backup (netlink); per instance, how far
  its first advert / its VIP came after its own protocol deadline (crash: the master's
  last advert + Master_Down_Interval at priority 100; graceful: the priority-0 advert
  + Skew_Time); the longest gap between two adverts of one VRID from the new master
  during the storm (advert_int when nothing holds the sender up); and the storm's
  length (the last script's end) and peak concurrency (from the scripts' own
  timestamps). fastvrrp runs with its default --max-notify-scripts (32) unless
  told otherwise.

VIP times in a storm are the kernel's where ftrace allows it (tests/vipclock.py: the
netlink notifications the backup sends inside its own writes, paired in order with
`ip -ts monitor address`'s lines), else the monitor's; the monitor's figure is kept
beside the kernel's. A SCHED_OTHER monitor stamps a line when it gets to run, which was
30-38 ms late next to a real-time daemon on this 2-core machine. The observer's
captures run out of tcpdump's immediate mode: woken for every packet, they took 8-20 ms
of the backup's CPU during a 1000-instance takeover (ftrace sched_switch).

Writes bench/results/mass-<tag>.json and prints markdown tables.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import platform
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime
from pathlib import Path

# bench/ is sys.path[0]; importing failover also puts tests/ and src/ on the path.
from failover import (BACKUP_PRIO, MASTER_PRIO, MS, RESULTS, ROOT, Layout, clock_check,
                      flush_vips, master_down_ns, pair_nodes, quantile, skew_ns)
from fastvrrp import netlab
from pcaputil import vrrp_adverts
import vipclock  # tests/, on the path through failover
from vipclock import AddrMonitor

BPF = "ip proto 112"
GARP_DELAY_S = 5.0  # garp_master_delay: keepalived's default, in Layout's configs

# Transition lines. fastvrrp: "VI_0_1: INIT -> BACKUP (prio 100, ...)";
# keepalived: "(VI_0_1) Entering BACKUP STATE (init)".
FV_STATE = re.compile(r"(\S+): \w+ -> (MASTER|BACKUP|FAULT) \(prio")
KA_STATE = re.compile(r"\((\S+)\) Entering (MASTER|BACKUP|FAULT) STATE")
FV_STARTUP = re.compile(r"running (\d+) instance\(s\); start-up (\d+) ms: config (\d+), imports (\d+), "
                        r"set-up (\d+) \(.*\), start (\d+)")

NOTIFY_SH = """#!/bin/bash
# notify.sh LOG INSTANCE NAME STATE PRIORITY ($EPOCHREALTIME: CLOCK_REALTIME, no fork)
log=$1
echo "S $EPOCHREALTIME $$ $3 $4 $5" >> "$log"
sleep {sleep}
echo "E $EPOCHREALTIME $$ $3 $4 $5" >> "$log"
"""


# --------------------------------------------------------------------------- daemons


def _lowest_priority() -> None:
    """Nice 19 for the calling thread."""
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 19)
    except OSError:
        pass


class Proc:
    """One daemon with its output read line by line and stamped with time.time_ns(),
    and a NOTIFY_SOCKET that stamps the sd_notify messages it sends."""

    def __init__(self, impl: str, node: netlab.Node, workdir: Path, config: str, args: argparse.Namespace,
                 *, quiet_readers: bool = False) -> None:
        self.impl, self.node, self.workdir, self.config, self.args = impl, node, workdir, config, args
        # In a storm the readers parse 2000 log lines during a 1000-instance takeover:
        # at nice 19 they do not take the CPU from the daemons they measure. Not in
        # the start-up part, whose milestones are the times lines were read.
        self.quiet_readers = quiet_readers
        workdir.mkdir(parents=True, exist_ok=True)
        self.lines: list[tuple[int, str]] = []
        self.notifies: list[tuple[int, str]] = []
        self.proc: subprocess.Popen | None = None
        self.t_exec = 0
        self.state: dict[str, str] = {}
        self.counts: dict[str, int] = {"MASTER": 0, "BACKUP": 0, "FAULT": 0}
        self._lock = threading.Lock()
        self._rx = FV_STATE if impl == "fastvrrp" else KA_STATE

    def start(self) -> None:
        conf = self.workdir / "daemon.conf"
        conf.write_text(self.config)
        sock_path = self.workdir / "notify.sock"
        sock_path.unlink(missing_ok=True)
        self._nsock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._nsock.bind(str(sock_path))
        env = dict(os.environ, NOTIFY_SOCKET=str(sock_path))
        if self.impl == "keepalived":
            argv = ["keepalived", "-n", "-l", "-D", "-G", "-P", "-f", str(conf),
                    "-p", str(self.workdir / "keepalived.pid"), "-r", str(self.workdir / "vrrp.pid"),
                    "-c", str(self.workdir / "checkers.pid")]
        else:
            argv = [sys.executable, "-m", "fastvrrp", "run", "-f", str(conf), "--control", "",
                    "--max-notify-scripts", str(self.args.max_notify_scripts)]
        threading.Thread(target=self._read_notify, daemon=True).start()
        self.t_exec = time.time_ns()
        self.proc = self.node.popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env)
        if self.quiet_readers:
            # A reader that is behind must not make the daemon's log writes block: room
            # for ~13000 lines (F_SETPIPE_SZ, up to fs.pipe-max-size).
            try:
                fcntl.fcntl(self.proc.stdout.fileno(), fcntl.F_SETPIPE_SZ, 1 << 20)
            except OSError:
                pass
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        if self.quiet_readers:
            _lowest_priority()
        for raw in self.proc.stdout:
            now = time.time_ns()
            line = raw.decode(errors="replace").rstrip("\n")
            with self._lock:
                self.lines.append((now, line))
                m = self._rx.search(line)
                if m:
                    self.state[m[1]] = m[2]
                    self.counts[m[2]] += 1

    def _read_notify(self) -> None:
        if self.quiet_readers:
            _lowest_priority()
        while True:
            try:
                data = self._nsock.recv(4096)
            except OSError:
                return
            self.notifies.append((time.time_ns(), data.decode(errors="replace")))

    def in_state(self, state: str) -> int:
        with self._lock:
            return sum(1 for s in self.state.values() if s == state)

    def first(self, pattern: str, nth: int = 1) -> int | None:
        """Time of the nth line matching `pattern` (regex), or None."""
        rx = re.compile(pattern)
        seen = 0
        with self._lock:
            lines = list(self.lines)
        for t, line in lines:
            if rx.search(line):
                seen += 1
                if seen == nth:
                    return t
        return None

    def matching(self, pattern: str) -> list[tuple[int, re.Match]]:
        rx = re.compile(pattern)
        with self._lock:
            lines = list(self.lines)
        return [(t, m) for t, line in lines if (m := rx.search(line))]

    def cpu_s(self) -> float | None:
        """utime + stime of the daemon and its descendants still alive (keepalived's
        VRRP child), from /proc, in seconds."""
        if self.proc is None or self.proc.poll() is not None:
            return None
        tick = os.sysconf("SC_CLK_TCK")
        total, todo = 0, [self.proc.pid]
        while todo:
            pid = todo.pop()
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                total += int(fields[11]) + int(fields[12])
                for task in Path(f"/proc/{pid}/task").iterdir():
                    todo += [int(c) for c in (task / "children").read_text().split()]
            except (FileNotFoundError, ProcessLookupError):
                continue
        return total / tick

    def netlink_writer(self) -> int:
        """The pid whose thread writes the VIP requests: fastvrrp's main (loop) thread;
        keepalived's VRRP child (-P: the parent's only child)."""
        assert self.proc is not None
        if self.impl != "keepalived":
            return self.proc.pid
        children = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children").read_text().split()
        if len(children) != 1:
            raise RuntimeError(f"keepalived {self.proc.pid} has children {children}, not one VRRP child")
        return int(children[0])

    def tail(self, n: int = 25) -> str:
        with self._lock:
            return "\n".join(line for _t, line in self.lines[-n:])

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15.0) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            try:
                os.kill(self.proc.pid, sig)
                self.proc.wait(timeout)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                pass
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)  # its own session: scripts too
        except (ProcessLookupError, PermissionError):
            pass
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            pass
        self._reader.join(5)
        self._nsock.close()


def wait(pred, timeout: float, what: str, procs: tuple[Proc, ...] = ()) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        for p in procs:
            if p.proc is not None and p.proc.poll() is not None:
                raise RuntimeError(f"{p.impl} on {p.node.name} exited while waiting for {what}:\n{p.tail()}")
        time.sleep(0.02)
    tails = "\n".join(f"--- {p.impl} on {p.node.name} ---\n{p.tail()}" for p in procs)
    raise RuntimeError(f"timed out after {timeout:.0f} s waiting for {what}\n{tails}")


def script_runs(log: Path) -> list[dict]:
    """The notify scripts' start/end lines: one dict per run (ns timestamps)."""
    runs: dict[int, dict] = {}
    if not log.exists():
        return []
    for line in log.read_text().splitlines():
        parts = line.split()
        if len(parts) != 6:
            continue
        kind, ts, pid, name, state, prio = parts
        t = int(round(float(ts.replace(",", ".")) * 1e6)) * 1000
        if kind == "S":
            runs[int(pid)] = {"name": name, "state": state, "start": t, "end": None}
        elif int(pid) in runs:
            runs[int(pid)]["end"] = t
    return list(runs.values())


def peak_overlap(runs: list[dict]) -> int:
    events = sorted([(r["start"], 1) for r in runs] + [(r["end"], -1) for r in runs if r["end"] is not None])
    level = peak = 0
    for _t, step in events:
        level += step
        peak = max(peak, level)
    return peak


# --------------------------------------------------------------------------- the lab


class Mass:
    def __init__(self, lab: netlab.Lab, tmp: Path, args: argparse.Namespace, max_n: int) -> None:
        self.lab, self.tmp, self.args = lab, tmp, args
        big = Layout(max_n, 3, args.advert_int)
        self.segments = big.segments
        self.m, self.b, self.obs = pair_nodes(lab, big)
        self.clock = clock_check(lab, self.b, self.obs, tmp)
        # The master's VIPs are only looked at while it starts (settle_master): its
        # monitor runs only then, so that printing the master's 1000 deletions in a
        # graceful storm takes no CPU from the backup being measured.
        self.mon_m: AddrMonitor | None = None
        self.mon_b = AddrMonitor(self.b, tmp / "b-addr.txt")
        # VIP install times: the kernel's where ftrace allows (a SCHED_OTHER monitor
        # is not scheduled for tens of ms when a real-time daemon and the other core
        # are busy; tests/vipclock.py), else the monitor's.
        self.kernel_clock_unusable = vipclock.available()
        self.kclock = vipclock.KernelAddrClock() if self.kernel_clock_unusable is None else None
        self.script = tmp / "notify.sh"
        self.script.write_text(NOTIFY_SH.format(sleep=args.script_sleep))
        self.script.chmod(0o755)
        self.counter = 0

    def close(self) -> None:
        self.close_master_monitor()
        self.mon_b.close()
        if self.kclock is not None:
            self.kclock.close()

    def arm_kernel_clock(self, backup: Proc) -> str | None:
        """Record the backup's address notifications from now; None, or why not."""
        if self.kclock is None:
            return self.kernel_clock_unusable
        listeners = vipclock.address_listeners(self.b.run(["cat", "/proc/net/netlink"]).stdout)
        self.kclock.arm(backup.netlink_writer(), listeners)
        return None

    def open_master_monitor(self) -> int:
        """A new `ip monitor` on the master's node; the offset to read it from."""
        self.close_master_monitor()
        self.counter += 1
        self.mon_m = AddrMonitor(self.m, self.tmp / f"m-addr-{self.counter}.txt")
        return self.mon_m.offset()

    def close_master_monitor(self) -> None:
        if self.mon_m is not None:
            self.mon_m.close()
            self.mon_m = None

    def captures(self, L: Layout, name: str) -> tuple[list, list[Path]]:
        paths = [self.tmp / f"{name}-s{s}.pcap" for s in range(L.segments)]
        # Not in immediate mode: tcpdump on every segment waking (and writing) once per
        # packet took 8-20 ms of the backup's CPU during a 1000-instance takeover
        # (ftrace sched_switch, this machine); the kernel's timestamps are the same.
        caps = [self.lab.capture(self.obs, L.ifname(s), BPF, paths[s], snaplen=128, buffer_kib=8192,
                                 immediate=False)
                for s in range(L.segments)]
        return caps, paths

    def config(self, L: Layout, role: str, notify_log: Path | None) -> str:
        text = L.config(role)
        if self.args.global_defs:
            # Both daemons read the same lines (vrrp_rt_priority 20, say).
            text = text.replace("global_defs {\n", "global_defs {\n" + "".join(
                f"    {line}\n" for line in self.args.global_defs), 1)
        if notify_log is not None:
            text = text.replace("    virtual_ipaddress {", f'    notify "{self.script} {notify_log}"\n'
                                "    virtual_ipaddress {")
            # Scripts as root (no keepalived_script user here), as both daemons would.
            text = text.replace("global_defs {\n", "global_defs {\n    script_user root\n", 1)
        return text

    def proc(self, impl: str, node: netlab.Node, L: Layout, role: str, notify_log: Path | None = None,
             *, quiet_readers: bool = False) -> Proc:
        self.counter += 1
        return Proc(impl, node, self.tmp / f"{impl}-{role}-{self.counter}", self.config(L, role, notify_log),
                    self.args, quiet_readers=quiet_readers)

    def vipset(self, L: Layout) -> set[tuple[str, str]]:
        return {(L.ifname(s), vip) for s, _v, vip in L.instances}

    def settle_master(self, master: Proc, L: Layout, mon_off: int, t0: int) -> int:
        """Wait until all N are MASTER in the log and all N VIPs installed; the last VIP's time."""
        vips = self.vipset(L)
        timeout = 30 + L.n * 0.03
        wait(lambda: master.in_state("MASTER") == L.n, timeout, f"{L.n} masters", (master,))
        got: dict = {}

        def all_vips() -> bool:
            nonlocal got
            got = self.mon_m.adds_since(mon_off, t0)
            return vips <= got.keys()

        wait(all_vips, timeout, f"{L.n} VIPs on the master", (master,))
        self.close_master_monitor()
        return max(got[v] for v in vips)

    def clean(self, L: Layout) -> None:
        vips = sorted(self.vipset(L))
        flush_vips(self.m, vips)
        flush_vips(self.b, vips)

    # ------------------------------------------------------------------ start-up

    def startup(self, impl: str, n: int) -> dict:
        L = Layout(n, 3, self.args.advert_int)
        self.clean(L)
        caps, paths = self.captures(L, f"startup-{impl}")
        mon_off = self.open_master_monitor()
        master = self.proc(impl, self.m, L, "m")
        backup: Proc | None = None
        out: dict = {"impl": impl, "n": n}
        try:
            master.start()
            t0 = master.t_exec
            t_vips = self.settle_master(master, L, mon_off, t0)
            cpu = master.cpu_s()
            # On past the delayed GARP burst (garp_master_delay 5 s after the takeover).
            time.sleep(max(0.3, (t_vips - time.time_ns()) / 1e9 + GARP_DELAY_S + 0.8))
            netlab.stop_captures(caps)
            first_adv: dict[tuple[int, int], int] = {}
            sent: dict[tuple[int, int], list[int]] = {}
            msrc = {L.router_addr("m", s): s for s in range(L.segments)}
            for path in paths:
                for ts, src, vrid, prio in vrrp_adverts(path):
                    if src in msrc and ts >= t0:
                        first_adv.setdefault((msrc[src], vrid), ts)
                        sent.setdefault((msrc[src], vrid), []).append(ts)
            t_first = min(first_adv.values()) if first_adv else t0
            gaps_takeover, gaps_garp = [], []
            for times in sent.values():
                for a, b in zip(times, times[1:]):
                    if a < t_first + 1_000 * MS:
                        gaps_takeover.append(b - a)
                    elif t_first + (GARP_DELAY_S - 0.5) * 1e9 <= a <= t_first + (GARP_DELAY_S + 0.6) * 1e9:
                        gaps_garp.append(b - a)
            out["master"] = self.milestones(master, L, t0, role="m") | {
                "first_advert_ms": (min(first_adv.values()) - t0) / MS if first_adv else None,
                "last_first_advert_ms": (max(first_adv.values()) - t0) / MS if len(first_adv) == n else None,
                "all_vips_ms": (t_vips - t0) / MS,
                "gap_after_takeover_max_ms": max(gaps_takeover) / MS if gaps_takeover else None,
                "gap_at_garp_burst_max_ms": max(gaps_garp) / MS if gaps_garp else None,
                "protocol_wait_ms": master_down_ns(3, MASTER_PRIO, L.advert_cs) / MS,
                "cpu_s": cpu,
            }
            out["master"]["overhead_ms"] = out["master"]["all_vips_ms"] - out["master"]["protocol_wait_ms"]

            backup = self.proc(impl, self.b, L, "b")
            backup.start()
            t0b = backup.t_exec
            wait(lambda: backup.in_state("BACKUP") == n, 30 + n * 0.03, f"{n} backups", (backup,))
            cpu_b = backup.cpu_s()
            time.sleep(1.0)  # several master-down intervals: nobody must take over
            out["backup"] = self.milestones(backup, L, t0b, role="b") | {"cpu_s": cpu_b, "protocol_wait_ms": 0.0}
            out["backup"]["overhead_ms"] = out["backup"]["all_backup_ms"]
            out["backup"]["spurious_masters"] = backup.counts["MASTER"]
            out["master"]["spurious_backups"] = master.counts["BACKUP"] - n
        finally:
            netlab.stop_captures(caps)
            self.close_master_monitor()
            for p in (backup, master):
                if p is not None:
                    p.stop(signal.SIGTERM)
            self.clean(L)
            for path in paths:
                path.unlink(missing_ok=True)
        return out

    def milestones(self, p: Proc, L: Layout, t0: int, role: str) -> dict:
        ms = lambda t: None if t is None else (t - t0) / MS  # noqa: E731
        state_rx = r": \w+ -> BACKUP \(prio" if p.impl == "fastvrrp" else r"Entering BACKUP STATE"
        backups = [t for t, _m in p.matching(state_rx)]
        d: dict = {
            "first_line_ms": ms(p.lines[0][0]) if p.lines else None,
            "ready_ms": None,
            "first_backup_ms": ms(backups[0]) if backups else None,
            "all_backup_ms": ms(backups[L.n - 1]) if len(backups) >= L.n else None,
        }
        if p.impl == "fastvrrp":
            ready = [t for t, msg in p.notifies if "READY=1" in msg]
            d["ready_ms"] = ms(ready[0]) if ready else None
            hits = p.matching(FV_STARTUP.pattern)
            if hits:
                g = hits[0][1]
                d["self_reported_ms"] = {"total": int(g[2]), "config": int(g[3]), "imports": int(g[4]),
                                         "setup": int(g[5]), "start": int(g[6])}
                d["python_start_ms"] = d["first_line_ms"]  # exec -> interpreter and imports -> first log line
        else:
            d["ready_ms"] = ms(p.first(r"Startup complete"))  # no READY=1 outside systemd
            d["vrrp_child_ms"] = ms(p.first(r"Starting VRRP child process"))
            d["sd_notify_ready_ms"] = next((ms(t) for t, msg in p.notifies if "READY=1" in msg), None)
        if role == "m":
            rx = r": \w+ -> MASTER \(prio" if p.impl == "fastvrrp" else r"Entering MASTER STATE"
            masters = [t for t, _m in p.matching(rx)]
            d["first_master_ms"] = ms(masters[0]) if masters else None
            d["all_master_ms"] = ms(masters[L.n - 1]) if len(masters) >= L.n else None
        return d

    # ------------------------------------------------------------------ storms

    def storm(self, impl: str, n: int, with_notify: bool, scenario: str, index: int) -> dict:
        L = Layout(n, 3, self.args.advert_int)
        self.clean(L)
        tag = f"storm-{impl}-{n}-{'notify' if with_notify else 'none'}-{scenario}-{index}"
        log = self.tmp / f"{tag}.notify.log"
        master = self.proc(impl, self.m, L, "m", quiet_readers=True)
        backup = self.proc(impl, self.b, L, "b", log if with_notify else None, quiet_readers=True)
        caps: list = []
        paths: list[Path] = []
        out: dict = {"impl": impl, "n": n, "notify": with_notify, "scenario": scenario}
        try:
            mon_off = self.open_master_monitor()
            master.start()
            t_vips = self.settle_master(master, L, mon_off, master.t_exec)
            # Not while the master sends its delayed GARP burst: at N=1000 that holds its
            # adverts up long enough (bench start-up part) to make a starting backup flap.
            time.sleep(max(0.0, (t_vips - time.time_ns()) / 1e9 + GARP_DELAY_S + 0.5))
            backup.start()
            wait(lambda: backup.in_state("BACKUP") == n, 30 + n * 0.03, f"{n} backups", (backup, master))
            if with_notify:
                wait(lambda: sum(1 for r in script_runs(log) if r["end"] is not None) >= n,
                     60 + n * 0.05, "the start-up BACKUP scripts", (backup,))
            time.sleep(0.5)
            if backup.counts["MASTER"]:
                out["anomalies"] = [f"the backup took over {backup.counts['MASTER']} time(s) before the kill"]
            adv_s = L.advert_cs / 100
            caps, paths = self.captures(L, tag)
            b_off = self.mon_b.offset()
            time.sleep(adv_s + 0.25 + random.uniform(0, adv_s))
            masters_before = backup.counts["MASTER"]
            clock_why = self.arm_kernel_clock(backup)

            if scenario == "crash":
                t_kill = time.time_ns()
                os.killpg(master.proc.pid, signal.SIGKILL)
            else:
                t_kill = time.time_ns()
                os.kill(master.proc.pid, signal.SIGTERM)

            vips = self.vipset(L)
            installed: dict = {}

            def all_vips() -> bool:
                nonlocal installed
                installed = self.mon_b.adds_since(b_off, t_kill)
                return vips <= installed.keys()

            # Not a look before the takeover should be over: the bench takes no CPU from
            # the daemons while they work (as in bench/failover.py).
            bound = (L.mdi_ns if scenario == "crash" else L.skew_ns) / 1e9
            time.sleep(max(0.0, t_kill / 1e9 + bound + 0.1 + n * 0.0002 - time.time()))
            wait(all_vips, 30 + n * 0.03, f"{n} VIPs on the backup", (backup,))
            monitored = installed
            if clock_why is None:
                installed, clock_why = self.kclock.stamped(installed)
            out["vip_clock"] = "kernel" if clock_why is None else f"monitor ({clock_why})"
            wait(lambda: backup.counts["MASTER"] - masters_before >= n, 30, f"{n} takeovers", (backup,))
            if with_notify:
                def storm_over() -> bool:
                    done = [r for r in script_runs(log) if r["state"] == "MASTER" and r["end"] is not None]
                    return len(done) >= n
                wait(storm_over, 60 + n * 0.1, "the MASTER scripts", (backup,))
            # Capture at least 2.5 s from the kill, and 0.3 s past the storm.
            time.sleep(max(0.3, 2.5 - (time.time_ns() - t_kill) / 1e9))
            t_end = time.time_ns()
            netlab.stop_captures(caps)
            out["capture_drops"] = sum(cap.dropped_by_kernel or 0 for cap in caps)
            out.update(self.analyse_storm(L, paths, t_kill, t_end, installed, scenario, monitored))
            if with_notify:
                runs = [r for r in script_runs(log) if r["state"] == "MASTER"]
                ends = sorted(r["end"] for r in runs if r["end"] is not None)
                out["storm_ms"] = (ends[-1] - t_kill) / MS if ends else None
                out["first_script_ms"] = (min(r["start"] for r in runs) - t_kill) / MS if runs else None
                out["peak_scripts"] = peak_overlap(runs)
                out["scripts"] = len(runs)
        finally:
            netlab.stop_captures(caps)
            self.close_master_monitor()
            for p in (backup, master):
                p.stop(signal.SIGKILL)  # no STOP storm: not measured here
            self.clean(L)
            for path in paths:
                if not self.args.keep_logs:
                    path.unlink(missing_ok=True)
        return out

    def analyse_storm(self, L: Layout, paths: list[Path], t_kill: int, t_end: int,
                      installed: dict, scenario: str, monitored: dict) -> dict:
        """Gaps: between two adverts of one VRID from the new master, from its first
        advert until the capture ends, but before the delayed GARP burst (5 s after the
        takeover: measured in the start-up part); `gap_after` only those that start
        after the last VIP is installed (the takeover done, the storm still on)."""
        d_ns, e_ns, e_mon_ns, firsts, gaps, gaps_after, missing = [], [], [], [], [], [], 0
        t_last_vip = max(installed.values()) if installed else t_end
        t_stop = min(t_end, t_kill + int((GARP_DELAY_S - 0.3) * 1e9))
        for s, path in enumerate(paths):
            by: dict[tuple[str, int], list[tuple[int, int]]] = {}
            for ts, src, vrid, prio in vrrp_adverts(path):
                by.setdefault((src, vrid), []).append((ts, prio))
            msrc, bsrc = L.router_addr("m", s), L.router_addr("b", s)
            for seg, vrid, vip in L.instances:
                if seg != s:
                    continue
                mas = by.get((msrc, vrid), [])
                bas = sorted(ts for ts, p in by.get((bsrc, vrid), []) if ts >= t_kill and p > 0)
                if scenario == "crash":
                    # The master's last advert, even one a burst in progress sent just
                    # after the kill's timestamp (as bench/failover.py counts it).
                    last = max((ts for ts, p in mas if p > 0), default=None)
                    bound = None if last is None else last + L.mdi_ns
                else:
                    p0 = min((ts for ts, p in mas if ts >= t_kill and p == 0), default=None)
                    bound = None if p0 is None else p0 + L.skew_ns
                key = (L.ifname(s), vip)
                t_vip = installed.get(key)
                if not bas or bound is None or t_vip is None:
                    missing += 1
                    continue
                firsts.append(bas[0])
                d_ns.append(bas[0] - bound)
                e_ns.append(t_vip - bound)
                if key in monitored:
                    e_mon_ns.append(monitored[key] - bound)
                pairs = [(a, b) for a, b in zip(bas, bas[1:]) if b <= t_stop]
                gaps.extend(b - a for a, b in pairs)
                gaps_after.extend(b - a for a, b in pairs if a >= t_last_vip)
        vals = list(installed.values())
        ms = lambda x: None if x is None else x / MS  # noqa: E731
        return {
            "last_first_advert_ms": ms(max(firsts) - t_kill) if firsts else None,
            "last_vip_ms": ms(max(vals) - t_kill) if vals else None,
            "d_p50_ms": ms(quantile(d_ns, 0.5)), "d_max_ms": ms(max(d_ns)) if d_ns else None,
            "e_p50_ms": ms(quantile(e_ns, 0.5)), "e_max_ms": ms(max(e_ns)) if e_ns else None,
            # The same by the monitor's stamps (equal when the monitor is the clock).
            "e_max_monitor_ms": ms(max(e_mon_ns)) if e_mon_ns else None,
            "gap_max_ms": ms(max(gaps)) if gaps else None,
            "gap_p99_ms": ms(quantile(gaps, 0.99)),
            "gap_after_max_ms": ms(max(gaps_after)) if gaps_after else None,
            "gap_window_ms": ms(t_stop - t_kill),
            "missing": missing,
        }


# --------------------------------------------------------------------------- tables


def med(xs: list) -> float | None:
    xs = [x for x in xs if x is not None]
    return quantile(xs, 0.5) if xs else None


def f(v, digits: int = 0) -> str:
    return "—" if v is None else f"{v:.{digits}f}"


def startup_table(trials: list[dict]) -> str:
    lines = ["| impl | role | first log line | ready | first BACKUP | all BACKUP | first advert | "
             "all MASTER | all VIPs | protocol wait | **overhead** | CPU s | advert gap: takeover / GARP burst |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for impl in ("fastvrrp", "keepalived"):
        ts = [t for t in trials if t["impl"] == impl]
        if not ts:
            continue
        for role in ("master", "backup"):
            rows = [t[role] for t in ts if role in t]
            g = lambda k: med([r.get(k) for r in rows])  # noqa: E731
            lines.append(f"| {impl} | {role} | {f(g('first_line_ms'))} | {f(g('ready_ms'))} | "
                         f"{f(g('first_backup_ms'))} | {f(g('all_backup_ms'))} | {f(g('first_advert_ms'))} | "
                         f"{f(g('all_master_ms'))} | {f(g('all_vips_ms'))} | {f(g('protocol_wait_ms'), 1)} | "
                         f"**{f(g('overhead_ms'))}** | {f(g('cpu_s'), 2)} | "
                         + ("—" if role == "backup" else
                            f"{f(g('gap_after_takeover_max_ms'))} / {f(g('gap_at_garp_burst_max_ms'))}") + " |")
    fv = [t["master"].get("self_reported_ms") for t in trials if t["impl"] == "fastvrrp"]
    fv += [t["backup"].get("self_reported_ms") for t in trials if t["impl"] == "fastvrrp" and "backup" in t]
    fv = [x for x in fv if x]
    notes = ["", "Milliseconds from the exec of the daemon, medians over trials; ready = sd_notify READY=1 "
             "(fastvrrp) or the VRRP child's \"Startup complete\" (keepalived); overhead = all VIPs "
             "(master) or all BACKUP (backup) minus the protocol wait; advert gap = the master's longest "
             "interval between two adverts of one VRID in the first second after its first advert (the mass "
             "takeover at start) and around the delayed GARP burst 5 s later (advert_int when nothing holds "
             "the sender up)."]
    if fv:
        k = lambda key: med([x[key] for x in fv])  # noqa: E731
        notes.append(f"fastvrrp's own breakdown (median of master and backup): config parse {f(k('config'))} ms, "
                     f"imports + service {f(k('imports'))} ms, set-up (interfaces, sockets, stale VIPs, "
                     f"machines) {f(k('setup'))} ms, start {f(k('start'))} ms; total in run() {f(k('total'))} ms "
                     "(the interpreter start and `import fastvrrp` come before: see first log line).")
    ka = [t["master"].get("vrrp_child_ms") for t in trials if t["impl"] == "keepalived"]
    if any(x is not None for x in ka):
        notes.append(f"keepalived: VRRP child forked at {f(med(ka))} ms (the parent has parsed the config; "
                     "the child parses it again, opens its sockets and says \"Startup complete\").")
    return "\n".join(lines + notes)


STORM_COLS = [("last_first_advert_ms", "kill → last first advert"), ("last_vip_ms", "kill → last VIP"),
              ("d_max_ms", "first advert beyond bound, max"), ("e_p50_ms", "VIP beyond bound, p50"),
              ("e_max_ms", "VIP beyond bound, max"), ("e_max_monitor_ms", "same by ip monitor"),
              ("gap_max_ms", "advert gap, max"),
              ("gap_after_max_ms", "advert gap after last VIP, max"),
              ("storm_ms", "kill → last script end"), ("peak_scripts", "peak scripts")]


def storm_table(trials: list[dict]) -> str:
    lines = ["| N | scenario | impl | notify | " + " | ".join(c for _k, c in STORM_COLS) + " |",
             "|---|---|---|---|" + "---|" * len(STORM_COLS)]
    keys = sorted({(t["n"], t["scenario"], t["impl"], t["notify"]) for t in trials},
                  key=lambda k: (k[0], k[1] != "crash", k[2], k[3]))
    for n, sc, impl, notify in keys:
        ts = [t for t in trials if (t["n"], t["scenario"], t["impl"], t["notify"]) == (n, sc, impl, notify)]
        cells = [f(med([t.get(k) for t in ts]), 0 if k == "peak_scripts" else 1) for k, _c in STORM_COLS]
        lines.append(f"| {n} | {sc} | {impl} | {'yes' if notify else 'no'} | " + " | ".join(cells) + " |")
    bad = [t for t in trials if t.get("missing") or t.get("capture_drops") or t.get("anomalies")]
    lines += ["", f"Milliseconds, medians over {max(1, len(trials) // max(1, len(keys)))} trial(s); "
              "bound = the instance's protocol deadline (crash: master's last advert + Master_Down_Interval; "
              "graceful: priority-0 advert + Skew_Time); advert gap = longest interval between two adverts of "
              "one VRID from the new master, from its first advert until the storm is over or 4.7 s after the "
              "kill (before the delayed GARP burst), whichever is first; \"after last VIP\": only intervals "
              "starting once every VIP is installed (takeover done, storm still running). VIP times are the "
              "kernel's (ftrace, tests/vipclock.py) in " + f"{sum(t.get('vip_clock') == 'kernel' for t in trials)} "
              f"of {len(trials)} trial(s), else `ip -ts monitor`'s; \"same by ip monitor\": the VIP column by "
              "the monitor's stamps, late when the monitor is not scheduled."]
    if bad:
        lines.append(f"{len(bad)} trial(s) with missing instances, capture drops or anomalies (see JSON).")
    return "\n".join(lines)


# --------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--impl", choices=("fastvrrp", "keepalived", "both"), default="both")
    p.add_argument("--part", choices=("startup", "storm", "both"), default="both")
    p.add_argument("--instances", type=int, default=1000, help="start-up: N (default 1000)")
    p.add_argument("--storm-sizes", default="100,1000", help="storm: comma-separated N (default 100,1000)")
    p.add_argument("--scenario", choices=("crash", "graceful", "both"), default=None,
                   help="storm: how the master goes (default: both; crash with --fast)")
    p.add_argument("--advert-int", default="0.1", help="seconds (VRRPv3; default 0.1)")
    p.add_argument("--trials", type=int, default=3)
    p.add_argument("--script-sleep", default="0.01", help="the notify script's sleep, s (default 0.01)")
    p.add_argument("--max-notify-scripts", type=int, default=32, help="fastvrrp's bound (default 32)")
    p.add_argument("--fast", action="store_true", help="1 trial, crash only (~2 min)")
    p.add_argument("--out", default=None, help="result file stem (default bench/results/mass-full|fast)")
    p.add_argument("--global", dest="global_defs", action="append", default=[], metavar="LINE",
                   help="an extra global_defs line for both daemons (repeatable), e.g. 'vrrp_rt_priority 20'")
    p.add_argument("--keep-logs", action="store_true")
    p.add_argument("--no-compile", action="store_true",
                   help="do not byte-compile the fastvrrp package first (start-up then includes compiling)")
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--report", nargs="+", metavar="JSON", default=None, help="reprint earlier results")
    args = p.parse_args(argv)
    if args.report:
        for name in args.report:
            result = json.loads(Path(name).read_text())
            print_result(result)
        return 0
    if args.fast:
        args.trials = 1
        args.scenario = args.scenario or "crash"
    scenarios = ["crash", "graceful"] if (args.scenario or "both") == "both" else [args.scenario]
    sizes = [int(x) for x in args.storm_sizes.split(",") if x]
    impls = ["fastvrrp", "keepalived"] if args.impl == "both" else [args.impl]
    reason = netlab.netns_usable()
    if reason:
        print(f"mass bench needs root and network namespaces: {reason}", file=sys.stderr)
        return 1
    for tool in ("tcpdump", "ip") + (("keepalived",) if "keepalived" in impls else ()):
        if shutil.which(tool) is None:
            print(f"mass bench needs {tool}", file=sys.stderr)
            return 1
    random.seed(args.seed)
    RESULTS.mkdir(parents=True, exist_ok=True)
    if not args.no_compile and "fastvrrp" in impls:
        # As an installed package has them (pip compiles at install): without .pyc files,
        # and with PYTHONDONTWRITEBYTECODE set as here, every start compiles ~50 modules.
        import compileall

        import fastvrrp
        compileall.compile_dir(os.path.dirname(fastvrrp.__file__), quiet=1)
    started = time.time()
    max_n = max([args.instances] + sizes)
    result: dict = {
        "command": "python " + " ".join([os.path.relpath(sys.argv[0], ROOT)] + sys.argv[1:]),
        "date": datetime.now().astimezone().isoformat(timespec="seconds"),
        "host": {"kernel": platform.release(), "cpus": os.cpu_count(), "python": platform.python_version()},
        "keepalived": subprocess.run(["keepalived", "-v"], capture_output=True, text=True).stderr.splitlines()[:1],
        "config": {"version": 3, "advert_int": args.advert_int, "startup_instances": args.instances,
                   "storm_sizes": sizes, "scenarios": scenarios, "trials": args.trials,
                   "script_sleep_s": args.script_sleep, "fastvrrp_max_notify_scripts": args.max_notify_scripts,
                   "global_defs": args.global_defs,
                   "byte_compiled_first": not args.no_compile,
                   "master_priority": MASTER_PRIO, "backup_priority": BACKUP_PRIO,
                   "master_down_interval_ms": {"master": master_down_ns(3, MASTER_PRIO, round(float(args.advert_int) * 100)) / MS,
                                               "backup": master_down_ns(3, BACKUP_PRIO, round(float(args.advert_int) * 100)) / MS},
                   "skew_time_backup_ms": skew_ns(3, BACKUP_PRIO, round(float(args.advert_int) * 100)) / MS},
        "startup": [], "storm": [],
    }
    tmp = Path(tempfile.mkdtemp(prefix="fv-mass-"))
    try:
        with netlab.Lab(prefix="fm" + os.urandom(3).hex()) as lab:
            bench = Mass(lab, tmp, args, max_n)
            result["clock_check"] = bench.clock
            print(f"lab {lab.prefix}: {bench.segments} segment(s); clock check {bench.clock['median_us']} us",
                  flush=True)
            try:
                if args.part in ("startup", "both"):
                    for k in range(args.trials):
                        for impl in (impls if k % 2 == 0 else impls[::-1]):
                            r = bench.startup(impl, args.instances)
                            result["startup"].append(r)
                            mm, bb = r["master"], r.get("backup", {})
                            print(f"  start-up {impl:10s} N={args.instances}: master all VIPs "
                                  f"{f(mm['all_vips_ms'])} ms (overhead {f(mm['overhead_ms'])}), backup all "
                                  f"BACKUP {f(bb.get('all_backup_ms'))} ms", flush=True)
                if args.part in ("storm", "both"):
                    for k in range(args.trials):
                        for n in sizes:
                            for scenario in scenarios:
                                for impl in (impls if k % 2 == 0 else impls[::-1]):
                                    for notify in (False, True):
                                        r = bench.storm(impl, n, notify, scenario, k)
                                        result["storm"].append(r)
                                        print(f"  storm {impl:10s} N={n:4d} {scenario:8s} "
                                              f"notify={'yes' if notify else 'no ':3s} "
                                              f"last advert {f(r['last_first_advert_ms'], 1)} ms, last VIP "
                                              f"{f(r['last_vip_ms'], 1)} ms, VIP beyond bound max "
                                              f"{f(r['e_max_ms'], 1)} ms ({r.get('vip_clock')}; monitor "
                                              f"{f(r.get('e_max_monitor_ms'), 1)} ms), gap max {f(r['gap_max_ms'], 1)} ms"
                                              + (f", storm {f(r.get('storm_ms'))} ms, peak {r.get('peak_scripts')}"
                                                 if notify else "")
                                              + (f" missing={r['missing']}" if r.get("missing") else "")
                                              + (f" drops={r['capture_drops']}" if r.get("capture_drops") else ""),
                                              flush=True)
            finally:
                bench.close()
    finally:
        if args.keep_logs:
            print(f"logs kept in {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    result["elapsed_s"] = round(time.time() - started, 1)
    stem = args.out or f"mass-{'fast' if args.fast else 'full'}"
    path = RESULTS / f"{stem}.json"
    path.write_text(json.dumps(result, indent=1) + "\n")
    print()
    print_result(result)
    print(f"\nwrote {path} ({result['elapsed_s']} s)")
    return 0


def print_result(result: dict) -> None:
    cfg = result["config"]
    if result.get("startup"):
        print(f"### Start-up: N={cfg['startup_instances']}, VRRPv3 advert_int {cfg['advert_int']} s\n")
        print(startup_table(result["startup"]))
        print()
    if result.get("storm"):
        print(f"### Mass failover with and without a notify storm (script sleeps {cfg['script_sleep_s']} s; "
              f"fastvrrp --max-notify-scripts {cfg['fastvrrp_max_notify_scripts']})\n")
        print(storm_table(result["storm"]))
    print(f"\n({result['command']})")


if __name__ == "__main__":
    sys.exit(main())
