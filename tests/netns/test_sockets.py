"""Raw VRRP sockets between namespaces: what one sends, the other receives and
validates, with the TTL/hop limit, TOS and source keepalived uses."""

from __future__ import annotations

import ipaddress
import select
import socket
import threading
import time
from pathlib import Path

import pytest

from fastvrrp import netlab
from fastvrrp.net import sockets
from fastvrrp.proto import packet
from fastvrrp.proto.packet import Reason

pytestmark = pytest.mark.netns


@pytest.fixture(scope="module", autouse=True)
def _needs_netns() -> None:
    reason = netlab.netns_usable()
    if reason:
        pytest.skip(reason)


def _receive(family, ifname, group, unicast_src, ready: str, wait: float):
    ifindex = socket.if_nametoindex(ifname)
    sock = sockets.open_receive_socket(family, ifname, ifindex, group=group, unicast_src=unicast_src)
    Path(ready).touch()
    got = []
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        if not select.select([sock], [], [], 0.05)[0]:
            continue
        if family == socket.AF_INET:
            got.append((sock.recv(2048), None, None, None))
        else:
            got.append(sockets.recv_ipv6(sock)[:4])
    return got


def _send(family, ifname, datagrams, dst, multicast, source6=None):
    ifindex = socket.if_nametoindex(ifname)
    sock = sockets.open_send_socket(family, ifname, ifindex, multicast=multicast, source6=source6)
    for d in datagrams:
        sock.sendto(d, (dst, 0) if family == socket.AF_INET else (dst, 0, 0, ifindex))
    # The send socket never queues anything it could receive.
    time.sleep(0.1)
    try:
        return sock.recv(2048)
    except BlockingIOError:
        return None


def _send_spaced(spaced: list[tuple[bytes, float]]) -> None:
    """IPv4 multicast datagrams, each followed by its pause (s)."""
    ifindex = socket.if_nametoindex("eth0")
    sock = sockets.open_send_socket(socket.AF_INET, "eth0", ifindex, multicast=True)
    for datagram, pause in spaced:
        sock.sendto(datagram, ("224.0.0.18", 0))
        time.sleep(pause)


def exchange(lab, tmp_path, sender, receiver, family, datagrams, dst, *, multicast=True,
             unicast_src=None, source6=None):
    ready = tmp_path / "ready"
    ready.unlink(missing_ok=True)  # one exchange per file state, never a stale signal
    result = {}
    t = threading.Thread(target=lambda: result.update(
        got=receiver.call(_receive, family, "eth0", None, unicast_src, str(ready), 1.5)))
    t.start()
    netlab.wait_until(ready.exists, 5)
    stray = sender.call(_send, family, "eth0", datagrams, dst, multicast, source6)
    t.join()
    assert stray is None
    return result["got"]


@pytest.fixture
def lab():
    with netlab.Lab() as lab:
        lab.node("r1", ["192.0.2.1/24", "2001:db8::1/64"])
        lab.node("r2", ["192.0.2.2/24", "2001:db8::2/64"])
        yield lab


def v4_datagram(dst: str, vrid: int, ttl: int = 255, prio: int = 150) -> bytes:
    src = ipaddress.IPv4Address("192.0.2.1").packed
    d = ipaddress.IPv4Address(dst).packed
    return packet.encode(3, vrid, prio, 100, ipaddress.IPv4Address("192.0.2.100").packed,
                         src=src, dst=d, ipv4_ttl=ttl)


def test_ipv4_multicast(lab, tmp_path):
    r1, r2 = lab.nodes["r1"], lab.nodes["r2"]
    got = exchange(lab, tmp_path, r1, r2, socket.AF_INET, [v4_datagram("224.0.0.18", 51)], "224.0.0.18")
    assert len(got) == 1
    datagram = got[0][0]
    assert datagram[1] == 0xC0  # TOS internetwork control, as keepalived
    table = packet.ReceiveTable()
    table[51] = packet.Expect(3)
    reason, adv = packet.validate_ipv4(datagram, table)
    assert reason == Reason.OK and adv.hop_limit == 255 and adv.priority == 150
    assert adv.src == ipaddress.IPv4Address("192.0.2.1").packed


def test_ipv4_unicast_is_not_seen_by_a_multicast_socket(lab, tmp_path):
    r1, r2 = lab.nodes["r1"], lab.nodes["r2"]
    got = exchange(lab, tmp_path, r1, r2, socket.AF_INET, [v4_datagram("192.0.2.2", 52)],
                   "192.0.2.2", multicast=False)
    assert got == []  # the multicast socket is bound to its group
    got = exchange(lab, tmp_path, r1, r2, socket.AF_INET, [v4_datagram("192.0.2.2", 52)],
                   "192.0.2.2", multicast=False, unicast_src="192.0.2.2")
    assert len(got) == 1
    table = packet.ReceiveTable()
    table[52] = packet.Expect(3, unicast=True)
    assert packet.validate_ipv4(got[0][0], table)[0] == Reason.OK


def test_ipv6_multicast(lab, tmp_path):
    r1, r2 = lab.nodes["r1"], lab.nodes["r2"]
    src = str(r1.link("eth0").link_local)
    msg = packet.encode(3, 53, 120, 100, ipaddress.IPv6Address("2001:db8::100").packed, family=6,
                        src=b"\0" * 16, dst=b"\0" * 16)  # the kernel computes the checksum
    got = exchange(lab, tmp_path, r1, r2, socket.AF_INET6, [msg], "ff02::12", source6=src)
    assert len(got) == 1
    message, src16, dst16, hop = got[0]
    assert src16 == ipaddress.IPv6Address(src).packed
    assert dst16 == ipaddress.IPv6Address("ff02::12").packed and hop == 255
    table = packet.ReceiveTable()
    table[53] = packet.Expect(3, family=6)
    reason, adv = packet.validate_ipv6(message, src16, dst16, hop, table)
    assert reason == Reason.OK and adv.priority == 120


# --- the fast path re-arms from the advert's arrival, not from when it was read -------

def _modules(io_impl: str):
    """(fast path, wheel, codec, socket I/O): the compiled modules or their twins."""
    import importlib

    names = (("_fastpath", "proto.fastpath"), ("_wheel", "proto.wheel"), ("_wire", "proto.packet"),
             ("_fastio", "net.io"))
    return tuple(importlib.import_module("fastvrrp." + (c if io_impl == "compiled" else t))
                 for c, t in names)


def _rearm_after_late_read(io_impl: str, family, ready: str, late_s: float):
    from fastvrrp.proto.actions import TimerKind

    fp_mod, wheel_mod, codec, io_mod = _modules(io_impl)
    kinds = len(TimerKind)
    ifindex = socket.if_nametoindex("eth0")
    sock = sockets.open_receive_socket(family, "eth0", ifindex)
    fp = fp_mod.FastPath(wheel_mod.TimerWheel(kinds, time.monotonic_ns()), kinds)
    fp.reserve(1)
    table = codec.ReceiveTable()
    v6 = family == socket.AF_INET6
    table[51] = codec.Expect(3, family=6 if v6 else 4)
    fp.add_group(0, 6 if v6 else 4, table)
    fp.bind(0, 51, 0)
    src = ipaddress.ip_address(_SRC6 if v6 else "192.0.2.1").packed
    mdi = 3 * 10**9
    fp.set_backup(0, (src, 150, 100), mdi)
    Path(ready).touch()
    select.select([sock], [], [], 5)
    readable = time.monotonic_ns()
    time.sleep(late_s)  # a busy daemon reads the advert late
    now = time.monotonic_ns()
    escalated = []
    io_mod.BatchIO().receive(fp, 0, sock, 6 if v6 else 4, now,
                             lambda esc, arrival: escalated.append((esc[2].priority, arrival)))
    return readable, now, fp.counters()["steady_rearms"], escalated, _rearmed_deadline(fp)


def _rearmed_deadline(fp):
    """The MASTER_DOWN deadline the fast path armed, as sync_back reports it."""
    got = []

    class Fsm:
        def fastpath_rearmed(self, kind, deadline):
            got.append(deadline)
    fp.sync_back(0, Fsm())
    return got[0] if got else None


_SRC6 = "fe80::1"


@pytest.mark.parametrize("io_impl", ["compiled", "twin"])
@pytest.mark.parametrize("family", [socket.AF_INET, socket.AF_INET6], ids=["ipv4", "ipv6"])
def test_a_steady_backup_rearms_from_the_adverts_arrival_time(lab, tmp_path, io_impl, family):
    r1, r2 = lab.nodes["r1"], lab.nodes["r2"]
    # The steady advert re-arms in C; the priority-0 one after it escalates.
    if family == socket.AF_INET6:
        r1.run(["ip", "-6", "addr", "add", f"{_SRC6}/64", "dev", "eth0", "nodad"])
        src = _SRC6
        datagrams = [packet.encode(3, 51, prio, 100, b"", family=6, src=b"\0" * 16,
                                   dst=b"\0" * 16) for prio in (150, 0)]
        dst = "ff02::12"
    else:
        src = None
        datagrams = [v4_datagram("224.0.0.18", 51, prio=prio) for prio in (150, 0)]
        dst = "224.0.0.18"
    ready = tmp_path / "ready"
    result = {}
    late = 0.3
    t = threading.Thread(target=lambda: result.update(got=r2.call(
        _rearm_after_late_read, io_impl, family, str(ready), late)))
    t.start()
    netlab.wait_until(ready.exists, 5)
    r1.call(_send, family, "eth0", datagrams, dst, True, src)
    t.join()
    readable, now, rearms, escalated, deadline = result["got"]
    assert rearms == 1 and [prio for prio, _ in escalated] == [0]
    mdi = 3 * 10**9
    # Armed from the arrival (before the socket was even seen readable), not from
    # the late read: without receive timestamps it would be now + MDI.
    assert deadline - mdi <= readable
    assert deadline - mdi < now - late * 10**9 * 0.8
    # The escalated advert comes with its arrival time too (for Skew_Time).
    arrival = escalated[0][1]
    assert deadline - mdi <= arrival < now - late * 10**9 * 0.8


def _voluntary_switches() -> int:
    with open("/proc/thread-self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("voluntary_ctxt_switches"))


def _send_interleaved_outbox(io_impl: str, n: int, breathe_every_ns: int = 0):
    from fastvrrp.net.io import pack_sockaddr
    from fastvrrp.proto.actions import TimerKind

    fp_mod, wheel_mod, codec, io_mod = _modules(io_impl)
    kinds = len(TimerKind)
    ifindex = socket.if_nametoindex("eth0")
    socks = {g: sockets.open_send_socket(socket.AF_INET, "eth0", ifindex, multicast=True)
             for g in (0, 1)}
    wheel = wheel_mod.TimerWheel(kinds, 0)
    fp = fp_mod.FastPath(wheel, kinds)
    fp.reserve(n)
    src, dst = ipaddress.ip_address("192.0.2.1").packed, ipaddress.ip_address("224.0.0.18").packed
    for i in range(n):
        enc = codec.AdvertEncoder(3, 100 + i, 150, 100, b"", src=src, dst=dst, ipv4_ttl=255)
        wheel.schedule(i * kinds + int(TimerKind.ADVER), 1)
        # Instances alternate between the two sockets, as on a router whose
        # instances are spread over interfaces.
        fp.set_master(i, 10**9, [(i % 2, enc, pack_sockaddr("224.0.0.18"))])
    fp.expire(1)
    io = io_mod.BatchIO()
    io.breathe_every_ns = breathe_every_ns
    before = _voluntary_switches()
    sent = io.send_outbox(fp, socks)
    return sent, io.sent, io.send_calls, _voluntary_switches() - before


@pytest.mark.parametrize("io_impl", ["compiled", "twin"])
def test_the_outbox_goes_out_one_sendmmsg_per_socket(lab, tmp_path, io_impl):
    r1, r2 = lab.nodes["r1"], lab.nodes["r2"]
    ready = tmp_path / "ready"
    result = {}
    t = threading.Thread(target=lambda: result.update(got=r2.call(
        _receive, socket.AF_INET, "eth0", None, None, str(ready), 1.5)))
    t.start()
    netlab.wait_until(ready.exists, 5)
    sent, counted, calls, _switches = r1.call(_send_interleaved_outbox, io_impl, 10)
    t.join()
    assert sent == counted == 10
    assert sorted(d[0][21] for d in result["got"]) == list(range(100, 110))  # every VRID
    # The compiled I/O groups the interleaved outbox by socket: two sendmmsg calls,
    # not ten one-message ones. (The twin sends one packet per call.)
    assert calls == (2 if io_impl == "compiled" else 10)


@pytest.mark.parametrize("io_impl", ["compiled", "twin"])
def test_a_real_time_daemon_breathes_between_its_sends(lab, io_impl):
    # vrrp_rt_priority: a mass takeover's sends must let the thread sleep now and then
    # (net.scheduling), or they count towards RLIMIT_RTTIME with the Python after them.
    r1 = lab.nodes["r1"]
    *_, calls, quiet = r1.call(_send_interleaved_outbox, io_impl, 10, 0)
    *_, calls, breathing = r1.call(_send_interleaved_outbox, io_impl, 10, 1)  # after every call
    assert quiet < calls <= breathing


# --- the loop's wake-up functions: steady state in C, Python only when needed --------

class FakeLoop:
    """The two event-loop methods the wake-ups use, driven by select()."""

    def __init__(self) -> None:
        self.readers: dict[int, tuple] = {}
        self.log: list[tuple[str, int]] = []

    def add_reader(self, fd, callback, *args) -> None:
        self.readers[fd] = (callback, args)
        self.log.append(("add", fd))

    def remove_reader(self, fd) -> None:
        del self.readers[fd]
        self.log.append(("remove", fd))

    def run_once(self, timeout: float) -> list[int]:
        ready = select.select(list(self.readers), [], [], timeout)[0]
        for fd in ready:
            if fd in self.readers:
                callback, args = self.readers[fd]
                callback(*args)
        return ready


def _timer_wakes(io_impl: str):
    from fastvrrp.net.io import pack_sockaddr
    from fastvrrp.proto.actions import TimerKind

    fp_mod, wheel_mod, codec, io_mod = _modules(io_impl)
    kinds = len(TimerKind)
    ifindex = socket.if_nametoindex("eth0")
    socks = {0: sockets.open_send_socket(socket.AF_INET, "eth0", ifindex, multicast=True)}
    start = time.monotonic_ns()
    wheel = wheel_mod.TimerWheel(2 * kinds, start)
    fp = fp_mod.FastPath(wheel, kinds)
    fp.reserve(2)
    src, dst = ipaddress.ip_address("192.0.2.1").packed, ipaddress.ip_address("224.0.0.18").packed
    enc = codec.AdvertEncoder(3, 51, 150, 5, b"", src=src, dst=dst, ipv4_ttl=255)
    wheel.schedule(int(TimerKind.ADVER), start + 1_000_000)
    fp.set_master(0, 50_000_000, [(0, enc, pack_sockaddr("224.0.0.18"))], 7_000_000)
    # Instance 1's GARP timer needs its state machine.
    wheel.schedule(1 * kinds + int(TimerKind.GARP_DELAY), start + 120_000_000)
    tfd = io_mod.TimerFd()
    io = io_mod.BatchIO()
    loop = FakeLoop()
    slow, armed = [], []

    def on_timers(now, timers):
        slow.append((now, timers))
        io.rearm()  # what the router's slow path ends with

    io.attach(loop, fp, wheel, tfd, socks, on_timers)
    io.rearm()
    while time.monotonic_ns() < start + 300_000_000:
        if loop.run_once(0.05):
            armed.append((tfd.armed_for, wheel.next_deadline()))
    io.detach()
    return start, slow, armed, io.sent, fp.counters()["steady_sends"], loop.readers


@pytest.mark.parametrize("io_impl", ["compiled", "twin"])
def test_the_timerfd_wake_up_sends_and_re_arms_in_c_and_calls_python_only_when_due(
        lab, io_impl):
    from fastvrrp.proto.actions import TimerKind

    start, slow, armed, sent, steady, readers = lab.nodes["r1"].call(_timer_wakes, io_impl)
    # One call into Python, for the GARP timer, with its (instance, kind); every other
    # wake-up was a steady advert (1 ms, then every 50 ms on the 7 ms phase, over the
    # 300 ms the loop ran plus its last select).
    assert [timers for _now, timers in slow] == [[(1, int(TimerKind.GARP_DELAY))]]
    assert slow[0][0] >= start + 120_000_000
    assert 5 <= steady == sent <= 8
    # After every wake-up the timerfd is armed for the wheel's next deadline.
    assert all(a == nxt for a, nxt in armed) and len(armed) >= steady
    assert readers == {}  # detach removed the timerfd's reader


def _receive_wakes(io_impl: str, ready: str, hold_ns: int):
    from fastvrrp.proto.actions import TimerKind

    fp_mod, wheel_mod, codec, io_mod = _modules(io_impl)
    kinds = len(TimerKind)
    ifindex = socket.if_nametoindex("eth0")
    sock = sockets.open_receive_socket(socket.AF_INET, "eth0", ifindex)
    wheel = wheel_mod.TimerWheel(kinds, time.monotonic_ns())
    fp = fp_mod.FastPath(wheel, kinds)
    fp.reserve(1)
    table = codec.ReceiveTable()
    table[51] = codec.Expect(3)
    fp.add_group(0, 4, table)
    fp.bind(0, 51, 0)
    src = ipaddress.ip_address("192.0.2.1").packed
    fp.set_backup(0, (src, 150, 100), 3 * 10**9)
    wheel.schedule(int(TimerKind.MASTER_DOWN), time.monotonic_ns() + 3 * 10**9)
    tfd = io_mod.TimerFd()
    io = io_mod.BatchIO()
    loop = FakeLoop()
    events = []  # (what woke, calls into Python, escalated priorities, rearms so far)
    calls, esc, drops = [], [], []

    def on_timers(now, timers):
        calls.append(("timers", timers))
        io.rearm()

    def on_receive(error):  # as the router: log (here: keep) the drop samples
        calls.append(("receive", None if error is None else type(error).__name__))
        drops.extend(d[0] for d in fp.take_drop_samples())
        io.rearm()

    io.attach(loop, fp, wheel, tfd, {}, on_timers, hold_ns)
    io.watch(0, sock, 4, lambda e, at: esc.append(e[2].priority), on_receive)
    io.rearm()
    Path(ready).touch()
    end = time.monotonic() + 1.6
    while time.monotonic() < end:
        for fd in loop.run_once(0.02):
            events.append(("socket" if fd == sock.fileno() else "timer", list(calls),
                           list(esc), fp.counters()["steady_rearms"],
                           sock.fileno() in loop.readers))
            calls.clear()
            esc.clear()
    io.detach()
    leftover = dict(loop.readers)
    sock.close()
    return events, drops, leftover


@pytest.mark.parametrize("io_impl", ["compiled", "twin"])
def test_a_busy_socket_is_drained_by_the_timer_and_python_runs_only_when_needed(
        lab, tmp_path, io_impl):
    r1, r2 = lab.nodes["r1"], lab.nodes["r2"]
    ready = tmp_path / "ready"
    result = {}
    hold = 100_000_000
    t = threading.Thread(target=lambda: result.update(got=r2.call(
        _receive_wakes, io_impl, str(ready), hold)))
    t.start()
    netlab.wait_until(ready.exists, 5)
    steady = v4_datagram("224.0.0.18", 51)
    # Two steady adverts 30 ms apart, then (once the socket is quiet again) a TTL
    # drop, then a stopping master.
    r1.call(_send_spaced, [(steady, 0.03), (steady, 0.5),
                           (v4_datagram("224.0.0.18", 51, ttl=1), 0.4),
                           (v4_datagram("224.0.0.18", 51, prio=0), 0.0)])
    t.join()
    events, drops, leftover = result["got"]
    woke = [(what, calls, esc, rearms, watched) for what, calls, esc, rearms, watched in events]
    # 1. The first advert wakes the socket: handled in C, no Python, and the socket is
    #    held (no longer watched) for the hold time.
    assert woke[0] == ("socket", [], [], 1, False), woke
    # 2. The second came within the hold: no wake-up of its own; the timer drained it
    #    (still in C), and a later timer wake-up found the socket quiet and watches it
    #    again.
    assert woke[1] == ("timer", [], [], 2, False), woke
    assert woke[2] == ("timer", [], [], 2, True), woke
    # 3. A dropped packet needs Python (to log its sample), nothing escalates.
    assert woke[3][:3] == ("socket", [("receive", None)], []), woke
    assert drops == [Reason.BAD_TTL]
    # 4. Priority 0 escalates (no skew was given to the fast path): Python is called.
    p0 = [w for w in woke if w[2]]
    assert [w[:3] for w in p0] == [("socket", [("receive", None)], [0])], woke
    # Python ran for nothing else, and each quiet-socket packet woke the socket once.
    assert sum(len(w[1]) for w in woke) == 2
    assert len([w for w in woke if w[0] == "socket"]) == 3
    assert leftover == {}
