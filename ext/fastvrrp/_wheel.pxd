# C-level interface of the timer wheel, for other Cython modules (the fast path)
# to `cimport`. The Python-visible surface is in _wheel.pyx; the pure-Python twin
# with the same Python interface is fastvrrp.proto.wheel.

cimport cython
from libc.stdint cimport int32_t, int64_t, uint64_t

# 8 levels of 256 slots: 8 x 8 bits cover every non-negative int64 tick, so no
# deadline is ever "beyond the horizon" (see the module docstring).
cdef enum:
    WHEEL_SLOT_BITS = 8
    WHEEL_SLOTS = 256
    WHEEL_LEVELS = 8
    WHEEL_WORDS = 4          # 256-bit occupancy bitmap per level, in uint64 words

# One timer's state; 32 bytes, so touching a timer (and its list neighbours)
# costs one cache line each rather than one per array.
cdef struct WheelTimer:
    int64_t deadline                    # exact deadline in ns
    uint64_t tick                       # slot tick (deadline // resolution, clamped >= cur)
    int32_t next                        # intrusive doubly linked slot list
    int32_t prev
    int32_t slot                        # level * 256 + slot, or -1 when not armed
    int32_t unused

cdef struct DueEntry:
    int64_t deadline
    Py_ssize_t tid


@cython.final
cdef class TimerWheel:
    cdef readonly Py_ssize_t capacity
    cdef readonly int64_t resolution_ns
    cdef Py_ssize_t _count                  # armed timers
    cdef uint64_t _cur                      # tick up to which time has been processed
    # Indexed by tid, preallocated: nothing is allocated on schedule.
    cdef WheelTimer* _timers
    cdef int32_t _head[WHEEL_LEVELS * WHEEL_SLOTS]
    cdef uint64_t _bitmap[WHEEL_LEVELS][WHEEL_WORDS]
    cdef Py_ssize_t _level_count[WHEEL_LEVELS]
    cdef unsigned int _level_mask           # bit L set iff level L holds a timer
    cdef int64_t _min_cache                 # next_deadline() cache, valid iff _min_valid
    cdef bint _min_valid
    cdef DueEntry* _scratch                 # capacity entries: one slot's due timers, for sorting
    cdef Py_ssize_t* _out                   # capacity entries: Python expire() output

    cdef int c_reserve(self, Py_ssize_t n) except -1
    # Arm or re-arm tid; raises IndexError if tid is outside 0..capacity-1. O(1).
    cdef int c_schedule(self, Py_ssize_t tid, int64_t deadline) except -1 nogil
    # Disarm tid; silently ignores unarmed or out-of-range ids. O(1).
    cdef void c_cancel(self, Py_ssize_t tid) noexcept nogil
    # Exact earliest armed deadline, or INT64_MAX when nothing is armed.
    cdef int64_t c_next_deadline(self) noexcept nogil
    # Disarm up to `cap` due timers (deadline <= now) and write their ids to `out`
    # in (deadline, tid) order; returns how many. If it returns `cap`, more may be
    # due: call again (timers not yet returned stay armed and can be cancelled).
    cdef Py_ssize_t c_expire_into(self, int64_t now, Py_ssize_t* out, Py_ssize_t cap) noexcept nogil

    # internals
    cdef void _link(self, Py_ssize_t tid, uint64_t tick) noexcept nogil
    cdef void _unlink(self, Py_ssize_t tid) noexcept nogil
    cdef int _lowest(self, int* level, int* slot) noexcept nogil
    cdef uint64_t _tick_of(self, int64_t deadline) noexcept nogil
