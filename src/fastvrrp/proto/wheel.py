"""The daemon's one timer wheel, pure Python twin of the compiled fastvrrp._wheel.

Same interface and same algorithm as ext/_wheel.pyx, so it is both the readable
oracle for the Cython module and the fallback when it is not built. Load it via
``fastvrrp.accel.load("_wheel", "fastvrrp.proto.wheel")``.

Hierarchical hashed timing wheel, 8 levels x 256 slots, default 1 ms ticks.
Time is integer nanoseconds of CLOCK_MONOTONIC; timers are the integers
0..capacity-1 chosen by the caller.

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
- schedule / reschedule / cancel: O(1).
- expire: O(levels) bitmap work per occupied slot visited (empty slots are
  skipped with find-first-set, so an hour-long idle jump costs nothing extra)
  + O(k log k) per due slot of k timers + one re-link per cascade. A timer
  cascades at most once per level it starts above 0: never for deadlines
  < 256 ms ahead, at most once up to 65 s, twice up to 4.7 h.
- next_deadline: O(1) when cached. The cache survives schedules and cancels of
  non-minimal timers; otherwise recomputation is O(levels) + a scan of the
  earliest occupied slot, not of all timers.
"""

from __future__ import annotations

from operator import index

SLOT_BITS = 8
SLOTS = 1 << SLOT_BITS
LEVELS = 8
_SLOT_MASK = SLOTS - 1
_INT64_MIN = -(1 << 63)
_INT64_MAX = (1 << 63) - 1
_INT32_MAX = (1 << 31) - 1


def _int64(value: int, what: str) -> int:
    # Same conversions and errors as the compiled module's int64_t arguments.
    value = index(value)
    if not _INT64_MIN <= value <= _INT64_MAX:
        raise OverflowError(f"{what} {value} does not fit in int64")
    return value


def _lowest_bit(bits: int) -> int:
    return (bits & -bits).bit_length() - 1


class TimerWheel:
    """TimerWheel(capacity, now, resolution_ns=1_000_000); see the module docstring."""

    __slots__ = (
        "_capacity", "_resolution_ns", "_cur", "_count", "_deadline", "_tick", "_slot",
        "_slots", "_bitmap", "_level_count", "_level_mask", "_min_cache", "_min_valid",
    )

    def __init__(self, capacity: int, now: int, resolution_ns: int = 1_000_000) -> None:
        capacity = index(capacity)
        resolution_ns = _int64(resolution_ns, "resolution_ns")
        now = _int64(now, "now")
        if capacity < 0:
            raise ValueError("capacity must be >= 0")
        if resolution_ns <= 0:
            raise ValueError("resolution_ns must be > 0")
        if now < 0:
            raise ValueError("now must be >= 0 (CLOCK_MONOTONIC nanoseconds)")
        self._resolution_ns = resolution_ns
        self._capacity = 0
        self._cur: int = now // resolution_ns   # tick up to which time has been processed
        self._count: int = 0
        self._deadline: list[int] = []
        self._tick: list[int] = []
        self._slot: list[int] = []               # level * 256 + slot, or -1 when not armed
        # Slot contents as dicts (tid -> None): O(1) insert and delete.
        self._slots: list[dict[int, None]] = [{} for _ in range(LEVELS * SLOTS)]
        self._bitmap: list[int] = [0] * LEVELS   # occupied slots of each level
        self._level_count: list[int] = [0] * LEVELS
        self._level_mask: int = 0                # bit L set iff level L holds a timer
        self._min_cache: int = _INT64_MAX
        self._min_valid: bool = False
        self.reserve(capacity)

    @property
    def capacity(self) -> int:
        return self._capacity

    @property
    def resolution_ns(self) -> int:
        return self._resolution_ns

    def reserve(self, n: int) -> None:
        """Grow capacity to at least n timer ids (never shrinks)."""
        n = index(n)
        if n <= self.capacity:
            return
        if n > _INT32_MAX:
            raise ValueError("capacity must fit in int32")
        grow = n - self.capacity
        self._deadline.extend([0] * grow)
        self._tick.extend([0] * grow)
        self._slot.extend([-1] * grow)
        self._capacity = n

    def _check(self, tid: int) -> int:
        tid = index(tid)
        if not 0 <= tid < self.capacity:
            raise IndexError(f"timer id {tid} outside 0..{self.capacity - 1}")
        return tid

    def _link(self, tid: int, tick: int) -> None:
        # tick >= self._cur (callers clamp)
        diff = tick ^ self._cur
        level = (diff.bit_length() - 1) >> 3 if diff else 0
        slot = (tick >> (level * SLOT_BITS)) & _SLOT_MASK
        idx = level * SLOTS + slot
        self._tick[tid] = tick
        self._slot[tid] = idx
        self._slots[idx][tid] = None
        self._bitmap[level] |= 1 << slot
        self._level_count[level] += 1
        self._level_mask |= 1 << level

    def _unlink(self, tid: int) -> None:
        idx = self._slot[tid]
        level, slot = divmod(idx, SLOTS)
        bucket = self._slots[idx]
        del bucket[tid]
        if not bucket:
            self._bitmap[level] &= ~(1 << slot)
        self._slot[tid] = -1
        self._level_count[level] -= 1
        if not self._level_count[level]:
            self._level_mask &= ~(1 << level)

    def _lowest(self) -> tuple[int, int] | None:
        # Earliest occupied (level, slot): lowest level first, then lowest slot.
        # Valid because occupied slots of a level always lie after cur's digit.
        if not self._level_mask:
            return None
        level = _lowest_bit(self._level_mask)
        return level, _lowest_bit(self._bitmap[level])

    def _tick_of(self, deadline: int) -> int:
        # Past (or current-tick) deadlines go to the current tick's slot.
        if deadline < self._cur * self.resolution_ns:
            return self._cur
        return deadline // self.resolution_ns

    def schedule(self, tid: int, deadline: int) -> None:
        """Arm (or re-arm) timer tid for the absolute deadline in ns."""
        deadline = _int64(deadline, "deadline")
        tid = self._check(tid)
        if self._slot[tid] >= 0:
            old = self._deadline[tid]
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
        self._deadline[tid] = deadline
        self._link(tid, self._tick_of(deadline))

    def cancel(self, tid: int) -> None:
        """Disarm timer tid; no error if it is not armed."""
        tid = self._check(tid)
        if self._slot[tid] < 0:
            return
        self._unlink(tid)
        self._count -= 1
        if self._min_valid and self._deadline[tid] == self._min_cache:
            self._min_valid = False

    def armed(self, tid: int) -> bool:
        return self._slot[self._check(tid)] >= 0

    def deadline(self, tid: int) -> int | None:
        """The exact deadline of tid, or None if it is not armed."""
        tid = self._check(tid)
        return self._deadline[tid] if self._slot[tid] >= 0 else None

    def next_deadline(self) -> int | None:
        """The exact earliest armed deadline, or None when nothing is armed."""
        if not self._count:
            return None
        if not self._min_valid:
            lowest = self._lowest()
            assert lowest is not None  # count > 0
            level, slot = lowest
            deadlines = self._deadline
            self._min_cache = min(deadlines[t] for t in self._slots[level * SLOTS + slot])
            self._min_valid = True
        return self._min_cache

    def expire(self, now: int, limit: int | None = None) -> list[int]:
        """Disarm and return the ids of all timers with deadline <= now, in
        (deadline, tid) order; at most `limit` of them (the earliest) if given."""
        now = _int64(now, "now")
        cap = self._count
        if limit is not None:
            limit = index(limit)
            if limit < 0:
                raise ValueError("limit must be >= 0")
            cap = min(cap, limit)
        res = self.resolution_ns
        # The clock never goes back; before the current tick only its own slot can be due.
        n = self._cur if now < self._cur * res else now // res
        out: list[int] = []
        deadlines = self._deadline
        while (lowest := self._lowest()) is not None:
            level, slot = lowest
            idx = level * SLOTS + slot
            if level == 0:
                tick = (self._cur & ~_SLOT_MASK) | slot
                if tick > n:
                    break
                if len(out) >= cap:
                    return out  # limit reached: stay at this tick
                self._cur = tick
                bucket = self._slots[idx]
                left_min = None
                if tick < n:
                    due = sorted((deadlines[t], t) for t in bucket)
                else:
                    due = sorted((deadlines[t], t) for t in bucket if deadlines[t] <= now)
                    left = [deadlines[t] for t in bucket if deadlines[t] > now]
                    left_min = min(left) if left else None
                if due:
                    self._min_valid = False
                    take = due[:cap - len(out)]
                    for _, t in take:
                        self._unlink(t)
                        out.append(t)
                    self._count -= len(take)
                    if len(take) < len(due):
                        return out
                if tick == n:
                    # What is left in this slot is due later within this tick, and
                    # everything elsewhere later still: its earliest is the next deadline.
                    if left_min is not None:
                        self._min_cache = left_min
                        self._min_valid = True
                    break
            else:
                shift = level * SLOT_BITS
                start = (((self._cur >> shift) & ~_SLOT_MASK) | slot) << shift
                if start > n:
                    break
                # Nothing is armed before `start`, so the clock may jump there;
                # the block's timers then re-link relative to it, all lower down.
                self._cur = start
                bucket = self._slots[idx]
                self._slots[idx] = {}
                self._bitmap[level] &= ~(1 << slot)
                self._level_count[level] -= len(bucket)
                if not self._level_count[level]:
                    self._level_mask &= ~(1 << level)
                ticks = self._tick
                for t in bucket:
                    self._link(t, ticks[t])
        # Nothing left is due through tick n, so every remaining timer sits in the
        # same level and slot relative to n as relative to the old cur.
        if n > self._cur:
            self._cur = n
        return out

    def __len__(self) -> int:
        return self._count

    def __repr__(self) -> str:
        return (f"<TimerWheel armed={self._count} capacity={self.capacity} "
                f"resolution_ns={self.resolution_ns}>")
