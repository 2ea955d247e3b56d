# cython: freethreading_compatible = False
"""The steady-state fast path in C: compiled twin of fastvrrp.proto.fastpath.

Same Python API and behaviour as the twin (see its docstring for the protocol with
the caller). Works on the compiled wheel (fastvrrp._wheel.TimerWheel) and the
compiled codec's ReceiveTable / AdvertEncoder. The steady path (parse, validate,
compare the backup key, re-arm; or queue a master's packet and re-arm) touches no
Python object; the C-level functions in _fastpath.pxd let the socket layer feed
recvmmsg batches and flush the outbox with sendmmsg without Python either.
"""

from cpython.buffer cimport PyBUF_SIMPLE, PyBuffer_Release, PyObject_GetBuffer
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.mem cimport PyMem_Free, PyMem_Malloc, PyMem_Realloc
from cpython.object cimport PyObject
from cpython.ref cimport Py_XDECREF, Py_XINCREF
from libc.stdint cimport int32_t, int64_t, uint8_t, uint16_t
from libc.string cimport memcmp, memcpy, memset

from fastvrrp._wheel cimport TimerWheel
from fastvrrp._wire cimport (
    R_ADDR_LIST_MISMATCH,
    R_BAD_CHECKSUM,
    R_COUNT,
    R_OK,
    R_VRID_UNKNOWN,
    AdvertEncoder,
    ReceiveTable,
    advert_t,
    check_expect_c,
    expect_t,
    parse_ipv4_c,
    parse_ipv6_c,
)

from fastvrrp._wire import parse_ipv4 as _parse_ipv4, parse_ipv6 as _parse_ipv6
from fastvrrp.proto.actions import TimerKind
from fastvrrp.proto.fastpath import MODE_BACKUP, MODE_MASTER, MODE_NONE, sync_from_fsm
from fastvrrp.proto.packet import Reason, is_drop

IMPLEMENTATION = "compiled"

if (TimerKind.ADVER, TimerKind.MASTER_DOWN) != (FP_TIMER_ADVER, FP_TIMER_MASTER_DOWN) \
        or (MODE_NONE, MODE_MASTER, MODE_BACKUP) != (FP_MODE_NONE, FP_MODE_MASTER,
                                                     FP_MODE_BACKUP) \
        or len(Reason) != R_COUNT:
    raise ImportError("fastvrrp._fastpath was built against other TimerKind/Reason values")

cdef enum:
    _TOUCH_ADVER = 1
    _TOUCH_DOWN = 2
    _TOUCH_TAKEOVER = 4
    _DUE_CAP = 256          # timers taken from the wheel per expire_into call
    _MAX_GID = 0xFFFF


cdef class FastPath:
    """FastPath(wheel, kinds): see fastvrrp.proto.fastpath."""

    def __cinit__(self):
        self._n = 0
        self._e = NULL
        self._groups = NULL
        self._ngroups = 0
        self._due = NULL
        self._esc = NULL
        self._nesc = self._esc_cap = 0
        self._arena = NULL
        self._arena_len = self._arena_cap = 0
        self._out = NULL
        self._nout = self._out_cap = 0
        memset(self._drops, 0, sizeof(self._drops))
        memset(self._samples, 0, sizeof(self._samples))

    def __init__(self, TimerWheel wheel not None, int kinds):
        if kinds <= FP_TIMER_MASTER_DOWN:
            raise ValueError(f"kinds must be > {FP_TIMER_MASTER_DOWN}")
        self._wheel = wheel
        self.kinds = kinds
        self._refs = []
        self._tables = {}
        self._due = <Py_ssize_t*>PyMem_Malloc(_DUE_CAP * sizeof(Py_ssize_t))
        if self._due == NULL:
            raise MemoryError()

    def __dealloc__(self):
        cdef Py_ssize_t i
        self.c_outbox_clear()
        if self._e != NULL:
            for i in range(self._n):
                PyMem_Free(self._e[i].pkts)
        PyMem_Free(self._e)
        if self._groups != NULL:
            for i in range(self._ngroups):
                PyMem_Free(self._groups[i])
        PyMem_Free(self._groups)
        PyMem_Free(self._due)
        PyMem_Free(self._esc)
        PyMem_Free(self._arena)
        PyMem_Free(self._out)

    # ---- configuration -------------------------------------------------------

    @property
    def capacity(self):
        return self._n

    def reserve(self, Py_ssize_t n):
        """Grow the table to at least n instances (and the wheel to n * kinds ids)."""
        if n <= self._n:
            return
        self._wheel.c_reserve(n * self.kinds)
        cdef void* p = PyMem_Realloc(self._e, n * sizeof(fp_entry_t))
        if p == NULL:
            raise MemoryError()
        self._e = <fp_entry_t*>p
        memset(&self._e[self._n], 0, (n - self._n) * sizeof(fp_entry_t))
        self._refs.extend([()] * (n - self._n))
        self._n = n

    def add_group(self, int gid, int family, ReceiveTable table not None):
        """A receive group: one (interface, family) socket and its codec ReceiveTable."""
        cdef Py_ssize_t i
        cdef void* p
        if not 0 <= gid <= _MAX_GID:
            raise ValueError("gid must be 0..65535")
        if family not in (4, 6):
            raise ValueError("family must be 4 or 6")
        if gid >= self._ngroups:
            p = PyMem_Realloc(self._groups, (gid + 1) * sizeof(fp_group_t*))
            if p == NULL:
                raise MemoryError()
            self._groups = <fp_group_t**>p
            for i in range(self._ngroups, gid + 1):
                self._groups[i] = NULL
            self._ngroups = gid + 1
        cdef fp_group_t* g = self._groups[gid]
        if g == NULL:
            g = <fp_group_t*>PyMem_Malloc(sizeof(fp_group_t))
            if g == NULL:
                raise MemoryError()
            self._groups[gid] = g
        g.family = family
        g.expects = &table._c[0]
        for i in range(256):
            g.idx_of[i] = -1
        self._tables[gid] = table

    def bind(self, int gid, int vrid, Py_ssize_t idx):
        """Adverts for `vrid` on group `gid` belong to instance idx."""
        if not 0 <= vrid <= 255:
            raise ValueError("vrid must be 0..255")
        self._check(idx)
        self._group(gid).idx_of[vrid] = <int32_t>idx

    def unbind(self, int gid, int vrid):
        if not 0 <= vrid <= 255:
            raise ValueError("vrid must be 0..255")
        self._group(gid).idx_of[vrid] = -1

    cdef fp_group_t* _group(self, int gid) except NULL nogil:
        if gid < 0 or gid >= self._ngroups or self._groups[gid] == NULL:
            with gil:
                raise KeyError(gid)
        return self._groups[gid]

    cdef int _check(self, Py_ssize_t idx) except -1:
        if not 0 <= idx < self._n:
            raise IndexError(f"instance {idx} outside 0..{self._n - 1} (reserve first)")
        return 0

    cdef int _unreported(self, Py_ssize_t idx) except -1:
        self._check(idx)
        if self._e[idx].touched:
            raise RuntimeError(f"instance {idx}: fast-path re-arms not reported to the "
                               "FSM; call sync_back(idx, fsm) before its input")
        return 0

    def set_master(self, Py_ssize_t idx, int64_t adver_interval_ns, packets,
                   int64_t adver_phase_ns=-1):
        """MASTER-steady: on ADVER, queue `packets` ((send gid, AdvertEncoder or bytes,
        destination) each) and re-arm ADVER at now + adver_interval_ns, or with
        adver_phase_ns >= 0 at the last instant up to then on that phase grid
        (fsm.next_adver)."""
        self._unreported(idx)
        if adver_interval_ns <= 0:
            raise ValueError("adver_interval_ns must be > 0")
        if not -1 <= adver_phase_ns < adver_interval_ns:
            raise ValueError("adver_phase_ns must be -1 or in [0, adver_interval_ns)")
        self._store_packets(idx, packets)
        self._e[idx].adver_ns = adver_interval_ns
        self._e[idx].phase_ns = adver_phase_ns
        self._e[idx].mode = FP_MODE_MASTER

    def set_takeover(self, Py_ssize_t idx, packets):
        """Not a master: when MASTER_DOWN expires, queue `packets` (as set_master's)
        before escalating the expiry. Dropped by any later set_*/clear or escalation."""
        self._unreported(idx)
        if self._e[idx].mode == FP_MODE_MASTER:
            raise ValueError(f"instance {idx} is a steady master")
        self._store_packets(idx, packets)

    cdef int _store_packets(self, Py_ssize_t idx, packets) except -1:
        cdef list keep = []
        for g, pkt, dest in packets:
            if isinstance(pkt, AdvertEncoder):
                keep.append((int(g), pkt, dest, True))
            elif hasattr(pkt, "packet"):
                raise TypeError("the compiled fast path needs fastvrrp._wire.AdvertEncoder, "
                                f"not {type(pkt).__name__}")
            else:
                keep.append((int(g), bytes(memoryview(pkt)), dest, False))
        cdef fp_entry_t* e = &self._e[idx]
        cdef Py_ssize_t i, k = len(keep)
        cdef void* p
        if k > e.pkt_cap:
            p = PyMem_Realloc(e.pkts, k * sizeof(fp_packet_t))
            if p == NULL:
                raise MemoryError()
            e.pkts = <fp_packet_t*>p
            e.pkt_cap = <int32_t>k
        for i in range(k):
            g, obj, dest, is_enc = keep[i]
            e.pkts[i].gid = g
            e.pkts[i].is_encoder = is_enc
            e.pkts[i].obj = <PyObject*>obj
            e.pkts[i].dest = <PyObject*>dest
        self._refs[idx] = tuple(keep)
        e.npkts = <int32_t>k
        return 0

    def set_backup(self, Py_ssize_t idx, key, int64_t master_down_interval_ns,
                   int64_t skew_ns=0):
        """BACKUP-steady: a valid advert with (src, priority, interval) == key re-arms
        MASTER_DOWN at now + master_down_interval_ns; with skew_ns > 0, a valid
        priority-0 advert re-arms it at now + skew_ns (else it escalates)."""
        self._unreported(idx)
        src, prio, interval = key
        src = bytes(src)
        if len(src) not in (4, 16) or not 0 <= prio <= 255 or not 0 <= interval <= 0xFFFF:
            raise ValueError(f"bad backup key {key!r}")
        if master_down_interval_ns <= 0 or skew_ns < 0:
            raise ValueError("master_down_interval_ns must be > 0 and skew_ns >= 0")
        cdef fp_entry_t* e = &self._e[idx]
        e.src_len = <uint8_t>len(src)
        memcpy(e.src, PyBytes_AS_STRING(src), e.src_len)
        e.priority = <uint8_t>prio
        e.interval = <uint16_t>interval
        e.down_ns = master_down_interval_ns
        e.stop_ns = skew_ns
        e.npkts = 0
        self._refs[idx] = ()
        e.mode = FP_MODE_BACKUP

    def clear(self, Py_ssize_t idx):
        """Neither steady: every event of the instance escalates."""
        self._unreported(idx)
        self._e[idx].mode = FP_MODE_NONE
        self._e[idx].npkts = 0
        self._refs[idx] = ()

    def mode(self, Py_ssize_t idx):
        self._check(idx)
        return self._e[idx].mode

    # ---- receive side --------------------------------------------------------

    cdef int c_feed_ipv4(self, int gid, const uint8_t* buf, size_t n, int64_t now,
                         fp_feed_t* res) except -1 nogil:
        cdef fp_group_t* g = self._group(gid)
        cdef advert_t a
        cdef int r = parse_ipv4_c(buf, n, &a)
        cdef bint decoded = r == R_OK or r == R_BAD_CHECKSUM
        if r == R_OK:
            r = R_VRID_UNKNOWN if g.expects[a.vrid] == NULL else check_expect_c(&a, g.expects[a.vrid])
        return self._received(gid, g, r, decoded, &a, now, res)

    cdef int c_feed_ipv6(self, int gid, const uint8_t* msg, size_t n, const uint8_t* src,
                         const uint8_t* dst, int hop_limit, int64_t now,
                         fp_feed_t* res) except -1 nogil:
        cdef fp_group_t* g = self._group(gid)
        cdef advert_t a
        cdef int r = parse_ipv6_c(msg, n, src, dst, hop_limit, &a)
        cdef bint decoded = r == R_OK or r == R_BAD_CHECKSUM
        if r == R_OK:
            r = R_VRID_UNKNOWN if g.expects[a.vrid] == NULL else check_expect_c(&a, g.expects[a.vrid])
        return self._received(gid, g, r, decoded, &a, now, res)

    cdef int _received(self, int gid, fp_group_t* g, int r, bint decoded,
                       const advert_t* a, int64_t now, fp_feed_t* res) except -1 nogil:
        cdef int32_t idx
        cdef fp_entry_t* e
        cdef size_t alen
        cdef int64_t deadline, rearm
        cdef fp_sample_t* s
        res.reason = r
        res.vrid = a.vrid if decoded else -1
        res.idx = -1
        if r == R_OK or r == R_ADDR_LIST_MISMATCH:
            idx = g.idx_of[a.vrid]
            res.idx = idx
            if idx >= 0:
                e = &self._e[idx]
                if r == R_OK and e.mode == FP_MODE_BACKUP:
                    alen = 4 if a.family == 4 else 16
                    rearm = 0
                    if a.priority == 0 and e.stop_ns:
                        rearm = e.stop_ns  # the master is stopping: Skew_Time
                    elif (e.priority == a.priority and e.interval == a.interval
                            and e.src_len == alen and memcmp(e.src, a.src, alen) == 0):
                        rearm = e.down_ns
                    if rearm:
                        deadline = now + rearm
                        self._wheel.c_schedule(idx * self.kinds + FP_TIMER_MASTER_DOWN, deadline)
                        e.down_deadline = deadline
                        e.touched |= _TOUCH_DOWN
                        self._steady_rearms += 1
                        return FP_HANDLED
                # Disarmed until Python re-syncs it, so the instance's later events
                # in the same batch escalate too and reach the FSM in order.
                e.mode = FP_MODE_NONE
                e.npkts = 0
            self._esc_adverts += 1
            return FP_ESCALATE
        self._drops[r] += 1
        s = &self._samples[r]
        if s.count == 0:
            s.gid = gid
            s.vrid = res.vrid
            s.src_len = 0
            if decoded:
                s.src_len = 4 if a.family == 4 else 16
                memcpy(s.src, a.src, s.src_len)
        s.count += 1
        return FP_DROPPED

    cdef object c_escalation_ipv4(self, const uint8_t* buf, size_t n, const fp_feed_t* res):
        adv = _parse_ipv4(PyBytes_FromStringAndSize(<const char*>buf, n))[1]
        return (res.idx, Reason(res.reason), adv)

    cdef object c_escalation_ipv6(self, const uint8_t* msg, size_t n, const uint8_t* src,
                                  const uint8_t* dst, int hop_limit, const fp_feed_t* res):
        adv = _parse_ipv6(PyBytes_FromStringAndSize(<const char*>msg, n),
                          PyBytes_FromStringAndSize(<const char*>src, 16),
                          PyBytes_FromStringAndSize(<const char*>dst, 16), hop_limit)[1]
        return (res.idx, Reason(res.reason), adv)

    def feed_ipv4(self, int gid, datagram, int64_t now):
        """One datagram from group gid's raw IPv4 socket (IP header included)."""
        cdef Py_buffer view
        cdef fp_feed_t res
        cdef int r
        PyObject_GetBuffer(datagram, &view, PyBUF_SIMPLE)
        try:
            r = self.c_feed_ipv4(gid, <const uint8_t*>view.buf, <size_t>view.len, now, &res)
            if r == FP_ESCALATE:
                return self.c_escalation_ipv4(<const uint8_t*>view.buf, <size_t>view.len, &res)
            return None
        finally:
            PyBuffer_Release(&view)

    def feed_ipv4_batch(self, int gid, datagrams, Py_ssize_t start, int64_t now):
        """feed_ipv4 over datagrams[start:] until one escalates: returns (its position,
        the escalation), or None once all are consumed. Handle it, then continue at
        position + 1 (a recvmmsg batch, without a Python call per steady packet)."""
        cdef Py_buffer view
        cdef fp_feed_t res
        cdef int r
        cdef Py_ssize_t pos
        for pos in range(start, len(datagrams)):
            PyObject_GetBuffer(datagrams[pos], &view, PyBUF_SIMPLE)
            try:
                r = self.c_feed_ipv4(gid, <const uint8_t*>view.buf, <size_t>view.len, now, &res)
                if r == FP_ESCALATE:
                    return pos, self.c_escalation_ipv4(<const uint8_t*>view.buf,
                                                       <size_t>view.len, &res)
            finally:
                PyBuffer_Release(&view)
        return None

    def feed_ipv6(self, int gid, message, src, dst, int hop_limit, int64_t now):
        """One VRRP message from group gid's raw IPv6 socket, with its ancillary data."""
        cdef Py_buffer view, vsrc, vdst
        cdef fp_feed_t res
        cdef int r
        PyObject_GetBuffer(src, &vsrc, PyBUF_SIMPLE)
        try:
            PyObject_GetBuffer(dst, &vdst, PyBUF_SIMPLE)
            try:
                if vsrc.len != 16 or vdst.len != 16:
                    raise ValueError("IPv6 src and dst must be 16 bytes")
                PyObject_GetBuffer(message, &view, PyBUF_SIMPLE)
                try:
                    r = self.c_feed_ipv6(gid, <const uint8_t*>view.buf, <size_t>view.len,
                                         <const uint8_t*>vsrc.buf, <const uint8_t*>vdst.buf,
                                         hop_limit, now, &res)
                    if r == FP_ESCALATE:
                        return self.c_escalation_ipv6(
                            <const uint8_t*>view.buf, <size_t>view.len,
                            <const uint8_t*>vsrc.buf, <const uint8_t*>vdst.buf, hop_limit, &res)
                    return None
                finally:
                    PyBuffer_Release(&view)
            finally:
                PyBuffer_Release(&vdst)
        finally:
            PyBuffer_Release(&vsrc)

    # ---- timer side ----------------------------------------------------------

    cdef Py_ssize_t c_expire(self, int64_t now) except -1:
        cdef Py_ssize_t k, i, j, tid, idx, kind
        cdef fp_entry_t* e
        cdef int64_t deadline
        cdef void* p
        self._nesc = 0
        while True:
            k = self._wheel.c_expire_into(now, self._due, _DUE_CAP)
            for i in range(k):
                tid = self._due[i]
                idx = tid // self.kinds
                kind = tid - idx * self.kinds
                e = &self._e[idx]
                if kind == FP_TIMER_ADVER and e.mode == FP_MODE_MASTER:
                    # fsm._master_tx: from now, not from the deadline (fsm.next_adver)
                    deadline = now + e.adver_ns
                    if e.phase_ns >= 0:
                        deadline -= (deadline - e.phase_ns) % e.adver_ns
                    self._wheel.c_schedule(tid, deadline)
                    e.adver_deadline = deadline
                    e.touched |= _TOUCH_ADVER
                    self._steady_sends += 1
                    for j in range(e.npkts):
                        self._queue(<int>idx, &e.pkts[j])
                else:
                    if kind == FP_TIMER_MASTER_DOWN and e.mode != FP_MODE_MASTER and e.npkts:
                        # Takeover: the new master's first advert before Python runs.
                        e.touched |= _TOUCH_TAKEOVER
                        self._takeovers += 1
                        for j in range(e.npkts):
                            self._queue(<int>idx, &e.pkts[j])
                    self._esc_timers += 1
                    e.mode = FP_MODE_NONE
                    e.npkts = 0
                    if self._nesc == self._esc_cap:
                        p = PyMem_Realloc(self._esc, (self._esc_cap * 2 + 64) * sizeof(Py_ssize_t))
                        if p == NULL:
                            raise MemoryError()
                        self._esc = <Py_ssize_t*>p
                        self._esc_cap = self._esc_cap * 2 + 64
                    self._esc[self._nesc] = tid
                    self._nesc += 1
            if k < _DUE_CAP:
                return self._nesc

    cdef const Py_ssize_t* c_escalated_timers(self, Py_ssize_t* count) noexcept:
        count[0] = self._nesc
        return self._esc

    cdef int _queue(self, int idx, fp_packet_t* pkt) except -1:
        cdef size_t length
        cdef const uint8_t* data
        cdef void* p
        cdef Py_ssize_t need, cap
        if pkt.is_encoder:
            data = (<AdvertEncoder>pkt.obj).c_packet(&length)
        else:
            data = <const uint8_t*>PyBytes_AS_STRING(<object>pkt.obj)
            length = <size_t>PyBytes_GET_SIZE(<object>pkt.obj)
        need = self._arena_len + <Py_ssize_t>length
        if need > self._arena_cap:
            cap = need * 2 + 4096
            p = PyMem_Realloc(self._arena, cap)
            if p == NULL:
                raise MemoryError()
            self._arena = <uint8_t*>p
            self._arena_cap = cap
        if self._nout == self._out_cap:
            cap = self._out_cap * 2 + 64
            p = PyMem_Realloc(self._out, cap * sizeof(fp_out_t))
            if p == NULL:
                raise MemoryError()
            self._out = <fp_out_t*>p
            self._out_cap = cap
        # Copied: the outbox stays valid even if Python re-encodes before the flush.
        memcpy(self._arena + self._arena_len, data, length)
        cdef fp_out_t* o = &self._out[self._nout]
        o.gid = pkt.gid
        o.idx = idx
        o.offset = self._arena_len
        o.length = length
        o.dest = pkt.dest
        Py_XINCREF(pkt.dest)
        self._arena_len = need
        self._nout += 1
        self._packets_queued += 1
        return 0

    def expire(self, int64_t now):
        """Drain every due timer; handle MASTER-steady ADVERs, return the rest as
        (idx, kind) in (deadline, timer id) order."""
        cdef Py_ssize_t k = self.c_expire(now), i
        return [divmod(self._esc[i], self.kinds) for i in range(k)]

    # ---- outbox --------------------------------------------------------------

    cdef Py_ssize_t c_outbox_count(self) noexcept nogil:
        return self._nout

    cdef const uint8_t* c_outbox_packet(self, Py_ssize_t i, size_t* length, int* gid,
                                        int* idx, PyObject** dest) noexcept nogil:
        cdef fp_out_t* o = &self._out[i]
        length[0] = o.length
        gid[0] = o.gid
        idx[0] = o.idx
        dest[0] = o.dest
        return self._arena + o.offset

    cdef void c_outbox_clear(self):
        cdef Py_ssize_t i
        for i in range(self._nout):
            Py_XDECREF(self._out[i].dest)
        self._nout = 0
        self._arena_len = 0

    def take_outbox(self):
        """The queued steady adverts, (send gid, packet, destination, idx), oldest first."""
        cdef Py_ssize_t i
        cdef fp_out_t* o
        out = []
        for i in range(self._nout):
            o = &self._out[i]
            out.append((o.gid, PyBytes_FromStringAndSize(<const char*>self._arena + o.offset,
                                                         o.length),
                        <object>o.dest, o.idx))
        self.c_outbox_clear()
        return out

    # ---- back to the FSM -----------------------------------------------------

    def touched(self, Py_ssize_t idx):
        """True if the fast path re-armed a timer the FSM has not been told of."""
        self._check(idx)
        return self._e[idx].touched != 0

    def took_over(self, Py_ssize_t idx):
        """True if the fast path sent idx's takeover advert and the FSM has not been
        told yet (between expire and sync_back)."""
        self._check(idx)
        return (self._e[idx].touched & _TOUCH_TAKEOVER) != 0

    def sync_back(self, Py_ssize_t idx, fsm):
        """Report the fast path's re-arms to `fsm` (fsm.fastpath_rearmed). Call before
        the FSM handles any input of this instance; cheap when nothing happened."""
        self._check(idx)
        cdef fp_entry_t* e = &self._e[idx]
        cdef uint8_t touched = e.touched
        if not touched:
            return False
        if touched & _TOUCH_ADVER:
            fsm.fastpath_rearmed(TimerKind.ADVER, e.adver_deadline)
        if touched & _TOUCH_DOWN:
            fsm.fastpath_rearmed(TimerKind.MASTER_DOWN, e.down_deadline)
        if touched & _TOUCH_TAKEOVER:
            fsm.fastpath_sent_takeover()
        e.touched = 0
        return True

    # ---- counters ------------------------------------------------------------

    def counters(self):
        """Events that stayed in the fast path, escalations, and drops per Reason."""
        return {
            "steady_sends": self._steady_sends,
            "steady_rearms": self._steady_rearms,
            "packets_queued": self._packets_queued,
            "takeover_sends": self._takeovers,
            "escalated_timers": self._esc_timers,
            "escalated_adverts": self._esc_adverts,
            "drops": {Reason(r): self._drops[r] for r in range(R_COUNT) if is_drop(r)},
        }

    cdef bint c_has_drop_samples(self) noexcept nogil:
        cdef int r
        for r in range(R_COUNT):
            if self._samples[r].count:
                return True
        return False

    def has_drop_samples(self):
        """True when take_drop_samples() would return something."""
        return self.c_has_drop_samples()

    def take_drop_samples(self):
        """Per reason dropped since the last call: (reason, gid, vrid, src, count) of its
        first drop (vrid -1 and src None when the header could not be decoded)."""
        cdef int r
        cdef fp_sample_t* s
        out = []
        for r in range(R_COUNT):
            s = &self._samples[r]
            if s.count:
                src = (PyBytes_FromStringAndSize(<const char*>s.src, s.src_len)
                       if s.src_len else None)
                out.append((Reason(r), s.gid, s.vrid, src, s.count))
                s.count = 0
        return out
