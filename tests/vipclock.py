"""Kernel timestamps of the addresses a daemon adds, from a private ftrace instance.

`ip -ts monitor address` stamps a notification when the monitor process gets to
print it. When the daemon under test is real-time (vrrp_rt_priority) and the other
core is busy, a SCHED_OTHER monitor is not scheduled for tens of milliseconds
(measured: 30-38 ms on a 2-core machine during a 1000-VIP takeover), and every VIP
then looks that much later than it was. The kernel's own time comes from the
`sock:sk_data_ready` tracepoint: rtnetlink hands each RTM_NEWADDR notification to
every listener inside the daemon's netlink write, in the daemon's context. The
events of one write are told apart by `raw_syscalls:sys_exit` of the daemon's
send calls; in each write the last event is the ack of its last request (fastvrrp
asks for one per batch, keepalived for each request), and every address before it
is delivered once to each of the namespace's address listeners.

So the notifications are known only in order, not by address: `stamped()` pairs them
with an `AddrMonitor`'s lines (which keep the kernel's order) and refuses when the
counts or the order disagree (`match()`), so a bench can fall back to the monitor's
stamps.

Uses a tracing instance (its own buffer and event switches), so nothing else using
ftrace on the machine is disturbed; needs root and a writable tracefs.
"""

from __future__ import annotations

import os
import re
import secrets
import subprocess
import time
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from fastvrrp.netlab import Node

TRACEFS = Path("/sys/kernel/tracing")
# x86-64 numbers of the calls a netlink write can use (write, sendto, sendmsg).
SEND_SYSCALLS = (1, 44, 46)
RTMGRP_IPV4_IFADDR = 0x10
RTMGRP_IPV6_IFADDR = 0x100

_LINE = re.compile(r"^\s*\S.*?-(\d+)\s+\[\d+\]\s+\S+\s+(\d+)\.(\d+): (sk_data_ready|sys_exit):")


def available() -> str | None:
    """None if a tracing instance can be made here, else why not."""
    if os.uname().machine != "x86_64":
        return "syscall numbers are x86-64's"
    if not (TRACEFS / "instances").is_dir():
        return f"no tracefs at {TRACEFS}"
    if not os.access(TRACEFS / "instances", os.W_OK):
        return "tracefs instances are not writable (needs root)"
    for event in ("sock/sk_data_ready", "raw_syscalls/sys_exit"):
        if not (TRACEFS / "events" / event).is_dir():
            return f"no {event} tracepoint"
    return None


def address_listeners(netlink_table: str, v6: bool = False) -> int:
    """Sockets in /proc/net/netlink's text (one namespace's) that listen to IPv4
    (or IPv6) address changes."""
    group = RTMGRP_IPV6_IFADDR if v6 else RTMGRP_IPV4_IFADDR
    count = 0
    for line in netlink_table.splitlines()[1:]:
        f = line.split()
        if len(f) >= 4 and f[1] == "0" and int(f[3], 16) & group:  # NETLINK_ROUTE
            count += 1
    return count


class KernelAddrClock:
    """arm(pid, listeners) before the change, times() after it."""

    def __init__(self) -> None:
        self.dir = TRACEFS / "instances" / f"fvbench-{os.getpid()}-{secrets.token_hex(3)}"
        self.dir.mkdir()
        # tai is CLOCK_TAI, CLOCK_REALTIME plus the kernel's TAI offset (0 unless
        # something set it): the pcap and `ip -ts` clocks with one subtraction.
        self._write("trace_clock", "tai")
        self._write("buffer_size_kb", "4096")
        self.pid: int | None = None
        self.listeners = 1

    def _write(self, name: str, value: str) -> None:
        (self.dir / name).write_text(value)

    def arm(self, pid: int, listeners: int) -> None:
        """Start recording the netlink deliveries made by thread `pid` (a daemon's
        main thread), whose namespace has `listeners` address listeners."""
        if listeners < 1:
            raise ValueError("no address listener: the kernel sends no notifications")
        self.pid, self.listeners = pid, listeners
        self._write("tracing_on", "0")
        self._write("events/sock/sk_data_ready/filter", f"family == 16 && common_pid == {pid}")
        calls = " || ".join(f"id == {n}" for n in SEND_SYSCALLS)
        self._write("events/raw_syscalls/sys_exit/filter", f"common_pid == {pid} && ({calls})")
        self._write("events/sock/sk_data_ready/enable", "1")
        self._write("events/raw_syscalls/sys_exit/enable", "1")
        self._write("trace", "")
        self._write("tracing_on", "1")

    def times(self) -> list[int]:
        """CLOCK_REALTIME ns of every address notification recorded since arm(), in
        the kernel's order; stops recording."""
        self._write("tracing_on", "0")
        offset = time.clock_gettime_ns(time.CLOCK_TAI) - time.time_ns()
        out: list[int] = []
        pending: list[int] = []
        for line in (self.dir / "trace").read_text().splitlines():
            m = _LINE.match(line)
            if not m or int(m[1]) != self.pid:
                continue
            ns = int(m[2]) * 1_000_000_000 + int(m[3].ljust(9, "0")[:9]) - offset
            if m[4] == "sk_data_ready":
                pending.append(ns)
                continue
            if pending:  # a send call ended: its deliveries, then the ack
                notes = pending[:-1]
                if len(notes) % self.listeners:
                    raise ValueError(f"a write made {len(notes)} deliveries for "
                                     f"{self.listeners} listener(s)")
                out.extend(notes[::self.listeners])
                pending = []
        return out

    def stamped(self, monitored: dict[tuple[str, str], int]) -> tuple[dict[tuple[str, str], int], str | None]:
        """A monitor's {(ifname, address): time}, in its order, with the kernel's times
        where they pair one for one, and None; else the monitor's, and why not."""
        try:
            times = self.times()
        except ValueError as exc:
            return monitored, str(exc)
        why = match(times, list(monitored.values()))
        if why is not None:
            return monitored, why
        return dict(zip(monitored, times)), None

    def close(self) -> None:
        for event in ("sock/sk_data_ready", "raw_syscalls/sys_exit"):
            try:
                self._write(f"events/{event}/enable", "0")
            except OSError:
                pass
        for _ in range(50):  # rmdir fails while the instance's files are still open
            try:
                self.dir.rmdir()
                return
            except FileNotFoundError:
                return
            except OSError:
                time.sleep(0.1)


def match(kernel: list[int], monitor: list[int], slack_ns: int = 1_000_000) -> str | None:
    """None if the kernel's notifications can stand for the monitor's lines one for
    one (same count; none later than its line, give or take `slack_ns`), else why not."""
    if len(kernel) != len(monitor):
        return f"{len(kernel)} notifications in the kernel, {len(monitor)} lines from the monitor"
    late = [m - k for k, m in zip(kernel, monitor) if k > m + slack_ns]
    if late:
        return f"{len(late)} notification(s) later than the monitor's lines"
    return None


class AddrMonitor:
    """`ip -ts monitor address` in a namespace: the order of its address changes and,
    where the kernel's clock is not available, their times."""

    LINE = re.compile(r"^\[(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+)\] (Deleted )?\d+: (\S+)\s+inet6? ([0-9a-fA-F.:]+)/")

    def __init__(self, node: Node, path: Path) -> None:
        self.path = path
        self._out = open(path, "w")  # noqa: SIM115
        self.proc = node.popen(["ip", "-ts", "monitor", "address"], stdout=self._out,
                               stderr=subprocess.DEVNULL)
        self._window: tuple[int, int] | None = None
        self._pos = 0
        self._found: dict[tuple[str, str], int] = {}

    def offset(self) -> int:
        self._out.flush()
        return self.path.stat().st_size

    def adds_since(self, offset: int, since_ns: int) -> dict[tuple[str, str], int]:
        """{(ifname, address): first add time (ns)} from byte `offset`, at/after since_ns.

        Incremental: a call with the same offset and since_ns as the last one parses
        only the lines written since. Re-parsing the whole window every poll cost the
        bench ~10 ms of CPU per poll during a 1000-VIP takeover, taken from the two
        daemons it measures (both implementations alike)."""
        if self._window != (offset, since_ns):
            self._window, self._pos, self._found = (offset, since_ns), offset, {}
        with open(self.path, "rb") as f:
            f.seek(self._pos)
            data = f.read()
        end = data.rfind(b"\n") + 1  # a line still being written waits for the next call
        self._pos += end
        for line in data[:end].decode(errors="replace").splitlines():
            m = self.LINE.match(line)
            if not m or m[2]:
                continue
            ts = int(round(datetime.strptime(m[1], "%Y-%m-%dT%H:%M:%S.%f").timestamp() * 1e6)) * 1000
            if ts >= since_ns:
                self._found.setdefault((m[3], m[4]), ts)
        return dict(self._found)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self._out.close()
