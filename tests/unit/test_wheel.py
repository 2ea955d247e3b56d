"""The timer wheel (compiled fastvrrp._wheel and twin fastvrrp.proto.wheel)
behaves exactly like a plain dict-of-deadlines reference model, and the two
implementations agree step by step."""

from __future__ import annotations

import importlib
import random
import time
import unittest

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from fastvrrp.proto import wheel as twin_module

try:
    compiled_module = importlib.import_module("fastvrrp._wheel")
except ImportError as exc:  # pragma: no cover - depends on the build
    compiled_module = None
    NOT_BUILT = f"fastvrrp._wheel is not built ({exc}); run `python setup.py build_ext --inplace`"
else:
    NOT_BUILT = ""

MS = 1_000_000
SEC = 1_000 * MS
HOUR = 3600 * SEC
INT64_MAX = (1 << 63) - 1

IMPLS = [
    pytest.param(twin_module, id="twin"),
    pytest.param(compiled_module, id="compiled",
                 marks=pytest.mark.skipif(compiled_module is None, reason=NOT_BUILT)),
]


class ReferenceTimers:
    """Obviously-correct model: a dict tid -> deadline, scanned in full."""

    def __init__(self) -> None:
        self.deadlines: dict[int, int] = {}

    def schedule(self, tid: int, deadline: int) -> None:
        self.deadlines[tid] = deadline

    def cancel(self, tid: int) -> None:
        self.deadlines.pop(tid, None)

    def expire(self, now: int, limit: int | None = None) -> list[int]:
        due = sorted((d, t) for t, d in self.deadlines.items() if d <= now)
        if limit is not None:
            due = due[:limit]
        for _, t in due:
            del self.deadlines[t]
        return [t for _, t in due]

    def next_deadline(self) -> int | None:
        return min(self.deadlines.values(), default=None)

    def __len__(self) -> int:
        return len(self.deadlines)


def assert_same_state(wheel, model: ReferenceTimers, capacity: int) -> None:
    assert len(wheel) == len(model)
    assert wheel.next_deadline() == model.next_deadline()
    for tid in range(capacity):
        assert wheel.deadline(tid) == model.deadlines.get(tid)
        assert wheel.armed(tid) == (tid in model.deadlines)


# ---- random programs ---------------------------------------------------------

CAPACITY = 24
RESOLUTIONS = [MS, 1, 1000, 7, SEC]


def deadline_near(now: int, res: int, draw_kind: int, k: int, delta: int) -> int:
    """A deadline relative to `now`, biased towards the wheel's interesting edges."""
    tick = now // res
    if draw_kind == 0:      # k ticks ahead, +-delta ns around the tick boundary
        return (tick + k) * res + delta
    if draw_kind == 1:      # next level boundary (block of 256**k ticks) +- delta
        span = 256 ** (k % 5 + 1)
        return ((tick // span) + 1) * span * res + delta
    if draw_kind == 2:      # in the past
        return now - k * res - abs(delta)
    return now + k * SEC + delta   # far: seconds to ~1000 s+ (VRRP preempt/GARP)


deadline_spec = st.tuples(
    st.integers(0, 3),
    st.sampled_from([0, 1, 2, 255, 256, 257, 1000, 3000, 65535, 65536, 65537, 1 << 20]),
    st.sampled_from([-1, 0, 1, 400, -400, 999_999]),
)

# now advances by: nothing, a little, to exact edges, or huge idle jumps.
step_spec = st.one_of(
    st.just(0),
    st.integers(0, 5 * MS),
    st.integers(0, 70 * SEC),
    st.sampled_from([1, MS - 1, MS, MS + 1, 256 * MS, HOUR, 1000 * SEC, 30 * 24 * HOUR]),
)

op_spec = st.one_of(
    st.tuples(st.just("schedule"), st.integers(0, CAPACITY - 1), deadline_spec),
    st.tuples(st.just("cancel"), st.integers(0, CAPACITY - 1)),
    st.tuples(st.just("expire"), step_spec, st.none() | st.integers(0, 4)),
    st.tuples(st.just("expire_at_next"), st.sampled_from([-1, 0, 1])),
    st.tuples(st.just("expire_back"), st.integers(0, 2 * MS)),
)


def run_op(wheel, op, state):
    """Apply one op to `wheel`; `state` holds now/res, advanced only by the caller's
    first implementation (all run the same ops). Returns the op's observable result."""
    kind = op[0]
    now, res = state["now"], state["res"]
    if kind == "schedule":
        _, tid, (dk, k, delta) = op
        deadline = min(INT64_MAX, max(-(1 << 62), deadline_near(now, res, dk, k, delta)))
        wheel.schedule(tid, deadline)
        return deadline
    if kind == "cancel":
        wheel.cancel(op[1])
        return None
    if kind == "expire":
        _, step, limit = op
        return wheel.expire(now + step, limit)
    if kind == "expire_at_next":
        nd = wheel.next_deadline()
        return wheel.expire((now if nd is None else nd) + op[1])
    # expire at a `now` earlier than one already seen: only what is due by then fires
    return wheel.expire(now - op[1])


def advance(state, op, wheel_next_deadline_before):
    if op[0] == "expire":
        state["now"] += op[1]
    elif op[0] == "expire_at_next" and wheel_next_deadline_before is not None:
        state["now"] = max(state["now"], wheel_next_deadline_before + op[1])


def run_against_model(module, start, res, program):
    wheel = module.TimerWheel(CAPACITY, start, res)
    model = ReferenceTimers()
    state = {"now": start, "res": res}
    trace = []
    for op in program:
        nd_before = model.next_deadline()
        got = run_op(wheel, op, state)
        if op[0] == "schedule":
            model.schedule(op[1], got)
        else:
            want = run_op(model, op, state) if op[0] != "cancel" else model.cancel(op[1])
            assert got == want, (op, state)
        advance(state, op, nd_before)
        assert_same_state(wheel, model, CAPACITY)
        trace.append((got, len(wheel), wheel.next_deadline()))
    return trace


starts = st.one_of(st.just(0), st.integers(0, 10**15), st.just(INT64_MAX // 4))


@pytest.mark.parametrize("module", IMPLS)
@settings(max_examples=300, deadline=None)
@given(start=starts, res=st.sampled_from(RESOLUTIONS), program=st.lists(op_spec, max_size=60))
def test_random_program_matches_reference_model(module, start, res, program):
    run_against_model(module, start, res, program)


@pytest.mark.skipif(compiled_module is None, reason=NOT_BUILT)
@settings(max_examples=300, deadline=None)
@given(start=starts, res=st.sampled_from(RESOLUTIONS), program=st.lists(op_spec, max_size=60))
def test_compiled_and_twin_agree_step_by_step(start, res, program):
    a = twin_module.TimerWheel(CAPACITY, start, res)
    b = compiled_module.TimerWheel(CAPACITY, start, res)
    state = {"now": start, "res": res}
    for op in program:
        nd_before = a.next_deadline()
        assert run_op(a, op, state) == run_op(b, op, state), op
        advance(state, op, nd_before)
        assert (len(a), a.next_deadline()) == (len(b), b.next_deadline())
        assert [a.deadline(t) for t in range(CAPACITY)] == [b.deadline(t) for t in range(CAPACITY)]


# ---- stateful (rule-based) machine, one per implementation -------------------

def make_machine(module):
    class WheelMachine(RuleBasedStateMachine):
        @initialize(start=starts, res=st.sampled_from(RESOLUTIONS))
        def create(self, start, res):
            self.wheel = module.TimerWheel(CAPACITY, start, res)
            self.model = ReferenceTimers()
            self.state = {"now": start, "res": res}

        @rule(tid=st.integers(0, CAPACITY - 1), spec=deadline_spec)
        def schedule(self, tid, spec):
            deadline = run_op(self.wheel, ("schedule", tid, spec), self.state)
            self.model.schedule(tid, deadline)

        @rule(tid=st.integers(0, CAPACITY - 1))
        def cancel(self, tid):
            self.wheel.cancel(tid)
            self.model.cancel(tid)

        @rule(step=step_spec, limit=st.none() | st.integers(0, 4))
        def expire(self, step, limit):
            self.state["now"] += step
            now = self.state["now"]
            assert self.wheel.expire(now, limit) == self.model.expire(now, limit)

        @precondition(lambda self: len(self.model) > 0)
        @rule(delta=st.sampled_from([-1, 0, 1]))
        def expire_at_next_deadline(self, delta):
            # what the daemon does: arm the timerfd at next_deadline(), expire when it fires
            now = max(self.state["now"], self.model.next_deadline() + delta)
            self.state["now"] = now
            assert self.wheel.expire(now) == self.model.expire(now)

        @invariant()
        def same_state(self):
            if hasattr(self, "wheel"):
                assert_same_state(self.wheel, self.model, CAPACITY)

    WheelMachine.TestCase.settings = settings(max_examples=150, stateful_step_count=50,
                                              deadline=None)
    return WheelMachine


TestWheelMachineTwin = make_machine(twin_module).TestCase


@unittest.skipIf(compiled_module is None, NOT_BUILT)
class TestWheelMachineCompiled(make_machine(compiled_module).TestCase if compiled_module
                               else unittest.TestCase):
    pass


# ---- edge cases --------------------------------------------------------------

@pytest.fixture(params=IMPLS)
def impl(request):
    return request.param


def test_timer_fires_at_its_exact_nanosecond_not_at_the_next_tick(impl):
    w = impl.TimerWheel(4, 0)
    w.schedule(0, 1_000_400)
    assert w.next_deadline() == 1_000_400
    assert w.expire(1_000_399) == []
    assert w.expire(1_000_400) == [0]


def test_deadline_exactly_on_slot_boundary(impl):
    w = impl.TimerWheel(4, 5 * MS)
    w.schedule(1, 7 * MS)
    w.schedule(2, 7 * MS - 1)
    w.schedule(3, 7 * MS + 1)
    assert w.expire(7 * MS - 1) == [2]
    assert w.expire(7 * MS) == [1]
    assert w.expire(7 * MS + 1) == [3]


@pytest.mark.parametrize("res", [MS, 1])
def test_level_boundaries_plus_minus_one_ns(impl, res):
    # The first tick of each level's next block, and the ticks either side.
    start = 1234 * res + (res - 1 if res > 1 else 0)
    w = impl.TimerWheel(64, start, res)
    model = ReferenceTimers()
    tick = start // res
    tid = 0
    for level in range(1, 6):
        span = 256 ** level
        edge = ((tick // span) + 1) * span * res
        for d in (edge - res, edge - 1, edge, edge + 1, edge + res):
            w.schedule(tid, d)
            model.schedule(tid, d)
            tid += 1
    assert_same_state(w, model, 64)
    for now in sorted(model.deadlines.values()):
        for probe in (now - 1, now):
            assert w.expire(probe) == model.expire(probe)
            assert_same_state(w, model, 64)
    assert len(w) == 0


def test_many_timers_in_one_slot_come_out_in_deadline_then_id_order(impl):
    rng = random.Random(7)
    n = 3000
    w = impl.TimerWheel(n, 10 * MS)
    model = ReferenceTimers()
    for tid in rng.sample(range(n), n):  # arm in random id order
        d = 20 * MS + rng.choice([0, 1, 500_000, 999_999, rng.randrange(MS)])
        w.schedule(tid, d)
        model.schedule(tid, d)
    assert w.next_deadline() == 20 * MS
    got = w.expire(20 * MS + 500_000)
    assert got == model.expire(20 * MS + 500_000)
    assert len(got) > n // 3
    assert w.expire(21 * MS) == model.expire(21 * MS)
    assert len(w) == 0


def test_reschedule_earlier_and_later(impl):
    w = impl.TimerWheel(3, 0)
    w.schedule(0, 500 * MS)
    w.schedule(1, 600 * MS)
    w.schedule(0, 700 * MS)          # later: 1 is now first
    assert w.next_deadline() == 600 * MS
    w.schedule(1, 5 * MS)            # earlier
    assert w.next_deadline() == 5 * MS
    assert w.expire(500 * MS) == [1]  # 0's old deadline no longer fires
    assert w.deadline(0) == 700 * MS
    w.schedule(0, 3000 * SEC)        # far beyond level 1 (65.5 s)
    assert w.expire(2999 * SEC) == []
    assert w.expire(3000 * SEC) == [0]


def test_cancel_of_unarmed_id_is_a_no_op(impl):
    w = impl.TimerWheel(3, 0)
    w.cancel(1)
    w.schedule(1, 5)
    w.cancel(1)
    w.cancel(1)
    assert len(w) == 0 and not w.armed(1) and w.deadline(1) is None
    assert w.next_deadline() is None
    assert w.expire(10**12) == []


def test_ids_up_to_capacity_minus_one_and_no_further(impl):
    w = impl.TimerWheel(10, 0)
    w.schedule(9, 1)
    assert w.armed(9) and w.expire(1) == [9]
    for bad in (10, -1):
        with pytest.raises(IndexError):
            w.schedule(bad, 1)
        with pytest.raises(IndexError):
            w.cancel(bad)
        with pytest.raises(IndexError):
            w.armed(bad)


def test_reserve_grows_capacity_and_keeps_armed_timers(impl):
    w = impl.TimerWheel(2, 0)
    w.schedule(1, 10 * MS)
    w.reserve(1000)
    w.reserve(5)                     # never shrinks
    assert w.capacity == 1000
    w.schedule(999, 5 * MS)
    assert w.deadline(1) == 10 * MS and not w.armed(500)
    assert w.expire(10 * MS) == [999, 1]


def test_zero_capacity_wheel_can_grow(impl):
    w = impl.TimerWheel(0, 0)
    with pytest.raises(IndexError):
        w.schedule(0, 1)
    w.reserve(1)
    w.schedule(0, 1)
    assert w.expire(1) == [0]


def test_past_deadlines_are_due_at_the_next_expire(impl):
    w = impl.TimerWheel(3, 50 * SEC)
    w.schedule(0, 10 * SEC)
    w.schedule(1, -5)
    w.schedule(2, 50 * SEC)
    assert w.next_deadline() == -5
    assert w.expire(50 * SEC) == [1, 0, 2]


def test_expire_with_a_now_earlier_than_before_fires_only_what_is_due_by_then(impl):
    w = impl.TimerWheel(3, 0)
    w.expire(100 * MS)
    w.schedule(0, 50 * MS)   # in the past relative to the wheel
    w.schedule(1, 60 * MS)
    assert w.expire(55 * MS) == [0]
    assert w.expire(100 * MS) == [1]


def test_limit_returns_the_earliest_and_leaves_the_rest_armed(impl):
    w = impl.TimerWheel(10, 0)
    for tid in range(10):
        w.schedule(tid, (10 - tid) * MS)     # tid 9 first
    assert w.expire(HOUR, limit=3) == [9, 8, 7]
    assert len(w) == 7 and w.next_deadline() == 4 * MS
    w.cancel(6)
    assert w.expire(HOUR, limit=0) == []
    assert w.expire(HOUR) == [5, 4, 3, 2, 1, 0]


def test_limit_stops_inside_a_slot_after_earlier_slots(impl):
    w = impl.TimerWheel(5, 0)
    for tid, d in enumerate([MS + 1, MS + 2, 2 * MS + 3, 2 * MS + 1, 2 * MS + 2]):
        w.schedule(tid, d)
    assert w.expire(HOUR, limit=4) == [0, 1, 3, 4]
    assert w.armed(2) and len(w) == 1
    assert w.expire(HOUR, limit=4) == [2]


def test_deadlines_at_the_ends_of_int64(impl):
    w = impl.TimerWheel(2, 0, 1)
    w.schedule(0, INT64_MAX)
    w.schedule(1, INT64_MAX - 1)
    assert w.expire(INT64_MAX - 2) == []
    assert w.expire(INT64_MAX - 1) == [1]
    assert w.next_deadline() == INT64_MAX
    assert w.expire(INT64_MAX) == [0]
    with pytest.raises(OverflowError):
        w.schedule(0, INT64_MAX + 1)


def test_idle_jumps_skip_empty_slots(impl):
    # At 1 ns ticks a walk over empty slots would take years per expire().
    w = impl.TimerWheel(4, 0, 1)
    t0 = time.perf_counter()
    now = 0
    for i in range(300):
        w.schedule(i % 4, now + (1 << 40) + i)
        now += 1 << 52
        assert w.expire(now) == [i % 4]
    assert time.perf_counter() - t0 < 2.0


def test_hour_long_idle_jump_returns_everything_in_order(impl):
    rng = random.Random(3)
    n = 2000
    w = impl.TimerWheel(n, 0)
    model = ReferenceTimers()
    for tid in range(n):
        d = rng.choice([rng.randrange(4 * SEC), rng.randrange(1000 * SEC)])
        w.schedule(tid, d)
        model.schedule(tid, d)
    assert w.expire(HOUR) == model.expire(HOUR)
    assert len(w) == 0 and w.next_deadline() is None


@pytest.mark.parametrize("kwargs, error", [
    (dict(capacity=-1, now=0), ValueError),
    (dict(capacity=1, now=-1), ValueError),
    (dict(capacity=1, now=0, resolution_ns=0), ValueError),
    (dict(capacity=1, now=1 << 63), OverflowError),
])
def test_constructor_rejects_bad_arguments(impl, kwargs, error):
    with pytest.raises(error):
        impl.TimerWheel(**kwargs)


@pytest.mark.skipif(compiled_module is None, reason=NOT_BUILT)
def test_accel_loads_the_compiled_wheel(monkeypatch):
    from fastvrrp import accel
    monkeypatch.delenv("FASTVRRP_PURE", raising=False)
    assert accel.load("_wheel", "fastvrrp.proto.wheel") is compiled_module
    monkeypatch.setenv("FASTVRRP_PURE", "1")
    assert accel.load("_wheel", "fastvrrp.proto.wheel") is twin_module


# ---- the C-level API, as the fast path uses it ---------------------------------

CONSUMER_PYX = '''
# cython: language_level=3
from libc.stdint cimport int64_t
from fastvrrp._wheel cimport TimerWheel

def schedule(TimerWheel w, Py_ssize_t tid, int64_t deadline):
    with nogil:
        w.c_schedule(tid, deadline)

def cancel(TimerWheel w, Py_ssize_t tid):
    with nogil:
        w.c_cancel(tid)

def next_deadline(TimerWheel w):
    cdef int64_t d
    with nogil:
        d = w.c_next_deadline()
    return d

def drain(TimerWheel w, int64_t now, Py_ssize_t cap):
    # the documented loop: call again while the buffer comes back full
    cdef Py_ssize_t buf[64]
    cdef Py_ssize_t k, i
    out = []
    while True:
        with nogil:
            k = w.c_expire_into(now, buf, cap)
        out.extend([buf[i] for i in range(k)])
        if k < cap:
            return out
'''


@pytest.fixture(scope="module")
def c_consumer(tmp_path_factory):
    """A Cython module that cimports fastvrrp._wheel via ext/ (as _fastpath will)."""
    if compiled_module is None:
        pytest.skip(NOT_BUILT)
    import pathlib
    import sys

    from Cython.Build import cythonize
    from setuptools import Distribution, Extension

    ext_dir = pathlib.Path(__file__).resolve().parents[2] / "ext"
    build = tmp_path_factory.mktemp("wheel_consumer")
    pyx = build / "wheel_consumer.pyx"
    pyx.write_text(CONSUMER_PYX)
    modules = cythonize([Extension("wheel_consumer", [str(pyx)])], include_path=[str(ext_dir)],
                        quiet=True, build_dir=str(build / "c"))
    dist = Distribution({"ext_modules": modules, "script_name": "setup.py"})
    cmd = dist.get_command_obj("build_ext")
    cmd.build_lib, cmd.build_temp = str(build / "lib"), str(build / "tmp")
    dist.run_command("build_ext")
    sys.path.insert(0, str(build / "lib"))
    try:
        return importlib.import_module("wheel_consumer")
    finally:
        sys.path.remove(str(build / "lib"))


@pytest.mark.parametrize("cap", [1, 3, 64])
def test_c_level_api_drains_in_order_through_a_small_buffer(c_consumer, cap):
    rng = random.Random(cap)
    n = 500
    w = compiled_module.TimerWheel(n, 0)
    model = ReferenceTimers()
    assert c_consumer.next_deadline(w) == INT64_MAX     # empty sentinel
    for tid in range(n):
        d = rng.choice([rng.randrange(3 * SEC), 2 * SEC + rng.randrange(3) * MS, 1000 * SEC])
        c_consumer.schedule(w, tid, d)
        model.schedule(tid, d)
    for tid in rng.sample(range(n), n // 3):
        c_consumer.cancel(w, tid)
        model.cancel(tid)
    c_consumer.cancel(w, n + 5)                          # out of range: ignored at C level
    with pytest.raises(IndexError):
        c_consumer.schedule(w, n, 1)
    assert c_consumer.next_deadline(w) == model.next_deadline()
    for now in (0, 2 * SEC + MS, 2 * SEC + 2 * MS, HOUR):
        assert c_consumer.drain(w, now, cap) == model.expire(now)
        assert_same_state(w, model, n)
    assert c_consumer.next_deadline(w) == INT64_MAX
