# C-level surface of the steady-state fast path, for the daemon's batched socket
# layer (_fastio) to cimport. The Python-visible surface is in _fastpath.pyx; the
# pure-Python twin with the same Python API is fastvrrp.proto.fastpath.

from cpython.object cimport PyObject
from libc.stdint cimport int32_t, int64_t, uint8_t, uint16_t

from fastvrrp._wheel cimport TimerWheel
from fastvrrp._wire cimport R_COUNT, advert_t, expect_t

cdef enum:
    FP_MODE_NONE = 0        # every event of the instance escalates
    FP_MODE_MASTER = 1
    FP_MODE_BACKUP = 2

    # c_feed_* results
    FP_HANDLED = 0          # steady: MASTER_DOWN re-armed in C, nothing for Python
    FP_DROPPED = 1          # counted (and maybe sampled); nothing for Python
    FP_ESCALATE = 2         # Python must handle it: see fp_feed_t, c_escalation

    FP_TIMER_ADVER = 0      # = TimerKind.ADVER (checked at import)
    FP_TIMER_MASTER_DOWN = 1

# One packet a steady master sends on ADVER (or a backup on its takeover). `obj` and
# `dest` are borrowed: the FastPath's _refs list owns them until the next
# set_master/set_backup/set_takeover/clear.
cdef struct fp_packet_t:
    int gid
    bint is_encoder         # obj is a fastvrrp._wire.AdvertEncoder, else bytes
    PyObject* obj
    PyObject* dest

cdef struct fp_entry_t:
    uint8_t mode
    uint8_t touched         # re-arms the FSM has not been told of (bit per kind)
    uint8_t src_len         # backup key: (src, priority, interval)
    uint8_t priority
    uint16_t interval
    uint8_t src[16]
    int64_t adver_ns
    int64_t phase_ns        # ADVER on this grid (mod adver_ns); -1: now + adver_ns
    int64_t down_ns
    int64_t stop_ns         # re-arm on a priority-0 advert (Skew_Time); 0: escalate it
    int64_t adver_deadline  # last re-arms done here, for sync_back
    int64_t down_deadline
    int32_t npkts
    int32_t pkt_cap
    fp_packet_t* pkts

cdef struct fp_group_t:
    int family
    expect_t** expects      # points into the ReceiveTable (kept alive by _tables)
    int32_t idx_of[256]     # VRID -> instance, -1 if unbound

cdef struct fp_feed_t:      # what c_feed_* found (valid for every result)
    int idx                 # instance, -1 if none
    int reason              # Reason value
    int vrid                # -1 when the header could not be decoded

cdef struct fp_out_t:       # one queued advertisement
    int gid
    int idx
    Py_ssize_t offset       # into the outbox arena
    size_t length
    PyObject* dest          # strong reference, released by c_outbox_clear

cdef struct fp_sample_t:    # first drop of a reason since the last take_drop_samples
    int64_t count
    int gid
    int vrid
    int src_len
    uint8_t src[16]


cdef class FastPath:
    cdef TimerWheel _wheel
    cdef readonly int kinds
    cdef Py_ssize_t _n
    cdef fp_entry_t* _e
    cdef list _refs                 # per instance: the objects its pkts borrow
    cdef fp_group_t** _groups       # by gid, NULL where none
    cdef Py_ssize_t _ngroups
    cdef dict _tables               # gid -> ReceiveTable, keeps expects alive
    cdef Py_ssize_t* _due           # scratch for the wheel's expire_into
    cdef Py_ssize_t* _esc           # timer ids escalated by the last c_expire
    cdef Py_ssize_t _nesc, _esc_cap
    cdef uint8_t* _arena            # outbox packet bytes
    cdef Py_ssize_t _arena_len, _arena_cap
    cdef fp_out_t* _out
    cdef Py_ssize_t _nout, _out_cap
    cdef int64_t _steady_sends, _steady_rearms, _packets_queued, _takeovers
    cdef int64_t _esc_timers, _esc_adverts
    cdef int64_t _drops[R_COUNT]
    cdef fp_sample_t _samples[R_COUNT]

    # Feed one received message. Returns FP_HANDLED / FP_DROPPED / FP_ESCALATE and
    # fills *res; raises KeyError for an unknown gid. On FP_ESCALATE build the Python
    # escalation with c_escalation_ipv4/6 (same buffer) and hand it to the FSM.
    cdef int c_feed_ipv4(self, int gid, const uint8_t* buf, size_t n, int64_t now,
                         fp_feed_t* res) except -1 nogil
    cdef int c_feed_ipv6(self, int gid, const uint8_t* msg, size_t n, const uint8_t* src,
                         const uint8_t* dst, int hop_limit, int64_t now,
                         fp_feed_t* res) except -1 nogil
    cdef bint c_has_drop_samples(self) noexcept nogil   # anything for take_drop_samples
    cdef object c_escalation_ipv4(self, const uint8_t* buf, size_t n, const fp_feed_t* res)
    cdef object c_escalation_ipv6(self, const uint8_t* msg, size_t n, const uint8_t* src,
                                  const uint8_t* dst, int hop_limit, const fp_feed_t* res)

    # Drain due timers: steady ADVERs queue their packets and re-arm, a MASTER_DOWN with
    # takeover packets queues them (and escalates); returns how many
    # timers escalated, whose ids (idx * kinds + kind) c_escalated_timers gives.
    cdef Py_ssize_t c_expire(self, int64_t now) except -1
    cdef const Py_ssize_t* c_escalated_timers(self, Py_ssize_t* count) noexcept

    # The outbox, for sendmmsg: entry i's bytes stay valid until c_outbox_clear.
    cdef Py_ssize_t c_outbox_count(self) noexcept nogil
    cdef const uint8_t* c_outbox_packet(self, Py_ssize_t i, size_t* length, int* gid,
                                        int* idx, PyObject** dest) noexcept nogil
    cdef void c_outbox_clear(self)

    # internals
    cdef fp_group_t* _group(self, int gid) except NULL nogil
    cdef int _received(self, int gid, fp_group_t* g, int r, bint decoded,
                       const advert_t* a, int64_t now, fp_feed_t* res) except -1 nogil
    cdef int _queue(self, int idx, fp_packet_t* p) except -1
    cdef int _store_packets(self, Py_ssize_t idx, packets) except -1
    cdef int _check(self, Py_ssize_t idx) except -1
    cdef int _unreported(self, Py_ssize_t idx) except -1
