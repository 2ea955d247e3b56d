"""Elections on the simulated LAN: whatever the start times, delays and (transient)
impairments, each VRID converges to exactly one master, the right one."""

from __future__ import annotations

from collections import Counter

from hypothesis import given, settings
from hypothesis import strategies as st

from fastvrrp.proto.actions import State
from sim.lan import (
    NS_PER_MS,
    NS_PER_S,
    Impairments,
    Lan,
    Topology,
    expected_master,
    settle_ns,
)

S = NS_PER_S
MS = NS_PER_MS
FAST = st.sampled_from(["compiled", "off"])


def distinct_priorities(k: int, n: int):
    """priorities[r][i], all routers' priorities for one instance distinct."""
    per_instance = st.lists(st.lists(st.integers(1, 254), min_size=k, max_size=k, unique=True),
                            min_size=n, max_size=n)
    return per_instance.map(lambda cols: [list(row) for row in zip(*cols)])


def start_staggered(lan: Lan, starts: list[int]) -> None:
    for r in sorted(range(len(starts)), key=lambda r: starts[r]):
        lan.run_until(starts[r])
        lan.start(f"r{r}")


def assert_one_master_each(lan: Lan, topo: Topology, among: set[int] | None = None) -> None:
    for i in range(topo.instances):
        name = f"VI_{i + 1}"
        states = lan.states(name)
        if among is not None:
            states = {r: s for r, s in states.items() if int(r[1:]) in among}
        masters = [r for r, s in states.items() if s == State.MASTER]
        assert masters == [expected_master(topo, i, among)], (name, states)
        assert all(s == State.BACKUP for r, s in states.items() if r not in masters)


@settings(max_examples=25, deadline=None)
@given(data=st.data(), k=st.integers(2, 4), n=st.integers(1, 3),
       version=st.sampled_from([2, 3]), mode=FAST)
def test_the_highest_priority_wins_whatever_the_start_times(data, k: int, n: int,
                                                            version: int, mode: str) -> None:
    prios = data.draw(distinct_priorities(k, n))
    interval = 100 if version == 2 else data.draw(st.sampled_from([50, 100, 200]))
    starts = data.draw(st.lists(st.integers(0, 5 * S), min_size=k, max_size=k))
    delay = data.draw(st.integers(0, 2 * MS))
    topo = Topology(prios, version=version, advert_int_cs=interval)
    lan = topo.build(Lan(fast_path=mode, impairments=Impairments(delay_ns=delay)))
    start_staggered(lan, starts)
    lan.run_until(max(starts) + settle_ns(topo))
    assert_one_master_each(lan, topo)


@settings(max_examples=15, deadline=None)
@given(k=st.integers(2, 4), n=st.integers(1, 3), prio=st.integers(1, 254),
       delay=st.integers(1000, 2 * MS), mode=FAST)
def test_equal_priorities_started_together_the_highest_address_wins(
        k: int, n: int, prio: int, delay: int, mode: str) -> None:
    # With zero delay one router's first advert would reach the others before their
    # own (equal) down timers fire, and they would follow it: not "together".
    topo = Topology([[prio] * n for _ in range(k)])
    lan = topo.build(Lan(fast_path=mode, impairments=Impairments(delay_ns=delay)))
    lan.start()
    lan.run_until(settle_ns(topo))
    for i in range(n):
        assert lan.masters(f"VI_{i + 1}") == [f"r{k - 1}"]  # 192.0.2.k is the highest


@settings(max_examples=15, deadline=None)
@given(data=st.data(), k=st.integers(2, 3), n=st.integers(1, 3), seed=st.integers(0, 2**32),
       loss=st.floats(0, 0.5), duplicate=st.floats(0, 0.5), jitter=st.integers(0, 20 * MS),
       mode=FAST)
def test_after_loss_duplication_and_jitter_stop_it_converges(data, k: int, n: int, seed: int,
                                                            loss: float, duplicate: float,
                                                            jitter: int, mode: str) -> None:
    prios = data.draw(distinct_priorities(k, n))
    topo = Topology(prios)
    lan = topo.build(Lan(fast_path=mode, seed=seed, impairments=Impairments(
        delay_ns=MS, loss=loss, duplicate=duplicate, jitter_ns=jitter)))
    lan.start()
    lan.run_until(30 * S)
    lan.set_impairments(loss=0.0, duplicate=0.0, jitter_ns=0)
    lan.run_until(30 * S + settle_ns(topo))
    assert_one_master_each(lan, topo)


@settings(max_examples=15, deadline=None)
@given(data=st.data(), k=st.integers(2, 4), n=st.integers(1, 3), mode=FAST)
def test_a_healed_partition_converges_with_at_most_one_transition_per_router(
        data, k: int, n: int, mode: str) -> None:
    prios = data.draw(distinct_priorities(k, n))
    side_a = set(data.draw(st.lists(st.integers(0, k - 1), min_size=1, max_size=k - 1,
                                    unique=True)))
    side_b = set(range(k)) - side_a
    topo = Topology(prios)
    lan = topo.build(Lan(fast_path=mode))
    lan.start()
    lan.run_until(settle_ns(topo))
    assert_one_master_each(lan, topo)
    lan.partition({f"r{r}" for r in side_a}, {f"r{r}" for r in side_b})
    lan.run_until(2 * settle_ns(topo))
    assert_one_master_each(lan, topo, side_a)  # each side elects its own
    assert_one_master_each(lan, topo, side_b)
    healed = lan.now
    lan.heal()
    lan.run_until(healed + settle_ns(topo))
    assert_one_master_each(lan, topo)
    per_router = Counter((e[1], e[2]) for e in lan.events("transition", since=healed))
    assert all(count <= 1 for count in per_router.values()), per_router
    # Per VRID the two sides' masters differ, and exactly the lower one stepped down.
    assert sum(per_router.values()) == n
