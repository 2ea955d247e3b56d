"""Gratuitous ARP and unsolicited Neighbour Advertisement: frames and bursts.

Frames are built the way keepalived 2.2.7 builds them, byte for byte:
- ARP (vrrp_arp.c `send_gratuitous_arp_immediate()`): Ethernet to ff:ff:ff:ff:ff:ff,
  ARP *request*, sender = target = the VIP, sender MAC = the interface's MAC, target MAC
  = the broadcast address (hw_addr_bcast), no padding (42 bytes; the NIC pads).
- NA (vrrp_ndisc.c `ndisc_send_unsolicited_na_immediate()`): Ethernet to 33:33:00:00:00:01,
  IPv6 from the VIP itself to ff02::1, hop limit 255, ICMPv6 type 136 with Override set
  and Router set when the interface forwards IPv6, target = the VIP, one Target
  Link-Layer Address option (86 bytes). FRR's vrrpd (vrrp_ndisc.c) also uses the VIP as
  source; RFC 4861 7.2.2 only asks for an address of the sending interface.

A burst is `repeat` rounds of one frame per VIP (keepalived `vrrp_send_link_update()`).
Frames are built once per (interface, MAC, VIP, router flag) and a whole burst goes out
with one sendmmsg(2) per round through ctypes (Python has no sendmmsg); without it,
one sendto per frame.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import errno
import socket
import struct
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address
from typing import Protocol, TypeAlias

__all__ = [
    "GarpLink",
    "GarpSender",
    "garp_frame",
    "icmpv6_checksum",
    "ipv6_forwarding",
    "sendmmsg_available",
    "unsolicited_na_frame",
]

IPAddress: TypeAlias = IPv4Address | IPv6Address

ETH_P_ARP = 0x0806
ETH_P_IP = 0x0800
ETH_P_IPV6 = 0x86DD
ARPHRD_ETHER = 1
ARPOP_REQUEST = 1
IPPROTO_ICMPV6 = 58
ND_NEIGHBOR_ADVERT = 136
ND_OPT_TARGET_LINKADDR = 2
ND_NA_FLAG_ROUTER = 0x80000000
ND_NA_FLAG_OVERRIDE = 0x20000000
NDISC_HOPLIMIT = 255

BROADCAST_MAC = b"\xff" * 6
ALL_NODES_MAC = b"\x33\x33\x00\x00\x00\x01"  # RFC 2464 7: 33:33 + last 4 octets of ff02::1
ALL_NODES = IPv6Address("ff02::1").packed

_ETH = struct.Struct("!6s6sH")
_ARP = struct.Struct("!HHBBH6s4s6s4s")
_IP6 = struct.Struct("!IHBB16s16s")
_NA = struct.Struct("!BBHI16s")
_NA_OPT = struct.Struct("!BB6s")
_NA_LEN = _NA.size + _NA_OPT.size  # ICMPv6 payload length: 32

# keepalived re-reads the interface's IPv6 forwarding flag at most every 5 s.
ROUTER_CHECK_INTERVAL = 5.0
_PLAN_CACHE = 256  # bursts remembered with their sendmmsg vectors (send_burst)
# Bursts remembered as frames only (send_bursts): a whole mass takeover's, so its first
# round and its repeats build nothing. A 256-burst LRU re-planned every one of a
# thousand instances twice per takeover, ~12 us each, in front of the first GARPs.
_FRAME_CACHE = 8192
_SNDBUF = 8 << 20
_SO_SNDBUFFORCE = 32  # asm-generic/socket.h; needs CAP_NET_ADMIN


def _mac(mac: bytes) -> bytes:
    if len(mac) != 6:
        raise ValueError(f"need a 6-byte Ethernet address, got {len(mac)} bytes")
    return mac


def garp_frame(src_mac: bytes, ip: bytes) -> bytes:
    """A gratuitous ARP request for `ip` (4 bytes) from `src_mac`, Ethernet header included."""
    _mac(src_mac)
    if len(ip) != 4:
        raise ValueError("a gratuitous ARP is for a 4-byte IPv4 address")
    return _ETH.pack(BROADCAST_MAC, src_mac, ETH_P_ARP) + _ARP.pack(
        ARPHRD_ETHER, ETH_P_IP, 6, 4, ARPOP_REQUEST, src_mac, ip, BROADCAST_MAC, ip)


def icmpv6_checksum(src: bytes, dst: bytes, payload: bytes) -> int:
    """RFC 4443 2.3 checksum over the IPv6 pseudo-header and `payload` (checksum field 0)."""
    data = src + dst + struct.pack("!I3xB", len(payload), IPPROTO_ICMPV6) + payload
    if len(data) & 1:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total > 0xFFFF:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def unsolicited_na_frame(src_mac: bytes, src_ip: bytes | None, vip: bytes, router: bool) -> bytes:
    """An unsolicited Neighbour Advertisement for `vip` (16 bytes) to ff02::1.

    `src_ip` None sends from the VIP itself, as keepalived and FRR do; give a
    link-local address to send from that instead.
    """
    _mac(src_mac)
    if len(vip) != 16 or (src_ip is not None and len(src_ip) != 16):
        raise ValueError("a Neighbour Advertisement carries 16-byte IPv6 addresses")
    src = vip if src_ip is None else src_ip
    flags = ND_NA_FLAG_OVERRIDE | (ND_NA_FLAG_ROUTER if router else 0)
    option = _NA_OPT.pack(ND_OPT_TARGET_LINKADDR, 1, src_mac)
    unsummed = _NA.pack(ND_NEIGHBOR_ADVERT, 0, 0, flags, vip) + option
    checksum = icmpv6_checksum(src, ALL_NODES, unsummed)
    icmp = _NA.pack(ND_NEIGHBOR_ADVERT, 0, checksum, flags, vip) + option
    ip6 = _IP6.pack(6 << 28, _NA_LEN, IPPROTO_ICMPV6, NDISC_HOPLIMIT, src, ALL_NODES)
    return _ETH.pack(ALL_NODES_MAC, src_mac, ETH_P_IPV6) + ip6 + icmp


def ipv6_forwarding(ifname: str) -> bool:
    """Whether `ifname` forwards IPv6 (the NA Router flag; keepalived
    set_ipv6_forwarding()). Read from /proc/sys/net, which shows the caller's namespace."""
    try:
        with open(f"/proc/sys/net/ipv6/conf/{ifname}/forwarding", "rb") as f:
            return f.read().strip() not in (b"", b"0")
    except OSError:  # IPv6 disabled or interface gone: no router claim
        return False


# --------------------------------------------------------------------------- sendmmsg


class _Iovec(ctypes.Structure):
    _fields_ = [("iov_base", ctypes.c_void_p), ("iov_len", ctypes.c_size_t)]


class _Msghdr(ctypes.Structure):
    _fields_ = [("msg_name", ctypes.c_void_p), ("msg_namelen", ctypes.c_uint32),
                ("msg_iov", ctypes.POINTER(_Iovec)), ("msg_iovlen", ctypes.c_size_t),
                ("msg_control", ctypes.c_void_p), ("msg_controllen", ctypes.c_size_t),
                ("msg_flags", ctypes.c_int)]


class _Mmsghdr(ctypes.Structure):
    _fields_ = [("msg_hdr", _Msghdr), ("msg_len", ctypes.c_uint)]


class _SockaddrLl(ctypes.Structure):
    _fields_ = [("sll_family", ctypes.c_ushort), ("sll_protocol", ctypes.c_uint16),
                ("sll_ifindex", ctypes.c_int), ("sll_hatype", ctypes.c_ushort),
                ("sll_pkttype", ctypes.c_ubyte), ("sll_halen", ctypes.c_ubyte),
                ("sll_addr", ctypes.c_ubyte * 8)]


def _load_sendmmsg() -> Callable[..., int] | None:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
        func = libc.sendmmsg
    except (OSError, AttributeError):
        return None
    func.argtypes = [ctypes.c_int, ctypes.POINTER(_Mmsghdr), ctypes.c_uint, ctypes.c_int]
    func.restype = ctypes.c_int
    return func


_sendmmsg = _load_sendmmsg()


class _Batch:
    """Frames of one kind (same EtherType) for one interface, laid out for sendmmsg.

    The ctypes arrays point into `self._buf`, which this object keeps alive.
    """

    def __init__(self, ifindex: int, frames: Sequence[bytes], protocol: int) -> None:
        self.frames = list(frames)
        self.protocol = protocol
        n = len(self.frames)
        self._buf = ctypes.create_string_buffer(b"".join(self.frames), sum(map(len, frames)) or 1)
        # One mmsghdr per frame, so a send can start at any frame (send_paced, retries).
        self._addr = _SockaddrLl(socket.AF_PACKET, socket.htons(protocol), ifindex)
        self._iov = (_Iovec * max(n, 1))()
        self._msgs = (_Mmsghdr * max(n, 1))()
        base = ctypes.addressof(self._buf)
        offset = 0
        for i, frame in enumerate(self.frames):
            self._iov[i].iov_base = base + offset
            self._iov[i].iov_len = len(frame)
            hdr = self._msgs[i].msg_hdr
            hdr.msg_name = ctypes.addressof(self._addr)
            hdr.msg_namelen = ctypes.sizeof(_SockaddrLl)
            hdr.msg_iov = ctypes.pointer(self._iov[i])
            hdr.msg_iovlen = 1
            offset += len(frame)

    def send(self, sock: socket.socket, ifname: str, first: int = 0,
             count: int | None = None) -> int:
        """Send frames[first:first+count]; return how many went out (stops at an error)."""
        end = len(self.frames) if count is None else min(len(self.frames), first + count)
        if _sendmmsg is None:
            return self._send_each(sock, ifname, first, end)
        fd = sock.fileno()
        done = first
        while done < end:
            sent = _sendmmsg(fd, ctypes.byref(self._msgs[done]), end - done, 0)
            if sent <= 0:
                if sent < 0 and ctypes.get_errno() == errno.EINTR:
                    continue
                break  # EAGAIN (buffer full), ENETDOWN, ENXIO...: the rest is dropped
            done += sent
        return done - first

    def _send_each(self, sock: socket.socket, ifname: str, first: int, end: int) -> int:
        addr = (ifname, self.protocol)
        for i in range(first, end):
            try:
                sock.sendto(self.frames[i], addr)
            except OSError:
                return i - first
        return end - first


class LinkLike(Protocol):
    """What a burst needs to know of an interface (vips.LinkInfo fits)."""

    @property
    def ifindex(self) -> int: ...
    @property
    def ifname(self) -> str: ...
    @property
    def mac(self) -> bytes: ...


@dataclass(frozen=True, slots=True)
class GarpLink:
    ifindex: int
    ifname: str
    mac: bytes


@dataclass(slots=True)
class _Plan:
    arp: _Batch
    na: _Batch


class GarpSender:
    """Sends GARP/NA bursts; one AF_PACKET socket per interface, created on first use.

    The sockets are opened with protocol 0, so they never receive (keepalived opens
    its with ETH_P_ARP / ETH_P_IPV6 and so queues every ARP/IPv6 frame it never reads).
    """

    def __init__(self, router_check_interval: float = ROUTER_CHECK_INTERVAL) -> None:
        self._sockets: dict[int, socket.socket] = {}
        self._plans: OrderedDict[tuple[object, ...], _Plan] = OrderedDict()
        self._frames: OrderedDict[tuple[object, ...], tuple[list[bytes], list[bytes]]] = OrderedDict()
        self._router: dict[int, tuple[float, bool]] = {}  # ifindex -> (checked at, flag)
        self._router_check_interval = router_check_interval
        self.sent = 0
        self.errors = 0  # frames that could not be sent (ENOBUFS, interface down, ...)

    def close(self) -> None:
        for sock in self._sockets.values():
            sock.close()
        self._sockets.clear()
        self._plans.clear()
        self._frames.clear()

    def __enter__(self) -> GarpSender:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def forget(self, ifindex: int) -> None:
        """Drop the socket and prebuilt frames of an interface (deleted, MAC changed)."""
        sock = self._sockets.pop(ifindex, None)
        if sock is not None:
            sock.close()
        for cache in (self._plans, self._frames):
            for key in [k for k in cache if k[0] == ifindex]:
                del cache[key]
        self._router.pop(ifindex, None)

    def frames(self, link: LinkLike, vips: Sequence[IPAddress]) -> list[bytes]:
        """The frames one round of a burst sends (ARPs first, then NAs)."""
        plan = self._plan(link, vips)
        return plan.arp.frames + plan.na.frames

    def send_burst(self, link: LinkLike, vips: Sequence[IPAddress], repeat: int = 1) -> int:
        """`repeat` rounds, back to back, of one GARP/NA per VIP (garp/gna_interval 0).
        Returns the number of frames sent."""
        plan = self._plan(link, vips)
        sock = self._socket(link.ifindex)
        total = 0
        for _ in range(repeat):
            for batch in (plan.arp, plan.na):
                if batch.frames:
                    sent = batch.send(sock, link.ifname)
                    total += sent
                    self.errors += len(batch.frames) - sent
        self.sent += total
        return total

    def prepare(self, bursts: Sequence[tuple[LinkLike, Sequence[IPAddress]]]) -> None:
        """Build these bursts' frames now (at start-up): a daemon's first mass
        takeover would otherwise build them between its takeovers, ~12 µs apiece."""
        for link, vips in bursts:
            self._frames_of(link, vips)

    def send_bursts(self, bursts: Sequence[tuple[LinkLike, Sequence[IPAddress]]],
                    repeat: int = 1) -> int:
        """send_burst for many (link, VIPs) at once, round by round: each round is one
        sendmmsg per interface and kind carrying every burst's frames, so a mass
        takeover's first GARPs all leave before any repeat. Returns the frames sent."""
        by_link: dict[int, tuple[LinkLike, list[bytes], list[bytes]]] = {}
        for link, vips in bursts:
            arp, na = self._frames_of(link, vips)
            entry = by_link.setdefault(link.ifindex, (link, [], []))
            entry[1].extend(arp)
            entry[2].extend(na)
        batches = []
        for ifindex, (link, arp, na) in by_link.items():
            for frames, proto in ((arp, ETH_P_ARP), (na, ETH_P_IPV6)):
                if frames:
                    batches.append((link, _Batch(ifindex, frames, proto)))
        total = 0
        for _ in range(repeat):
            for link, batch in batches:
                sent = batch.send(self._socket(link.ifindex), link.ifname)
                total += sent
                self.errors += len(batch.frames) - sent
        self.sent += total
        return total

    async def send_paced(self, link: LinkLike, vips: Sequence[IPAddress], repeat: int = 1,
                         garp_interval: float = 0.0, gna_interval: float = 0.0) -> int:
        """Like send_burst, but consecutive ARPs are `garp_interval` seconds apart and
        consecutive NAs `gna_interval` apart (keepalived vrrp_garp_interval /
        vrrp_gna_interval: the two kinds are paced independently)."""
        plan = self._plan(link, vips)
        sock = self._socket(link.ifindex)

        async def stream(batch: _Batch, interval: float) -> int:
            if not batch.frames:
                return 0
            sent = 0
            first = True
            for _ in range(repeat):
                if interval <= 0:
                    sent += batch.send(sock, link.ifname)
                    continue
                for i in range(len(batch.frames)):
                    if not first:
                        await asyncio.sleep(interval)
                    first = False
                    sent += batch.send(sock, link.ifname, i, 1)
            self.errors += repeat * len(batch.frames) - sent
            return sent

        counts = await asyncio.gather(stream(plan.arp, garp_interval),
                                      stream(plan.na, gna_interval))
        self.sent += sum(counts)
        return sum(counts)

    # -- internals

    def _socket(self, ifindex: int) -> socket.socket:
        sock = self._sockets.get(ifindex)
        if sock is None:
            # Non-blocking like keepalived's: a stalled NIC must not stall the daemon's
            # loop; a frame that finds the buffer full is dropped and counted. The
            # buffer is sized for a whole burst (1000 VIPs x 5) in flight.
            sock = socket.socket(socket.AF_PACKET,
                                 socket.SOCK_RAW | socket.SOCK_CLOEXEC | socket.SOCK_NONBLOCK, 0)
            for option in (_SO_SNDBUFFORCE, socket.SO_SNDBUF):  # FORCE: past wmem_max
                try:
                    sock.setsockopt(socket.SOL_SOCKET, option, _SNDBUF)
                    break
                except OSError:
                    continue
            self._sockets[ifindex] = sock
        return sock

    def _is_router(self, link: LinkLike) -> bool:
        now = time.monotonic()
        checked = self._router.get(link.ifindex)
        if checked is None or now - checked[0] >= self._router_check_interval:
            checked = (now, ipv6_forwarding(link.ifname))
            self._router[link.ifindex] = checked
        return checked[1]

    def _key(self, link: LinkLike, vips: Sequence[IPAddress]) -> tuple[object, ...]:
        router = self._is_router(link) if any(ip.version == 6 for ip in vips) else False
        return (link.ifindex, link.mac, router, tuple(vips))

    def _frames_of(self, link: LinkLike, vips: Sequence[IPAddress]) -> tuple[list[bytes], list[bytes]]:
        """(ARP frames, NA frames) of one round of a burst."""
        key = self._key(link, vips)
        frames = self._frames.get(key)
        if frames is not None:
            self._frames.move_to_end(key)
            return frames
        mac = _mac(bytes(link.mac))
        router = key[2]
        arp = [garp_frame(mac, ip.packed) for ip in vips if ip.version == 4]
        na = [unsolicited_na_frame(mac, None, ip.packed, router) for ip in vips if ip.version == 6]
        frames = self._frames[key] = (arp, na)
        if len(self._frames) > _FRAME_CACHE:
            self._frames.popitem(last=False)
        return frames

    def _plan(self, link: LinkLike, vips: Sequence[IPAddress]) -> _Plan:
        key = self._key(link, vips)
        plan = self._plans.get(key)
        if plan is not None:
            self._plans.move_to_end(key)
            return plan
        arp, na = self._frames_of(link, vips)
        plan = _Plan(_Batch(link.ifindex, arp, ETH_P_ARP), _Batch(link.ifindex, na, ETH_P_IPV6))
        self._plans[key] = plan
        if len(self._plans) > _PLAN_CACHE:
            self._plans.popitem(last=False)
        return plan


def sendmmsg_available() -> bool:
    """Whether bursts go out with sendmmsg (else one sendto per frame)."""
    return _sendmmsg is not None

