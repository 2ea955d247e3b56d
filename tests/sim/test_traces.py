"""The fast path changes nothing visible: the same scenario gives the identical trace
with the compiled fast path, its Python twin, all twins, and no fast path at all;
and in the steady state nothing enters the Python state machine."""

from __future__ import annotations

from dataclasses import asdict

from hypothesis import given, settings
from hypothesis import strategies as st

from sim.lan import MODES, NS_PER_MS, NS_PER_S, Impairments, Lan, Topology

S = NS_PER_S
MS = NS_PER_MS

op = st.one_of(
    st.tuples(st.just("priority"), st.integers(0, 2), st.integers(0, 3), st.integers(1, 254)),
    st.tuples(st.just("fault"), st.integers(0, 2), st.integers(0, 3), st.booleans()),
    st.tuples(st.just("crash"), st.integers(0, 2)),
    st.tuples(st.just("shutdown"), st.integers(0, 2)),
    st.tuples(st.just("partition"), st.integers(0, 2)),
    st.tuples(st.just("heal")),
)


@st.composite
def scenarios(draw) -> dict:
    k = draw(st.integers(2, 3))
    n = draw(st.integers(1, 4))
    version = draw(st.sampled_from([2, 3]))
    extra = {r: draw(st.fixed_dictionaries({}, optional={
        "preempt": st.booleans(),
        "preempt_delay_ns": st.integers(0, 5 * S),
        "garp_master_refresh_ns": st.sampled_from([0, 7 * S]),
        "lower_prio_no_advert": st.booleans(),
        "adver_phase_ns": st.integers(0, 499 * MS),  # < every interval drawn below
    })) for r in range(k)}
    groups = ({0: {"G1": ["VI_1", "VI_2"]}, 1: {"G1": ["VI_1", "VI_2"]}}
              if n >= 2 and draw(st.booleans()) else {})
    return dict(
        topo=Topology(draw(st.lists(st.lists(st.integers(1, 254), min_size=n, max_size=n),
                                    min_size=k, max_size=k)),
                      version=version,
                      advert_int_cs=100 if version == 2 else draw(st.sampled_from([50, 100])),
                      extra=extra, sync_groups=groups),
        imp=Impairments(delay_ns=draw(st.integers(1000, 2 * MS)),
                        jitter_ns=draw(st.sampled_from([0, 0, 3 * MS])),
                        loss=draw(st.sampled_from([0.0, 0.0, 0.2])),
                        duplicate=draw(st.sampled_from([0.0, 0.0, 0.2]))),
        seed=draw(st.integers(0, 2**32)),
        starts=draw(st.lists(st.integers(0, 3 * S), min_size=k, max_size=k)),
        ops=draw(st.lists(st.tuples(st.integers(1, 15 * S), op), max_size=6)),
    )


def run(mode: str, sc: dict) -> Lan:
    topo: Topology = sc["topo"]
    lan = topo.build(Lan(fast_path=mode, impairments=Impairments(**asdict(sc["imp"])),
                         seed=sc["seed"]))
    k, n = topo.routers, topo.instances
    for r in sorted(range(k), key=lambda r: sc["starts"][r]):
        lan.run_until(sc["starts"][r])
        lan.start(f"r{r}")
    down: set[str] = set()
    for gap, (what, *args) in sc["ops"]:
        lan.run_until(lan.now + gap)
        if what in ("priority", "fault"):
            router, inst = f"r{args[0] % k}", f"VI_{args[1] % n + 1}"
            if router in down:
                continue
            if what == "priority":
                lan.set_priority(router, inst, args[2])
            else:
                lan.set_fault(router, inst, args[2])
        elif what in ("crash", "shutdown"):
            router = f"r{args[0] % k}"
            if router not in down:
                down.add(router)
                (lan.crash if what == "crash" else lan.shutdown)(router)
        elif what == "partition":
            cut = args[0] % k
            lan.partition({f"r{cut}"}, {f"r{r}" for r in range(k) if r != cut})
        else:
            lan.heal()
    lan.run_until(lan.now + 20 * S)
    return lan


def python_inputs(lan: Lan) -> int:
    st_ = lan.stats()
    return st_.python_timer_inputs + st_.python_advert_inputs


@settings(max_examples=30, deadline=None)
@given(sc=scenarios())
def test_traces_are_identical_with_the_fast_path_compiled_twin_pure_and_off(sc: dict) -> None:
    lans = {mode: run(mode, sc) for mode in MODES}
    off = lans["off"]
    assert off.trace  # a scenario always does something visible
    for mode in ("compiled", "twin", "pure"):
        lan = lans[mode]
        assert lan.trace == off.trace, mode
        # Each event either stayed in the fast path or entered Python, never both.
        c = lan.fast_path_counters()
        assert python_inputs(lan) + c["steady_sends"] + c["steady_rearms"] == python_inputs(off)
        assert c == lans["compiled"].fast_path_counters()
        assert lan.stats().timer_events == off.stats().timer_events
        assert lan.stats().packet_events == off.stats().packet_events


def eventful(mode: str) -> Lan:
    """Sync groups on two routers, priority changes, a fault, a crash and a shutdown."""
    topo = Topology([[150, 150, 100, 200], [100, 100, 200, 100], [120, 120, 150, 150]],
                    sync_groups={0: {"G": ["VI_1", "VI_2"]}, 1: {"G": ["VI_1", "VI_2"]}})
    lan = topo.build(Lan(fast_path=mode, impairments=Impairments(delay_ns=300_000)))
    lan.start()
    lan.run_until(20 * S)
    lan.set_priority("r0", "VI_1", 50)  # r0's group gives VI_1 and VI_2 up together
    lan.run_until(40 * S)
    lan.set_fault("r1", "VI_2", True)  # ... and r1's group goes FAULT
    lan.run_until(60 * S)
    lan.set_fault("r1", "VI_2", False)
    lan.set_priority("r0", "VI_1", 150)
    lan.run_until(80 * S)
    lan.crash("r2")
    lan.run_until(100 * S)
    lan.shutdown("r0")
    lan.run_until(120 * S)
    return lan


def test_an_eventful_run_with_sync_groups_traces_identically() -> None:
    lans = {mode: eventful(mode) for mode in MODES}
    for mode in MODES:
        assert lans[mode].trace == lans["off"].trace, mode
    trace = lans["off"].trace
    assert any(e[3] == "group_notify" and e[4][0] == "FAULT" for e in trace)
    assert len([e for e in trace if e[3] == "transition"]) > 20
    c = lans["compiled"].fast_path_counters()
    # Not vacuous: both kinds of steady event happened, and most events stayed in C.
    assert c["steady_sends"] > 100 and c["steady_rearms"] > 100
    # r2's crash made backups take over, their first advert sent by the fast path
    # itself (and the trace still equals the one without a fast path).
    assert c["takeover_sends"] > 0
    assert c["steady_sends"] + c["steady_rearms"] > c["escalated_timers"] + c["escalated_adverts"]


def test_in_the_steady_state_nothing_enters_the_python_state_machine() -> None:
    n = 40
    topo = Topology([[200 if i % 3 == r else 100 + r for i in range(n)] for r in range(3)])
    lan = topo.build(Lan(fast_path="compiled"))
    lan.start()
    lan.run_until(30 * S)
    before = lan.stats()
    counters = lan.fast_path_counters()
    encodings = sum(e.encodings for r in lan.routers.values() for e in r.encoders)
    lan.run_until(130 * S)
    after = lan.stats()
    assert (after.python_timer_inputs, after.python_advert_inputs) == (
        before.python_timer_inputs, before.python_advert_inputs)
    now = lan.fast_path_counters()
    assert now["steady_sends"] - counters["steady_sends"] == 100 * n
    assert now["steady_rearms"] - counters["steady_rearms"] == 100 * n * 2
    assert sum(e.encodings for r in lan.routers.values() for e in r.encoders) == encodings
    adverts = lan.events("advert", since=30 * S)
    assert len(adverts) == 100 * n  # the trace sees C's sends like Python's
