"""Virtual addresses through rtnetlink, in batches; interface lookup; link/address events.

keepalived adds each VIP with its own RTM_NEWADDR and waits for the ack
(`netlink_ipaddress()` in vrrp_ipaddress.c). Here a whole batch is written with as few
send() calls as fit in the socket buffer, and the acks are collected afterwards and
matched back to their address by sequence number, so 1000 VIPs cost a handful of
system calls instead of 2000 round trips (DESIGN.md: "Netlink changes for many VIPs are
batched").

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

# The kernel answers one batch write with one ack per message; bound a write so the
# acks of one write always fit the receive buffer (an overflowing netlink receive
# queue drops acks and we could not tell which address they were for).
_MAX_WRITE = 64 * 1024
_RCVBUF = 1 << 20
_CHANGED, _UNCHANGED, _FAILED = 0, 1, 2  # outcome of one address in a batch


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


def _iter_messages(data: bytes) -> Iterator[tuple[int, int, int, int, int]]:
    """(type, flags, seq, body offset, message end) for each message in a datagram."""
    offset = 0
    while offset + _NLMSGHDR.size <= len(data):
        length, kind, flags, seq, _pid = _NLMSGHDR.unpack_from(data, offset)
        if length < _NLMSGHDR.size:
            break
        yield kind, flags, seq, offset + _NLMSGHDR.size, offset + length
        offset += _align(length)


def _parse_error(data: bytes, body: int, end: int, flags: int) -> tuple[int, str]:
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


def _decode_addr(data: bytes, body: int, end: int) -> AddrInfo | None:
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


def _decode_link(data: bytes, body: int, end: int) -> LinkInfo:
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


def encode_addr_request(spec: VipSpec, ifindex: int, add: bool, seq: int) -> bytes:
    """One RTM_NEWADDR (add) or RTM_DELADDR request with NLM_F_ACK, as keepalived's
    netlink_ipaddress() builds it (IFA_LOCAL; brd, flags, label, peer, cacheinfo on add).

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
    nl_flags = NLM_F_REQUEST | NLM_F_ACK | (NLM_F_CREATE | NLM_F_EXCL if add else 0)
    return _NLMSGHDR.pack(_NLMSGHDR.size + len(body), kind, nl_flags, seq, 0) + body


# --------------------------------------------------------------------------- manager


class VipManager:
    """Adds and removes VIPs in batches over one rtnetlink socket in the current
    namespace. One per daemon; not thread-safe. Every call is synchronous: the kernel
    answers address changes in microseconds, so a 1000-address batch takes a few ms."""

    def __init__(self, timeout: float = 5.0) -> None:
        self._sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC,
                                   NETLINK_ROUTE)
        try:
            self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, _RCVBUF)
            self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, _RCVBUF)
            for opt in (NETLINK_CAP_ACK, NETLINK_EXT_ACK):
                try:
                    self._sock.setsockopt(SOL_NETLINK, opt, 1)
                except OSError:  # older kernels: full acks, no reason text
                    pass
            self._sock.bind((0, 0))
            self._sock.settimeout(timeout)
        except BaseException:
            self._sock.close()
            raise
        self._seq = 0

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

    def _batch(self, specs: Sequence[VipSpec], add: bool) -> VipBatchResult:
        outcomes: list[tuple[int, int, VipSpec, VipFailure | None]] = []  # (index, kind, ...)
        pending: dict[int, tuple[int, VipSpec]] = {}  # seq -> (index in batch, spec)
        chunk: list[bytes] = []
        size = 0
        for index, spec in enumerate(specs):
            ifindex = spec.ifindex or self._ifindex(spec.ifname)
            if not ifindex:
                if add:
                    failure = VipFailure(spec, errno_mod.ENODEV, f"no interface {spec.ifname!r}")
                    outcomes.append((index, _FAILED, spec, failure))
                else:
                    outcomes.append((index, _UNCHANGED, spec, None))
                continue
            seq = self._next_seq()
            msg = encode_addr_request(spec, ifindex, add, seq)
            if size + len(msg) > _MAX_WRITE:
                self._flush(chunk, pending, add, outcomes)
                chunk, size = [], 0
            chunk.append(msg)
            size += len(msg)
            pending[seq] = (index, spec)
        self._flush(chunk, pending, add, outcomes)
        outcomes.sort(key=lambda o: o[0])
        result = VipBatchResult()
        for _index, kind, spec, failure in outcomes:
            if kind == _CHANGED:
                result.changed.append(spec)
            elif kind == _UNCHANGED:
                result.unchanged.append(spec)
            else:
                assert failure is not None
                result.failed.append(failure)
        return result

    def _flush(self, chunk: list[bytes], pending: dict[int, tuple[int, VipSpec]], add: bool,
               outcomes: list[tuple[int, int, VipSpec, VipFailure | None]]) -> None:
        """Send one write of requests and collect an ack for each of them."""
        if not chunk:
            return
        try:
            self._sock.send(b"".join(chunk))
        except OSError as exc:
            for index, spec in pending.values():
                failure = VipFailure(spec, exc.errno or 0, f"send: {exc.strerror}")
                outcomes.append((index, _FAILED, spec, failure))
            pending.clear()
            return
        ignorable = (errno_mod.EEXIST,) if add else (errno_mod.EADDRNOTAVAIL, errno_mod.ENODEV)
        while pending:
            try:
                data = self._sock.recv(_RCVBUF)
            except OSError as exc:  # timeout or ENOBUFS: the rest cannot be known
                for index, spec in pending.values():
                    failure = VipFailure(spec, exc.errno or errno_mod.ETIMEDOUT, f"no ack: {exc}")
                    outcomes.append((index, _FAILED, spec, failure))
                pending.clear()
                return
            for kind, flags, seq, body, end in _iter_messages(data):
                entry = pending.pop(seq, None)
                if entry is None or kind != NLMSG_ERROR:
                    continue  # a late answer to an earlier, abandoned batch
                index, spec = entry
                err, text = _parse_error(data, body, end, flags)
                if err == 0:
                    outcomes.append((index, _CHANGED, spec, None))
                elif err in ignorable:
                    outcomes.append((index, _UNCHANGED, spec, None))
                else:
                    message = os.strerror(err) + (f": {text}" if text else "")
                    outcomes.append((index, _FAILED, spec, VipFailure(spec, err, message)))

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
            data = self._sock.recv(_RCVBUF)
            for kind, flags, mseq, mbody, end in _iter_messages(data):
                if mseq != seq:
                    continue
                if kind == NLMSG_ERROR:
                    err, text = _parse_error(data, mbody, end, flags)
                    if err in (errno_mod.ENODEV, 0):
                        return None
                    raise NetlinkError(err, f"RTM_GETLINK {ifname}: {os.strerror(err)} {text}")
                if kind == RTM_NEWLINK:
                    return _decode_link(data, mbody, end)

    # -- plumbing

    def _next_seq(self) -> int:
        self._seq = (self._seq + 1) & 0xFFFFFFFF or 1
        return self._seq

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
            data = self._sock.recv(_RCVBUF)
            for mkind, flags, mseq, mbody, end in _iter_messages(data):
                if mseq != seq:
                    continue
                if mkind == NLMSG_DONE:
                    return out
                if mkind == NLMSG_ERROR:
                    err, text = _parse_error(data, mbody, end, flags)
                    raise NetlinkError(err, f"dump {kind}: {os.strerror(err)} {text}")
                out.append(decode(data, mbody, end))


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
            self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, _RCVBUF)
            self._sock.bind((0, groups))
            self._sock.setblocking(False)
        except BaseException:
            self._sock.close()
            raise
        self.overruns = 0  # ENOBUFS: events were lost; the caller should re-dump

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
                data = self._sock.recv(_RCVBUF)
            except BlockingIOError:
                return events
            except OSError as exc:
                if exc.errno == errno_mod.ENOBUFS:
                    self.overruns += 1
                    continue
                raise
            for kind, _flags, _seq, body, end in _iter_messages(data):
                if kind in (RTM_NEWLINK, RTM_DELLINK):
                    events.append(LinkEvent(kind == RTM_DELLINK, _decode_link(data, body, end)))
                elif kind in (RTM_NEWADDR, RTM_DELADDR):
                    info = _decode_addr(data, body, end)
                    if info is not None:
                        events.append(AddrEvent(kind == RTM_DELADDR, info))
