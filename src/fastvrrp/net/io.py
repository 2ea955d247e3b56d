"""Socket I/O for the fast path, one packet per system call: the pure-Python twin of
fastvrrp._fastio (same API), used when the extension is not built."""

from __future__ import annotations

import ipaddress
import socket
import struct
import time

from fastvrrp.net.scheduling import Breather
from fastvrrp.net.sockets import arrival_ns, recv_ipv4, recv_ipv6
from fastvrrp.net.timerfd import TimerFd

__all__ = ["IMPLEMENTATION", "BatchIO", "TimerFd", "pack_sockaddr", "unpack_sockaddr"]

IMPLEMENTATION = "python"


def pack_sockaddr(address: str, ifindex: int = 0) -> bytes:
    """A destination as the kernel's sockaddr_in / sockaddr_in6 bytes."""
    ip = ipaddress.ip_address(address)
    if ip.version == 4:
        return struct.pack("=H", socket.AF_INET) + struct.pack("!H", 0) + ip.packed + bytes(8)
    return (struct.pack("=H", socket.AF_INET6) + struct.pack("!HI", 0, 0) + ip.packed
            + struct.pack("=I", ifindex if ip.is_link_local or ip.is_multicast else 0))


def unpack_sockaddr(packed: bytes) -> tuple:
    family = struct.unpack("=H", packed[:2])[0]
    if family == socket.AF_INET:
        return (str(ipaddress.IPv4Address(packed[4:8])), 0)
    return (str(ipaddress.IPv6Address(packed[8:24])), 0, 0, struct.unpack("=I", packed[24:28])[0])


class BatchIO:
    def __init__(self, batch: int = 64, bufsize: int = 2048) -> None:
        self.batch = batch
        self.bufsize = bufsize
        self.received = self.sent = self.send_errors = self.recv_calls = self.send_calls = 0
        self.last_send_errno = 0
        self._loop = None  # set by attach()
        # Real time: a Breather between sends (the compiled twin: between sendmmsg
        # calls); its every_ns is breathe_every_ns, 0: never.
        self._breather = Breather(0)

    def receive(self, fp, gid: int, sock: socket.socket, family: int, now: int,
                on_escalation, rounds: int = 4) -> int:
        """As the compiled twin: the fast path is fed each packet's arrival time (its
        kernel timestamp as CLOCK_MONOTONIC) where the socket gives one, else `now`."""
        total = 0
        for _ in range(rounds * self.batch):
            try:
                self.recv_calls += 1
                if family == 4:
                    datagram, stamp = recv_ipv4(sock, self.bufsize)
                    at = arrival_ns(stamp, time.monotonic_ns(), time.time_ns())
                    esc = fp.feed_ipv4(gid, datagram, at)
                else:
                    msg, src, dst, hop, stamp = recv_ipv6(sock, self.bufsize)
                    at = arrival_ns(stamp, time.monotonic_ns(), time.time_ns())
                    esc = fp.feed_ipv6(gid, msg, src, dst, hop, at)
            except (BlockingIOError, InterruptedError):
                break
            self.received += 1
            total += 1
            if esc is not None:
                on_escalation(esc, at)
        return total

    # --- the event loop's wake-ups: as the compiled twin (see _fastio.pyx) ---

    def attach(self, loop, fp, wheel, timerfd: TimerFd, tx_socks, on_timers,
               hold_ns: int = 0) -> None:
        if hold_ns < 0:
            raise ValueError("hold_ns must be >= 0")
        self._loop, self._fp, self._wheel, self._tfd = loop, fp, wheel, timerfd
        self._tx_socks, self._on_timers, self._hold_ns = tx_socks, on_timers, hold_ns
        self._watched: list[tuple] = []
        self._held: list[int] = []
        loop.add_reader(timerfd.fileno(), self.timer_wake)

    def watch(self, gid: int, sock: socket.socket, family: int, on_escalation,
              on_receive) -> None:
        if self._loop is None:
            raise RuntimeError("attach first")
        i = len(self._watched)
        self._watched.append((gid, sock, family, on_escalation, on_receive, sock.fileno()))
        self._held.append(0)
        self._loop.add_reader(sock.fileno(), self.receive_wake, i)

    def detach(self) -> None:
        if self._loop is None:
            return
        for i, rx in enumerate(self._watched):
            if not self._held[i]:
                self._loop.remove_reader(rx[5])
        self._loop.remove_reader(self._tfd.fileno())
        self._loop = None
        self._watched, self._held = [], []

    def rearm(self) -> None:
        deadline = self._wheel.next_deadline()
        for h in self._held:
            if h and (deadline is None or h < deadline):
                deadline = h
        armed = self._tfd.armed_for
        if deadline is not None and (armed is None or deadline < armed):
            self._tfd.arm(deadline)

    def _drain(self, i: int, now: int) -> tuple[int, int]:
        """(packets, escalations) of watched socket i; an error goes to its on_receive."""
        gid, sock, family, on_escalation, on_receive, _fd = self._watched[i]
        escalated = 0

        def count(esc, at: int) -> None:
            nonlocal escalated
            escalated += 1
            on_escalation(esc, at)

        try:
            got = self.receive(self._fp, gid, sock, family, now, count)
        except OSError as exc:
            on_receive(exc)
            return -1, 0
        return got, escalated

    def receive_wake(self, i: int) -> None:
        now = time.monotonic_ns()
        got, escalated = self._drain(i, now)
        if got < 0:
            return
        if got and self._hold_ns:
            self._loop.remove_reader(self._watched[i][5])
            self._held[i] = now + self._hold_ns
        if escalated or self._fp.has_drop_samples():
            self._watched[i][4](None)
            return
        self.rearm()

    def timer_wake(self) -> None:
        self._tfd.consume()
        now = time.monotonic_ns()
        python = False
        for i, held in enumerate(self._held):
            if not held:
                continue
            got, escalated = self._drain(i, now)
            if got > 0:
                self._held[i] = now + self._hold_ns
            else:
                self._held[i] = 0
                self._loop.add_reader(self._watched[i][5], self.receive_wake, i)
            python = python or escalated > 0
        timers = self._fp.expire(now)
        self.send_outbox(self._fp, self._tx_socks)
        if timers or python or self._fp.has_drop_samples():
            self._on_timers(now, timers)
            return
        self.rearm()

    def send_outbox(self, fp, socks) -> int:
        total = 0
        for gid, packet, dest, _idx in fp.take_outbox():
            self.send_calls += 1
            try:
                socks[gid].sendto(packet, unpack_sockaddr(dest))
            except OSError as exc:
                self.send_errors += 1
                self.last_send_errno = exc.errno or 0
                continue
            total += 1
            self.sent += 1
            if self._breather.every_ns:
                self._breather.maybe(time.monotonic_ns())
        return total

    @property
    def breathe_every_ns(self) -> int:
        return self._breather.every_ns

    @breathe_every_ns.setter
    def breathe_every_ns(self, every_ns: int) -> None:
        self._breather.every_ns = every_ns

