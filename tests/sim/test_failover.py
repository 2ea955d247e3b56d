"""Failover timing on the simulated LAN: a crashed master, a graceful (priority 0)
handover, nopreempt and preempt_delay."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from fastvrrp.proto.actions import State
from fastvrrp.proto.fsm import skew_time
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
WHEEL_TICK = MS  # the daemon's wheel resolution: a real loop fires within one tick
FAST = st.sampled_from(["compiled", "off"])

# Takeover bounds. RFC 5798 6.1 (v3): Master_Down_Interval = 3 * Master_Adver_Interval
# + Skew_Time, Skew_Time = (256 - Priority) * Master_Adver_Interval / 256; RFC 3768 (v2)
# has Skew_Time = (256 - Priority) / 256 s whatever the interval. keepalived, which
# fsm.master_down_interval follows, differs: the 3 is configurable (down_timer_adverts),
# the v3 skew is computed in whole microseconds from the interval in centiseconds
# (truncated), and an address owner lowered to 254 keeps the skew of 255. So the bound
# is taken from the backup's own fsm.master_down_interval, not recomputed here.
#
# A crashed master's last advert left at most one advert_int before the crash and was
# heard `delay` later, when the new master's down timer was re-armed; hence
#   MDI - advert_int + delay <= takeover - crash <= MDI + delay  (+ one wheel tick live).


@settings(max_examples=25, deadline=None)
@given(data=st.data(), k=st.integers(2, 4), version=st.sampled_from([2, 3]), mode=FAST)
def test_after_the_master_dies_the_best_backup_takes_over_within_the_bounds(
        data, k: int, version: int, mode: str) -> None:
    # Priorities at least 8 apart: Skew_Time then separates the backups by more than
    # the link delay, so exactly one takes over (closer ones race, as in real life).
    prios = data.draw(st.lists(st.integers(1, 31), min_size=k, max_size=k, unique=True))
    prios = [[8 * p] for p in prios]
    interval = 100 if version == 2 else data.draw(st.sampled_from([50, 100, 200]))
    delay = data.draw(st.integers(1000, MS))
    topo = Topology(prios, version=version, advert_int_cs=interval)
    lan = topo.build(Lan(fast_path=mode, impairments=Impairments(delay_ns=delay)))
    lan.start()
    crash_at = settle_ns(topo) + data.draw(st.integers(0, 5 * S))
    lan.run_until(crash_at)
    dead = expected_master(topo, 0)
    assert lan.masters("VI_1") == [dead]
    heir = expected_master(topo, 0, set(range(k)) - {int(dead[1:])})
    mdi = lan.fsm(heir, "VI_1").master_down_interval
    adver = interval * 10 * MS
    last_sent = max(e[0] for e in lan.events("advert", dead, "VI_1"))
    lan.crash(dead)
    lan.run_until(crash_at + 2 * mdi)
    took_over = [e for e in lan.events("transition", since=crash_at) if e[4][1] == "MASTER"]
    assert [(e[1], e[2]) for e in took_over] == [(heir, "VI_1")]
    t = took_over[0][0]
    assert t == last_sent + delay + mdi
    assert mdi - adver + delay <= t - crash_at <= mdi + delay + WHEEL_TICK


@settings(max_examples=25, deadline=None)
@given(data=st.data(), k=st.integers(2, 4), version=st.sampled_from([2, 3]), mode=FAST)
def test_a_graceful_priority_zero_handover_completes_within_skew_time(
        data, k: int, version: int, mode: str) -> None:
    prios = data.draw(st.lists(st.integers(1, 31), min_size=k, max_size=k, unique=True))
    prios = [[8 * p] for p in prios]
    interval = 100 if version == 2 else data.draw(st.sampled_from([50, 100, 200]))
    delay = data.draw(st.integers(1000, MS))
    topo = Topology(prios, version=version, advert_int_cs=interval)
    lan = topo.build(Lan(fast_path=mode, impairments=Impairments(delay_ns=delay)))
    lan.start()
    stop_at = settle_ns(topo) + data.draw(st.integers(0, 5 * S))
    lan.run_until(stop_at)
    old = expected_master(topo, 0)
    heir = expected_master(topo, 0, set(range(k)) - {int(old[1:])})
    heir_prio = topo.priorities[int(heir[1:])][0]
    lan.shutdown(old)
    assert lan.events("advert", old, since=stop_at) == [(stop_at, old, "VI_1", "advert", (1, 0))]
    lan.run_until(stop_at + 5 * S)
    took_over = [e for e in lan.events("transition", since=stop_at) if e[4][1] == "MASTER"]
    assert [(e[1], e[2]) for e in took_over] == [(heir, "VI_1")]
    handover = took_over[0][0] - (stop_at + delay)  # from hearing the priority-0 advert
    skew = skew_time(version, heir_prio, interval * 10 * MS)
    assert handover == skew
    assert skew <= (256 - heir_prio) * interval * 10 * MS // 256 + WHEEL_TICK


@settings(max_examples=20, deadline=None)
@given(low=st.integers(1, 200), gap=st.integers(1, 54), late=st.integers(0, 10 * S),
       run=st.integers(10, 120), preempt=st.booleans(), mode=FAST)
def test_nopreempt_never_takes_over_a_live_master_and_preempt_does(
        low: int, gap: int, late: int, run: int, preempt: bool, mode: str) -> None:
    topo = Topology([[low], [low + gap]], extra={1: dict(preempt=preempt)})
    lan = topo.build(Lan(fast_path=mode))
    lan.start("r0")
    lan.run_until(settle_ns(topo) + late)
    lan.start("r1")
    lan.run_until(lan.now + run * S)
    assert lan.masters("VI_1") == ["r1" if preempt else "r0"]
    assert len(lan.became("r0", "VI_1", State.MASTER)) == 1
    assert len(lan.became("r1", "VI_1", State.MASTER)) == (1 if preempt else 0)


@settings(max_examples=20, deadline=None)
@given(low=st.integers(1, 200), gap=st.integers(1, 54), late=st.integers(0, 3 * S),
       delay_s=st.integers(1, 30), link=st.integers(1000, MS), mode=FAST)
def test_preempt_delay_holds_off_preemption_from_the_first_lower_advert(
        low: int, gap: int, late: int, delay_s: int, link: int, mode: str) -> None:
    topo = Topology([[low], [low + gap]],
                    extra={1: dict(preempt_delay_ns=delay_s * S)})
    lan = topo.build(Lan(fast_path=mode, impairments=Impairments(delay_ns=link)))
    lan.start("r0")
    started = settle_ns(topo) + late
    lan.run_until(started)
    lan.start("r1")
    lan.run_until(started + (delay_s + 10) * S)
    first_rx = min(e[0] + link for e in lan.events("advert", "r0") if e[0] + link > started)
    took_over = lan.became("r1", "VI_1", State.MASTER)
    assert len(took_over) == 1
    mdi = lan.fsm("r1", "VI_1").master_down_interval
    # Adverts are accepted until first_rx + delay, then discarded; the down timer
    # re-armed by the last accepted one then runs out.
    assert first_rx + delay_s * S <= took_over[0] < first_rx + delay_s * S + mdi
    assert lan.masters("VI_1") == ["r1"]
