"""Socket I/O for the fast path, one packet per system call: the pure-Python twin of
fastvrrp._fastio (same API), used when the extension is not built."""

from __future__ import annotations

import ipaddress
import socket
import struct
import time

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

    def timer_wake(self, fp, wheel, timerfd: TimerFd, socks, slow) -> None:
        """As the compiled twin: due timers through the fast path, its sends, and the
        timerfd re-armed; `slow(now, escalated)` only when a timer needs Python."""
        timerfd.consume()
        now = time.monotonic_ns()
        escalated = fp.expire(now)
        self.send_outbox(fp, socks)
        if escalated:
            slow(now, escalated)
            return
        _arm_earlier(timerfd, wheel.next_deadline())

    def receive_wake(self, fp, gid: int, sock: socket.socket, family: int, on_escalation,
                     wheel, timerfd: TimerFd, slow) -> None:
        """As the compiled twin: drain the socket; `slow(None)` after an escalation or
        a counted drop, `slow(error)` on a receive error, else re-arm if earlier."""
        escalated = 0

        def count(esc, at: int) -> None:
            nonlocal escalated
            escalated += 1
            on_escalation(esc, at)

        try:
            self.receive(fp, gid, sock, family, time.monotonic_ns(), count)
        except OSError as exc:
            slow(exc)
            return
        if escalated or fp.has_drop_samples():
            slow(None)
            return
        _arm_earlier(timerfd, wheel.next_deadline())

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
        return total


def _arm_earlier(timerfd: TimerFd, deadline: int | None) -> None:
    armed = timerfd.armed_for
    if deadline is not None and (armed is None or deadline < armed):
        timerfd.arm(deadline)
