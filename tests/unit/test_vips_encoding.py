"""VipManager's batch protocol against a stand-in for rtnetlink (no namespace needed).

The stand-in applies a write at once, as rtnetlink does during send(), answers a failed
request with an NLMSG_ERROR whether or not it asked for an ack, and queues answers with
the kernel's accounting: 832 bytes each (measured on 6.18), dropped once the queue would
go over the receive buffer, and ENOBUFS reported before what was queued.
"""

from __future__ import annotations

import errno
import socket
import struct
from collections import deque
from ipaddress import ip_interface

import pytest

from fastvrrp.net import vips as V
from fastvrrp.net.vips import VipManager, VipSpec, encode_addr_request, encode_sentinel

TRUESIZE = 832
IFINDEX = 2


def _nla(kind: int, payload: bytes) -> bytes:
    return V._nla(kind, payload)


class FakeRtnl:
    """Just enough of a NETLINK_ROUTE socket for VipManager's batches and dumps."""

    def __init__(self, rcvbuf: int = 2 << 20, reported_rcvbuf: int | None = None,
                 refuse: dict[str, int] | None = None, answer: bool = True) -> None:
        self.rcvbuf = rcvbuf  # what the queue holds
        self.reported_rcvbuf = reported_rcvbuf or rcvbuf  # what SO_RCVBUF reads back
        self.refuse = refuse or {}  # address -> errno the kernel answers for it
        self.answer = answer  # False: lose every answer silently (a stuck kernel)
        self.addrs: dict[tuple[int, str], int] = {}  # (ifindex, address) -> prefixlen
        self.queue: deque[bytes] = deque()
        self.pending_err = 0
        self.drops = 0
        self.writes: list[bytes] = []

    # -- socket surface

    def getsockopt(self, level: int, opt: int) -> int:
        assert level == socket.SOL_SOCKET
        return {socket.SO_RCVBUF: self.reported_rcvbuf, socket.SO_SNDBUF: 425984}[opt]

    def send(self, data: bytes | bytearray) -> int:
        data = bytes(data)
        self.writes.append(data)
        for kind, flags, seq, body, end in V._iter_messages(data):
            header = data[body - V._NLMSGHDR.size:body]
            if kind == V.RTM_GETADDR:
                self._dump(seq)
                continue
            err = self._apply(kind, data, body, end) if kind in (V.RTM_NEWADDR,
                                                                  V.RTM_DELADDR) else 0
            if err or flags & V.NLM_F_ACK:
                self._answer(struct.pack("=IHHII", 16 + 4 + 16, V.NLMSG_ERROR, V.NLM_F_CAPPED,
                                         seq, 0) + struct.pack("=i", -err) + header)
        return len(data)

    def recv_into(self, buf: bytearray, nbytes: int = 0, flags: int = 0) -> int:
        if self.pending_err:
            err, self.pending_err = self.pending_err, 0
            raise OSError(err, "No buffer space available")
        if not self.queue:  # empty: MSG_DONTWAIT, or SO_RCVTIMEO ran out
            raise BlockingIOError(errno.EAGAIN, "Resource temporarily unavailable")
        datagram = self.queue.popleft()
        buf[:len(datagram)] = datagram
        return len(datagram)

    def close(self) -> None:
        pass

    # -- kernel

    def _answer(self, datagram: bytes) -> None:
        if not self.answer:
            return
        if self.queue and (len(self.queue) + 1) * TRUESIZE > self.rcvbuf:
            self.drops += 1
            self.pending_err = errno.ENOBUFS
            return
        self.queue.append(datagram)

    def _apply(self, kind: int, data: bytes, body: int, end: int) -> int:
        family, plen, _flags, _scope, index = V._IFADDRMSG.unpack_from(data, body)
        attrs = V._parse_nlas(data, body + V._IFADDRMSG.size, end)
        addr = str(ip_interface(attrs[V.IFA_LOCAL]).ip)
        if index != IFINDEX:
            return errno.ENODEV
        if kind == V.RTM_DELADDR:
            if self.addrs.get((index, addr)) != plen:
                return errno.EADDRNOTAVAIL
            del self.addrs[(index, addr)]
            return 0
        if addr in self.refuse:
            return self.refuse[addr]
        if (index, addr) in self.addrs:
            return errno.EEXIST
        self.addrs[(index, addr)] = plen
        return 0

    def _dump(self, seq: int) -> None:
        # Dumps are flow-controlled in the kernel: never dropped.
        parts = []
        for (index, addr), plen in self.addrs.items():
            ip = ip_interface(addr).ip
            fam = socket.AF_INET if ip.version == 4 else socket.AF_INET6
            body = V._IFADDRMSG.pack(fam, plen, 0, 0, index) + _nla(V.IFA_LOCAL, ip.packed)
            parts.append(struct.pack("=IHHII", 16 + len(body), V.RTM_NEWADDR, V.NLM_F_MULTI,
                                     seq, 0) + body)
        self.queue.append(b"".join(parts))
        self.queue.append(struct.pack("=IHHIIi", 20, V.NLMSG_DONE, V.NLM_F_MULTI, seq, 0, 0))


def manager(fake: FakeRtnl) -> VipManager:
    mgr = VipManager()
    mgr._sock.close()
    mgr._sock = fake  # type: ignore[assignment]
    return mgr


def v4(n: int) -> list[VipSpec]:
    return [VipSpec(ip_interface(f"203.0.113.{i}/32"), ifindex=IFINDEX) for i in range(1, n + 1)]


def v6(n: int) -> list[VipSpec]:
    return [VipSpec(ip_interface(f"2001:db8:5::{i:x}/128"), ifindex=IFINDEX)
            for i in range(1, n + 1)]


def messages(write: bytes) -> list[tuple[int, int, int, bytes]]:
    return [(kind, flags, seq, write[body - 16:end])
            for kind, flags, seq, body, end in V._iter_messages(write)]


# --------------------------------------------------------------------------- encoding


def test_without_ack_only_the_ack_flag_differs() -> None:
    spec = VipSpec.parse("2001:db8::5/64", ifindex=3, label="eth0:x")
    for add in (True, False):
        with_ack = encode_addr_request(spec, 3, add, 7)
        without = encode_addr_request(spec, 3, add, 7, ack=False)
        flags = struct.unpack_from("=H", with_ack, 6)[0]
        assert flags & V.NLM_F_ACK
        assert without == with_ack[:6] + struct.pack("=H", flags & ~V.NLM_F_ACK) + with_ack[8:]


def test_sentinel_is_a_noop_asking_for_an_ack() -> None:
    assert V._NLMSGHDR.unpack(encode_sentinel(9)) == (
        16, V.NLMSG_NOOP, V.NLM_F_REQUEST | V.NLM_F_ACK, 9, 0)


def test_a_cut_datagram_yields_only_whole_messages() -> None:
    first = encode_sentinel(1)
    second = encode_addr_request(v4(1)[0], IFINDEX, True, 2)
    cut = first + second[:-4]
    assert [seq for _k, _f, seq, _b, _e in V._iter_messages(cut)] == [1]


def test_sequence_numbers_are_consecutive_and_never_zero() -> None:
    mgr = manager(FakeRtnl())
    assert mgr._take_seqs(3) == 1 and mgr._next_seq() == 4
    mgr._seq = 0xFFFFFFFF - 2
    assert mgr._take_seqs(5) == 1 and mgr._seq == 5


# --------------------------------------------------------------------------- batches


def test_writes_carry_unacked_requests_and_one_sentinel_at_the_end() -> None:
    fake = FakeRtnl()
    mgr = manager(fake)
    specs = v4(50) + v6(50)
    result = mgr.add(specs)
    assert result.changed == specs and not result.failed
    [write] = fake.writes
    msgs = messages(write)
    assert [m[0] for m in msgs] == [V.RTM_NEWADDR] * 100 + [V.NLMSG_NOOP]
    assert msgs[-1][1] == V.NLM_F_REQUEST | V.NLM_F_ACK
    seqs = [m[2] for m in msgs]
    assert seqs == list(range(seqs[0], seqs[0] + 101))
    # Byte for byte what encode_addr_request builds, only without NLM_F_ACK.
    for spec, (_k, _f, seq, raw) in zip(specs, msgs):
        assert raw == encode_addr_request(spec, IFINDEX, True, seq, ack=False)
    assert not fake.queue  # everything answered was read


def test_writes_are_sized_so_every_request_may_fail_without_an_overrun() -> None:
    fake = FakeRtnl(rcvbuf=8192)  # 8 answers: 7 requests and the sentinel per write
    mgr = manager(fake)
    specs = v4(100)
    assert mgr.add(specs).changed == specs
    again = mgr.add(specs)  # every request answered with EEXIST
    assert (again.changed, again.unchanged, again.failed) == ([], specs, [])
    assert fake.drops == 0
    assert all(len(messages(w)) <= 8 for w in fake.writes)
    gone = mgr.remove(specs + v4(120)[100:])  # the last 20 were never there
    assert (gone.changed, gone.unchanged, gone.failed) == (specs, v4(120)[100:], [])
    assert fake.drops == 0 and not fake.addrs


def test_failures_are_attributed_by_sequence_number() -> None:
    specs = v4(30) + v6(10)
    refuse = {str(specs[3].address.ip): errno.EINVAL, str(specs[17].address.ip): errno.EACCES,
              str(specs[35].address.ip): errno.EINVAL}
    fake = FakeRtnl(rcvbuf=6 * 1024, refuse=refuse)  # several writes
    mgr = manager(fake)
    mgr.add([specs[5], specs[33]])
    elsewhere = VipSpec(ip_interface("203.0.113.200/32"), ifindex=99)
    batch = specs + [elsewhere]
    result = mgr.add(batch)
    assert len(fake.writes) > 3
    assert result.unchanged == [specs[5], specs[33]]
    assert [(f.spec, f.errno) for f in result.failed] == [
        (specs[3], errno.EINVAL), (specs[17], errno.EACCES), (specs[35], errno.EINVAL),
        (elsewhere, errno.ENODEV)]
    assert result.changed == [s for i, s in enumerate(specs) if i not in (3, 5, 17, 33, 35)]


def test_encoded_requests_are_reused_and_follow_the_interface() -> None:
    fake = FakeRtnl()
    mgr = manager(fake)
    spec = VipSpec.parse("192.0.2.9", ifname="fvx0")
    indexes = iter([IFINDEX, IFINDEX, IFINDEX, 7])
    mgr._ifindex = lambda name: next(indexes)  # type: ignore[method-assign]
    assert mgr.add([spec]).changed == [spec]
    cached = mgr._encoded[True][id(spec)][2]
    assert mgr.remove([spec]).changed == [spec]
    assert mgr.add([spec]).changed == [spec]
    assert mgr._encoded[True][id(spec)][2] is cached  # same interface: not re-encoded
    assert mgr.remove([spec]).unchanged == [spec]  # now index 7: ENODEV, "already gone"
    _k, _f, seq, raw = messages(fake.writes[-1])[0]
    assert raw == encode_addr_request(spec, 7, False, seq, ack=False)


# --------------------------------------------------------------------------- lost answers


@pytest.mark.parametrize("rcvbuf", [2304, 5000])
def test_lost_answers_are_settled_from_what_is_configured(rcvbuf: int) -> None:
    # The socket claims a big buffer but holds only a few answers: errors and the
    # sentinel's ack are dropped (ENOBUFS), as when something else fills the queue.
    specs = v4(60) + v6(20)
    bad = [i for i in range(len(specs)) if i % 4 == 2]
    refuse = {str(specs[i].address.ip): errno.EINVAL for i in bad}
    fake = FakeRtnl(rcvbuf=rcvbuf, reported_rcvbuf=1 << 20, refuse=refuse)
    mgr = manager(fake)
    result = mgr.add(specs)
    assert fake.drops
    assert result.changed == [s for i, s in enumerate(specs) if i not in bad]
    assert [f.spec for f in result.failed] == [specs[i] for i in bad]
    assert {f.errno for f in result.failed} <= {errno.EINVAL, errno.ENOBUFS}
    removed = mgr.remove(specs)
    assert removed.failed == []
    assert set(removed.changed) | set(removed.unchanged) == set(specs)
    assert not fake.addrs


def test_no_answer_at_all_is_settled_too() -> None:
    fake = FakeRtnl(answer=False)  # the batch's answers never come; dumps still work
    mgr = manager(fake)
    specs = v4(5)
    fake.addrs[(IFINDEX, "203.0.113.2")] = 32  # already there
    result = mgr.add(specs)
    assert result.changed == specs and not result.failed  # present now, as asked
    fake.refuse["203.0.113.9"] = errno.EINVAL
    [failure] = mgr.add(v4(9)[8:]).failed
    assert failure.errno == errno.ETIMEDOUT and "not configured" in failure.message
