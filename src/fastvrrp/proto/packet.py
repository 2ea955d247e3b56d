"""VRRP advertisement codec: the reference implementation.

Pure Python twin of the compiled `fastvrrp._wire` (ext/_wire.pyx). Both expose the
same API and must agree on every input (tests/unit/test_wire_agreement.py):

* `inet_checksum(data)` — RFC 1071 checksum.
* `encode(...)` and `AdvertEncoder` — build an advertisement (the VRRP message only;
  the kernel adds the IP header).
* `parse_ipv4(datagram)` / `parse_ipv6(message, src, dst, hop_limit)` — structural
  checks and checksum-form detection, no configuration needed.
* `validate_ipv4(datagram, table)` / `validate_ipv6(message, src, dst, hop_limit,
  table)` — the above plus every check against the receiving instance's `Expect`.

Every parse/validate returns `(reason, advert)`: `reason` is an int from `Reason`
(0 = accept), `advert` is the decoded `Advert` once the header was sound enough to
decode (so drops can be logged with their VRID and source), else None.

IPv4 raw sockets deliver the IP header, so `*_ipv4` take the whole datagram; IPv6
raw sockets strip it, so `*_ipv6` take the message plus the addresses and hop limit
from ancillary data. Inputs may be any buffer (bytes, bytearray, memoryview): nothing
is copied except the small fields of the returned Advert.
"""

from __future__ import annotations

import sys
from array import array
from enum import IntEnum, IntFlag

VRRP_PROTO = 112
ADVERTISEMENT = 1
AUTH_NONE, AUTH_PASS, AUTH_AH = 0, 1, 2
AUTH_LEN = 8
MCAST4 = bytes((224, 0, 0, 18))
MCAST6 = bytes.fromhex("ff020000000000000000000000000012")
MAX_V3_INTERVAL = 0x0FFF


class Reason(IntEnum):
    """Why a received packet is accepted (OK, ADDR_LIST_MISMATCH) or dropped."""

    OK = 0
    TOO_SHORT = 1  # shorter than an IP header, the VRRP header, or the IP total length
    BAD_IP_HEADER = 2  # IPv4: not version 4, IHL < 5, protocol not 112, bad total length
    BAD_VERSION = 3  # VRRP version neither 2 nor 3, or version 2 over IPv6
    BAD_TYPE = 4  # not an ADVERTISEMENT
    BAD_LENGTH = 5  # length does not match the address count (+ v2 auth data)
    BAD_CHECKSUM = 6  # no known checksum form verifies
    VRID_UNKNOWN = 7  # no instance on this socket has that VRID
    VERSION_MISMATCH = 8  # version differs from the instance's
    BAD_TTL = 9  # multicast with IPv4 TTL / IPv6 hop limit not 255
    MODE_MISMATCH = 10  # multicast to a unicast instance, or unicast to a multicast one
    CHECKSUM_FORM = 11  # checksum verifies, but in a form this instance does not use
    AUTH_TYPE_MISMATCH = 12  # v2 auth type differs from the instance's
    AUTH_FAILURE = 13  # v2 simple password differs
    AUTH_AH_UNSUPPORTED = 14  # v2 IP AH: recognised, never verified here
    INTERVAL_MISMATCH = 15  # v2 advert interval differs (dropped, as keepalived does)
    ADDR_LIST_MISMATCH = 16  # address count or list differs: log it, not a drop (RFC)


def is_drop(reason: int) -> bool:
    return reason != Reason.OK and reason != Reason.ADDR_LIST_MISMATCH


class ChecksumForm(IntFlag):
    """The ways peers compute the checksum; validation reports which one verified."""

    V2 = 1  # VRRPv2: over the message only
    PSEUDO = 2  # v3 with the IPv4/IPv6 pseudo-header (RFC 5798, keepalived and FRR default)
    PLAIN = 4  # v3/IPv4 without pseudo-header (RFC 9568; keepalived v3_checksum_as_v2)
    OLD_UNICAST = 8  # v3/IPv4 unicast with 224.0.0.18 as pseudo-header dst (keepalived < 1.3.7)


# --------------------------------------------------------------------------- checksum

_LITTLE = sys.byteorder == "little"


def _sum16(data) -> int:
    """One's-complement partial sum of `data` as network-order 16-bit words.

    array('H') sums whole words in C; the byte order of the host only swaps the
    bytes of the folded result (RFC 1071 §2(B)).
    """
    mv = memoryview(data).cast("B")
    n = len(mv)
    words = array("H")
    words.frombytes(mv[: n & ~1])
    total = sum(words)
    if n & 1:
        total += mv[n - 1] if _LITTLE else mv[n - 1] << 8
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    if _LITTLE:
        total = ((total & 0xFF) << 8) | (total >> 8)
    return total


def _fold(total: int) -> int:
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return total


def inet_checksum(data, initial: int = 0) -> int:
    """RFC 1071 checksum of `data`, continuing a partial sum `initial` (0-0xffff).

    Over a message whose checksum field is correct this returns 0.
    """
    return (~_fold(_sum16(data) + initial)) & 0xFFFF


def _pseudo_sum(src, dst, length: int) -> int:
    """Partial sum of the IPv4 or IPv6 pseudo-header for a VRRP message of `length`."""
    if len(src) == 4:
        return _fold(_sum16(src) + _sum16(dst) + VRRP_PROTO + length)
    # IPv6 (RFC 8200 §8.1): 32-bit length and next header; the high words are zero.
    return _fold(_sum16(src) + _sum16(dst) + (length >> 16) + (length & 0xFFFF) + VRRP_PROTO)


# --------------------------------------------------------------------------- encode


def _checksum_initial(version: int, family: int, form: int, src, dst, length: int) -> int:
    if version == 2 or form == ChecksumForm.PLAIN:
        return 0
    if family == 4 and form == ChecksumForm.OLD_UNICAST:
        return _pseudo_sum(src, MCAST4, length)
    return _pseudo_sum(src, dst, length)


def encode(
    version: int,
    vrid: int,
    priority: int,
    interval: int,
    addresses: bytes = b"",
    *,
    family: int = 4,
    src: bytes = b"",
    dst: bytes = b"",
    auth_type: int = AUTH_NONE,
    auth_data: bytes = b"",
    checksum_form: int = 0,
    ipv4_ttl: int = 0,
) -> bytes:
    """Encode one advertisement (the VRRP message, without IP header).

    `interval` is the wire field: whole seconds for v2, centiseconds for v3.
    `addresses` is the packed address list (4 or 16 bytes each, by `family`).
    v3 checksums cover the pseudo-header built from `src` and `dst` (the default
    form, ChecksumForm.PSEUDO); `checksum_form` selects PLAIN or OLD_UNICAST instead.
    `auth_data` (v2 PASS) is zero-padded or truncated to 8 bytes, as keepalived does.
    `ipv4_ttl` prepends the IPv4 header (see AdvertEncoder).
    """
    enc = AdvertEncoder(
        version, vrid, priority, interval, addresses, family=family, src=src, dst=dst,
        auth_type=auth_type, auth_data=auth_data, checksum_form=checksum_form,
        ipv4_ttl=ipv4_ttl,
    )
    return bytes(enc.packet())


class AdvertEncoder:
    """A master's advertisement, encoded once and re-encoded only when it changes.

    `packet()` returns a memoryview of the reusable buffer; setting `priority` or
    `addresses` marks it stale. `encodings` counts the real encodes (tests check that
    the steady state never re-encodes). With `ipv4_ttl` (IPv4 only) the packet starts
    with the IPv4 header keepalived sends (TOS 0xc0, that TTL, no DF; identification
    and header checksum zero for the kernel to fill in under IP_HDRINCL), so a whole
    datagram goes out as one buffer.
    """

    __slots__ = ("_version", "_vrid", "_priority", "_interval", "_addresses", "_family",
                 "_src", "_dst", "_auth_type", "_auth_data", "_form", "_ttl", "_buf",
                 "_stale", "encodings")

    def __init__(self, version: int, vrid: int, priority: int, interval: int,
                 addresses: bytes = b"", *, family: int = 4, src: bytes = b"",
                 dst: bytes = b"", auth_type: int = AUTH_NONE, auth_data: bytes = b"",
                 checksum_form: int = 0, ipv4_ttl: int = 0) -> None:
        if version not in (2, 3) or (version == 2 and family != 4):
            raise ValueError(f"VRRP version {version} over IPv{family} is not defined")
        if family not in (4, 6):
            raise ValueError(f"address family must be 4 or 6, not {family}")
        if not 0 <= vrid <= 255 or not 0 <= priority <= 255:
            raise ValueError("vrid and priority must be 0-255")
        if not 0 <= interval <= (255 if version == 2 else MAX_V3_INTERVAL):
            raise ValueError(f"advert interval {interval} out of range for VRRPv{version}")
        alen = 4 if family == 4 else 16
        if version == 3 and (len(src) != alen or len(dst) != alen):
            raise ValueError(f"VRRPv3 checksum needs {alen}-byte src and dst addresses")
        if ipv4_ttl and (family != 4 or len(src) != 4 or len(dst) != 4 or not 0 < ipv4_ttl < 256):
            raise ValueError("an IPv4 header needs IPv4 src and dst and a TTL of 1-255")
        self._ttl = ipv4_ttl
        self._version = version
        self._vrid = vrid
        self._interval = interval
        self._family = family
        self._src = bytes(src)
        self._dst = bytes(dst)
        self._auth_type = auth_type if version == 2 else AUTH_NONE
        self._auth_data = (bytes(auth_data)[:AUTH_LEN]).ljust(AUTH_LEN, b"\0")
        if version == 2:
            self._form = ChecksumForm.V2
        else:
            self._form = checksum_form or ChecksumForm.PSEUDO
            if self._form not in (ChecksumForm.PSEUDO, ChecksumForm.PLAIN, ChecksumForm.OLD_UNICAST) \
                    or (family == 6 and self._form != ChecksumForm.PSEUDO):
                raise ValueError(f"checksum form {checksum_form!r} not valid for v3/IPv{family}")
        self._buf = bytearray()
        self.encodings = 0
        self._priority = priority
        self._addresses = b""
        self.addresses = addresses

    @property
    def priority(self) -> int:
        return self._priority

    @priority.setter
    def priority(self, value: int) -> None:
        if not 0 <= value <= 255:
            raise ValueError("priority must be 0-255")
        if value != self._priority:
            self._priority = value
            self._stale = True

    @property
    def addresses(self) -> bytes:
        return self._addresses

    @addresses.setter
    def addresses(self, value: bytes) -> None:
        value = bytes(value)
        alen = 4 if self._family == 4 else 16
        if len(value) % alen or len(value) // alen > 255:
            raise ValueError(f"addresses must be at most 255 packed {alen}-byte addresses")
        self._addresses = value
        self._stale = True

    def packet(self) -> memoryview:
        if self._stale:
            self._encode()
        return memoryview(self._buf)

    def _encode(self) -> None:
        v2 = self._version == 2
        alen = 4 if self._family == 4 else 16
        count = len(self._addresses) // alen
        buf = bytearray(8)
        buf[0] = (self._version << 4) | ADVERTISEMENT
        buf[1] = self._vrid
        buf[2] = self._priority
        buf[3] = count
        if v2:
            buf[4] = self._auth_type
            buf[5] = self._interval
        else:
            buf[4] = self._interval >> 8
            buf[5] = self._interval & 0xFF
        buf += self._addresses
        if v2:
            buf += self._auth_data
        initial = _checksum_initial(self._version, self._family, self._form, self._src,
                                    self._dst, len(buf))
        csum = inet_checksum(buf, initial)
        buf[6] = csum >> 8
        buf[7] = csum & 0xFF
        if self._ttl:
            total = 20 + len(buf)
            buf[0:0] = bytes((0x45, 0xC0, total >> 8, total & 0xFF, 0, 0, 0, 0, self._ttl,
                              VRRP_PROTO, 0, 0)) + self._src + self._dst
        self._buf = buf
        self._stale = False
        self.encodings += 1


# --------------------------------------------------------------------------- decode


class Advert:
    """One decoded advertisement. `interval` is the wire field (v2 s, v3 cs)."""

    __slots__ = ("family", "version", "type", "vrid", "priority", "count", "auth_type",
                 "interval", "checksum", "addresses", "auth_data", "src", "dst",
                 "hop_limit", "checksum_form")

    def __init__(self, family, version, type, vrid, priority, count, auth_type, interval,
                 checksum, addresses, auth_data, src, dst, hop_limit, checksum_form):
        self.family = family
        self.version = version
        self.type = type
        self.vrid = vrid
        self.priority = priority
        self.count = count
        self.auth_type = auth_type
        self.interval = interval
        self.checksum = checksum
        self.addresses = addresses
        self.auth_data = auth_data
        self.src = src
        self.dst = dst
        self.hop_limit = hop_limit
        self.checksum_form = checksum_form

    def fields(self) -> tuple:
        return tuple(getattr(self, name) for name in Advert.__slots__)

    def __eq__(self, other) -> bool:
        return hasattr(other, "fields") and self.fields() == other.fields()

    def __repr__(self) -> str:
        inner = ", ".join(f"{n}={getattr(self, n)!r}" for n in Advert.__slots__)
        return f"Advert({inner})"


def _is_multicast(addr: bytes) -> bool:
    return (addr[0] & 0xF0) == 0xE0 if len(addr) == 4 else addr[0] == 0xFF


def _parse_message(msg: memoryview, family: int, src, dst, hop_limit: int):
    """Structural checks and checksum-form detection of one VRRP message."""
    n = len(msg)
    if n < 8:
        return Reason.TOO_SHORT, None
    version = msg[0] >> 4
    if version not in (2, 3) or (version == 2 and family == 6):
        return Reason.BAD_VERSION, None
    ptype = msg[0] & 0x0F
    if ptype != ADVERTISEMENT:
        return Reason.BAD_TYPE, None
    count = msg[3]
    alen = 4 if family == 4 else 16
    expected = 8 + count * alen + (AUTH_LEN if version == 2 else 0)
    if n != expected:
        return Reason.BAD_LENGTH, None
    addr_end = 8 + count * alen
    if version == 2:
        auth_type, interval = msg[4], msg[5]
        auth_data = bytes(msg[addr_end:addr_end + AUTH_LEN])
    else:
        auth_type, interval = 0, ((msg[4] << 8) | msg[5]) & MAX_V3_INTERVAL
        auth_data = b""
    src_b, dst_b = bytes(src), bytes(dst)
    if version == 2:
        form = ChecksumForm.V2 if _fold(_sum16(msg)) == 0xFFFF else 0
    elif family == 6:
        form = ChecksumForm.PSEUDO if _fold(_sum16(msg) + _pseudo_sum(src_b, dst_b, n)) == 0xFFFF else 0
    else:
        body = _sum16(msg)
        if _fold(body + _pseudo_sum(src_b, dst_b, n)) == 0xFFFF:
            form = ChecksumForm.PSEUDO
        elif _fold(body) == 0xFFFF:
            form = ChecksumForm.PLAIN
        elif dst_b != MCAST4 and _fold(body + _pseudo_sum(src_b, MCAST4, n)) == 0xFFFF:
            form = ChecksumForm.OLD_UNICAST
        else:
            form = 0
    advert = Advert(family, version, ptype, msg[1], msg[2], count, auth_type, interval,
                    (msg[6] << 8) | msg[7], bytes(msg[8:addr_end]), auth_data, src_b, dst_b,
                    hop_limit, form)
    return (Reason.OK if form else Reason.BAD_CHECKSUM), advert


def parse_ipv4(datagram):
    """Parse an IPv4 datagram as delivered by a raw IPPROTO_VRRP socket."""
    d = memoryview(datagram).cast("B")
    n = len(d)
    if n < 20:
        return Reason.TOO_SHORT, None
    ihl = (d[0] & 0x0F) * 4
    if d[0] >> 4 != 4 or ihl < 20 or d[9] != VRRP_PROTO:
        return Reason.BAD_IP_HEADER, None
    total = (d[2] << 8) | d[3]
    if ihl > n or total > n:
        return Reason.TOO_SHORT, None
    if total < ihl:
        return Reason.BAD_IP_HEADER, None
    # Bytes past the IP total length are link-layer padding, not VRRP data.
    return _parse_message(d[ihl:total], 4, d[12:16], d[16:20], d[8])


def parse_ipv6(message, src, dst, hop_limit: int = -1):
    """Parse a VRRP message from a raw IPv6 socket; `hop_limit` -1 means not known."""
    if len(src) != 16 or len(dst) != 16:
        raise ValueError("IPv6 src and dst must be 16 bytes")
    return _parse_message(memoryview(message).cast("B"), 6, src, dst, hop_limit)


# --------------------------------------------------------------------------- validate


class Expect:
    """What one instance expects of advertisements for its VRID.

    `interval` (wire units) is compared for v2 only, as RFC 3768 requires; None skips
    it. `addresses` (packed) None skips the address-list check. `checksum_forms` is a
    ChecksumForm mask; 0 means the version's default (V2, or PSEUDO for v3).
    """

    __slots__ = ("version", "family", "unicast", "auth_type", "auth_data", "interval",
                 "addresses", "checksum_forms")

    def __init__(self, version: int, *, family: int = 4, unicast: bool = False,
                 auth_type: int = AUTH_NONE, auth_data: bytes = b"",
                 interval: int | None = None, addresses: bytes | None = None,
                 checksum_forms: int = 0) -> None:
        if version not in (2, 3):
            raise ValueError("version must be 2 or 3")
        if family not in (4, 6):
            raise ValueError("family must be 4 or 6")
        alen = 4 if family == 4 else 16
        if addresses is not None and (len(addresses) % alen or len(addresses) // alen > 255):
            raise ValueError(f"addresses must be at most 255 packed {alen}-byte addresses")
        self.version = version
        self.family = family
        self.unicast = bool(unicast)
        self.auth_type = auth_type
        self.auth_data = (bytes(auth_data)[:AUTH_LEN]).ljust(AUTH_LEN, b"\0")
        self.interval = interval
        self.addresses = None if addresses is None else bytes(addresses)
        self.checksum_forms = int(checksum_forms) or (
            ChecksumForm.V2 if version == 2 else ChecksumForm.PSEUDO)


class ReceiveTable:
    """The instances sharing one (interface, family) socket, by VRID."""

    __slots__ = ("_entries",)

    def __init__(self) -> None:
        self._entries: list[Expect | None] = [None] * 256

    def __setitem__(self, vrid: int, expect: Expect) -> None:
        if not 0 <= vrid <= 255:
            raise ValueError("vrid must be 0-255")
        if not isinstance(expect, Expect):
            raise TypeError("expected an Expect")
        self._entries[vrid] = expect

    def __getitem__(self, vrid: int) -> Expect:
        e = self._entries[vrid] if 0 <= vrid <= 255 else None
        if e is None:
            raise KeyError(vrid)
        return e

    def __delitem__(self, vrid: int) -> None:
        self[vrid]
        self._entries[vrid] = None

    def __contains__(self, vrid: int) -> bool:
        return 0 <= vrid <= 255 and self._entries[vrid] is not None

    def __len__(self) -> int:
        return sum(e is not None for e in self._entries)


def _addresses_match(e: Expect, got: bytes, count: int, alen: int) -> bool:
    # Order-insensitive, as keepalived's vrrp_in_chk_vips: same count, and every
    # configured address present in the advertisement.
    expected = e.addresses
    if len(expected) // (4 if e.family == 4 else 16) != count:
        return False
    have = {got[i:i + alen] for i in range(0, len(got), alen)}
    return all(expected[i:i + alen] in have for i in range(0, len(expected), alen))


def _check(reason: int, adv: Advert | None, table: ReceiveTable):
    if reason != Reason.OK:
        return reason, adv
    e = table._entries[adv.vrid]
    if e is None:
        return Reason.VRID_UNKNOWN, adv
    if adv.version != e.version:
        return Reason.VERSION_MISMATCH, adv
    if _is_multicast(adv.dst) == e.unicast:
        return Reason.MODE_MISMATCH, adv
    if not e.unicast and adv.hop_limit != -1 and adv.hop_limit != 255:
        return Reason.BAD_TTL, adv
    if not adv.checksum_form & e.checksum_forms:
        return Reason.CHECKSUM_FORM, adv
    if adv.version == 2:
        if adv.auth_type != e.auth_type:
            return Reason.AUTH_TYPE_MISMATCH, adv
        if adv.auth_type == AUTH_AH:
            return Reason.AUTH_AH_UNSUPPORTED, adv
        if adv.auth_type == AUTH_PASS and adv.auth_data != e.auth_data:
            return Reason.AUTH_FAILURE, adv
        if e.interval is not None and adv.interval != e.interval:
            return Reason.INTERVAL_MISMATCH, adv
    if e.addresses is not None and not _addresses_match(
            e, adv.addresses, adv.count, 4 if adv.family == 4 else 16):
        return Reason.ADDR_LIST_MISMATCH, adv
    return Reason.OK, adv


def validate_ipv4(datagram, table: ReceiveTable):
    """parse_ipv4, then every check against the instance registered for its VRID."""
    reason, adv = parse_ipv4(datagram)
    return _check(reason, adv, table)


def validate_ipv6(message, src, dst, hop_limit: int, table: ReceiveTable):
    """parse_ipv6, then every check against the instance registered for its VRID."""
    reason, adv = parse_ipv6(message, src, dst, hop_limit)
    return _check(reason, adv, table)


IMPLEMENTATION = "python"
