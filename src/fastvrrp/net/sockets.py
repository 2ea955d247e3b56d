"""Raw VRRP sockets (IP protocol 112), set up as keepalived does (vrrp.c
open_vrrp_send_socket / open_vrrp_read_socket, vrrp_if.c if_setsockopt_*).

Per (interface, family) there is one receive socket, shared by every instance on it
and demultiplexed by VRID, and one send socket:

* receive: bound to the device, joined to 224.0.0.18 / ff02::12 (or the configured
  group) and bound to it so unicast noise is not queued; a unicast receive socket is
  bound to its unicast_src_ip instead. IPv6 asks for the hop limit and the
  destination as ancillary data (the kernel strips the IPv6 header).
* send: IPv4 with IP_HDRINCL, so a master's whole datagram (TTL 255, TOS 0xc0, its
  own source address) is pre-built and one sendmmsg sends a batch; IPv6 with the
  kernel computing the checksum (IPV6_CHECKSUM at offset 6), hop limit 255 and a
  sticky IPV6_PKTINFO choosing the link-local source. A BPF filter that accepts
  nothing keeps the send socket from queueing copies of received traffic.

Everything here is plain setsockopt; the per-packet work (recvmmsg, validation,
sendmmsg) happens in C in fastvrrp._fastpath.
"""

from __future__ import annotations

import ctypes
import ipaddress
import socket
import struct

VRRP_PROTO = 112
MCAST4 = "224.0.0.18"
MCAST6 = "ff02::12"
TOS_INTERNETWORK_CONTROL = 0xC0  # keepalived's if_setsockopt_priority

# Linux values Python's socket module does not export.
IP_MULTICAST_ALL = 49
IPV6_MULTICAST_ALL = 29
IPV6_CHECKSUM = 7
SO_ATTACH_FILTER = 26
IPV6_RECVHOPLIMIT = getattr(socket, "IPV6_RECVHOPLIMIT", 51)
IPV6_RECVPKTINFO = getattr(socket, "IPV6_RECVPKTINFO", 49)
IPV6_PKTINFO = getattr(socket, "IPV6_PKTINFO", 50)
IPV6_HOPLIMIT = getattr(socket, "IPV6_HOPLIMIT", 52)
SO_BINDTODEVICE = getattr(socket, "SO_BINDTODEVICE", 25)
# Linux asm-generic values (Python's socket module has no names for them): a receive
# timestamp (struct timespec, CLOCK_REALTIME) as ancillary data on every packet.
SO_TIMESTAMPNS = 35
SCM_TIMESTAMPNS = SO_TIMESTAMPNS
TIMESPEC = struct.Struct("@qq")
ARRIVAL_MAX_AGE_NS = 1_000_000_000  # older, or from the future: a clock step, not an age


def _bind_to_device(sock: socket.socket, ifname: str) -> None:
    sock.setsockopt(socket.SOL_SOCKET, SO_BINDTODEVICE, ifname.encode() + b"\0")


def _no_stray_multicast(sock: socket.socket, family: int) -> None:
    # Only groups joined on this socket are delivered to it (keepalived
    # if_setsockopt_mcast_all), not every group joined anywhere on the host.
    if family == socket.AF_INET:
        sock.setsockopt(socket.IPPROTO_IP, IP_MULTICAST_ALL, 0)
    else:
        sock.setsockopt(socket.IPPROTO_IPV6, IPV6_MULTICAST_ALL, 0)


def _attach_drop_all_filter(sock: socket.socket) -> None:
    # BPF "ret #0": the send socket never queues received packets.
    insn = struct.pack("HBBI", 0x06, 0, 0, 0)
    buf = ctypes.create_string_buffer(insn)
    prog = struct.pack("HL", 1, ctypes.addressof(buf))
    sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, prog)  # the kernel copies it


def open_receive_socket(family: int, ifname: str, ifindex: int, *,
                        group: str | None = None, unicast_src: str | None = None,
                        rcvbuf: int = 0) -> socket.socket:
    """A non-blocking raw VRRP socket receiving on `ifname`.

    Multicast (the default): joined to `group` (224.0.0.18 / ff02::12 when None)
    on that interface and bound to it. Unicast: bound to `unicast_src`.
    """
    sock = socket.socket(family, socket.SOCK_RAW | socket.SOCK_NONBLOCK | socket.SOCK_CLOEXEC,
                         VRRP_PROTO)
    try:
        if rcvbuf:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        _no_stray_multicast(sock, family)
        if unicast_src is None:
            group = group or (MCAST4 if family == socket.AF_INET else MCAST6)
            if family == socket.AF_INET:
                mreqn = socket.inet_aton(group) + socket.inet_aton("0.0.0.0") + struct.pack("@i", ifindex)
                sock.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, mreqn)
                sock.bind((group, 0))
            else:
                mreq6 = socket.inet_pton(socket.AF_INET6, group) + struct.pack("@I", ifindex)
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_JOIN_GROUP, mreq6)
                sock.bind((group, 0, 0, ifindex))
        else:
            if family == socket.AF_INET:
                sock.bind((unicast_src, 0))
            else:
                scope = ifindex if ipaddress.IPv6Address(unicast_src).is_link_local else 0
                sock.bind((unicast_src, 0, 0, scope))
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, IPV6_RECVHOPLIMIT, 1)
            sock.setsockopt(socket.IPPROTO_IPV6, IPV6_RECVPKTINFO, 1)
        # The steady backup re-arms Master_Down from the advert's arrival, not from
        # when the daemon got round to reading it (RFC 5798 6.4.2).
        sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        _bind_to_device(sock, ifname)
    except BaseException:
        sock.close()
        raise
    return sock


def open_send_socket(family: int, ifname: str, ifindex: int, *, multicast: bool = True,
                     source6: str | None = None) -> socket.socket:
    """A non-blocking raw VRRP socket sending on `ifname`.

    IPv4 datagrams carry their own IP header (IP_HDRINCL). IPv6 needs `source6`,
    the link-local (or unicast_src_ip) address the adverts come from.
    """
    sock = socket.socket(family, socket.SOCK_RAW | socket.SOCK_NONBLOCK | socket.SOCK_CLOEXEC,
                         VRRP_PROTO)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 0)
        _no_stray_multicast(sock, family)
        if family == socket.AF_INET:
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_HDRINCL, 1)
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_TOS, TOS_INTERNETWORK_CONTROL)
        else:
            sock.setsockopt(socket.IPPROTO_IPV6, IPV6_CHECKSUM, 6)
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_TCLASS, TOS_INTERNETWORK_CONTROL)
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_UNICAST_HOPS, 255)
            if source6 is None:
                raise ValueError("an IPv6 send socket needs its source address")
            pktinfo = socket.inet_pton(socket.AF_INET6, source6) + struct.pack("@I", ifindex)
            sock.setsockopt(socket.IPPROTO_IPV6, IPV6_PKTINFO, pktinfo)
        _bind_to_device(sock, ifname)
        if multicast:
            if family == socket.AF_INET:
                mreqn = socket.inet_aton("0.0.0.0") + socket.inet_aton("0.0.0.0") + struct.pack("@i", ifindex)
                sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, mreqn)
                sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_LOOP, 0)
            else:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_IF, ifindex)
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_LOOP, 0)
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, 255)
        _attach_drop_all_filter(sock)
    except BaseException:
        sock.close()
        raise
    return sock


ANCILLARY_SPACE = socket.CMSG_SPACE(20) + socket.CMSG_SPACE(4) + socket.CMSG_SPACE(TIMESPEC.size)


def arrival_ns(stamp_real_ns: int | None, now_mono_ns: int, now_real_ns: int) -> int:
    """A packet's receive timestamp (CLOCK_REALTIME) as CLOCK_MONOTONIC: now minus its
    age, with both clocks read together. Without a plausible stamp: now."""
    if stamp_real_ns is None:
        return now_mono_ns
    age = now_real_ns - stamp_real_ns
    return now_mono_ns - age if 0 <= age <= ARRIVAL_MAX_AGE_NS else now_mono_ns


def recv_ipv4(sock: socket.socket, bufsize: int = 2048):
    """One IPv4 datagram (IP header included) and its receive timestamp (realtime ns,
    None when absent)."""
    data, ancdata, _flags, _addr = sock.recvmsg(bufsize, ANCILLARY_SPACE)
    return data, _stamp(ancdata)


def recv_ipv6(sock: socket.socket, bufsize: int = 2048):
    """One IPv6 VRRP message with (src, dst, hop_limit) from ancillary data.

    The slow path's receive; the fast path does the same with recvmmsg in C.
    Returns (message, src16, dst16, hop_limit, stamp) with hop_limit -1 when absent
    and stamp the receive timestamp (realtime ns) or None.
    """
    data, ancdata, _flags, addr = sock.recvmsg(bufsize, ANCILLARY_SPACE)
    dst = b"\0" * 16
    hop = -1
    for level, kind, value in ancdata:
        if level == socket.IPPROTO_IPV6 and kind == IPV6_PKTINFO:
            dst = value[:16]
        elif level == socket.IPPROTO_IPV6 and kind == IPV6_HOPLIMIT:
            hop = struct.unpack("@i", value[:4])[0]
    src = socket.inet_pton(socket.AF_INET6, addr[0].split("%")[0])
    return data, src, dst, hop, _stamp(ancdata)


def _stamp(ancdata) -> int | None:
    for level, kind, value in ancdata:
        if level == socket.SOL_SOCKET and kind == SCM_TIMESTAMPNS and len(value) >= TIMESPEC.size:
            sec, nsec = TIMESPEC.unpack_from(value)
            return sec * 1_000_000_000 + nsec
    return None
