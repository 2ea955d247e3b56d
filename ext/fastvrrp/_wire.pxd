# C-level surface of the VRRP codec, for the fast path (ext/_fastpath.pyx) to cimport.
from libc.stdint cimport uint8_t, uint16_t, uint32_t, int64_t

cdef enum:
    R_OK = 0
    R_TOO_SHORT = 1
    R_BAD_IP_HEADER = 2
    R_BAD_VERSION = 3
    R_BAD_TYPE = 4
    R_BAD_LENGTH = 5
    R_BAD_CHECKSUM = 6
    R_VRID_UNKNOWN = 7
    R_VERSION_MISMATCH = 8
    R_BAD_TTL = 9
    R_MODE_MISMATCH = 10
    R_CHECKSUM_FORM = 11
    R_AUTH_TYPE_MISMATCH = 12
    R_AUTH_FAILURE = 13
    R_AUTH_AH_UNSUPPORTED = 14
    R_INTERVAL_MISMATCH = 15
    R_ADDR_LIST_MISMATCH = 16
    R_COUNT = 17

cdef enum:
    CSUM_V2 = 1
    CSUM_PSEUDO = 2
    CSUM_PLAIN = 4
    CSUM_OLD_UNICAST = 8

# A decoded advertisement; the pointers point into the caller's buffer.
cdef struct advert_t:
    uint8_t family
    uint8_t version
    uint8_t type
    uint8_t vrid
    uint8_t priority
    uint8_t count
    uint8_t auth_type
    uint8_t checksum_form
    uint16_t interval
    uint16_t checksum
    int hop_limit
    const uint8_t* addrs
    const uint8_t* auth_data
    const uint8_t* src
    const uint8_t* dst

# What one instance expects; `addrs` points at bytes owned by the Expect object.
cdef struct expect_t:
    uint8_t version
    bint unicast
    uint8_t auth_type
    uint8_t auth_data[8]
    int interval          # -1: not checked
    uint8_t checksum_forms
    int naddr             # -1: address list not checked
    const uint8_t* addrs

cdef uint16_t inet_checksum_c(const uint8_t* data, size_t n, uint32_t initial) noexcept nogil
cdef int parse_ipv4_c(const uint8_t* buf, size_t n, advert_t* out) noexcept nogil
cdef int parse_ipv6_c(const uint8_t* msg, size_t n, const uint8_t* src,
                      const uint8_t* dst, int hop_limit, advert_t* out) noexcept nogil
cdef int check_expect_c(const advert_t* adv, const expect_t* e) noexcept nogil


cdef class Expect:
    cdef expect_t c
    cdef readonly int family
    cdef bytes _addresses


cdef class AdvertEncoder:
    cdef uint8_t _version, _vrid, _priority, _family, _auth_type, _form, _ttl
    cdef uint16_t _interval
    cdef bytes _src, _dst, _addresses, _auth_data
    cdef bytearray _buf
    cdef bint _stale
    cdef public Py_ssize_t encodings
    cdef const uint8_t* c_packet(self, size_t* length) except NULL
    cdef int _encode(self) except -1


cdef class ReceiveTable:
    cdef object _entries        # list of 256 Expect or None, keeps them alive
    cdef expect_t* _c[256]      # NULL where no instance has that VRID
