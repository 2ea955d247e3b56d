"""Virtual addresses through rtnetlink, in batches; interface lookup; link/address events.

keepalived adds each VIP with its own RTM_NEWADDR and waits for the ack
(`netlink_ipaddress()` in vrrp_ipaddress.c). Here a whole batch is written with as few
send() calls as fit the socket buffers, so 1000 VIPs cost a handful of system calls
instead of 2000 round trips (DESIGN.md: "Netlink changes for many VIPs are batched").
The requests carry no NLM_F_ACK: rtnetlink handles a write synchronously and answers
every *failed* request with an NLMSG_ERROR carrying its sequence number anyway, so each
write ends with an NLMSG_NOOP that does ask for an ack (the sentinel). When its ack is
read, every request of the write without an error succeeded. A write holds no more
requests than the receive buffer can hold replies for (one error each, worst case);
if replies are lost all the same (ENOBUFS), what is configured is read back with a
dump instead of reporting the lost ones as failed.

The socket is a plain AF_NETLINK socket, not a pyroute2 one: pyroute2 0.9.7 runs every
request through its own asyncio loop, so its sync `IPRoute` raises "Cannot run the event
loop while another loop is running" when called from the daemon's loop thread, and its
`AsyncIPRoute` cannot open a netlink endpoint on uvloop ("cannot open a UDP handle,
invalid family 16"). The messages are small and fixed, so encoding them with `struct`
is also the fastest way (the tests check the encoding against pyroute2's parser).
"""

from __future__ import annotations

import errno as errno_mod
import os
import socket
import struct
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from ipaddress import (
    IPv4Address,
    IPv4Interface,
    IPv6Address,
    IPv6Interface,
    ip_address,
    ip_interface,
)
from typing import TYPE_CHECKING, TypeAlias

if TYPE_CHECKING:
    from fastvrrp.config.model import VirtualAddress

__all__ = [
    "AddrEvent",
    "AddrInfo",
    "LinkEvent",
    "LinkInfo",
    "NetlinkError",
    "NetlinkMonitor",
    "VipBatchResult",
    "VipFailure",
    "VipManager",
    "VipSpec",
    "scope_number",
]

IPInterface: TypeAlias = IPv4Interface | IPv6Interface
IPAddress: TypeAlias = IPv4Address | IPv6Address

# linux/netlink.h, linux/rtnetlink.h, linux/if_addr.h, linux/if_link.h
NETLINK_ROUTE = 0
NLMSG_NOOP = 1
NLMSG_ERROR = 2
NLMSG_DONE = 3
NLM_F_REQUEST = 0x1
NLM_F_MULTI = 0x2
NLM_F_ACK = 0x4
NLM_F_ROOT = 0x100
NLM_F_MATCH = 0x200
NLM_F_DUMP = NLM_F_ROOT | NLM_F_MATCH
NLM_F_EXCL = 0x200
NLM_F_CREATE = 0x400
NLM_F_CAPPED = 0x100  # in an NLMSG_ERROR header: the echoed request is only its header
NLM_F_ACK_TLVS = 0x200  # in an NLMSG_ERROR header: extended-ack attributes follow
NLMSGERR_ATTR_MSG = 1
SOL_NETLINK = 270
NETLINK_CAP_ACK = 10  # acks carry only the request's header, not its whole body
NETLINK_EXT_ACK = 11  # errors carry the kernel's text reason
RTM_NEWLINK, RTM_DELLINK, RTM_GETLINK = 16, 17, 18
RTM_NEWADDR, RTM_DELADDR, RTM_GETADDR = 20, 21, 22
RTMGRP_LINK = 0x1
RTMGRP_IPV4_IFADDR = 0x10
RTMGRP_IPV6_IFADDR = 0x100
IFA_ADDRESS, IFA_LOCAL, IFA_LABEL, IFA_BROADCAST = 1, 2, 3, 4
IFA_CACHEINFO, IFA_FLAGS = 6, 8
IFA_F_NODAD = 0x02
IFA_F_HOMEADDRESS = 0x10
IFA_F_MANAGETEMPADDR = 0x100
IFA_F_NOPREFIXROUTE = 0x200
IFA_F_MCAUTOJOIN = 0x400
IFLA_ADDRESS, IFLA_IFNAME, IFLA_MTU, IFLA_OPERSTATE = 1, 3, 4, 16
IFF_UP = 0x1
IFF_RUNNING = 0x40
IFF_LOWER_UP = 0x10000
INFINITY_LIFE_TIME = 0xFFFFFFFF

_NLMSGHDR = struct.Struct("=IHHII")  # len, type, flags, seq, pid
_IFADDRMSG = struct.Struct("=BBBBI")  # family, prefixlen, flags, scope, index
_IFINFOMSG = struct.Struct("=BxHiII")  # family, type, index, flags, change
_NLATTR = struct.Struct("=HH")
_ERRNO = struct.Struct("=i")
_U32 = struct.Struct("=I")
_CACHEINFO = struct.Struct("=IIII")  # preferred, valid, cstamp, tstamp

# /etc/iproute2/rt_scopes
_SCOPES = {"global": 0, "universe": 0, "site": 200, "link": 253, "host": 254, "nowhere": 255}
# keepalived.conf address flags (vrrp_ipaddress.c parse_ipaddress) -> IFA_F_*
_CONFIG_FLAGS = {"home": IFA_F_HOMEADDRESS, "mngtmpaddr": IFA_F_MANAGETEMPADDR,
                 "noprefixroute": IFA_F_NOPREFIXROUTE, "autojoin": IFA_F_MCAUTOJOIN}

SO_SNDBUFFORCE, SO_RCVBUFFORCE = 32, 33  # asm-generic/socket.h; not in Python's socket

# Bytes per batch write (the kernel also refuses writes over sk_sndbuf - 32).
_MAX_WRITE = 64 * 1024
_RCVBUF = 1 << 20  # asked for (the kernel doubles it); SO_RCVBUFFORCE passes rmem_max
# What one reply costs in the receive buffer (skb truesize): an error with
# NETLINK_CAP_ACK, the extended-ack text and its header measured 832 bytes on 6.18, as
# does an ack. Without NETLINK_CAP_ACK the whole request is echoed. A write holds at
# most rcvbuf // cost - 1 requests, so even if every one of them fails, their errors
# and the sentinel's ack fit the receive queue.
_REPLY_COST = 1024
_REPLY_COST_UNCAPPED = 1536
# One datagram. Dumps fill at most ~32 KiB per read (the kernel caps its dump skbs at
# SKB_WITH_OVERHEAD(32 KiB)); an ack or error is under 200 bytes.
_READ_BUF = 64 * 1024
_CACHE_MAX = 1 << 16  # encoded requests kept per direction (add / remove)
_CHANGED, _UNCHANGED = 0, 1  # outcome of one address in a batch (or a VipFailure)
_SEQ_OFFSET = 8  # of nlmsg_seq in struct nlmsghdr


class NetlinkError(OSError):
    """A netlink request failed as a whole (not a per-address outcome)."""


def scope_number(scope: str | int) -> int:
    """rt_scopes name or number -> RT_SCOPE_* value."""
    if isinstance(scope, int):
        value = scope
    elif scope.isdigit():
        value = int(scope)
    else:
        try:
            return _SCOPES[scope]
        except KeyError:
            raise ValueError(f"unknown address scope {scope!r}") from None
    if not 0 <= value <= 255:
        raise ValueError(f"address scope {value} is not 0-255")
    return value


def _align(n: int) -> int:
    return (n + 3) & ~3


def _nla(kind: int, payload: bytes) -> bytes:
    length = _NLATTR.size + len(payload)
    return _NLATTR.pack(length, kind) + payload + b"\0" * (_align(length) - length)


def _parse_nlas(data: bytes | memoryview, offset: int, end: int) -> dict[int, bytes]:
    """Attribute type -> raw payload (first occurrence wins; nesting is not needed here)."""
    attrs: dict[int, bytes] = {}
    while offset + _NLATTR.size <= end:
        length, kind = _NLATTR.unpack_from(data, offset)
        if length < _NLATTR.size:
            break
        kind &= 0x3FFF  # strip NLA_F_NESTED / NLA_F_NET_BYTEORDER
        attrs.setdefault(kind, bytes(data[offset + _NLATTR.size:offset + length]))
        offset += _align(length)
    return attrs


def _iter_messages(data: bytes | memoryview) -> Iterator[tuple[int, int, int, int, int]]:
    """(type, flags, seq, body offset, message end) for each message in a datagram."""
    offset = 0
    while offset + _NLMSGHDR.size <= len(data):
        length, kind, flags, seq, _pid = _NLMSGHDR.unpack_from(data, offset)
        if length < _NLMSGHDR.size or offset + length > len(data):
            break
        yield kind, flags, seq, offset + _NLMSGHDR.size, offset + length
        offset += _align(length)


def _parse_error(data: bytes | memoryview, body: int, end: int,
                 flags: int) -> tuple[int, str]:
    """NLMSG_ERROR body -> (positive errno or 0, kernel's extended-ack text)."""
    (err,) = _ERRNO.unpack_from(data, body)
    text = ""
    if err and flags & NLM_F_ACK_TLVS:
        echoed = body + _ERRNO.size
        # The echoed request: only its header with NETLINK_CAP_ACK, else all of it.
        skip = _NLMSGHDR.size if flags & NLM_F_CAPPED else _NLMSGHDR.unpack_from(data, echoed)[0]
        attrs = _parse_nlas(data, echoed + _align(skip), end)
        text = attrs.get(NLMSGERR_ATTR_MSG, b"").rstrip(b"\0").decode(errors="replace")
    return -err, text


# --------------------------------------------------------------------------- records


@dataclass(frozen=True, slots=True)
class VipSpec:
    """One virtual address as keepalived's `virtual_ipaddress` line describes it:
    `<address>[/<prefix>] [brd <addr>] [dev <ifname>] [scope <scope>] [label <label>]
    [peer <addr>]`. Give `ifindex`, or `ifname` to be looked up when the batch runs."""

    address: IPInterface
    ifindex: int = 0
    ifname: str | None = None
    broadcast: IPv4Address | None = None
    scope: int = 0  # RT_SCOPE_*; scope_number("link") etc.
    label: str | None = None
    peer: IPAddress | None = None
    preferred_lft: int | None = None  # None: forever (kernel default)
    nodad: bool = True  # IPv6: keepalived sets IFA_F_NODAD unless "-nodad" is given
    extra_flags: int = 0  # further IFA_F_* (home, mngtmpaddr, noprefixroute, autojoin)

    def __post_init__(self) -> None:
        if not self.ifindex and not self.ifname:
            raise ValueError(f"{self.address}: a VIP needs an ifindex or an ifname")
        if self.broadcast is not None and self.address.version != 4:
            raise ValueError(f"{self.address}: only IPv4 addresses have a broadcast")
        if self.label is not None and len(self.label.encode()) > 15:
            raise ValueError(f"{self.address}: label {self.label!r} is over 15 bytes")
        if self.peer is not None and self.peer.version != self.address.version:
            raise ValueError(f"{self.address}: peer {self.peer} is another family")

    @classmethod
    def parse(cls, text: str, *, ifindex: int = 0, ifname: str | None = None,
              broadcast: str | None = None, scope: str | int = 0,
              label: str | None = None, peer: str | None = None) -> VipSpec:
        """`"192.0.2.10"` -> /32 (IPv6: /128), as keepalived defaults the prefix."""
        if "/" not in text:
            text += "/32" if ":" not in text else "/128"
        return cls(address=ip_interface(text), ifindex=ifindex, ifname=ifname,
                   broadcast=IPv4Address(broadcast) if broadcast else None,
                   scope=scope_number(scope), label=label,
                   peer=ip_address(peer) if peer else None)

    @classmethod
    def from_config(cls, vip: VirtualAddress, default_ifname: str) -> VipSpec:
        """A parsed `virtual_ipaddress` entry; `default_ifname` is the instance's
        interface, used when the entry has no `dev`."""
        extra = 0
        for flag in vip.flags:
            extra |= _CONFIG_FLAGS.get(flag, 0)
        return cls(address=vip.address, ifname=vip.device or default_ifname,
                   broadcast=vip.broadcast,
                   scope=scope_number(vip.scope) if vip.scope is not None else 0,
                   label=vip.label, peer=vip.peer, preferred_lft=vip.preferred_lft,
                   nodad="-nodad" not in vip.flags, extra_flags=extra)

    @property
    def family(self) -> int:
        return socket.AF_INET if self.address.version == 4 else socket.AF_INET6


@dataclass(frozen=True, slots=True)
class VipFailure:
    """One address the kernel refused (or that could not be sent)."""

    spec: VipSpec
    errno: int
    message: str  # strerror, plus the kernel's extended-ack reason when it gave one


@dataclass(slots=True)
class VipBatchResult:
    """What happened to each address of one add() or remove() batch; each list keeps
    the order of the batch."""

    changed: list[VipSpec] = field(default_factory=list)  # added / removed now
    unchanged: list[VipSpec] = field(default_factory=list)  # already there / already gone
    failed: list[VipFailure] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failed


@dataclass(frozen=True, slots=True)
class AddrInfo:
    """One configured address as the kernel reports it (RTM_NEWADDR)."""

    ifindex: int
    address: IPInterface
    scope: int
    flags: int
    label: str | None = None
    broadcast: IPv4Address | None = None
    peer: IPAddress | None = None


@dataclass(frozen=True, slots=True)
class LinkInfo:
    """What the VIP and GARP code needs to know about an interface."""

    ifindex: int
    ifname: str
    mac: bytes
    mtu: int
    flags: int  # IFF_*
    operstate: int  # IF_OPER_*: 6 = up

    @property
    def up(self) -> bool:
        """Administratively up and carrier present (keepalived: IFF_UP and IFF_RUNNING)."""
        return self.flags & (IFF_UP | IFF_RUNNING) == (IFF_UP | IFF_RUNNING)


@dataclass(frozen=True, slots=True)
class LinkEvent:
    deleted: bool  # RTM_DELLINK
    link: LinkInfo


@dataclass(frozen=True, slots=True)
class AddrEvent:
    deleted: bool  # RTM_DELADDR
    addr: AddrInfo


# --------------------------------------------------------------------------- decoding


def _decode_addr(data: bytes | memoryview, body: int, end: int) -> AddrInfo | None:
    family, prefixlen, flags8, scope, index = _IFADDRMSG.unpack_from(data, body)
    attrs = _parse_nlas(data, body + _IFADDRMSG.size, end)
    if family not in (socket.AF_INET, socket.AF_INET6):
        return None
    # IFA_LOCAL is the address itself; IFA_ADDRESS differs from it only with a peer.
    local = attrs.get(IFA_LOCAL) or attrs.get(IFA_ADDRESS)
    if local is None:
        return None
    addr = ip_address(local)
    peer_raw = attrs.get(IFA_ADDRESS)
    peer = ip_address(peer_raw) if IFA_LOCAL in attrs and peer_raw and peer_raw != local else None
    flags = _U32.unpack(attrs[IFA_FLAGS])[0] if IFA_FLAGS in attrs else flags8
    label = attrs[IFA_LABEL].rstrip(b"\0").decode() if IFA_LABEL in attrs else None
    brd = IPv4Address(attrs[IFA_BROADCAST]) if IFA_BROADCAST in attrs else None
    return AddrInfo(ifindex=index, address=ip_interface(f"{addr}/{prefixlen}"), scope=scope,
                    flags=flags, label=label, broadcast=brd, peer=peer)


def _decode_link(data: bytes | memoryview, body: int, end: int) -> LinkInfo:
    _family, _type, index, flags, _change = _IFINFOMSG.unpack_from(data, body)
    attrs = _parse_nlas(data, body + _IFINFOMSG.size, end)
    return LinkInfo(
        ifindex=index,
        ifname=attrs.get(IFLA_IFNAME, b"").rstrip(b"\0").decode(),
        mac=attrs.get(IFLA_ADDRESS, b""),
        mtu=_U32.unpack(attrs[IFLA_MTU])[0] if IFLA_MTU in attrs else 0,
        flags=flags,
        operstate=attrs[IFLA_OPERSTATE][0] if IFLA_OPERSTATE in attrs else 0,
    )


# --------------------------------------------------------------------------- encoding


def encode_addr_request(spec: VipSpec, ifindex: int, add: bool, seq: int, *,
                        ack: bool = True) -> bytes:
    """One RTM_NEWADDR (add) or RTM_DELADDR request, as keepalived's netlink_ipaddress()
    builds it (IFA_LOCAL; brd, flags, label, peer, cacheinfo on add). With `ack` it
    asks for NLM_F_ACK; VipManager's batches leave it out (failures answer anyway).

    Add uses NLM_F_CREATE|NLM_F_EXCL so an existing address answers EEXIST (counted as
    "already there") instead of being silently replaced.
    """
    addr = spec.address
    packed = addr.ip.packed
    attrs = [_nla(IFA_LOCAL, packed)]
    flags = 0
    if add:
        if spec.peer is not None:
            attrs.append(_nla(IFA_ADDRESS, spec.peer.packed))
        if spec.broadcast is not None:
            attrs.append(_nla(IFA_BROADCAST, spec.broadcast.packed))
        if spec.label is not None:
            attrs.append(_nla(IFA_LABEL, spec.label.encode() + b"\0"))
        flags = spec.extra_flags
        if addr.version == 6 and spec.nodad:
            flags |= IFA_F_NODAD
        if flags:
            attrs.append(_nla(IFA_FLAGS, _U32.pack(flags)))
        if spec.preferred_lft is not None and spec.preferred_lft != INFINITY_LIFE_TIME:
            # keepalived: a preferred_lft of 0 makes the VIP "deprecated" so it is not
            # picked as a source address; valid stays forever.
            attrs.append(_nla(IFA_CACHEINFO, _CACHEINFO.pack(spec.preferred_lft,
                                                             INFINITY_LIFE_TIME, 0, 0)))
    elif spec.peer is not None:
        attrs.append(_nla(IFA_ADDRESS, spec.peer.packed))
    body = _IFADDRMSG.pack(spec.family, addr.network.prefixlen, flags & 0xFF,
                           spec.scope if add else 0, ifindex) + b"".join(attrs)
    kind = RTM_NEWADDR if add else RTM_DELADDR
    nl_flags = NLM_F_REQUEST | (NLM_F_ACK if ack else 0) | (
        NLM_F_CREATE | NLM_F_EXCL if add else 0)
    return _NLMSGHDR.pack(_NLMSGHDR.size + len(body), kind, nl_flags, seq, 0) + body


def encode_sentinel(seq: int) -> bytes:
    """An NLMSG_NOOP asking for an ack: the kernel answers it after every request
    written before it in the same write (and does nothing else)."""
    return _NLMSGHDR.pack(_NLMSGHDR.size, NLMSG_NOOP, NLM_F_REQUEST | NLM_F_ACK, seq, 0)


# --------------------------------------------------------------------------- manager


def _set_buffer(sock: socket.socket, force_opt: int, opt: int, size: int) -> None:
    """SO_RCVBUFFORCE/SO_SNDBUFFORCE (root: not capped by net.core.[rw]mem_max), else
    the capped SO_RCVBUF/SO_SNDBUF."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, force_opt, size)
    except OSError:  # EPERM without CAP_NET_ADMIN
        sock.setsockopt(socket.SOL_SOCKET, opt, size)


def _set_netlink_flag(sock: socket.socket, opt: int) -> bool:
    try:
        sock.setsockopt(SOL_NETLINK, opt, 1)
    except OSError:  # older kernels: full acks, no reason text
        return False
    return True


class VipManager:
    """Adds and removes VIPs in batches over one rtnetlink socket in the current
    namespace. One per daemon; not thread-safe. Every call is synchronous: the kernel
    applies a write while send() runs, so a 1000-address IPv4 batch takes a few ms.

    `rcvbuf` is the receive buffer asked for (SO_RCVBUFFORCE, else SO_RCVBUF as
    net.core.rmem_max allows). Each batch sizes its writes to the buffer the socket
    has then, so a small one costs more writes, not lost answers. Should answers be
    lost all the same (ENOBUFS, or none within `timeout`), the addresses concerned are
    read back: present after an add, or absent after a remove, counts as `changed`;
    otherwise `failed`, with the errno of the loss.
    """

    def __init__(self, timeout: float = 5.0, rcvbuf: int = _RCVBUF) -> None:
        self._sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC,
                                   NETLINK_ROUTE)
        try:
            _set_buffer(self._sock, SO_RCVBUFFORCE, socket.SO_RCVBUF, rcvbuf)
            _set_buffer(self._sock, SO_SNDBUFFORCE, socket.SO_SNDBUF, _RCVBUF)
            self._cap_ack = _set_netlink_flag(self._sock, NETLINK_CAP_ACK)
            _set_netlink_flag(self._sock, NETLINK_EXT_ACK)
            self._sock.bind((0, 0))
            # Blocking, the timeout kept by the kernel (SO_RCVTIMEO): with a Python
            # socket timeout every read would cost a poll() first.
            self._timeout = timeout
            usec = max(1, round(timeout * 1e6))
            self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO,
                                  struct.pack("@ll", usec // 1_000_000, usec % 1_000_000))
        except BaseException:
            self._sock.close()
            raise
        self._seq = 0
        # Every read lands here; messages are parsed from a view of it (the decoders
        # copy out what they keep).
        self._buf = bytearray(_READ_BUF)
        self._view = memoryview(self._buf)
        # id(spec) -> (spec, ifindex, request with seq 0, no NLM_F_ACK); [0] remove, [1] add.
        # Holding the spec keeps its id from being reused while the entry exists.
        self._encoded: tuple[dict[int, tuple[VipSpec, int, bytes]], ...] = ({}, {})

    # -- lifecycle

    def close(self) -> None:
        self._sock.close()

    def __enter__(self) -> VipManager:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def fileno(self) -> int:
        return self._sock.fileno()

    # -- VIPs

    def add(self, specs: Sequence[VipSpec]) -> VipBatchResult:
        """Add every address; an address already present is `unchanged`, any other
        refusal is a `failed` entry and does not stop the rest of the batch."""
        return self._batch(specs, add=True)

    def remove(self, specs: Sequence[VipSpec]) -> VipBatchResult:
        """Remove every address; one that is absent (or whose interface is gone, as
        keepalived treats it) is `unchanged`."""
        return self._batch(specs, add=False)

    def prepare(self, specs: Sequence[VipSpec]) -> None:
        """Encode these VIPs' add and remove requests now (at start-up), so that a
        daemon's first mass takeover does not: ~2.6 µs per VIP, 2.6 ms for a
        thousand, spent while the takeovers' adverts wait."""
        ifindexes: dict[str | None, int] = {}
        for spec in specs:
            ifindex = self._spec_ifindex(spec, ifindexes)
            if ifindex:
                for add in (True, False):
                    self._encode(self._encoded[add], spec, ifindex, add)

    def _spec_ifindex(self, spec: VipSpec, looked_up: dict[str | None, int]) -> int:
        """The spec's ifindex, or its interface's looked up once per call (0: none)."""
        if spec.ifindex:
            return spec.ifindex
        if spec.ifname not in looked_up:
            looked_up[spec.ifname] = self._ifindex(spec.ifname)
        return looked_up[spec.ifname]

    @staticmethod
    def _encode(cache: dict[int, tuple[VipSpec, int, bytes]], spec: VipSpec, ifindex: int,
                add: bool) -> bytes:
        msg = encode_addr_request(spec, ifindex, add, 0, ack=False)
        if len(cache) >= _CACHE_MAX:
            cache.clear()
        cache[id(spec)] = (spec, ifindex, msg)
        return msg

    def _batch(self, specs: Sequence[VipSpec], add: bool) -> VipBatchResult:
        outcomes: list[int | VipFailure] = [_CHANGED] * len(specs)  # by index in the batch
        unknown: list[tuple[int, int, OSError]] = []  # (index, ifindex, why): no answer
        per_write, max_bytes = self._write_limits()
        cache = self._encoded[add]
        ifindexes: dict[str | None, int] = {}
        chunk: list[bytes] = []
        where: list[tuple[int, int]] = []  # (index, ifindex) of each request in chunk
        size = 0
        for index, spec in enumerate(specs):
            ifindex = self._spec_ifindex(spec, ifindexes)
            if not ifindex:
                outcomes[index] = (VipFailure(spec, errno_mod.ENODEV, f"no interface {spec.ifname!r}")
                                   if add else _UNCHANGED)
                continue
            hit = cache.get(id(spec))
            if hit is not None and hit[0] is spec and hit[1] == ifindex:
                msg = hit[2]
            else:
                msg = self._encode(cache, spec, ifindex, add)
            if chunk and (len(chunk) >= per_write or size + len(msg) > max_bytes):
                self._flush(specs, chunk, where, add, outcomes, unknown)
                chunk, where, size = [], [], 0
            chunk.append(msg)
            where.append((index, ifindex))
            size += len(msg)
        if chunk:
            self._flush(specs, chunk, where, add, outcomes, unknown)
        if unknown:
            self._settle(specs, add, outcomes, unknown)
        result = VipBatchResult()
        for spec, outcome in zip(specs, outcomes):
            if isinstance(outcome, VipFailure):
                result.failed.append(outcome)
            elif outcome == _CHANGED:
                result.changed.append(spec)
            else:
                result.unchanged.append(spec)
        return result

    def _write_limits(self) -> tuple[int, int]:
        """(requests, bytes) per write for the socket's buffers as they are now."""
        rcvbuf = self._sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
        sndbuf = self._sock.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF)
        cost = _REPLY_COST if self._cap_ack else _REPLY_COST_UNCAPPED
        # The kernel drops a reply that would take the queue over sk_rcvbuf (what
        # SO_RCVBUF reads back); one is the sentinel's ack. Writes over
        # sk_sndbuf - 32 bytes are refused (EMSGSIZE).
        return max(1, rcvbuf // cost - 1), min(_MAX_WRITE, sndbuf - 32 - _NLMSGHDR.size)

    def _flush(self, specs: Sequence[VipSpec], chunk: list[bytes],
               where: list[tuple[int, int]], add: bool, outcomes: list[int | VipFailure],
               unknown: list[tuple[int, int, OSError]]) -> None:
        """Send one write (the requests, then the sentinel) and read its answers: an
        error for each failed request, then the sentinel's ack."""
        count = len(chunk)
        base = self._take_seqs(count + 1)  # base + i: chunk[i]; base + count: sentinel
        data = bytearray().join(chunk)
        offset = _SEQ_OFFSET
        pack_seq = _U32.pack_into
        for i, msg in enumerate(chunk):
            pack_seq(data, offset, base + i)
            offset += len(msg)
        data += encode_sentinel(base + count)
        try:
            self._sock.send(data)
        except OSError as exc:  # nothing of the write was applied
            for index, _ifindex in where:
                outcomes[index] = VipFailure(specs[index], exc.errno or 0,
                                             f"send: {exc.strerror}")
            return
        ignorable = (errno_mod.EEXIST,) if add else (errno_mod.EADDRNOTAVAIL, errno_mod.ENODEV)
        answered: set[int] = set()
        lost: OSError | None = None
        wait, done = True, False
        while not done:
            try:
                view = self._recv(wait)
            except BlockingIOError:  # drained after an overrun; the sentinel's ack was lost
                break
            except OSError as exc:
                lost = exc
                if exc.errno == errno_mod.ENOBUFS:
                    # The queue overflowed while the kernel answered, so some answers
                    # are lost. All it could answer was queued before send() returned:
                    # read the rest without waiting.
                    wait = False
                    continue
                break  # timeout (or a truncated read): the rest is unknown
            for kind, flags, seq, body, end in _iter_messages(view):
                if kind != NLMSG_ERROR:
                    continue
                i = (seq - base) & 0xFFFFFFFF
                if i >= count:
                    done = done or i == count  # the sentinel's ack; else a stale answer
                    continue
                answered.add(i)
                (err,) = _ERRNO.unpack_from(view, body)
                if not err:  # an ack, which these requests did not ask for
                    continue
                index = where[i][0]
                if -err in ignorable:
                    outcomes[index] = _UNCHANGED
                else:
                    err, text = _parse_error(view, body, end, flags)
                    message = os.strerror(err) + (f": {text}" if text else "")
                    outcomes[index] = VipFailure(specs[index], err, message)
        if lost is not None:
            unknown.extend((index, ifindex, lost)
                           for i, (index, ifindex) in enumerate(where) if i not in answered)

    def _settle(self, specs: Sequence[VipSpec], add: bool, outcomes: list[int | VipFailure],
                unknown: list[tuple[int, int, OSError]]) -> None:
        """Outcomes of the requests whose answers were lost, from what is configured."""
        try:
            have = [a for family in {specs[index].family for index, _, _ in unknown}
                    for a in self.dump(family=family)]
        except OSError as exc:
            for index, _ifindex, why in unknown:
                outcomes[index] = VipFailure(
                    specs[index], why.errno or errno_mod.EIO,
                    f"no answer ({why.strerror or why}) and reading back failed: {exc}")
            return
        exact = {(a.ifindex, a.address) for a in have}
        ips = {(a.ifindex, a.address.ip) for a in have}
        for index, ifindex, why in unknown:
            spec = specs[index]
            if (ifindex, spec.address) in exact:
                if add:
                    outcomes[index] = _CHANGED
                    continue
            elif not add:
                outcomes[index] = _CHANGED
                continue
            elif spec.family == socket.AF_INET6 and (ifindex, spec.address.ip) in ips:
                outcomes[index] = _UNCHANGED  # same address, other prefix: EEXIST
                continue
            state = "not configured" if add else "still configured"
            outcomes[index] = VipFailure(
                spec, why.errno or errno_mod.EIO,
                f"{why.strerror or why}: the kernel's answer was lost and the address "
                f"is {state}")

    def present(self, specs: Iterable[VipSpec]) -> set[VipSpec]:
        """The subset of `specs` configured now (same interface, address and prefix)."""
        specs = list(specs)
        families = {s.family for s in specs}
        have: set[tuple[int, IPInterface]] = set()
        for family in families:
            have.update((a.ifindex, a.address) for a in self.dump(family=family))
        return {s for s in specs
                if (s.ifindex or self._ifindex(s.ifname), s.address) in have}

    def dump(self, ifindex: int = 0, family: int = socket.AF_UNSPEC) -> list[AddrInfo]:
        """Every address (of `ifindex` if given), in the kernel's order."""
        body = _IFADDRMSG.pack(family, 0, 0, 0, 0)
        out = [a for a in self._dump(RTM_GETADDR, body, _decode_addr) if a is not None]
        return [a for a in out if a.ifindex == ifindex] if ifindex else out

    # -- links

    def interfaces(self) -> list[LinkInfo]:
        return self._dump(RTM_GETLINK, _IFINFOMSG.pack(socket.AF_UNSPEC, 0, 0, 0, 0),
                          _decode_link)

    def resolve(self, ifname: str) -> LinkInfo | None:
        """ifindex, MAC, MTU and up/down of one interface; None if it does not exist."""
        seq = self._next_seq()
        body = _IFINFOMSG.pack(socket.AF_UNSPEC, 0, 0, 0, 0) + _nla(IFLA_IFNAME,
                                                                   ifname.encode() + b"\0")
        self._sock.send(_NLMSGHDR.pack(_NLMSGHDR.size + len(body), RTM_GETLINK,
                                       NLM_F_REQUEST, seq, 0) + body)
        while True:
            view = self._recv_reply()
            for kind, flags, mseq, mbody, end in _iter_messages(view):
                if mseq != seq:
                    continue
                if kind == NLMSG_ERROR:
                    err, text = _parse_error(view, mbody, end, flags)
                    if err in (errno_mod.ENODEV, 0):
                        return None
                    raise NetlinkError(err, f"RTM_GETLINK {ifname}: {os.strerror(err)} {text}")
                if kind == RTM_NEWLINK:
                    return _decode_link(view, mbody, end)

    # -- plumbing

    def _take_seqs(self, count: int) -> int:
        """The first of `count` consecutive sequence numbers (never 0, never wrapping)."""
        base = self._seq + 1
        if base + count > 0xFFFFFFFF:
            base = 1
        self._seq = base + count - 1
        return base

    def _next_seq(self) -> int:
        return self._take_seqs(1)

    def _recv(self, wait: bool = True) -> memoryview:
        """One datagram, as a view of the read buffer (valid until the next read)."""
        try:
            n = self._sock.recv_into(self._buf, 0, socket.MSG_TRUNC if wait else
                                     socket.MSG_TRUNC | socket.MSG_DONTWAIT)
        except BlockingIOError:
            if not wait:
                raise
            raise TimeoutError(errno_mod.ETIMEDOUT,
                               f"no netlink answer within {self._timeout} s") from None
        if n > _READ_BUF:  # MSG_TRUNC: n is the datagram's real length
            raise NetlinkError(errno_mod.EMSGSIZE,
                               f"netlink datagram of {n} bytes truncated to {_READ_BUF}")
        return self._view[:n]

    def _recv_reply(self) -> memoryview:
        """_recv for dumps and queries, which the kernel never drops (it sends a dump
        as the reader makes room): ENOBUFS reports some other, earlier drop."""
        while True:
            try:
                return self._recv()
            except OSError as exc:
                if exc.errno != errno_mod.ENOBUFS:
                    raise

    @staticmethod
    def _ifindex(ifname: str | None) -> int:
        if not ifname:
            return 0
        try:
            return socket.if_nametoindex(ifname)  # an ioctl in the current namespace
        except OSError:
            return 0

    def _dump(self, kind: int, body: bytes, decode):  # type: ignore[no-untyped-def]
        seq = self._next_seq()
        self._sock.send(_NLMSGHDR.pack(_NLMSGHDR.size + len(body), kind,
                                       NLM_F_REQUEST | NLM_F_DUMP, seq, 0) + body)
        out = []
        while True:
            view = self._recv_reply()
            for mkind, flags, mseq, mbody, end in _iter_messages(view):
                if mseq != seq:
                    continue
                if mkind == NLMSG_DONE:
                    return out
                if mkind == NLMSG_ERROR:
                    err, text = _parse_error(view, mbody, end, flags)
                    raise NetlinkError(err, f"dump {kind}: {os.strerror(err)} {text}")
                out.append(decode(view, mbody, end))


# --------------------------------------------------------------------------- events


class NetlinkMonitor:
    """Link and address change notifications (RTM_NEWLINK/DELLINK/NEWADDR/DELADDR).

    Non-blocking: register `fileno()` with the event loop (`loop.add_reader`) and call
    `read()` when it is readable. A separate socket from VipManager's, so
    notifications never interleave with a batch's acks.
    """

    def __init__(self, links: bool = True, addresses: bool = True) -> None:
        groups = (RTMGRP_LINK if links else 0) | (
            RTMGRP_IPV4_IFADDR | RTMGRP_IPV6_IFADDR if addresses else 0)
        self._sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC,
                                   NETLINK_ROUTE)
        try:
            _set_buffer(self._sock, SO_RCVBUFFORCE, socket.SO_RCVBUF, _RCVBUF)
            self._sock.bind((0, groups))
            self._sock.setblocking(False)
        except BaseException:
            self._sock.close()
            raise
        self.overruns = 0  # ENOBUFS: events were lost; the caller should re-dump
        self._buf = bytearray(_READ_BUF)
        self._view = memoryview(self._buf)

    def fileno(self) -> int:
        return self._sock.fileno()

    def close(self) -> None:
        self._sock.close()

    def __enter__(self) -> NetlinkMonitor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def read(self) -> list[LinkEvent | AddrEvent]:
        """Every event queued now (empty if none)."""
        events: list[LinkEvent | AddrEvent] = []
        while True:
            try:
                n = self._sock.recv_into(self._buf, 0, socket.MSG_TRUNC)
            except BlockingIOError:
                return events
            except OSError as exc:
                if exc.errno == errno_mod.ENOBUFS:
                    self.overruns += 1
                    continue
                raise
            if n > _READ_BUF:  # cut short: its events are lost like an overrun's
                self.overruns += 1
                continue
            data = self._view[:n]
            for kind, _flags, _seq, body, end in _iter_messages(data):
                if kind in (RTM_NEWLINK, RTM_DELLINK):
                    events.append(LinkEvent(kind == RTM_DELLINK, _decode_link(data, body, end)))
                elif kind in (RTM_NEWADDR, RTM_DELADDR):
                    info = _decode_addr(data, body, end)
                    if info is not None:
                        events.append(AddrEvent(kind == RTM_DELADDR, info))
