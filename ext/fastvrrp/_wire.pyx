# cython: freethreading_compatible = False
"""VRRP advertisement codec in C: the compiled twin of fastvrrp.proto.packet.

Same Python API and results as the reference (see its docstring); in addition the
cdef functions declared in _wire.pxd let the fast path parse, validate and checksum
without creating a Python object.
"""

from cpython.buffer cimport PyBUF_SIMPLE, PyBuffer_Release, PyObject_GetBuffer
from cpython.bytearray cimport PyByteArray_AS_STRING, PyByteArray_FromStringAndSize
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize
from libc.stdint cimport int64_t, uint8_t, uint16_t, uint32_t, uint64_t
from libc.string cimport memcmp, memcpy, memset

from fastvrrp.proto.packet import ChecksumForm, Reason, is_drop  # shared enums

cdef enum:
    C_VRRP_PROTO = 112
    C_ADVERTISEMENT = 1
    C_AUTH_NONE = 0
    C_AUTH_PASS = 1
    C_AUTH_AH = 2
    C_AUTH_LEN = 8
    C_MAX_V3_INTERVAL = 0x0FFF

IMPLEMENTATION = "compiled"
VRRP_PROTO = C_VRRP_PROTO
ADVERTISEMENT = C_ADVERTISEMENT
AUTH_NONE = C_AUTH_NONE
AUTH_PASS = C_AUTH_PASS
AUTH_AH = C_AUTH_AH
AUTH_LEN = C_AUTH_LEN
MAX_V3_INTERVAL = C_MAX_V3_INTERVAL
MCAST4 = b"\xe0\x00\x00\x12"
MCAST6 = bytes.fromhex("ff020000000000000000000000000012")

cdef extern from *:
    """
    #include <stdint.h>
    #include <string.h>
    /* One's-complement sum of network-order 16-bit words, folded to 16 bits.
       Sums 32-bit native loads in a 64-bit accumulator (RFC 1071 §2(C)) and
       swaps the folded result on little-endian hosts (§2(B)). */
    static inline uint32_t fv_sum16(const uint8_t *p, size_t n) {
        uint64_t s = 0;
        uint32_t w32;
        uint16_t w16;
        while (n >= 4) { memcpy(&w32, p, 4); s += w32; p += 4; n -= 4; }
        if (n >= 2) { memcpy(&w16, p, 2); s += w16; p += 2; n -= 2; }
    #if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
        if (n) s += p[0];
    #else
        if (n) s += (uint32_t)p[0] << 8;
    #endif
        s = (s & 0xffffffffu) + (s >> 32);
        s = (s & 0xffffffffu) + (s >> 32);
        uint32_t t = (uint32_t)s;
        t = (t & 0xffffu) + (t >> 16);
        t = (t & 0xffffu) + (t >> 16);
    #if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
        t = ((t & 0xffu) << 8) | (t >> 8);
    #endif
        return t;
    }
    static inline uint32_t fv_fold(uint32_t t) {
        t = (t & 0xffffu) + (t >> 16);
        return (t & 0xffffu) + (t >> 16);
    }
    static const uint8_t fv_mcast4[4] = {224, 0, 0, 18};
    """
    uint32_t fv_sum16(const uint8_t* p, size_t n) nogil
    uint32_t fv_fold(uint32_t t) nogil
    const uint8_t* fv_mcast4


# ------------------------------------------------------------------------- checksum

cdef uint16_t inet_checksum_c(const uint8_t* data, size_t n, uint32_t initial) noexcept nogil:
    return <uint16_t>(~fv_fold(fv_sum16(data, n) + initial) & 0xFFFF)


cdef inline uint32_t pseudo_sum(const uint8_t* src, const uint8_t* dst, size_t alen,
                                size_t length) noexcept nogil:
    if alen == 4:
        return fv_fold(fv_sum16(src, 4) + fv_sum16(dst, 4) + C_VRRP_PROTO + <uint32_t>length)
    return fv_fold(fv_sum16(src, 16) + fv_sum16(dst, 16) + <uint32_t>(length >> 16)
                   + <uint32_t>(length & 0xFFFF) + C_VRRP_PROTO)


def inet_checksum(data, int initial=0):
    """RFC 1071 checksum of `data`, continuing a partial sum `initial` (0-0xffff)."""
    cdef Py_buffer view
    PyObject_GetBuffer(data, &view, PyBUF_SIMPLE)
    try:
        return inet_checksum_c(<const uint8_t*>view.buf, <size_t>view.len, <uint32_t>initial)
    finally:
        PyBuffer_Release(&view)


# ------------------------------------------------------------------------- encode

cdef class AdvertEncoder:
    """A master's advertisement, encoded once and re-encoded only when it changes."""

    def __init__(self, int version, int vrid, int priority, int interval,
                 addresses=b"", *, int family=4, src=b"", dst=b"", int auth_type=C_AUTH_NONE,
                 auth_data=b"", int checksum_form=0, int ipv4_ttl=0):
        if version not in (2, 3) or (version == 2 and family != 4):
            raise ValueError(f"VRRP version {version} over IPv{family} is not defined")
        if family not in (4, 6):
            raise ValueError(f"address family must be 4 or 6, not {family}")
        if not 0 <= vrid <= 255 or not 0 <= priority <= 255:
            raise ValueError("vrid and priority must be 0-255")
        if not 0 <= interval <= (255 if version == 2 else C_MAX_V3_INTERVAL):
            raise ValueError(f"advert interval {interval} out of range for VRRPv{version}")
        alen = 4 if family == 4 else 16
        if version == 3 and (len(src) != alen or len(dst) != alen):
            raise ValueError(f"VRRPv3 checksum needs {alen}-byte src and dst addresses")
        if ipv4_ttl and (family != 4 or len(src) != 4 or len(dst) != 4 or not 0 < ipv4_ttl < 256):
            raise ValueError("an IPv4 header needs IPv4 src and dst and a TTL of 1-255")
        self._ttl = ipv4_ttl
        self._version = version
        self._vrid = vrid
        self._priority = priority
        self._interval = interval
        self._family = family
        self._src = bytes(src)
        self._dst = bytes(dst)
        self._auth_type = auth_type if version == 2 else C_AUTH_NONE
        self._auth_data = (bytes(auth_data)[:C_AUTH_LEN]).ljust(C_AUTH_LEN, b"\0")
        if version == 2:
            self._form = CSUM_V2
        else:
            self._form = checksum_form or CSUM_PSEUDO
            if self._form not in (CSUM_PSEUDO, CSUM_PLAIN, CSUM_OLD_UNICAST) \
                    or (family == 6 and self._form != CSUM_PSEUDO):
                raise ValueError(f"checksum form {checksum_form!r} not valid for v3/IPv{family}")
        self._buf = bytearray()
        self.encodings = 0
        self.addresses = addresses

    @property
    def priority(self):
        return self._priority

    @priority.setter
    def priority(self, int value):
        if not 0 <= value <= 255:
            raise ValueError("priority must be 0-255")
        if value != self._priority:
            self._priority = value
            self._stale = True

    @property
    def addresses(self):
        return self._addresses

    @addresses.setter
    def addresses(self, value):
        value = bytes(value)
        alen = 4 if self._family == 4 else 16
        if len(value) % alen or len(value) // alen > 255:
            raise ValueError(f"addresses must be at most 255 packed {alen}-byte addresses")
        self._addresses = value
        self._stale = True

    def packet(self):
        if self._stale:
            self._encode()
        return memoryview(self._buf)

    cdef const uint8_t* c_packet(self, size_t* length) except NULL:
        """The current advertisement for the fast path (re-encoded only if stale)."""
        if self._stale:
            self._encode()
        length[0] = <size_t>len(self._buf)
        return <const uint8_t*>PyByteArray_AS_STRING(self._buf)

    cdef int _encode(self) except -1:
        cdef size_t alen = 4 if self._family == 4 else 16
        cdef size_t naddr_bytes = len(self._addresses)
        cdef size_t n = 8 + naddr_bytes + (C_AUTH_LEN if self._version == 2 else 0)
        cdef size_t hdr = 20 if self._ttl else 0
        cdef uint32_t initial = 0
        cdef uint16_t csum
        if len(self._buf) != <Py_ssize_t>(hdr + n):
            self._buf = PyByteArray_FromStringAndSize(NULL, hdr + n)
        cdef uint8_t* p = <uint8_t*>PyByteArray_AS_STRING(self._buf)
        if hdr:
            # IPv4 header as keepalived's vrrp_build_ip4: TOS 0xc0, no DF; the kernel
            # fills identification and header checksum under IP_HDRINCL.
            memset(p, 0, 20)
            p[0] = 0x45
            p[1] = 0xC0
            p[2] = <uint8_t>((hdr + n) >> 8)
            p[3] = <uint8_t>((hdr + n) & 0xFF)
            p[8] = self._ttl
            p[9] = C_VRRP_PROTO
            memcpy(p + 12, PyBytes_AS_STRING(self._src), 4)
            memcpy(p + 16, PyBytes_AS_STRING(self._dst), 4)
            p += 20
        p[0] = (self._version << 4) | C_ADVERTISEMENT
        p[1] = self._vrid
        p[2] = self._priority
        p[3] = <uint8_t>(naddr_bytes // alen)
        if self._version == 2:
            p[4] = self._auth_type
            p[5] = <uint8_t>self._interval
        else:
            p[4] = self._interval >> 8
            p[5] = self._interval & 0xFF
        p[6] = 0
        p[7] = 0
        memcpy(p + 8, PyBytes_AS_STRING(self._addresses), naddr_bytes)
        if self._version == 2:
            memcpy(p + 8 + naddr_bytes, PyBytes_AS_STRING(self._auth_data), C_AUTH_LEN)
        elif self._form == CSUM_PSEUDO:
            initial = pseudo_sum(<const uint8_t*>PyBytes_AS_STRING(self._src),
                                 <const uint8_t*>PyBytes_AS_STRING(self._dst), alen, n)
        elif self._form == CSUM_OLD_UNICAST:
            initial = pseudo_sum(<const uint8_t*>PyBytes_AS_STRING(self._src), fv_mcast4, 4, n)
        csum = inet_checksum_c(p, n, initial)
        p[6] = csum >> 8
        p[7] = csum & 0xFF
        self._stale = False
        self.encodings += 1
        return 0


def encode(int version, int vrid, int priority, int interval, addresses=b"", *,
           int family=4, src=b"", dst=b"", int auth_type=C_AUTH_NONE, auth_data=b"",
           int checksum_form=0, int ipv4_ttl=0):
    """Encode one advertisement (the VRRP message; `ipv4_ttl` prepends the IP header)."""
    enc = AdvertEncoder(version, vrid, priority, interval, addresses, family=family,
                        src=src, dst=dst, auth_type=auth_type, auth_data=auth_data,
                        checksum_form=checksum_form, ipv4_ttl=ipv4_ttl)
    return bytes(enc.packet())


# ------------------------------------------------------------------------- decode

cdef int parse_message_c(const uint8_t* msg, size_t n, uint8_t family, const uint8_t* src,
                         const uint8_t* dst, int hop_limit, advert_t* out) noexcept nogil:
    cdef uint8_t version, count
    cdef size_t alen = 4 if family == 4 else 16
    cdef size_t addr_end
    cdef uint32_t body
    if n < 8:
        return R_TOO_SHORT
    version = msg[0] >> 4
    if (version != 2 and version != 3) or (version == 2 and family == 6):
        return R_BAD_VERSION
    if (msg[0] & 0x0F) != C_ADVERTISEMENT:
        return R_BAD_TYPE
    count = msg[3]
    addr_end = 8 + count * alen
    if n != addr_end + (C_AUTH_LEN if version == 2 else 0):
        return R_BAD_LENGTH
    out.family = family
    out.version = version
    out.type = msg[0] & 0x0F
    out.vrid = msg[1]
    out.priority = msg[2]
    out.count = count
    out.checksum = (msg[6] << 8) | msg[7]
    out.hop_limit = hop_limit
    out.addrs = msg + 8
    out.src = src
    out.dst = dst
    if version == 2:
        out.auth_type = msg[4]
        out.interval = msg[5]
        out.auth_data = msg + addr_end
    else:
        out.auth_type = 0
        out.interval = ((msg[4] << 8) | msg[5]) & C_MAX_V3_INTERVAL
        out.auth_data = NULL
    body = fv_sum16(msg, n)
    if version == 2:
        out.checksum_form = CSUM_V2 if fv_fold(body) == 0xFFFF else 0
    elif family == 6:
        out.checksum_form = CSUM_PSEUDO if fv_fold(body + pseudo_sum(src, dst, 16, n)) == 0xFFFF else 0
    elif fv_fold(body + pseudo_sum(src, dst, 4, n)) == 0xFFFF:
        out.checksum_form = CSUM_PSEUDO
    elif fv_fold(body) == 0xFFFF:
        out.checksum_form = CSUM_PLAIN
    elif memcmp(dst, fv_mcast4, 4) != 0 and fv_fold(body + pseudo_sum(src, fv_mcast4, 4, n)) == 0xFFFF:
        out.checksum_form = CSUM_OLD_UNICAST
    else:
        out.checksum_form = 0
    return R_OK if out.checksum_form else R_BAD_CHECKSUM


cdef int parse_ipv4_c(const uint8_t* buf, size_t n, advert_t* out) noexcept nogil:
    cdef size_t ihl, total
    out.vrid = 0
    out.src = NULL
    if n < 20:
        return R_TOO_SHORT
    ihl = (buf[0] & 0x0F) * 4
    if (buf[0] >> 4) != 4 or ihl < 20 or buf[9] != C_VRRP_PROTO:
        return R_BAD_IP_HEADER
    total = (buf[2] << 8) | buf[3]
    if ihl > n or total > n:
        return R_TOO_SHORT
    if total < ihl:
        return R_BAD_IP_HEADER
    # Bytes past the IP total length are link-layer padding, not VRRP data.
    return parse_message_c(buf + ihl, total - ihl, 4, buf + 12, buf + 16, buf[8], out)


cdef int parse_ipv6_c(const uint8_t* msg, size_t n, const uint8_t* src,
                      const uint8_t* dst, int hop_limit, advert_t* out) noexcept nogil:
    out.vrid = 0
    out.src = NULL
    return parse_message_c(msg, n, 6, src, dst, hop_limit, out)


cdef inline bint is_multicast(const uint8_t* addr, uint8_t family) noexcept nogil:
    if family == 4:
        return (addr[0] & 0xF0) == 0xE0
    return addr[0] == 0xFF


cdef bint addresses_match(const expect_t* e, const advert_t* adv) noexcept nogil:
    # Order-insensitive, as keepalived's vrrp_in_chk_vips.
    cdef size_t alen = 4 if adv.family == 4 else 16
    cdef int i, j
    cdef bint found
    if e.naddr != adv.count:
        return False
    for i in range(e.naddr):
        found = False
        for j in range(adv.count):
            if memcmp(e.addrs + i * alen, adv.addrs + j * alen, alen) == 0:
                found = True
                break
        if not found:
            return False
    return True


cdef int check_expect_c(const advert_t* adv, const expect_t* e) noexcept nogil:
    if adv.version != e.version:
        return R_VERSION_MISMATCH
    if is_multicast(adv.dst, adv.family) == e.unicast:
        return R_MODE_MISMATCH
    if not e.unicast and adv.hop_limit != -1 and adv.hop_limit != 255:
        return R_BAD_TTL
    if not (adv.checksum_form & e.checksum_forms):
        return R_CHECKSUM_FORM
    if adv.version == 2:
        if adv.auth_type != e.auth_type:
            return R_AUTH_TYPE_MISMATCH
        if adv.auth_type == C_AUTH_AH:
            return R_AUTH_AH_UNSUPPORTED
        if adv.auth_type == C_AUTH_PASS and memcmp(adv.auth_data, e.auth_data, C_AUTH_LEN) != 0:
            return R_AUTH_FAILURE
        if e.interval >= 0 and adv.interval != e.interval:
            return R_INTERVAL_MISMATCH
    if e.naddr >= 0 and not addresses_match(e, adv):
        return R_ADDR_LIST_MISMATCH
    return R_OK


cdef class Advert:
    """One decoded advertisement. `interval` is the wire field (v2 s, v3 cs)."""
    cdef readonly int family, version, type, vrid, priority, count, auth_type, interval
    cdef readonly int checksum, hop_limit, checksum_form
    cdef readonly bytes addresses, auth_data, src, dst

    def fields(self):
        return (self.family, self.version, self.type, self.vrid, self.priority, self.count,
                self.auth_type, self.interval, self.checksum, self.addresses, self.auth_data,
                self.src, self.dst, self.hop_limit, self.checksum_form)

    def __eq__(self, other):
        return hasattr(other, "fields") and self.fields() == other.fields()

    def __repr__(self):
        names = ("family", "version", "type", "vrid", "priority", "count", "auth_type",
                 "interval", "checksum", "addresses", "auth_data", "src", "dst",
                 "hop_limit", "checksum_form")
        inner = ", ".join(f"{n}={v!r}" for n, v in zip(names, self.fields()))
        return f"Advert({inner})"


cdef Advert make_advert(const advert_t* a):
    cdef Advert adv = Advert.__new__(Advert)
    cdef size_t alen = 4 if a.family == 4 else 16
    adv.family = a.family
    adv.version = a.version
    adv.type = a.type
    adv.vrid = a.vrid
    adv.priority = a.priority
    adv.count = a.count
    adv.auth_type = a.auth_type
    adv.interval = a.interval
    adv.checksum = a.checksum
    adv.hop_limit = a.hop_limit
    adv.checksum_form = a.checksum_form
    adv.addresses = PyBytes_FromStringAndSize(<const char*>a.addrs, a.count * alen)
    adv.auth_data = (PyBytes_FromStringAndSize(<const char*>a.auth_data, C_AUTH_LEN)
                     if a.version == 2 else b"")
    adv.src = PyBytes_FromStringAndSize(<const char*>a.src, alen)
    adv.dst = PyBytes_FromStringAndSize(<const char*>a.dst, alen)
    return adv


cdef inline bint decoded(int reason) noexcept nogil:
    # Reasons before the header is decoded leave no advert to report.
    return reason == R_OK or reason == R_BAD_CHECKSUM


def parse_ipv4(datagram):
    """Parse an IPv4 datagram as delivered by a raw IPPROTO_VRRP socket."""
    cdef Py_buffer view
    cdef advert_t a
    cdef int r
    PyObject_GetBuffer(datagram, &view, PyBUF_SIMPLE)
    try:
        r = parse_ipv4_c(<const uint8_t*>view.buf, <size_t>view.len, &a)
        return r, (make_advert(&a) if decoded(r) else None)
    finally:
        PyBuffer_Release(&view)


cdef inline int _need16(Py_buffer* v) except -1:
    if v.len != 16:
        raise ValueError("IPv6 src and dst must be 16 bytes")
    return 0


def parse_ipv6(message, src, dst, int hop_limit=-1):
    """Parse a VRRP message from a raw IPv6 socket; `hop_limit` -1 means not known."""
    return _ipv6(message, src, dst, hop_limit, None)


# ------------------------------------------------------------------------- validate

cdef class Expect:
    """What one instance expects of advertisements for its VRID (see the twin)."""

    def __init__(self, int version, *, int family=4, unicast=False, int auth_type=C_AUTH_NONE,
                 auth_data=b"", interval=None, addresses=None, int checksum_forms=0):
        if version not in (2, 3):
            raise ValueError("version must be 2 or 3")
        if family not in (4, 6):
            raise ValueError("family must be 4 or 6")
        self.family = family
        self.c.version = version
        self.c.unicast = bool(unicast)
        self.c.auth_type = auth_type
        padded = (bytes(auth_data)[:C_AUTH_LEN]).ljust(C_AUTH_LEN, b"\0")
        memcpy(self.c.auth_data, PyBytes_AS_STRING(padded), C_AUTH_LEN)
        self.c.interval = -1 if interval is None else int(interval)
        self.c.checksum_forms = checksum_forms or (CSUM_V2 if version == 2 else CSUM_PSEUDO)
        if addresses is None:
            self._addresses = None
            self.c.naddr = -1
            self.c.addrs = NULL
        else:
            alen = 4 if family == 4 else 16
            self._addresses = bytes(addresses)
            if len(self._addresses) % alen or len(self._addresses) // alen > 255:
                raise ValueError(f"addresses must be at most 255 packed {alen}-byte addresses")
            self.c.naddr = len(self._addresses) // alen
            self.c.addrs = <const uint8_t*>PyBytes_AS_STRING(self._addresses)

    @property
    def version(self):
        return self.c.version

    @property
    def unicast(self):
        return bool(self.c.unicast)

    @property
    def auth_type(self):
        return self.c.auth_type

    @property
    def auth_data(self):
        return PyBytes_FromStringAndSize(<const char*>self.c.auth_data, C_AUTH_LEN)

    @property
    def interval(self):
        return None if self.c.interval < 0 else self.c.interval

    @property
    def addresses(self):
        return self._addresses

    @property
    def checksum_forms(self):
        return self.c.checksum_forms


cdef class ReceiveTable:
    """The instances sharing one (interface, family) socket, by VRID."""

    def __cinit__(self):
        self._entries = [None] * 256
        memset(self._c, 0, sizeof(self._c))

    def __setitem__(self, int vrid, Expect expect not None):
        if not 0 <= vrid <= 255:
            raise ValueError("vrid must be 0-255")
        self._entries[vrid] = expect
        self._c[vrid] = &expect.c

    def __getitem__(self, int vrid):
        e = self._entries[vrid] if 0 <= vrid <= 255 else None
        if e is None:
            raise KeyError(vrid)
        return e

    def __delitem__(self, int vrid):
        self[vrid]
        self._entries[vrid] = None
        self._c[vrid] = NULL

    def __contains__(self, int vrid):
        return 0 <= vrid <= 255 and self._c[vrid] != NULL

    def __len__(self):
        return sum(e is not None for e in self._entries)


cdef inline int check_table_c(const advert_t* a, ReceiveTable table) noexcept nogil:
    cdef const expect_t* e = table._c[a.vrid]
    if e == NULL:
        return R_VRID_UNKNOWN
    return check_expect_c(a, e)


def validate_ipv4(datagram, ReceiveTable table not None):
    """parse_ipv4, then every check against the instance registered for its VRID."""
    cdef Py_buffer view
    cdef advert_t a
    cdef int r
    PyObject_GetBuffer(datagram, &view, PyBUF_SIMPLE)
    try:
        r = parse_ipv4_c(<const uint8_t*>view.buf, <size_t>view.len, &a)
        if r == R_OK:
            r = check_table_c(&a, table)
            return r, make_advert(&a)
        return r, (make_advert(&a) if decoded(r) else None)
    finally:
        PyBuffer_Release(&view)


cdef object _ipv6(message, src, dst, int hop_limit, ReceiveTable table):
    cdef Py_buffer view, vsrc, vdst
    cdef advert_t a
    cdef int r
    PyObject_GetBuffer(src, &vsrc, PyBUF_SIMPLE)
    try:
        PyObject_GetBuffer(dst, &vdst, PyBUF_SIMPLE)
        try:
            _need16(&vsrc)
            _need16(&vdst)
            PyObject_GetBuffer(message, &view, PyBUF_SIMPLE)
            try:
                r = parse_ipv6_c(<const uint8_t*>view.buf, <size_t>view.len,
                                 <const uint8_t*>vsrc.buf, <const uint8_t*>vdst.buf,
                                 hop_limit, &a)
                if r == R_OK and table is not None:
                    r = check_table_c(&a, table)
                    return r, make_advert(&a)
                return r, (make_advert(&a) if decoded(r) else None)
            finally:
                PyBuffer_Release(&view)
        finally:
            PyBuffer_Release(&vdst)
    finally:
        PyBuffer_Release(&vsrc)


def validate_ipv6(message, src, dst, int hop_limit, ReceiveTable table not None):
    """parse_ipv6, then every check against the instance registered for its VRID."""
    return _ipv6(message, src, dst, hop_limit, table)


def bench_validate_ipv4(datagram, ReceiveTable table not None, Py_ssize_t iterations):
    """Validate the same datagram `iterations` times in C (no Python per packet).

    For bench/: measures what the fast path pays per advertisement. Returns the
    number of accepted packets so the loop cannot be optimised away.
    """
    cdef Py_buffer view
    cdef advert_t a
    cdef Py_ssize_t i, ok = 0
    cdef int r
    PyObject_GetBuffer(datagram, &view, PyBUF_SIMPLE)
    try:
        for i in range(iterations):
            r = parse_ipv4_c(<const uint8_t*>view.buf, <size_t>view.len, &a)
            if r == R_OK:
                r = check_table_c(&a, table)
            ok += r == R_OK
    finally:
        PyBuffer_Release(&view)
    return ok
