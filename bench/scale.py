"""Scale benchmark: steady-state cost of fastvrrp, keepalived and the kernel floor.

    sudo python bench/scale.py --fast          # smoke: N=100, 1 s and 0.1 s, 5 s windows (~2 min)
    sudo python bench/scale.py                 # N=100,1000,2000 x 1, 0.1, 0.01 s (~19 min)
    sudo python bench/scale.py --instances 1000,2000 --advert-int 1,0.1 --profile
    sudo python bench/scale.py --report bench/results/scale-matrix.json

The lab is bench/failover.py's (fastvrrp.netlab, documentation addresses only, removed
on exit): a master router `m` (priority 150), a backup `b` (priority 100), an observer
`obs` on every segment; N instances spread over max(1, ceil(N/250)) segments, one VIP
each, VRRPv3 over IPv4 multicast. Per N one lab; per (N, advert_int) three
implementations in turn, each on the same topology:

  fastvrrp    `python -m fastvrrp run -f CONF` on m and on b (same generated
              keepalived.conf as failover.py's Layout; router_id/priority differ)
  keepalived  `keepalived -n -l -D -G -P -f CONF` on m and on b (the same files)
  floor       bench/scale_floor.c, compiled with `cc -O2` into a temp dir: on m a
              sender that does nothing but one sendmmsg per interface per advert_int
              (timerfd) carrying that interface's pre-encoded adverts (the bytes come
              from fastvrrp.proto.packet.encode, IPv4 header included, IP_HDRINCL as
              both daemons send); on b a receiver that blocks in epoll_wait and drains
              with recvmmsg. The master's VIPs are installed on m as for the daemons.

A run: master started, wait until it holds every VIP; backup started, wait until its
receive socket(s) exist; wait past the master's garp_master_delay (5 s) + repeats.
Then:

  CPU window (--window, default 30 s, nothing else of ours running): utime/stime of
      each process from /proc/PID/stat (and sum_exec_runtime from
      /proc/PID/task/*/schedstat) at both ends -> % of one core, user and sys apart;
      VmRSS (and Pss) at the end. keepalived: its VRRP child and the process tree
      (parent + child); fastvrrp: the process; floor: sender / receiver. The master's
      and backup's interface packet counters over the same window (/proc/net/dev of
      their namespaces, held open): the master must have sent about N x window /
      advert_int adverts, the backup nothing; raw-socket drops in the backup's
      namespace (/proc/net/raw). The host's /proc/stat over the window gives the
      load from everything else on the machine ("other load").
  capture window (--capture, default 10 s, right after): tcpdump on every observer
      interface (snaplen 128, 8 MiB ring; lost frames mark the run invalid). Per
      VRID, the interval between the master's consecutive adverts minus advert_int
      -> jitter |interval - advert_int| p50/p99/max; gaps > 1.5 x advert_int,
      silences > 1.5 x advert_int at the edges, and a VRID's shortfall against the
      least the window must hold -> late/missed adverts; any advert from the backup
      -> flap.
      CPU is sampled over this window too (cpu_during_capture: includes the cost
      of the capture taps, for reference only).

RSS growth per instance: least-squares slope of RSS over the N values measured, per
implementation and role. Ratios fastvrrp/keepalived and fastvrrp/floor per role come
from the same run. PASS/FAIL lines for issue 7's floors at N=1000, 0.1 s.

Writes bench/results/scale-<tag>.json (every figure) and scale-<tag>.png (CPU vs N;
needs matplotlib). `--profile [N:ADVERT_INT]` also records py-spy profiles of the
fastvrrp master and backup of that configuration (default 1000:0.1) after its
windows (see bench/README.md, "Profiling the steady state with py-spy").
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import platform
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import failover  # noqa: E402  (also puts tests/ and src/ on sys.path)
from failover import (BACKUP_PRIO, GARP_MASTER_DELAY_S, MASTER_PRIO, Daemon, Layout,  # noqa: E402
                      flush_vips, quantile, vips_on)
from fastvrrp import netlab  # noqa: E402
from fastvrrp.proto import packet  # noqa: E402
from pcaputil import read_pcap  # noqa: E402

ROOT = failover.ROOT
RESULTS = ROOT / "bench" / "results"
FLOOR_SRC = Path(__file__).resolve().parent / "scale_floor.c"
IMPLS = ("fastvrrp", "keepalived", "floor")
ROLES = ("master", "backup")
CLK_TCK = os.sysconf("SC_CLK_TCK")
MS = 1_000_000
VERSION = 3
GARP_REPEAT_ALLOWANCE_S = 1.0  # garp_master_repeat 5 goes out in one burst; margin


# --------------------------------------------------------------------------- /proc


def _stat_fields(pid: int) -> list[str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text.rsplit(")", 1)[1].split()  # fields from 3 (state) on


def children(pid: int) -> list[int]:
    out = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return out
    for tid in tasks:
        try:
            out += [int(c) for c in Path(f"/proc/{pid}/task/{tid}/children").read_text().split()]
        except OSError:
            pass
    return out


def tree(pid: int) -> list[int]:
    """pid and all its descendants."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        if _stat_fields(p) is None:
            continue
        out.append(p)
        todo += children(p)
    return out


def cpu_sample(pid: int) -> dict | None:
    """utime/stime (clock ticks, all threads) and sum_exec_runtime (ns, all threads)."""
    f = _stat_fields(pid)
    if f is None:
        return None
    sched = 0
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            try:
                sched += int(Path(f"/proc/{pid}/task/{tid}/schedstat").read_text().split()[0])
            except (OSError, ValueError, IndexError):
                pass
    except OSError:
        pass
    # Wake-ups: a process that sleeps between events switches out voluntarily once each.
    switches = 0
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(("voluntary_ctxt_switches", "nonvoluntary_ctxt_switches")):
                switches += int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    # /proc/PID/stat field 14 utime, 15 stime; f[0] is field 3.
    return {"utime": int(f[11]), "stime": int(f[12]), "sched_ns": sched, "comm_state": f[0],
            "switches": switches}


def mem_sample(pid: int) -> dict:
    out = {"rss_kib": None, "pss_kib": None}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                out["rss_kib"] = int(line.split()[1])
    except OSError:
        pass
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                out["pss_kib"] = int(line.split()[1])
    except OSError:
        pass
    return out


def comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return "?"


def host_stat() -> list[int]:
    """The aggregate `cpu` line of /proc/stat (user nice system idle iowait irq softirq steal)."""
    line = Path("/proc/stat").read_text().splitlines()[0]
    return [int(x) for x in line.split()[1:9]]


def host_delta(a: list[int], b: list[int], seconds: float) -> dict:
    names = ("user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal")
    d = {n: (y - x) / CLK_TCK / seconds * 100 for n, x, y in zip(names, a, b)}
    d["busy"] = sum(v for n, v in d.items() if n not in ("idle", "iowait"))
    return {k: round(v, 2) for k, v in d.items()}


class Procs:
    """The processes of one role: `main` (keepalived's VRRP child, fastvrrp, the floor
    program) and the whole tree under the started process."""

    def __init__(self, impl: str, root_pid: int) -> None:
        self.impl, self.root = impl, root_pid

    def pids(self) -> tuple[int, list[int]]:
        all_pids = tree(self.root)
        main = self.root
        if self.impl == "keepalived":
            kids = [p for p in children(self.root) if comm(p).startswith("keepalived")]
            if len(kids) != 1:
                raise RuntimeError(f"keepalived {self.root}: expected one VRRP child, found {kids}")
            main = kids[0]
        return main, all_pids

    def sample(self) -> dict:
        main, all_pids = self.pids()
        return {"main": main, "t": time.monotonic(),
                "procs": {p: cpu_sample(p) for p in all_pids}}


def cpu_between(a: dict, b: dict) -> dict:
    """% of one core per process (main and tree total) between two Procs samples."""
    secs = b["t"] - a["t"]
    per = {}
    for pid, s1 in b["procs"].items():
        s0 = a["procs"].get(pid)
        if s0 is None or s1 is None:
            continue  # a process that appeared or vanished mid-window is not counted
        per[pid] = {"user": (s1["utime"] - s0["utime"]) / CLK_TCK / secs * 100,
                    "sys": (s1["stime"] - s0["stime"]) / CLK_TCK / secs * 100,
                    "sched": (s1["sched_ns"] - s0["sched_ns"]) / 1e9 / secs * 100,
                    "switches": (s1.get("switches", 0) - s0.get("switches", 0)) / secs}
    missing = sorted(set(a["procs"]) ^ set(b["procs"]))

    def fig(pids: list[int]) -> dict:
        u = sum(per[p]["user"] for p in pids if p in per)
        s = sum(per[p]["sys"] for p in pids if p in per)
        sc = sum(per[p]["sched"] for p in pids if p in per)
        sw = sum(per[p]["switches"] for p in pids if p in per)
        return {"user_pct": round(u, 3), "sys_pct": round(s, 3), "total_pct": round(u + s, 3),
                "sched_pct": round(sc, 3), "switches_per_s": round(sw, 1)}

    out = {"seconds": round(secs, 3), "main_pid": b["main"], "pids": sorted(per),
           "main": fig([b["main"]]), "tree": fig(list(per))}
    if missing:
        out["processes_changed"] = missing
    return out


def mem_of(procs: Procs) -> dict:
    main, all_pids = procs.pids()
    per = {p: mem_sample(p) for p in all_pids}
    tot_rss = sum(m["rss_kib"] or 0 for m in per.values())
    tot_pss = sum(m["pss_kib"] or 0 for m in per.values())
    return {"main": per[main], "tree": {"rss_kib": tot_rss, "pss_kib": tot_pss}}


class NetProc:
    """/proc/net/dev and /proc/net/raw of a lab namespace, opened once from a thread
    that entered it (the files follow the opener's namespace), then re-read with
    pread: a counter snapshot costs microseconds and no process, so the window's
    edges are where the timestamps say."""

    def __init__(self, node: netlab.Node) -> None:
        box: dict = {}

        def opener() -> None:  # setns only affects this short-lived thread
            try:
                libc = ctypes.CDLL(None, use_errno=True)
                fd = os.open(f"/run/netns/{node.ns}", os.O_RDONLY)
                try:
                    if libc.setns(fd, 0x40000000) != 0:  # CLONE_NEWNET
                        raise OSError(ctypes.get_errno(), "setns")
                finally:
                    os.close(fd)
                box["dev"] = os.open("/proc/thread-self/net/dev", os.O_RDONLY)
                box["raw"] = os.open("/proc/thread-self/net/raw", os.O_RDONLY)
            except BaseException as exc:  # noqa: BLE001
                box["error"] = exc

        t = threading.Thread(target=opener)
        t.start()
        t.join()
        if "error" in box:
            raise box["error"]
        self.dev_fd, self.raw_fd = box["dev"], box["raw"]

    @staticmethod
    def _read(fd: int) -> str:
        chunks, off = [], 0
        while True:
            chunk = os.pread(fd, 1 << 16, off)
            if not chunk:
                return b"".join(chunks).decode()
            chunks.append(chunk)
            off += len(chunk)

    def counters(self) -> dict[str, dict[str, int]]:
        """{ifname: {rx, rx_dropped, tx}} packets of the eth* interfaces."""
        out = {}
        for line in self._read(self.dev_fd).splitlines()[2:]:
            name, _, rest = line.partition(":")
            name = name.strip()
            if name.startswith("eth"):
                f = [int(x) for x in rest.split()]
                out[name] = {"rx": f[1], "rx_dropped": f[3], "tx": f[9]}
        return out

    def raw(self) -> tuple[int, int]:
        """(sockets, summed drops) of the raw IPPROTO_VRRP sockets in the namespace."""
        socks = drops = 0
        for line in self._read(self.raw_fd).splitlines()[1:]:
            f = line.split()
            if len(f) > 12 and f[1].endswith(":0070"):
                socks += 1
                drops += int(f[-1])
        return socks, drops

    def close(self) -> None:
        os.close(self.dev_fd)
        os.close(self.raw_fd)


# --------------------------------------------------------------------------- implementations


class FloorProc:
    """One scale_floor process (sender or receiver) in a lab node."""

    def __init__(self, node: netlab.Node, argv: list[str], workdir: Path, name: str) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        self.out_path = workdir / f"{name}.out"
        self._out = open(self.out_path, "w")  # noqa: SIM115
        self.name = name
        self.proc = node.popen(argv, stdout=self._out, stderr=subprocess.STDOUT)

    def wait_ready(self) -> None:
        netlab.wait_until(lambda: "ready" in self.out_path.read_text() or self.proc.poll() is not None,
                          10, what=f"floor {self.name} ready")
        if self.proc.poll() is not None:
            raise RuntimeError(f"floor {self.name} exited: {self.out_path.read_text()}")

    def stop(self) -> str:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        self._out.close()
        return self.out_path.read_text()


def build_floor(tmp: Path) -> Path:
    exe = tmp / "scale_floor"
    r = subprocess.run(["cc", "-O2", "-Wall", "-o", str(exe), str(FLOOR_SRC)], capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit(f"cc failed:\n{r.stderr}")
    return exe


def floor_adverts(layout: Layout) -> dict[int, list[bytes]]:
    """Per segment, the master's adverts as whole IPv4 datagrams (fastvrrp's codec)."""
    out: dict[int, list[bytes]] = {s: [] for s in range(layout.segments)}
    dst = socket.inet_aton("224.0.0.18")
    for seg, vrid, vip in layout.instances:
        src = socket.inet_aton(layout.router_addr("m", seg))
        out[seg].append(packet.encode(VERSION, vrid, MASTER_PRIO, layout.advert_cs, socket.inet_aton(vip),
                                      src=src, dst=dst, ipv4_ttl=255))
    return out


# --------------------------------------------------------------------------- capture analysis


def analyse_capture(layout: Layout, paths: list[Path], t0: int, t1: int) -> dict:
    """Per VRID of the master: jitter of consecutive intervals, late adverts (gaps over
    1.5 x advert_int), and missing ones (fewer captured than the window must hold)."""
    adv_ns = layout.advert_cs * 10 * MS
    # A window of W seconds holds floor(W / advert_int) of a VRID's adverts, or one
    # fewer when the phase and the jitter fall badly at both edges; fewer than that
    # is a shortfall (adverts lost or never sent).
    must = int((t1 - t0) // adv_ns) - 1
    jit: list[int] = []  # |interval - advert_int|, ns
    signed: list[int] = []
    gaps = gap_intervals = missing = silent = captured = edge_late = 0
    backup_adverts = other_prio = 0
    worst: list[tuple[int, str]] = []
    payloads: dict[tuple[int, int], set[str]] = {}
    ip_fields: Counter = Counter()
    for s, path in enumerate(paths):
        msrc, bsrc = layout.router_addr("m", s), layout.router_addr("b", s)
        per: dict[int, list[int]] = {}
        for ts, frame in read_pcap(path):
            if frame[12:14] != b"\x08\x00" or frame[23] != 112:
                continue
            ihl = (frame[14] & 0x0F) * 4
            src = socket.inet_ntoa(frame[26:30])
            vr = frame[14 + ihl:]
            if src == bsrc:
                backup_adverts += 1
                continue
            if src != msrc:
                continue
            if vr[2] != MASTER_PRIO:
                other_prio += 1
            per.setdefault(vr[1], []).append(ts)
            payloads.setdefault((s, vr[1]), set()).add(bytes(vr[:8 + 4 * vr[3]]).hex())
            ip_fields[(frame[15], frame[22], frame[20] & 0x40 != 0)] += 1  # TOS, TTL, DF
        for seg, vrid, _vip in layout.instances:
            if seg != s:
                continue
            tss = sorted(t for t in per.get(vrid, []) if t0 <= t <= t1)
            captured += len(tss)
            missing += max(0, must - len(tss))
            if not tss:
                silent += 1
                continue
            for a, b in zip(tss, tss[1:]):
                d = b - a - adv_ns
                signed.append(d)
                jit.append(abs(d))
                if b - a > 1.5 * adv_ns:
                    gaps += 1
                    gap_intervals += max(1, round((b - a) / adv_ns) - 1)
                    worst.append((b - a, f"VI_{seg}_{vrid}"))
            edge_late += (tss[0] - t0 > 1.5 * adv_ns) + (t1 - tss[-1] > 1.5 * adv_ns)
    worst.sort(reverse=True)

    def q(xs: list[int], p: float) -> float | None:
        v = quantile(xs, p)
        return None if v is None else round(v / MS, 4)

    return {
        "seconds": round((t1 - t0) / 1e9, 3),
        "expected": round(layout.n * (t1 - t0) / adv_ns), "expected_min": must * layout.n,
        "captured": captured,
        # missed: the VRIDs' shortfall against the least the window must hold (lost or
        # never sent); gaps: intervals over 1.5 x advert_int (late, or around a miss).
        "missed": missing, "gaps_over_1.5x": gaps, "gap_intervals": gap_intervals,
        "edge_silences_over_1.5x": edge_late, "silent_vrids": silent,
        "backup_adverts": backup_adverts, "other_priority_adverts": other_prio,
        "worst_gaps_ms": [(round(g / MS, 3), name) for g, name in worst[:5]],
        "jitter_ms": {"n": len(jit), "p50": q(jit, 0.5), "p99": q(jit, 0.99),
                      "max": round(max(jit) / MS, 4) if jit else None},
        "signed_ms": {"p1": q(signed, 0.01), "p50": q(signed, 0.5), "p99": q(signed, 0.99),
                      "min": round(min(signed) / MS, 4) if signed else None},
        "ip_tos_ttl_df": {f"{k[0]:#x}/{k[1]}/{'DF' if k[2] else '-'}": v for k, v in ip_fields.items()},
        "advert_digest": _digest(payloads),
    }


def _digest(payloads: dict[tuple[int, int], set[str]]) -> dict:
    import hashlib
    h = hashlib.sha256()
    multi = 0
    for key in sorted(payloads):
        vals = sorted(payloads[key])
        multi += len(vals) > 1
        h.update(f"{key}:{','.join(vals)};".encode())
    return {"instances": len(payloads), "sha256": h.hexdigest()[:16], "vrids_with_several_forms": multi}


# --------------------------------------------------------------------------- the bench


class ScaleLab:
    def config(self, layout: Layout, role: str) -> str:
        """Layout's config, with --global lines added to global_defs (both daemons)."""
        return layout.config(role).replace("global_defs {\n", "global_defs {\n" + "".join(
            f"    {line}\n" for line in self.args.global_defs), 1)

    def __init__(self, lab: netlab.Lab, n: int, tmp: Path, args: argparse.Namespace, floor_exe: Path) -> None:
        self.lab, self.n, self.tmp, self.args, self.floor_exe = lab, n, tmp, args, floor_exe
        probe = Layout(n, VERSION, "1")
        self.segments = probe.segments
        self.m, self.b, self.obs = failover.pair_nodes(lab, probe)
        self.vips = [(probe.ifname(s), vip) for s, _v, vip in probe.instances]
        self.vipset = set(self.vips)
        self.mproc, self.bproc = NetProc(self.m), NetProc(self.b)

    def close(self) -> None:
        self.mproc.close()  # before the lab deletes the namespaces these fds hold
        self.bproc.close()

    def ifindex(self, node: netlab.Node, ifname: str) -> int:
        return int(node.run(["cat", f"/sys/class/net/{ifname}/ifindex"]).stdout)

    # -- starting one implementation

    def start(self, impl: str, layout: Layout, work: Path, started: dict) -> dict:
        """Start the pair; `started` gets each process object as soon as it exists, so
        the caller stops them whatever happens here."""
        flush_vips(self.m, self.vips)
        flush_vips(self.b, self.vips)
        info: dict = {}
        t_start = time.monotonic()
        if impl == "floor":
            batch = "".join(f"addr add {vip}/32 dev {ifn}\n" for ifn, vip in self.vips)
            self.m.run(["ip", "-batch", "-"], input=batch)
            lines = []
            for s, pkts in floor_adverts(layout).items():
                ifn = layout.ifname(s)
                lines.append(f"{ifn} {self.ifindex(self.m, ifn)} " + " ".join(p.hex() for p in pkts))
            (work / "adverts.txt").parent.mkdir(parents=True, exist_ok=True)
            (work / "adverts.txt").write_text("\n".join(lines) + "\n")
            rx_args = [f"{layout.ifname(s)}:{self.ifindex(self.b, layout.ifname(s))}"
                       for s in range(layout.segments)]
            backup = started["backup"] = FloorProc(self.b, [str(self.floor_exe), "recv", *rx_args], work,
                                                   "receiver")
            backup.wait_ready()
            master = started["master"] = FloorProc(
                self.m, [str(self.floor_exe), "send", str(layout.advert_cs * 10 * MS), str(work / "adverts.txt")],
                work, "sender")
            master.wait_ready()
            steady_at = time.monotonic() + 2 + 2 * layout.advert_cs / 100
        else:
            master = started["master"] = Daemon(impl, self.m, work / "m", self.config(layout, "m"))
            backup = started["backup"] = Daemon(impl, self.b, work / "b", self.config(layout, "b"))
            master.start()
            n = len(self.vipset)
            timeout = 30 + 8 * layout.advert_cs / 100 + self.n * 0.03
            deadline = time.monotonic() + timeout
            while vips_on(self.m, self.vipset) < n:
                if master.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"{impl} master: {vips_on(self.m, self.vipset)}/{n} VIPs after "
                                       f"{time.monotonic() - t_start:.1f} s\n{master.log_tail()}")
                time.sleep(0.2)
            t_master = time.monotonic()
            info["master_all_vips_s"] = round(t_master - t_start, 2)
            backup.start()
            t_b = time.monotonic()
            deadline = t_b + timeout
            while self.bproc.raw()[0] < layout.segments:
                if backup.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"{impl} backup did not open its sockets\n{backup.log_tail()}")
                time.sleep(0.2)
            info["backup_sockets_s"] = round(time.monotonic() - t_b, 2)
            steady_at = max(t_master + GARP_MASTER_DELAY_S + GARP_REPEAT_ALLOWANCE_S + self.n * 0.001,
                            time.monotonic() + 2 + 4 * layout.advert_cs / 100)
        time.sleep(max(0.0, steady_at - time.monotonic()))
        if impl != "floor":
            got_m, got_b = vips_on(self.m, self.vipset), vips_on(self.b, self.vipset)
            if got_m != len(self.vipset) or got_b:
                # Measured all the same (this is what the machine does at this rate) and marked.
                info["not_steady"] = f"at the window's start the master had {got_m}/{len(self.vipset)} VIPs, " \
                                     f"the backup {got_b}"
        info["start_to_steady_s"] = round(time.monotonic() - t_start, 2)
        return info

    # -- one run

    def run(self, impl: str, layout: Layout) -> dict:
        args = self.args
        work = self.tmp / f"{impl}-n{layout.n}-{layout.advert}"
        started: dict = {}
        result: dict = {"impl": impl, "n": layout.n, "advert_int": float(layout.advert),
                        "segments": layout.segments, "notes": []}
        try:
            info = self.start(impl, layout, work, started)
            master, backup = started["master"], started["backup"]
            result["startup"] = info
            procs = {"master": Procs(impl, master.proc.pid), "backup": Procs(impl, backup.proc.pid)}
            result["comm"] = {r: comm(p.pids()[0]) for r, p in procs.items()}

            # ---- CPU window: nothing of ours runs but the sleep.
            c0 = {"m": self.mproc.counters(), "b": self.bproc.counters()}
            tc0 = time.monotonic()
            d0 = self.bproc.raw()[1]
            h0 = host_stat()
            s0 = {r: p.sample() for r, p in procs.items()}
            time.sleep(args.window)
            s1 = {r: p.sample() for r, p in procs.items()}
            h1 = host_stat()
            mem = {r: mem_of(p) for r, p in procs.items()}
            c1 = {"m": self.mproc.counters(), "b": self.bproc.counters()}
            tc1 = time.monotonic()
            d1 = self.bproc.raw()[1]
            result["cpu"] = {r: cpu_between(s0[r], s1[r]) for r in ROLES}
            result["mem"] = mem
            secs = s1["master"]["t"] - s0["master"]["t"]
            own = sum(result["cpu"][r]["tree"]["total_pct"] for r in ROLES)
            host = host_delta(h0, h1, secs)
            host["busy_minus_lab_daemons"] = round(host["busy"] - own, 2)
            result["host_cpu_pct"] = host
            m_tx = sum(c1["m"][i]["tx"] - c0["m"][i]["tx"] for i in c1["m"])
            b_tx = sum(c1["b"][i]["tx"] - c0["b"][i]["tx"] for i in c1["b"])
            b_rx = sum(c1["b"][i]["rx"] - c0["b"][i]["rx"] for i in c1["b"])
            expected = layout.n * (tc1 - tc0) / (layout.advert_cs / 100)
            result["window"] = {"seconds": round(secs, 3), "counter_seconds": round(tc1 - tc0, 3),
                                "master_tx": m_tx, "expected_adverts": round(expected),
                                "backup_tx": b_tx, "backup_rx": b_rx, "backup_raw_drops": d1 - d0}

            # ---- capture window.
            paths = [work / f"obs-s{s}.pcap" for s in range(layout.segments)]
            caps = [self.lab.capture(self.obs, layout.ifname(s), "ip proto 112", paths[s],
                                     snaplen=128, buffer_kib=8192) for s in range(layout.segments)]
            cap_pids = [c.proc.pid for c in caps]
            q0 = {r: p.sample() for r, p in procs.items()}
            qc0 = {pid: cpu_sample(pid) for pid in cap_pids}
            t0 = time.time_ns()
            time.sleep(args.capture)
            t1 = time.time_ns()
            q1 = {r: p.sample() for r, p in procs.items()}
            qc1 = {pid: cpu_sample(pid) for pid in cap_pids}
            for c in caps:
                c.stop()
            drops = sum(c.dropped_by_kernel or 0 for c in caps)
            unknown = sum(c.dropped_by_kernel is None for c in caps)
            result["cpu_during_capture"] = {r: cpu_between(q0[r], q1[r]) for r in ROLES}
            tcpu = sum((qc1[p]["utime"] + qc1[p]["stime"] - qc0[p]["utime"] - qc0[p]["stime"])
                       for p in cap_pids if qc0.get(p) and qc1.get(p))
            result["capture_tcpdump_cpu_pct"] = round(tcpu / CLK_TCK / ((t1 - t0) / 1e9) * 100, 2)
            cap = analyse_capture(layout, paths, t0, t1)
            cap["dropped_by_kernel"] = drops
            cap["captures_without_count"] = unknown
            result["capture"] = cap
            if not args.keep_logs:
                for p in paths:
                    p.unlink(missing_ok=True)

            if impl == "fastvrrp" and args.profile and (layout.n, float(layout.advert)) == args.profile:
                result["profile"] = {role: profile(d.proc.pid, role, layout, args, self.tmp)
                                     for role, d in (("master", master), ("backup", backup))}

        finally:
            master, backup = started.get("master"), started.get("backup")
            if impl == "floor":
                if backup is not None:
                    result["floor_receiver"] = backup.stop().strip().splitlines()[-1:]
                if master is not None:
                    result["floor_sender"] = master.stop().strip().splitlines()[-1:]
            else:
                for d in (backup, master):  # the backup first: no takeover on the way out
                    if d is not None:
                        d.stop()
            flush_vips(self.m, self.vips)
            flush_vips(self.b, self.vips)
        judge(result)
        return result


def judge(result: dict) -> None:
    """Notes and the valid/steady marks of one run, from its figures (re-run by
    --report, so older files get today's rules)."""
    if "cpu" not in result:
        return
    notes: list[str] = []
    steady = True
    info = result.get("startup", {})
    if "not_steady" in info:
        notes.append(info["not_steady"])
        steady = False
    w = result["window"]
    n = result["n"]
    deficit = w["expected_adverts"] - w["master_tx"]
    # One advert per instance either way is the phase at the window's edges; beyond
    # that the master's adverts came slower than advert_int (late timers, drift).
    if deficit > n + 5:
        notes.append(f"CPU window: master sent {w['master_tx']} frames, {w['expected_adverts']} at the "
                     f"nominal rate ({-deficit / w['expected_adverts'] * 100:+.2f}%)")
        if deficit > n + 0.01 * w["expected_adverts"]:
            steady = False
    if w["backup_tx"]:
        notes.append(f"backup sent {w['backup_tx']} frame(s) in the CPU window")
        steady = False
    if w.get("backup_raw_drops"):
        notes.append(f"backup's raw sockets dropped {w['backup_raw_drops']} packet(s)")
    cap = result.get("capture")
    valid = cap is not None
    if cap:
        lost, unknown = cap.get("dropped_by_kernel", 0), cap.get("captures_without_count", 0)
        if lost or unknown:
            valid = False
            notes.append(f"capture lost {lost} frame(s)"
                         + (f", {unknown} capture(s) without a count" if unknown else "")
                         + ": jitter/missed not valid")
        if cap["missed"]:
            notes.append(f"{cap['missed']} advert(s) short of the capture window's minimum")
        if cap.get("edge_silences_over_1.5x"):
            notes.append(f"{cap['edge_silences_over_1.5x']} silence(s) over 1.5 x advert_int at the capture's edges")
        if cap["gaps_over_1.5x"]:
            notes.append(f"{cap['gaps_over_1.5x']} interval(s) over 1.5 x advert_int "
                         f"(worst {cap['worst_gaps_ms'][0][0]} ms)")
        if cap["backup_adverts"]:
            notes.append(f"the backup advertised {cap['backup_adverts']} time(s): flap")
        if cap["other_priority_adverts"]:
            notes.append(f"{cap['other_priority_adverts']} master advert(s) with a priority other than {MASTER_PRIO}")
        if cap["missed"] or cap["gaps_over_1.5x"] or cap.get("edge_silences_over_1.5x") or cap["backup_adverts"]:
            steady = False
    sender = " ".join(result.get("floor_sender", []))
    if "overruns" in sender and " overruns 0 " not in sender:
        notes.append(f"floor sender missed ticks: {sender}")
        steady = False
    result["notes"], result["valid"], result["steady"] = notes, valid, steady


# --------------------------------------------------------------------------- py-spy


def profile(pid: int, role: str, layout: Layout, args: argparse.Namespace, tmp: Path) -> dict:
    """py-spy on the steady fastvrrp master: an SVG flame graph (bench/results), a
    collapsed-stack (raw) recording for the breakdown below (kept in the JSON), and
    one native dump. Taken after the CPU and capture windows: py-spy stops the
    process for every sample, so it must not overlap a measurement."""
    beside = Path(sys.executable).with_name("py-spy")
    spy = str(beside) if beside.exists() else shutil.which("py-spy")
    if spy is None:
        return {"error": "py-spy not installed (pip install py-spy)"}
    adv = float(layout.advert)
    name = (f"profile-steady{'' if role == 'master' else '-' + role}-n{layout.n}"
            + ("" if adv == 0.1 else f"-{adv:g}s"))
    svg, raw = RESULTS / f"{name}.svg", tmp / f"{name}.txt"
    out: dict = {"svg": str(svg.relative_to(ROOT)), "duration_s": args.profile_duration, "commands": []}
    for fmt, path in (("flamegraph", svg), ("raw", raw)):
        cmd = [spy, "record", "--native", "--rate", "100", "--duration", str(args.profile_duration),
               "--format", fmt, "-o", str(path), "--pid", str(pid)]
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=args.profile_duration + 60)
        out["commands"].append(" ".join(cmd))
        if r.returncode != 0:
            out["error"] = r.stderr[-2000:]
            return out
    out["svg_bytes"] = svg.stat().st_size
    d = subprocess.run([spy, "dump", "--native", "--pid", str(pid)], capture_output=True, text=True, timeout=60)
    out["dump"] = d.stdout[-4000:]
    out["collapsed"] = raw.read_text()
    out["breakdown"] = profile_breakdown(out["collapsed"])
    return out


_FILE_LINE = re.compile(r"\(([^()]*?)(?::\d+)?\)$")


def classify(frame: str) -> str:
    """What a py-spy --native frame 'function (file:line)' belongs to."""
    m = _FILE_LINE.search(frame)
    where = m.group(1) if m else ""
    base = os.path.basename(where)
    for ext in ("_fastio", "_fastpath", "_wheel", "_wire"):
        if base.startswith(ext + "."):
            return ext
    if base.endswith(".py") or where.startswith("<frozen"):
        return "python"
    if base in ("loop.c", "core.c", "linux.c", "uv-common.c", "timer.c", "poll.c", "signal.c",
                "async.c", "stream.c", "udp.c", "process.c") or frame.startswith(("uv_", "uv__")):
        return "uvloop/libuv"
    if "libc.so" in where:
        name = frame.split(" ", 1)[0]
        if name in ("sendmmsg", "recvmmsg", "epoll_pwait", "epoll_wait", "read", "write", "sendmsg",
                    "recvmsg", "sendto", "recvfrom", "__libc_recv", "__libc_send", "syscall"):
            return "syscall (libc -> kernel)"
        return "libc"
    if base.endswith(".h") or "libpython" in where or base in ("ceval.c", "object.c", "call.c"):
        return "cpython runtime"
    return "other native"


def profile_breakdown(collapsed: str) -> dict:
    """From py-spy's raw output ('frame;frame;...;leaf COUNT' per line): self time by
    the kind of the innermost frame; the Python frames that run below the event loop
    (callbacks the loop calls) with their inclusive share."""
    total = 0
    leaf: Counter = Counter()
    leaves: Counter = Counter()
    py_below_loop: Counter = Counter()
    incl: Counter = Counter()
    with_py = 0
    for line in collapsed.splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        c = int(count)
        frames = stack.split(";")
        kinds = [classify(f) for f in frames]
        total += c
        leaf[kinds[-1]] += c
        leaves[frames[-1]] += c
        for kind in set(kinds):
            incl[kind] += c
        loop_at = max((i for i, k in enumerate(kinds) if k == "uvloop/libuv"), default=-1)
        below = {frames[i].split(" (")[0] for i in range(loop_at + 1, len(frames)) if kinds[i] == "python"}
        if loop_at >= 0 and below:
            with_py += c
            for f in below:
                py_below_loop[f] += c
    pct = lambda c: round(c / total * 100, 1) if total else None  # noqa: E731
    return {"samples": total,
            "self_pct": {k: pct(v) for k, v in leaf.most_common()},
            "inclusive_pct": {k: pct(v) for k, v in incl.most_common() if k != "python"},
            "python_frame_below_the_loop_pct": pct(with_py),
            "python_functions_below_the_loop_pct": {f: pct(v) for f, v in py_below_loop.most_common(8)},
            "top_leaf_frames": [(f, pct(c)) for f, c in leaves.most_common(12)]}


# --------------------------------------------------------------------------- derived figures


def cpu_of(run: dict, role: str, which: str = "tree") -> float | None:
    try:
        return run["cpu"][role][which]["total_pct"]
    except (KeyError, TypeError):
        return None


def find(runs: list[dict], impl: str, n: int, adv: float) -> dict | None:
    for r in runs:
        if r["impl"] == impl and r["n"] == n and abs(r["advert_int"] - adv) < 1e-9 and "cpu" in r:
            return r
    return None


def ratio(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or b <= 0:
        return None
    return round(a / b, 3)


def ratios(runs: list[dict]) -> list[dict]:
    out = []
    for n, adv in sorted({(r["n"], r["advert_int"]) for r in runs}, key=lambda x: (x[1], x[0])):
        f, k, fl = find(runs, "fastvrrp", n, adv), find(runs, "keepalived", n, adv), find(runs, "floor", n, adv)
        row = {"n": n, "advert_int": adv}
        for role in ROLES:
            fc = cpu_of(f, role) if f else None
            row[role] = {
                "fastvrrp_over_keepalived": ratio(fc, cpu_of(k, role) if k else None),
                "fastvrrp_over_keepalived_vrrp_child": ratio(fc, cpu_of(k, role, "main") if k else None),
                "fastvrrp_over_floor": ratio(fc, cpu_of(fl, role) if fl else None),
                "keepalived_over_floor": ratio(cpu_of(k, role) if k else None, cpu_of(fl, role) if fl else None),
            }
        out.append(row)
    return out


def rss_growth(runs: list[dict]) -> dict:
    """Least-squares slope of RSS (KiB) over N per implementation, role and process."""
    out: dict = {}
    for impl in IMPLS:
        for role in ROLES:
            for which in ("main", "tree"):
                pts = [(r["n"], r["mem"][role][which]["rss_kib"]) for r in runs
                       if r["impl"] == impl and r.get("mem")]
                ns = {n for n, _ in pts}
                if len(ns) < 2:
                    continue
                mx = sum(n for n, _ in pts) / len(pts)
                my = sum(v for _, v in pts) / len(pts)
                sxx = sum((n - mx) ** 2 for n, _ in pts)
                slope = sum((n - mx) * (v - my) for n, v in pts) / sxx
                out.setdefault(impl, {}).setdefault(role, {})[which] = {
                    "kib_per_instance": round(slope, 3), "base_kib": round(my - slope * mx, 1),
                    "points": sorted(pts)}
    return out


def checks(runs: list[dict], growth: dict) -> list[tuple[str, str]]:
    """Issue 7's floors at N=1000, 0.1 s: (PASS|FAIL|SKIP, text)."""
    out: list[tuple[str, str]] = []
    n, adv = 1000, 0.1
    f, k, fl = find(runs, "fastvrrp", n, adv), find(runs, "keepalived", n, adv), find(runs, "floor", n, adv)

    def line(ok: bool | None, text: str) -> None:
        out.append(("SKIP" if ok is None else "PASS" if ok else "FAIL", text))

    for role in ROLES:
        fc = cpu_of(f, role) if f else None
        kc = cpu_of(k, role) if k else None
        kcc = cpu_of(k, role, "main") if k else None
        if fc is None or kc is None:
            line(None, f"N=1000 0.1 s {role}: fastvrrp CPU < keepalived's (not measured)")
        else:
            line(fc < kc, f"N=1000 0.1 s {role}: fastvrrp CPU {fc:.2f}% < keepalived {kc:.2f}% "
                          f"(process tree; VRRP child alone {kcc:.2f}%): ratio {fc / kc:.2f}")
        flc = cpu_of(fl, role) if fl else None
        if fc is None or flc is None:
            line(None, f"N=1000 0.1 s {role}: fastvrrp CPU <= 1.5 x floor (not measured)")
        else:
            line(fc <= 1.5 * flc, f"N=1000 0.1 s {role}: fastvrrp CPU {fc:.2f}% <= 1.5 x floor "
                                  f"{flc:.2f}% = {1.5 * flc:.2f}%: ratio {fc / flc if flc else float('inf'):.2f}")
    if f and "capture" in f:
        cap = f["capture"]
        valid = f.get("valid", False)
        p99 = cap["jitter_ms"]["p99"]
        line(None if not valid or p99 is None else p99 <= 2.0,
             f"N=1000 0.1 s: fastvrrp master jitter p99 {p99} ms <= 2 ms"
             + ("" if valid else " (capture lost frames: not valid)"))
        w = f["window"]
        ok = valid and cap["missed"] == 0 and cap["gaps_over_1.5x"] == 0 and cap["backup_adverts"] == 0 \
            and cap.get("edge_silences_over_1.5x", 0) == 0 \
            and w["backup_tx"] == 0 and w["master_tx"] >= w["expected_adverts"] - n - 5
        line(ok if valid else None,
             f"N=1000 0.1 s: fastvrrp no missed adverts (capture: {cap['gaps_over_1.5x']} gaps and "
             f"{cap.get('edge_silences_over_1.5x')} edge silences > 1.5 x advert_int, {cap['captured']} captured "
             f"of ~{cap.get('expected')} (shortfall {cap['missed']}), "
             f"backup adverts {cap['backup_adverts']}; CPU window: master sent {w['master_tx']} of "
             f"{w['expected_adverts']} expected, backup sent {w['backup_tx']})")
    else:
        line(None, "N=1000 0.1 s: fastvrrp jitter p99 <= 2 ms and no missed adverts (not measured)")
    for role in ROLES:
        g = growth.get("fastvrrp", {}).get(role, {}).get("main")
        if g is None:
            line(None, f"fastvrrp {role} RSS growth <= 20 KB/instance (needs two or more N)")
        else:
            per_b = g["kib_per_instance"] * 1024
            line(per_b <= 20_000, f"fastvrrp {role} RSS growth {g['kib_per_instance']:.2f} KiB/instance "
                                  f"({per_b / 1000:.1f} kB) <= 20 kB (N = {sorted({p[0] for p in g['points']})})")
    return out


# --------------------------------------------------------------------------- report


def _f(v: float | None, fmt: str = ".2f") -> str:
    return "—" if v is None else format(v, fmt)


def table(result: dict) -> str:
    runs = result["runs"]
    lines = [f"### {result['title']}", "",
             f"CPU over a {result['params']['window']} s window (% of one core, user / sys / total), RSS at its "
             f"end; jitter and missed adverts from a {result['params']['capture']} s capture right after it.", "",
             "| impl | role | process | N | advert_int s | CPU user % | sys % | total % | RSS MiB "
             "| jitter p50 / p99 / max ms | gaps / shortfall | other load % | notes |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    procname = {"fastvrrp": {"master": "fastvrrp", "backup": "fastvrrp"},
                "floor": {"master": "sender", "backup": "receiver"}}
    for r in sorted(runs, key=lambda r: (r["advert_int"] * -1, r["n"], IMPLS.index(r["impl"]))):
        if "cpu" not in r:
            lines.append(f"| {r['impl']} | — | — | {r['n']} | {r['advert_int']:g} | — | — | — | — | — | — | — | "
                         f"{'; '.join(r.get('notes', [])) or r.get('error', '')} |")
            continue
        for role in ROLES:
            rows = [("main", "VRRP child"), ("tree", "tree")] if r["impl"] == "keepalived" \
                else [("main", procname[r["impl"]][role])]
            for which, pname in rows:
                c = r["cpu"][role][which]
                rss = r["mem"][role][which]["rss_kib"]
                jit = missed = notes = other = "—"
                if role == "master" and which == "main" and "capture" in r:
                    j = r["capture"]["jitter_ms"]
                    jit = f"{_f(j['p50'], '.3f')} / {_f(j['p99'], '.3f')} / {_f(j['max'], '.3f')}"
                    missed = f"{r['capture']['gaps_over_1.5x']} / {r['capture']['missed']}"
                    notes = "; ".join(r.get("notes", [])) or "ok"
                    other = _f(r["host_cpu_pct"]["busy_minus_lab_daemons"], ".0f")
                    if not r.get("valid", True):
                        jit += " (invalid)"
                lines.append(f"| {r['impl']} | {role} | {pname} | {r['n']} | {r['advert_int']:g} | "
                             f"{_f(c['user_pct'])} | {_f(c['sys_pct'])} | {_f(c['total_pct'])} | "
                             f"{_f(rss / 1024 if rss else None, '.1f')} | {jit} | {missed} | {other} | {notes} |")
    lines += ["", "Ratios (same run; keepalived = its process tree, in brackets its VRRP child alone):", "",
              "| N | advert_int s | master fastvrrp/keepalived | master fastvrrp/floor | "
              "backup fastvrrp/keepalived | backup fastvrrp/floor | keepalived/floor m / b |",
              "|---|---|---|---|---|---|---|"]
    for row in result["ratios"]:
        m, b = row["master"], row["backup"]
        lines.append(f"| {row['n']} | {row['advert_int']:g} | {_f(m['fastvrrp_over_keepalived'])} "
                     f"({_f(m['fastvrrp_over_keepalived_vrrp_child'])}) | {_f(m['fastvrrp_over_floor'])} | "
                     f"{_f(b['fastvrrp_over_keepalived'])} ({_f(b['fastvrrp_over_keepalived_vrrp_child'])}) | "
                     f"{_f(b['fastvrrp_over_floor'])} | {_f(m['keepalived_over_floor'])} / "
                     f"{_f(b['keepalived_over_floor'])} |")
    if result["rss_growth"]:
        lines += ["", "RSS growth per instance (least squares over N; KiB/instance, base MiB):", "",
                  "| impl | role | process | KiB/instance | base MiB | N |", "|---|---|---|---|---|---|"]
        for impl, roles in result["rss_growth"].items():
            for role, whiches in roles.items():
                for which, g in whiches.items():
                    if impl != "keepalived" and which == "tree":
                        continue
                    lines.append(f"| {impl} | {role} | {which} | {g['kib_per_instance']:.2f} | "
                                 f"{g['base_kib'] / 1024:.1f} | {sorted({p[0] for p in g['points']})} |")
    lines += [""] + [f"{v}: {t}" for v, t in result["checks"]]
    return "\n".join(lines)


def plot(result: dict, path: Path) -> str:
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "matplotlib is not installed: no PNG (pip install matplotlib)"
    runs = [r for r in result["runs"] if "cpu" in r]
    advs = sorted({r["advert_int"] for r in runs}, reverse=True)
    if not advs:
        return "nothing to plot"
    fig, axes = plt.subplots(len(ROLES), len(advs), figsize=(4.6 * len(advs), 3.6 * len(ROLES)), squeeze=False)
    colours = {"fastvrrp": "tab:blue", "keepalived": "tab:orange", "floor": "tab:gray"}
    markers = {"fastvrrp": "o", "keepalived": "s", "floor": "^"}
    for r_i, role in enumerate(ROLES):
        for c_i, adv in enumerate(advs):
            ax = axes[r_i][c_i]
            for impl in IMPLS:
                pts = sorted((r["n"], cpu_of(r, role)) for r in runs if r["impl"] == impl and r["advert_int"] == adv)
                if not pts:
                    continue
                label = {"keepalived": "keepalived (tree)", "floor": "kernel floor"}.get(impl, impl)
                ax.plot([p[0] for p in pts], [p[1] for p in pts], marker=markers[impl], label=label,
                        color=colours[impl], alpha=0.85)
                bad = [(r["n"], cpu_of(r, role)) for r in runs if r["impl"] == impl and r["advert_int"] == adv
                       and not (r.get("steady", True) and r.get("valid", True))]
                if bad:
                    ax.scatter([p[0] for p in bad], [p[1] for p in bad], marker="x", s=80, color="red", zorder=5)
            ax.set_title(f"{role}, advert_int {adv:g} s", fontsize=10)
            ax.set_xlabel("instances N")
            ax.set_ylabel("CPU % of one core")
            ax.set_ylim(bottom=0)
            ax.grid(alpha=0.3)
            ax.legend(fontsize=8)
    fig.suptitle(result["title"] + "\nCPU over the steady window; red x: adverts late/missing, a flap, "
                 "or lost capture frames", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return f"wrote {path}"


def finish(result: dict) -> dict:
    for r in result["runs"]:
        judge(r)
    result["ratios"] = ratios(result["runs"])
    result["rss_growth"] = rss_growth(result["runs"])
    result["checks"] = checks(result["runs"], result["rss_growth"])
    return result


# --------------------------------------------------------------------------- main


def parse_list(text: str, kind) -> list:
    return [kind(x) for x in text.split(",") if x.strip()]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--instances", default="100,1000,2000", help="comma-separated N values (default %(default)s)")
    p.add_argument("--advert-int", default="1,0.1,0.01", help="comma-separated seconds (default %(default)s)")
    p.add_argument("--impl", default="fastvrrp,keepalived,floor", help="comma-separated (default %(default)s)")
    p.add_argument("--window", type=float, default=30.0, help="CPU window, s (default %(default)s)")
    p.add_argument("--capture", type=float, default=10.0, help="capture window after it, s (default %(default)s)")
    p.add_argument("--max-rate", type=float, default=50_000,
                   help="skip configurations above this many adverts/s in total (default %(default)g; "
                        "2 cores cannot hold more for the daemons and the capture)")
    p.add_argument("--fast", action="store_true", help="smoke run: N=100, 1 s and 0.1 s, 5 s windows (~2 min)")
    p.add_argument("--tag", default=None, help="result file stem suffix (default: smoke / matrix / from the flags)")
    p.add_argument("--profile", nargs="?", const="1000:0.1", default=None, metavar="N:ADVERT_INT",
                   help="after the windows of the fastvrrp run at N:ADVERT_INT (default 1000:0.1), record "
                        "py-spy profiles of its master and backup (--native, 100 Hz, --profile-duration s)")
    p.add_argument("--profile-duration", type=int, default=20)
    p.add_argument("--global", dest="global_defs", action="append", default=[], metavar="LINE",
                   help="an extra global_defs line for both daemons (repeatable), e.g. 'vrrp_rt_priority 20'")
    p.add_argument("--keep-logs", action="store_true", help="keep the temp dir (logs, captures)")
    p.add_argument("--report", nargs="+", metavar="JSON", default=None,
                   help="no lab: reprint the tables of earlier result files and redraw their PNGs")
    args = p.parse_args(argv)

    if args.report:
        for name in args.report:
            path = Path(name)
            result = finish(json.loads(path.read_text()))
            print(table(result))
            for r in result["runs"]:
                for role, prof in (r.get("profile") or {}).items():
                    print(profile_text(r, role, prof))
            print(f"\n({result['command']}; {result['elapsed_s']} s)")
            print(plot(result, path.with_suffix(".png")))
            print()
        return 0

    if args.profile:
        pn, _, pa = args.profile.partition(":")
        args.profile = (int(pn), float(pa or "0.1"))
    if args.fast:
        args.instances, args.advert_int, args.window, args.capture = "100", "1,0.1", 5.0, 5.0
    ns = parse_list(args.instances, int)
    advs = parse_list(args.advert_int, str)
    impls = parse_list(args.impl, str)
    for i in impls:
        if i not in IMPLS:
            p.error(f"--impl: {i} is not one of {', '.join(IMPLS)}")
    for a in advs:
        cs = round(float(a) * 100)
        if not 1 <= cs <= 4095 or abs(cs - float(a) * 100) > 1e-6:
            p.error(f"--advert-int {a}: VRRPv3 takes 0.01-40.95 s in centiseconds")
    reason = netlab.netns_usable()
    if reason:
        print(f"scale bench needs root and network namespaces: {reason}", file=sys.stderr)
        return 1
    for tool in ("tcpdump", "ip", "cc") + (("keepalived",) if "keepalived" in impls else ()):
        if shutil.which(tool) is None:
            print(f"scale bench needs {tool}", file=sys.stderr)
            return 1
    tag = args.tag or ("smoke" if args.fast else
                       "matrix" if (args.instances, args.advert_int) == ("100,1000,2000", "1,0.1,0.01")
                       else f"n{'-'.join(map(str, ns))}-{'-'.join(f'{float(a):g}' for a in advs)}s")
    RESULTS.mkdir(parents=True, exist_ok=True)
    started = time.time()
    configs = [(n, a) for n in ns for a in advs]
    skipped = [(n, a) for n, a in configs if n / float(a) > args.max_rate]
    for n, a in skipped:
        print(f"skipping N={n} advert_int {a} s: {n / float(a):.0f} adverts/s > --max-rate {args.max_rate:g}")
    per_run = args.window + args.capture + 12
    todo = [(n, a) for n, a in configs if (n, a) not in skipped]
    print(f"{len(todo)} configuration(s) x {len(impls)} implementation(s), about "
          f"{len(todo) * len(impls) * per_run / 60:.0f} min", flush=True)

    result = {
        "title": f"VRRPv3 steady state: fastvrrp, keepalived, kernel floor (N {', '.join(map(str, ns))}; "
                 f"advert_int {', '.join(advs)} s)",
        "command": "python " + " ".join([os.path.relpath(sys.argv[0], ROOT)] + (argv or sys.argv[1:])),
        "date": datetime.now().astimezone().isoformat(timespec="seconds"),
        "host": {"kernel": platform.release(), "cpus": os.cpu_count(), "python": platform.python_version(),
                 "loadavg_before": os.getloadavg(), "clk_tck": CLK_TCK},
        "keepalived": subprocess.run(["keepalived", "-v"], capture_output=True, text=True).stderr.splitlines()[:1]
        if shutil.which("keepalived") else None,
        "cc": subprocess.run(["cc", "--version"], capture_output=True, text=True).stdout.splitlines()[:1],
        "params": {"window": args.window, "capture": args.capture, "capture_placement": "after the CPU window",
                   "instances": ns, "advert_int": advs, "impls": impls, "master_priority": MASTER_PRIO,
                   "backup_priority": BACKUP_PRIO, "version": VERSION,
                   "skipped": [{"n": n, "advert_int": a, "reason": "over --max-rate"} for n, a in skipped]},
        "runs": [],
    }
    tmp = Path(tempfile.mkdtemp(prefix="fv-scale-"))
    status = 0
    try:
        floor_exe = build_floor(tmp)
        k = 0
        for n in ns:
            todo_n = [a for nn, a in todo if nn == n]
            if not todo_n:
                continue
            with netlab.Lab(prefix="fs" + os.urandom(3).hex()) as lab:
                sl = ScaleLab(lab, n, tmp, args, floor_exe)
                print(f"== N={n} on {sl.segments} segment(s), lab {lab.prefix}", flush=True)
                try:
                    if not run_all(sl, n, todo_n, impls, result, k):
                        status = 1
                    k += len(todo_n)
                finally:
                    sl.close()
    finally:
        if args.keep_logs:
            print(f"logs kept in {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    result["host"]["loadavg_after"] = os.getloadavg()
    result["elapsed_s"] = round(time.time() - started, 1)
    finish(result)
    jpath = RESULTS / f"scale-{tag}.json"
    jpath.write_text(json.dumps(result, indent=1) + "\n")
    print()
    print(table(result))
    print(f"\nwrote {jpath}; {plot(result, jpath.with_suffix('.png'))}")
    for r in result["runs"]:
        for role, prof in (r.get("profile") or {}).items():
            print(profile_text(r, role, prof))
    return status


def profile_text(r: dict, role: str, prof: dict) -> str:
    head = f"\npy-spy, fastvrrp {role}, N={r['n']}, {r['advert_int']:g} s"
    if "breakdown" not in prof:
        return f"{head}: {prof.get('error', 'no profile')}"
    b = prof["breakdown"]
    lines = [f"{head}: {b['samples']} samples in {prof['duration_s']} s at 100 Hz; {prof['svg']} "
             f"({prof['svg_bytes'] // 1024} KiB)",
             "  self time by innermost frame: " + ", ".join(f"{k} {v}%" for k, v in b["self_pct"].items()),
             f"  samples with a Python frame below the event loop: {b['python_frame_below_the_loop_pct']}% "
             + "(" + ", ".join(f"{k} {v}%" for k, v in b["python_functions_below_the_loop_pct"].items()) + ")",
             "  top innermost frames: " + ", ".join(f"{f} {v}%" for f, v in b["top_leaf_frames"][:8])]
    return "\n".join(lines)


def source_state() -> dict:
    """The fastvrrp source a run used (the package is an editable install, and the
    tree may change between runs): HEAD and the files changed in src/ and ext/."""
    def git(*a: str) -> str:
        r = subprocess.run(["git", "-C", str(ROOT), *a], capture_output=True, text=True)
        return r.stdout.strip() if r.returncode == 0 else ""
    dirty = [line[3:] for line in git("status", "--porcelain", "--", "src", "ext").splitlines()
             if not line[3:].endswith(".c")]
    return {"commit": git("rev-parse", "--short", "HEAD"), "dirty": dirty}


def run_all(sl: ScaleLab, n: int, advs: list[str], impls: list[str], result: dict, k: int) -> bool:
    """Every advert_int at this N, the implementations in a rotating order. False if
    a run failed (recorded with its error; the matrix goes on)."""
    ok = True
    for i, a in enumerate(advs):
        layout = Layout(n, VERSION, a)
        j = (k + i) % len(impls)
        for impl in impls[j:] + impls[:j]:
            t = time.time()
            src = source_state() if impl == "fastvrrp" else None
            try:
                r = sl.run(impl, layout)
            except Exception as exc:  # noqa: BLE001
                r = {"impl": impl, "n": n, "advert_int": float(a), "error": str(exc)[-3000:],
                     "notes": [f"error: {str(exc).splitlines()[0][:200]}"]}
                ok = False
            r["elapsed_s"] = round(time.time() - t, 1)
            if src is not None:
                r["fastvrrp_source"] = src
            result["runs"].append(r)
            print(progress_line(r), flush=True)
    return ok


def progress_line(r: dict) -> str:
    head = f"  {r['impl']:10s} N={r['n']:<5d} {r['advert_int']:g} s"
    if "cpu" not in r:
        return f"{head}: ERROR {r.get('error', '')[:500]}"
    c = r["cpu"]
    j = r.get("capture", {}).get("jitter_ms", {})
    return (f"{head}: master {c['master']['main']['total_pct']:6.2f}% (tree {c['master']['tree']['total_pct']:6.2f}%)"
            f" backup {c['backup']['main']['total_pct']:6.2f}% (tree {c['backup']['tree']['total_pct']:6.2f}%)"
            f" wakes/s m {c['master']['main'].get('switches_per_s', 0):.0f}"
            f" b {c['backup']['main'].get('switches_per_s', 0):.0f}"
            f" RSS m {r['mem']['master']['main']['rss_kib'] / 1024:.1f} MiB"
            f" jitter p99 {j.get('p99')} ms missing {r.get('capture', {}).get('missed')}"
            f" gaps {r.get('capture', {}).get('gaps_over_1.5x')}"
            f" host busy {r['host_cpu_pct']['busy']:.0f}% [{r['elapsed_s']} s]"
            + (f" NOTES: {'; '.join(r['notes'])}" if r["notes"] else ""))


if __name__ == "__main__":
    sys.exit(main())
