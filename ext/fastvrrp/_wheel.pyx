"""The daemon's one timer wheel (compiled). Twin: fastvrrp.proto.wheel.

Hierarchical hashed timing wheel, 8 levels x 256 slots, default 1 ms ticks.
Time is integer nanoseconds of CLOCK_MONOTONIC; timers are the integers
0..capacity-1 chosen by the caller; all state lives in preallocated C arrays.

Placement (as in W. Ahern's timeout.c): a timer whose tick is t, with the wheel at
tick `cur`, lives at level L = (highest bit where t and cur differ) // 8, in slot
(t >> 8L) & 255. So level 0 holds the current 256-tick block, level 1 the rest of
the current 65536-tick block, and so on. 8 levels x 8 bits span every int64 tick,
so there is no separate overflow list: far deadlines simply sit in high levels
and move down ("cascade") when the clock reaches their block. At 1 ms ticks,
level 0 spans 256 ms, level 1 65.5 s, level 2 4.7 h.

Deadlines are kept exactly; slots are only buckets. A level-0 slot is one tick;
expire() sorts each due slot's timers by (deadline, tid) and returns slots in
time order, so the output is exactly what a heap would produce. Deadlines at or
before the current tick go to the current tick's slot and fire at the first
expire(now) with now >= deadline.

Complexity (n armed timers):
- schedule / reschedule / cancel: O(1) worst case (bit tricks, no loops).
- expire: O(levels) bitmap work per occupied slot visited (empty slots are
  skipped with find-first-set, so an hour-long idle jump costs nothing extra)
  + O(k log k) per due slot of k timers (insertion sort when small)
  + one re-link per cascade. A timer cascades at most once per level it starts
  above 0: never for deadlines < 256 ms ahead, at most once up to 65 s, twice up
  to 4.7 h.
- next_deadline: O(1) when cached. The cache survives schedules and cancels of
  non-minimal timers; otherwise recomputation is O(levels) + a scan of the
  earliest occupied slot (one tick at level 0, up to a 256 ms block at level 1),
  not of all timers.
- expire_into with a small `cap` re-sorts a slot split across calls.
"""

cimport cython
from cpython.mem cimport PyMem_Free, PyMem_Malloc, PyMem_Realloc
from libc.stdint cimport INT32_MAX, INT64_MAX, int32_t, int64_t, uint64_t
from libc.stdlib cimport qsort
from libc.string cimport memset

cdef extern from *:
    """
    static inline int fv_wheel_clz64(unsigned long long x) { return __builtin_clzll(x); }
    static inline int fv_wheel_ctz64(unsigned long long x) { return __builtin_ctzll(x); }
    """
    int fv_wheel_clz64(unsigned long long x) nogil
    int fv_wheel_ctz64(unsigned long long x) nogil

SLOT_BITS = WHEEL_SLOT_BITS
SLOTS = WHEEL_SLOTS
LEVELS = WHEEL_LEVELS

# Below this many due timers in one slot, insertion sort beats qsort's call overhead.
cdef enum:
    _INSERTION_SORT_MAX = 24


cdef int _due_cmp(const void* a, const void* b) noexcept nogil:
    cdef const DueEntry* x = <const DueEntry*>a
    cdef const DueEntry* y = <const DueEntry*>b
    if x.deadline != y.deadline:
        return -1 if x.deadline < y.deadline else 1
    return -1 if x.tid < y.tid else (1 if x.tid > y.tid else 0)


cdef inline bint _due_less(DueEntry* x, DueEntry* y) noexcept nogil:
    return x.deadline < y.deadline or (x.deadline == y.deadline and x.tid < y.tid)


cdef void _sort_due(DueEntry* a, Py_ssize_t k) noexcept nogil:
    cdef Py_ssize_t i, j
    cdef DueEntry e
    if k > _INSERTION_SORT_MAX:
        qsort(a, k, sizeof(DueEntry), _due_cmp)
        return
    for i in range(1, k):
        e = a[i]
        j = i - 1
        while j >= 0 and _due_less(&e, &a[j]):
            a[j + 1] = a[j]
            j -= 1
        a[j + 1] = e


cdef class TimerWheel:
    """TimerWheel(capacity, now, resolution_ns=1_000_000); see the module docstring."""

    def __cinit__(self, Py_ssize_t capacity, int64_t now, int64_t resolution_ns=1_000_000):
        if capacity < 0:
            raise ValueError("capacity must be >= 0")
        if resolution_ns <= 0:
            raise ValueError("resolution_ns must be > 0")
        if now < 0:
            raise ValueError("now must be >= 0 (CLOCK_MONOTONIC nanoseconds)")
        self.resolution_ns = resolution_ns
        self._cur = <uint64_t>(now // resolution_ns)
        self._count = 0
        self._level_mask = 0
        self._min_valid = False
        self._min_cache = INT64_MAX
        memset(self._head, 0xFF, sizeof(self._head))   # every head = -1
        memset(self._bitmap, 0, sizeof(self._bitmap))
        memset(self._level_count, 0, sizeof(self._level_count))
        self.capacity = 0
        self.c_reserve(capacity if capacity > 0 else 1)
        self.capacity = capacity

    def __dealloc__(self):
        PyMem_Free(self._timers)
        PyMem_Free(self._scratch)
        PyMem_Free(self._out)

    # ---- C level -------------------------------------------------------------

    cdef int c_reserve(self, Py_ssize_t n) except -1:
        cdef Py_ssize_t i, old = self.capacity
        if n <= old:
            return 0
        if n > INT32_MAX:
            raise ValueError("capacity must fit in int32")
        # Each realloc is kept as soon as it succeeds, so a MemoryError midway
        # leaves every array at least `old` long and the wheel usable.
        cdef void* p
        p = PyMem_Realloc(self._timers, n * sizeof(WheelTimer))
        if p == NULL: raise MemoryError()
        self._timers = <WheelTimer*>p
        p = PyMem_Realloc(self._scratch, n * sizeof(DueEntry))
        if p == NULL: raise MemoryError()
        self._scratch = <DueEntry*>p
        p = PyMem_Realloc(self._out, n * sizeof(Py_ssize_t))
        if p == NULL: raise MemoryError()
        self._out = <Py_ssize_t*>p
        for i in range(old, n):
            self._timers[i].slot = -1
        self.capacity = n
        return 0

    cdef void _link(self, Py_ssize_t tid, uint64_t tick) noexcept nogil:
        # tick >= self._cur (callers clamp)
        cdef uint64_t diff = tick ^ self._cur
        cdef int level = 0 if diff == 0 else (63 - fv_wheel_clz64(diff)) >> 3
        cdef int slot = <int>((tick >> (level * WHEEL_SLOT_BITS)) & (WHEEL_SLOTS - 1))
        cdef int idx = level * WHEEL_SLOTS + slot
        cdef int32_t head = self._head[idx]
        self._timers[tid].tick = tick
        self._timers[tid].slot = idx
        self._timers[tid].prev = -1
        self._timers[tid].next = head
        if head >= 0:
            self._timers[head].prev = <int32_t>tid
        self._head[idx] = <int32_t>tid
        self._bitmap[level][slot >> 6] |= (<uint64_t>1) << (slot & 63)
        self._level_count[level] += 1
        self._level_mask |= 1u << level

    cdef void _unlink(self, Py_ssize_t tid) noexcept nogil:
        cdef int idx = self._timers[tid].slot
        cdef int level = idx >> WHEEL_SLOT_BITS
        cdef int slot = idx & (WHEEL_SLOTS - 1)
        cdef int32_t p = self._timers[tid].prev, n = self._timers[tid].next
        if p >= 0:
            self._timers[p].next = n
        else:
            self._head[idx] = n
            if n < 0:
                self._bitmap[level][slot >> 6] &= ~((<uint64_t>1) << (slot & 63))
        if n >= 0:
            self._timers[n].prev = p
        self._timers[tid].slot = -1
        self._level_count[level] -= 1
        if self._level_count[level] == 0:
            self._level_mask &= ~(1u << level)

    cdef int _lowest(self, int* level, int* slot) noexcept nogil:
        # Earliest occupied (level, slot): lowest level first, then lowest slot.
        # Valid because occupied slots of a level always lie after cur's digit.
        cdef int L, w
        cdef uint64_t bits
        if self._level_mask == 0:
            return 0
        L = fv_wheel_ctz64(self._level_mask)
        for w in range(WHEEL_WORDS):
            bits = self._bitmap[L][w]
            if bits:
                level[0] = L
                slot[0] = w * 64 + fv_wheel_ctz64(bits)
                return 1
        return 0  # unreachable: level_count > 0 implies a set bit

    cdef uint64_t _tick_of(self, int64_t deadline) noexcept nogil:
        # Past (or current-tick) deadlines go to the current tick's slot.
        if deadline < <int64_t>self._cur * self.resolution_ns:
            return self._cur
        return <uint64_t>(deadline // self.resolution_ns)

    cdef int c_schedule(self, Py_ssize_t tid, int64_t deadline) except -1 nogil:
        cdef int64_t old
        if tid < 0 or tid >= self.capacity:
            with gil:
                raise IndexError(f"timer id {tid} outside 0..{self.capacity - 1}")
        if self._timers[tid].slot >= 0:
            old = self._timers[tid].deadline
            self._unlink(tid)
            if self._min_valid:
                if deadline <= self._min_cache:
                    self._min_cache = deadline
                elif old == self._min_cache:
                    self._min_valid = False
        else:
            self._count += 1
            if self._count == 1:
                self._min_cache = deadline
                self._min_valid = True
            elif self._min_valid and deadline < self._min_cache:
                self._min_cache = deadline
        self._timers[tid].deadline = deadline
        self._link(tid, self._tick_of(deadline))
        return 0

    cdef void c_cancel(self, Py_ssize_t tid) noexcept nogil:
        if tid < 0 or tid >= self.capacity or self._timers[tid].slot < 0:
            return
        self._unlink(tid)
        self._count -= 1
        if self._min_valid and self._timers[tid].deadline == self._min_cache:
            self._min_valid = False

    cdef int64_t c_next_deadline(self) noexcept nogil:
        cdef int level = 0, slot = 0
        cdef int32_t t
        cdef int64_t best
        if self._count == 0:
            return INT64_MAX
        if self._min_valid:
            return self._min_cache
        self._lowest(&level, &slot)
        best = INT64_MAX
        t = self._head[level * WHEEL_SLOTS + slot]
        while t >= 0:
            if self._timers[t].deadline < best:
                best = self._timers[t].deadline
            t = self._timers[t].next
        self._min_cache = best
        self._min_valid = True
        return best

    cdef Py_ssize_t c_expire_into(self, int64_t now, Py_ssize_t* out, Py_ssize_t cap) noexcept nogil:
        cdef uint64_t n, tick, start
        cdef int level, slot, idx, shift
        cdef int32_t t, nxt
        cdef Py_ssize_t emitted = 0, k, i, take
        cdef int64_t left_min
        cdef DueEntry* due = self._scratch
        if now < <int64_t>self._cur * self.resolution_ns:
            n = self._cur       # the clock never goes back; only current-tick timers can be due
        else:
            n = <uint64_t>(now // self.resolution_ns)
        while True:
            if not self._lowest(&level, &slot):
                break
            idx = level * WHEEL_SLOTS + slot
            if level == 0:
                tick = (self._cur & ~(<uint64_t>(WHEEL_SLOTS - 1))) | <uint64_t>slot
                if tick > n:
                    break
                if emitted >= cap:
                    return emitted  # full: stay at this tick, the caller calls again
                self._cur = tick
                k = 0
                left_min = INT64_MAX
                t = self._head[idx]
                while t >= 0:
                    if tick < n or self._timers[t].deadline <= now:
                        due[k].deadline = self._timers[t].deadline
                        due[k].tid = t
                        k += 1
                    elif self._timers[t].deadline < left_min:
                        left_min = self._timers[t].deadline
                    t = self._timers[t].next
                if k:
                    self._min_valid = False
                    _sort_due(due, k)
                    take = k if k <= cap - emitted else cap - emitted
                    for i in range(take):
                        self._unlink(due[i].tid)
                        out[emitted] = due[i].tid
                        emitted += 1
                    self._count -= take
                    if take < k:
                        return emitted
                if tick == n:
                    # What is left in this slot is due later within this tick, and
                    # everything elsewhere later still: its earliest is the next
                    # deadline, found by this scan (no rescan when driven one
                    # deadline at a time).
                    if left_min != INT64_MAX:
                        self._min_cache = left_min
                        self._min_valid = True
                    break
            else:
                shift = level * WHEEL_SLOT_BITS
                start = (((self._cur >> shift) & ~(<uint64_t>(WHEEL_SLOTS - 1))) | <uint64_t>slot) << shift
                if start > n:
                    break
                # Nothing is armed before `start`, so the clock may jump there;
                # the block's timers then re-link relative to it, all lower down.
                self._cur = start
                t = self._head[idx]
                self._head[idx] = -1
                self._bitmap[level][slot >> 6] &= ~((<uint64_t>1) << (slot & 63))
                while t >= 0:
                    nxt = self._timers[t].next
                    self._level_count[level] -= 1
                    self._link(t, self._timers[t].tick)
                    t = nxt
                if self._level_count[level] == 0:
                    self._level_mask &= ~(1u << level)
        # Nothing left is due through tick n, so every remaining timer sits in the
        # same level and slot relative to n as relative to the old cur.
        if n > self._cur:
            self._cur = n
        return emitted

    # ---- Python level --------------------------------------------------------

    def reserve(self, Py_ssize_t n):
        """Grow capacity to at least n timer ids (never shrinks)."""
        self.c_reserve(n)

    def schedule(self, Py_ssize_t tid, int64_t deadline):
        """Arm (or re-arm) timer tid for the absolute deadline in ns."""
        self.c_schedule(tid, deadline)

    def cancel(self, Py_ssize_t tid):
        """Disarm timer tid; no error if it is not armed."""
        if tid < 0 or tid >= self.capacity:
            raise IndexError(f"timer id {tid} outside 0..{self.capacity - 1}")
        self.c_cancel(tid)

    def armed(self, Py_ssize_t tid):
        if tid < 0 or tid >= self.capacity:
            raise IndexError(f"timer id {tid} outside 0..{self.capacity - 1}")
        return self._timers[tid].slot >= 0

    def deadline(self, Py_ssize_t tid):
        """The exact deadline of tid, or None if it is not armed."""
        if tid < 0 or tid >= self.capacity:
            raise IndexError(f"timer id {tid} outside 0..{self.capacity - 1}")
        if self._timers[tid].slot < 0:
            return None
        return self._timers[tid].deadline

    def next_deadline(self):
        """The exact earliest armed deadline, or None when nothing is armed."""
        if self._count == 0:
            return None
        return self.c_next_deadline()

    def expire(self, int64_t now, limit=None):
        """Disarm and return the ids of all timers with deadline <= now, in
        (deadline, tid) order; at most `limit` of them (the earliest) if given."""
        cdef Py_ssize_t cap = self._count, k, i
        if limit is not None:
            if limit < 0:
                raise ValueError("limit must be >= 0")
            if limit < cap:
                cap = limit
        k = self.c_expire_into(now, self._out, cap)
        return [self._out[i] for i in range(k)]

    def __len__(self):
        return self._count

    def __repr__(self):
        return (f"<TimerWheel armed={self._count} capacity={self.capacity} "
                f"resolution_ns={self.resolution_ns}>")
