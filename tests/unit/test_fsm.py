"""The per-instance VRRP state machine, in virtual time (RFC 5798 §6, RFC 3768 §6,
keepalived vrrp.c / vrrp_scheduler.c semantics)."""

from __future__ import annotations

import heapq
import ipaddress
import itertools
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fastvrrp.proto.actions import (
    Action,
    AddVips,
    ArmTimer,
    CancelTimer,
    Notify,
    NotifyMasterRxLowerPri,
    NotifyPriorityChange,
    RemoveVips,
    SendAdvert,
    SendGarp,
    State,
    TimerKind,
    Transition,
)
from fastvrrp.proto.fsm import (
    InstanceFsm,
    InstanceParams,
    effective_priority,
    master_down_interval,
    skew_time,
)
from fastvrrp.proto.sync import SyncGroup, Tagged

S = 1_000_000_000
MS = 1_000_000
ADVER = TimerKind.ADVER
MASTER_DOWN = TimerKind.MASTER_DOWN


def ip(text: str) -> bytes:
    return ipaddress.ip_address(text).packed


@dataclass(frozen=True)
class Adv:
    """A decoded advert as the codec hands it over."""

    version: int
    vrid: int
    priority: int
    interval: int
    src: bytes
    addresses: bytes = b""


def mk(name: str = "VI_1", prio: int = 100, addr: str = "192.0.2.1", **kw) -> InstanceFsm:
    kw.setdefault("version", 3)
    return InstanceFsm(InstanceParams(name=name, vrid=kw.pop("vrid", 51), primary=ip(addr),
                                      priority=prio, **kw))


def adv_from(m: InstanceFsm, priority: int | None = None) -> Adv:
    p = m.params
    interval = p.advert_int_cs // 100 if p.version == 2 else p.advert_int_cs
    return Adv(p.version, p.vrid, m.priority if priority is None else priority, interval,
               p.primary)


def adv(prio: int, addr: str = "192.0.2.9", interval: int = 100, version: int = 3) -> Adv:
    return Adv(version, 51, prio, interval, ip(addr))


def norm(actions: Iterable[Action]) -> list[Action]:
    """Drop the free-text reason of transitions, for comparing action lists."""
    return [replace(a, reason="") if isinstance(a, Transition) else a for a in actions]


def T(old: State, new: State) -> Transition:
    return Transition(old, new, "")


def md(prio: int, interval_ns: int = S, version: int = 3) -> int:
    return master_down_interval(version, prio, interval_ns)


def started_master(m: InstanceFsm, now: int = 0) -> int:
    """Start `m` and let its down timer expire; returns the time it became master."""
    m.start(now)
    if m.state == State.MASTER:
        return now
    at = m.timers[MASTER_DOWN]
    m.timer(at, MASTER_DOWN)
    assert m.state == State.MASTER
    return at


class Lan:
    """Virtual-time LAN. Adverts reach every other live machine with the same VRID after
    `delay_ns`; timers fire at their deadline unless re-armed or cancelled. With
    `fast_path`, the steady state is handled here (as the C fast path will) without
    calling the machine, which is only told of the re-arm."""

    def __init__(self, machines: Sequence[InstanceFsm], groups: Sequence[SyncGroup] = (),
                 delay_ns: int = 100_000, fast_path: bool = False) -> None:
        self.machines = {m.name: m for m in machines}
        self.groups = list(groups)
        self.group_of = {m.name: g for g in groups for m in g.members}
        self.delay_ns = delay_ns
        self.fast_path = fast_path
        self.fast_hits = 0
        self.now = 0
        self.dead: set[str] = set()
        self.trace: list[tuple[int, str, Action]] = []
        self._events: list[tuple[int, int, str, tuple]] = []
        self._seq = itertools.count()

    # inputs
    def start(self, *names: str) -> None:
        names = names or tuple(self.machines)
        for g in self.groups:
            if any(m.name in names for m in g.members):
                self._apply_tagged(g.start(self.now))
        for name in names:
            if name not in self.group_of:
                self._apply(name, self.machines[name].start(self.now))

    def set_fault(self, name: str, faulted: bool, reason: str = "eth0") -> None:
        self._input(name, lambda g, m: g.set_fault(self.now, m, faulted, reason),
                    lambda m: m.set_fault(self.now, faulted, reason))

    def set_priority(self, name: str, prio: int) -> None:
        self._input(name, lambda g, m: g.set_priority(self.now, m, prio),
                    lambda m: m.set_priority(self.now, prio))

    def shutdown(self, name: str) -> None:
        self._apply(name, self.machines[name].shutdown(self.now))

    def crash(self, name: str) -> None:
        self.dead.add(name)

    def run_until(self, t: int) -> None:
        while self._events and self._events[0][0] <= t:
            when, _, what, payload = heapq.heappop(self._events)
            self.now = when
            if what == "timer":
                self._fire(*payload)
            else:
                self._deliver(*payload)
        self.now = t

    # queries
    def states(self) -> dict[str, State]:
        return {n: m.state for n, m in self.machines.items()}

    def actions(self, name: str, since: int = 0, kind: type | None = None
                ) -> list[tuple[int, Action]]:
        return [(t, a) for t, n, a in self.trace
                if n == name and t >= since and (kind is None or isinstance(a, kind))]

    def became(self, name: str, state: State) -> list[int]:
        return [t for t, a in self.actions(name, kind=Transition) if a.new == state]

    # plumbing
    def _input(self, name: str, via_group: Callable, direct: Callable) -> None:
        m = self.machines[name]
        g = self.group_of.get(name)
        if g is not None:
            self._apply_tagged(via_group(g, m))
        else:
            self._apply(name, direct(m))

    def _fire(self, name: str, kind: TimerKind, deadline: int) -> None:
        m = self.machines[name]
        if name in self.dead or m.timers.get(kind) != deadline:
            return  # replaced or cancelled since
        if self.fast_path and kind == ADVER and m.master_steady:
            self.fast_hits += 1
            nxt = self.now + m.adver_interval
            m.fastpath_rearmed(ADVER, nxt)
            self._apply(name, [SendAdvert(m.priority), ArmTimer(ADVER, nxt)])
            return
        self._input(name, lambda g, m: g.timer(self.now, m, kind),
                    lambda m: m.timer(self.now, kind))

    def _deliver(self, name: str, advert: Adv) -> None:
        if name in self.dead:
            return
        m = self.machines[name]
        if self.fast_path and m.backup_steady_key() == (advert.src, advert.priority,
                                                        advert.interval):
            self.fast_hits += 1
            nxt = self.now + m.master_down_interval
            m.fastpath_rearmed(MASTER_DOWN, nxt)
            self._apply(name, [ArmTimer(MASTER_DOWN, nxt)])
            return
        self._input(name, lambda g, m: g.advert(self.now, m, advert),
                    lambda m: m.advert(self.now, advert))

    def _apply_tagged(self, tagged: Iterable[Tagged]) -> None:
        for t in tagged:
            self._apply(t.name, [t.action])

    def _apply(self, name: str, actions: Iterable[Action]) -> None:
        for a in actions:
            self.trace.append((self.now, name, a))
            if isinstance(a, ArmTimer):
                self._push(a.deadline, "timer", (name, a.kind, a.deadline))
            elif isinstance(a, SendAdvert) and name not in self.dead:
                sender = self.machines[name]
                msg = adv_from(sender, a.priority)
                for other in self.machines.values():
                    if other is not sender and other.params.vrid == sender.params.vrid:
                        self._push(self.now + self.delay_ns, "adv", (other.name, msg))

    def _push(self, when: int, what: str, payload: tuple) -> None:
        heapq.heappush(self._events, (when, next(self._seq), what, payload))


# --- formulas -----------------------------------------------------------------------

@given(prio=st.integers(1, 255), cs=st.integers(1, 4095))
def test_v3_skew_is_the_rfc_formula_truncated_to_the_microsecond(prio: int, cs: int) -> None:
    exact_ns = (256 - prio) * cs * 10_000_000 / 256  # RFC 5798 6.1, in ns
    ours = skew_time(3, prio, cs * 10_000_000)
    assert ours % 1000 == 0
    assert ours <= exact_ns < ours + 1000


@given(prio=st.integers(1, 255), seconds=st.integers(1, 255))
def test_v2_skew_is_256_minus_priority_over_256_seconds_whatever_the_interval(
        prio: int, seconds: int) -> None:
    ours = skew_time(2, prio, seconds * S)
    assert ours == ((256 - prio) * 1_000_000 // 256) * 1000
    assert ours == skew_time(2, prio, S)


@given(prio=st.integers(1, 255), cs=st.integers(1, 4095), n=st.integers(1, 10),
       version=st.sampled_from([2, 3]))
def test_master_down_interval_is_n_intervals_plus_skew(prio: int, cs: int, n: int,
                                                       version: int) -> None:
    interval = cs * 10_000_000
    assert (master_down_interval(version, prio, interval, n)
            == n * interval + skew_time(version, prio, interval))


def test_known_timer_values() -> None:
    assert skew_time(3, 100, S) == 609_375_000  # 156/256 s
    assert md(100) == 3_609_375_000
    assert skew_time(3, 255, S) == 3_906_000  # keepalived truncates 3906.25 µs
    assert skew_time(2, 100, 3 * S) == 609_375_000


@given(base=st.integers(1, 254), weights=st.lists(st.integers(-300, 300), max_size=6))
def test_effective_priority_is_base_plus_weights_clamped(base: int, weights: list[int]) -> None:
    result = effective_priority(base, weights, owner=False)
    assert 1 <= result <= 254
    assert result == min(254, max(1, base + sum(weights)))


@given(weights=st.lists(st.integers(-300, 300), max_size=6))
def test_effective_priority_of_an_owner_never_changes(weights: list[int]) -> None:
    assert effective_priority(255, weights, owner=True) == 255


@pytest.mark.parametrize("kw", [
    dict(version=2, advert_int_cs=150),
    dict(version=2, family=6, primary=bytes(16)),
    dict(primary=bytes(16)),
    dict(version=3, advert_int_cs=4096),
    dict(priority=0),
    dict(initial_state="FAULT"),
    dict(down_timer_adverts=0),
    dict(adver_phase_ns=S),
    dict(adver_phase_ns=-1),
])
def test_params_reject_what_keepalived_cannot_run(kw: dict) -> None:
    args = dict(name="VI_1", vrid=51, primary=ip("192.0.2.1"), version=3) | kw
    with pytest.raises(ValueError):
        InstanceParams(**args)


# --- start-up -----------------------------------------------------------------------

def test_backup_start_arms_master_down_then_notifies() -> None:
    m = mk()
    assert norm(m.start(10)) == [ArmTimer(MASTER_DOWN, 10 + md(100)),
                                 T(State.INIT, State.BACKUP), Notify(State.BACKUP, 100)]
    assert m.state == State.BACKUP and m.master_src is None


def test_owner_with_state_master_is_master_at_once_adverts_and_vips_first() -> None:
    m = mk(prio=255, initial_state="MASTER")
    assert norm(m.start(7)) == [
        SendAdvert(255), AddVips(), SendGarp(5),
        ArmTimer(TimerKind.GARP_DELAY, 7 + 5 * S), ArmTimer(ADVER, 7 + S),
        T(State.INIT, State.MASTER), Notify(State.MASTER, 255)]


def test_state_master_without_ownership_waits_a_full_master_down_interval() -> None:
    m = mk(prio=100, initial_state="MASTER")
    assert ArmTimer(MASTER_DOWN, md(100)) in m.start(0)
    assert m.state == State.BACKUP


def test_state_master_clears_nopreempt_as_keepalived_does() -> None:
    m = mk(prio=200, initial_state="MASTER", preempt=False)
    m.start(0)
    assert m.advert(S, adv(100)) == []  # lower priority master is not accepted


def test_owner_with_state_backup_waits_with_the_smallest_skew() -> None:
    m = mk(prio=255)
    assert ArmTimer(MASTER_DOWN, 3 * S + 3_906_000) in m.start(0)


def test_start_while_faulty_enters_fault_and_leaves_it_when_the_fault_clears() -> None:
    m = mk()
    assert m.set_fault(0, True, "eth0 down") == []
    assert norm(m.start(0)) == [T(State.INIT, State.FAULT), Notify(State.FAULT, 100)]
    assert norm(m.set_fault(S, False, "eth0 down")) == [
        ArmTimer(MASTER_DOWN, S + md(100)), T(State.FAULT, State.BACKUP),
        Notify(State.BACKUP, 100)]


def test_starting_twice_is_an_error() -> None:
    m = mk()
    m.start(0)
    with pytest.raises(RuntimeError):
        m.start(1)


def test_startup_delay_ignores_adverts_and_runs_timers_from_its_end() -> None:
    m = mk(startup_delay_ns=5 * S)
    assert ArmTimer(MASTER_DOWN, 5 * S + md(100)) in m.start(0)
    assert m.advert(1 * S, adv(200)) == []
    assert m.backup_steady_key() is None
    assert m.advert(6 * S, adv(200)) == [ArmTimer(MASTER_DOWN, 6 * S + md(100))]
    assert m.counters.advert == 2


def test_owner_waits_silently_for_the_startup_delay_then_becomes_master() -> None:
    m = mk(prio=255, initial_state="MASTER", startup_delay_ns=2 * S)
    acts = m.start(0)
    assert ArmTimer(MASTER_DOWN, 2 * S) in acts
    assert not any(isinstance(a, Notify) for a in acts)
    assert SendAdvert(255) in m.timer(2 * S, MASTER_DOWN)
    assert m.state == State.MASTER


# --- becoming master, master steady state ----------------------------------------------

def test_master_down_expiry_goes_master_in_the_project_order() -> None:
    m = mk()
    m.start(0)
    t = md(100)
    assert norm(m.timer(t, MASTER_DOWN)) == [
        SendAdvert(100), AddVips(), SendGarp(5),
        ArmTimer(TimerKind.GARP_DELAY, t + 5 * S), ArmTimer(ADVER, t + S),
        T(State.BACKUP, State.MASTER), Notify(State.MASTER, 100)]


def test_a_takeover_sent_by_the_fast_path_is_everything_but_that_advert() -> None:
    m = mk(prio=120)
    m.start(0)
    assert m.takeover_priority() == 120
    m.fastpath_sent_takeover()
    t = m.timers[MASTER_DOWN]
    assert norm(m.timer(t, MASTER_DOWN)) == [
        AddVips(), SendGarp(5), ArmTimer(TimerKind.GARP_DELAY, t + 5 * S),
        ArmTimer(ADVER, t + S), T(State.BACKUP, State.MASTER), Notify(State.MASTER, 120)]
    assert m.takeover_priority() is None  # a master has none
    # The report is used once: the next takeover sends its own advert again.
    m.advert(t + S, adv(200))
    assert m.state == State.BACKUP
    out = m.timer(m.timers[MASTER_DOWN], MASTER_DOWN)
    assert out[0] == SendAdvert(120)


def test_no_takeover_priority_where_the_first_advert_is_not_certain() -> None:
    assert mk().takeover_priority() is None  # INIT
    owner = mk(prio=255)  # `state BACKUP`: waits, and restores 255 when it goes master
    owner.start(0)
    assert owner.state == State.BACKUP and owner.takeover_priority() is None
    delayed = mk(startup_delay_ns=5 * S)
    delayed.start(0)
    assert delayed.takeover_priority() is None
    faulty = mk()
    faulty.start(0)
    faulty.set_fault(0, True, "eth0")
    assert faulty.takeover_priority() is None
    a, b = mk("VI_1"), mk("VI_2", vrid=52)
    SyncGroup("G", [a, b])  # a group may hold a member back in BACKUP
    a.start(0)
    assert a.state == State.BACKUP and a.takeover_priority() is None
    with pytest.raises(RuntimeError):
        a.fastpath_sent_takeover()


def test_an_expiry_overtaken_by_a_re_arm_is_stale() -> None:
    # The wheel fired MASTER_DOWN, but an advert read before the expiry reached the
    # machine re-armed it: the late expiry must not make the backup take over.
    m = mk()
    m.start(0)
    due = m.timers[MASTER_DOWN]
    m.advert(due - MS, adv(200))
    assert m.timers[MASTER_DOWN] > due
    assert m.timer(due, MASTER_DOWN) == []
    assert m.state == State.BACKUP and m.counters.stale_timer == 1
    assert MASTER_DOWN in m.timers  # still armed for the new deadline
    assert m.timer(m.timers[MASTER_DOWN], MASTER_DOWN)[0] == SendAdvert(100)


def test_a_takeover_report_followed_by_another_timer_is_refused() -> None:
    m = mk()
    m.start(0)
    m.fastpath_sent_takeover()
    with pytest.raises(RuntimeError):
        m.timer(S, ADVER)


def test_no_second_burst_without_garp_master_delay_and_no_burst_without_repeat() -> None:
    m = mk(garp_master_delay_ns=0, garp_master_repeat=0)
    m.start(0)
    acts = m.timer(md(100), MASTER_DOWN)
    assert not any(isinstance(a, SendGarp) for a in acts)
    assert not any(isinstance(a, ArmTimer) and a.kind == TimerKind.GARP_DELAY for a in acts)


def test_second_garp_burst_and_refresh_bursts() -> None:
    m = mk(garp_master_refresh_ns=60 * S, garp_master_refresh_repeat=2)
    t0 = started_master(m)
    assert m.timers[TimerKind.GARP_REFRESH] == t0 + 5 * S + 60 * S  # HEAD: delay + refresh
    assert m.timer(t0 + 5 * S, TimerKind.GARP_DELAY) == [SendGarp(5)]
    t1 = t0 + 65 * S
    assert m.timer(t1, TimerKind.GARP_REFRESH) == [
        SendGarp(2), ArmTimer(TimerKind.GARP_REFRESH, t1 + 60 * S)]


def test_master_steady_state_is_one_advert_and_one_rearm() -> None:
    m = mk(prio=150)
    t = started_master(m)
    for _ in range(50):
        t = m.timers[ADVER]
        assert m.master_steady
        assert m.timer(t, ADVER) == [SendAdvert(150), ArmTimer(ADVER, t + S)]


def test_a_timer_that_is_not_armed_is_ignored_and_counted() -> None:
    m = mk()
    m.start(0)
    assert m.timer(S, ADVER) == []
    assert m.counters.stale_timer == 1 and m.state == State.BACKUP


# --- backup receiving ---------------------------------------------------------------

def test_backup_accepting_its_master_only_rearms_and_exposes_the_steady_key() -> None:
    m = mk()
    m.start(0)
    a = adv(200, "192.0.2.9")
    assert m.advert(S, a) == [ArmTimer(MASTER_DOWN, S + md(100))]
    assert m.master_src == ip("192.0.2.9")
    assert m.backup_steady_key() == (a.src, 200, 100)
    assert m.advert(2 * S, a) == [ArmTimer(MASTER_DOWN, 2 * S + m.master_down_interval)]


def test_v3_backup_learns_the_master_interval_and_uses_its_own_as_master() -> None:
    m = mk(advert_int_cs=100)
    m.start(0)
    assert m.advert(S, adv(200, interval=50)) == [
        ArmTimer(MASTER_DOWN, S + md(100, 500 * MS))]
    assert m.master_adver_interval == 500 * MS
    assert m.skew_time == skew_time(3, 100, 500 * MS)
    t = m.timers[MASTER_DOWN]
    assert ArmTimer(ADVER, t + S) in m.timer(t, MASTER_DOWN)
    assert m.master_adver_interval == S


def test_v2_backup_keeps_its_own_interval() -> None:
    m = mk(version=2, advert_int_cs=200)
    m.start(0)
    assert m.advert(S, adv(200, interval=2, version=2)) == [
        ArmTimer(MASTER_DOWN, S + 2 * 3 * S + 609_375_000)]


def test_priority_zero_makes_the_backup_take_over_after_skew_time() -> None:
    m = mk()
    m.start(0)
    m.advert(S, adv(200))
    assert m.advert(2 * S, adv(0)) == [ArmTimer(MASTER_DOWN, 2 * S + 609_375_000)]
    assert SendAdvert(100) in m.timer(2 * S + 609_375_000, MASTER_DOWN)


def test_preempting_backup_discards_a_lower_priority_master_and_times_out() -> None:
    m = mk(prio=200)
    m.start(0)
    assert m.advert(S, adv(100)) == []
    assert m.backup_steady_key() is None
    assert m.timers[MASTER_DOWN] == md(200)  # still the start-up deadline


def test_nopreempt_backup_accepts_a_lower_priority_master() -> None:
    m = mk(prio=200, preempt=False)
    m.start(0)
    assert m.advert(S, adv(100)) == [ArmTimer(MASTER_DOWN, S + md(200))]
    assert m.backup_steady_key() == (ip("192.0.2.9"), 100, 100)


def test_backup_with_equal_priority_accepts_the_master_whatever_its_address() -> None:
    m = mk(prio=100, addr="192.0.2.200")
    m.start(0)
    assert m.advert(S, adv(100, "192.0.2.1")) == [ArmTimer(MASTER_DOWN, S + md(100))]


def test_adverts_in_fault_are_ignored() -> None:
    m = mk()
    m.start(0)
    m.set_fault(S, True, "eth0")
    assert m.advert(2 * S, adv(200)) == []


# --- master receiving ---------------------------------------------------------------

def test_master_answers_a_lower_priority_advert_at_once() -> None:
    m = mk(prio=150)
    t = started_master(m) + 100 * MS
    assert m.advert(t, adv(100)) == [
        SendAdvert(150), SendGarp(5), ArmTimer(TimerKind.GARP_LOWER_PRIO, t + 5 * S),
        ArmTimer(ADVER, t + S), NotifyMasterRxLowerPri()]
    assert m.timer(t + 5 * S, TimerKind.GARP_LOWER_PRIO) == [SendGarp(5)]


@given(phase=st.integers(0, S - 1), start=st.integers(0, 10 * S),
       lates=st.lists(st.integers(0, 3 * S), min_size=1, max_size=8),
       answer=st.integers(1, S))
def test_an_advert_phase_puts_every_adver_on_its_grid_never_later_than_the_rfc_timer(
        phase: int, start: int, lates: list[int], answer: int) -> None:
    m = mk(prio=150, adver_phase_ns=phase)
    t = started_master(m, start)

    def armed(now: int) -> int:
        deadline = m.timers[ADVER]
        assert deadline % S == phase and now < deadline <= now + S, (now, deadline)
        return deadline

    deadline = armed(t)  # the takeover advert's successor
    for late in lates:
        now = deadline + late
        assert m.timer(now, ADVER)[0] == SendAdvert(150)
        deadline = armed(now)  # on the grid however late the loop ran
    now = deadline - answer  # a lower priority's advert is answered, the grid kept
    m.advert(now, adv(100))
    armed(now)


def test_without_a_phase_adver_runs_from_the_expiry_as_keepalived_does() -> None:
    m = mk(prio=150)
    t = started_master(m, 7)
    assert m.timers[ADVER] == t + S
    assert m.timer(t + S + 3 * MS, ADVER) == [SendAdvert(150), ArmTimer(ADVER, t + 2 * S + 3 * MS)]


def test_lower_prio_no_advert_and_own_lower_prio_garp_settings() -> None:
    m = mk(prio=150, lower_prio_no_advert=True, garp_lower_prio_repeat=2,
           garp_lower_prio_delay_ns=0)
    t = started_master(m) + 100 * MS
    assert m.advert(t, adv(100)) == [SendGarp(2), NotifyMasterRxLowerPri()]


def test_master_steps_down_for_a_higher_priority_advert() -> None:
    m = mk(prio=100)
    t = started_master(m) + 100 * MS
    assert norm(m.advert(t, adv(200, interval=200))) == [
        RemoveVips(), CancelTimer(ADVER), CancelTimer(TimerKind.GARP_DELAY),
        ArmTimer(MASTER_DOWN, t + md(100, 2 * S)), T(State.MASTER, State.BACKUP),
        Notify(State.BACKUP, 100)]
    assert m.master_src == ip("192.0.2.9") and m.master_adver_interval == 2 * S


def test_higher_prio_send_advert_sends_one_advert_before_stepping_down() -> None:
    m = mk(prio=100, higher_prio_send_advert=True)
    t = started_master(m) + 100 * MS
    acts = m.advert(t, adv(200))
    assert acts[:2] == [SendAdvert(100), RemoveVips()]
    assert m.state == State.BACKUP


def test_master_answers_priority_zero_with_an_advert_and_stays() -> None:
    m = mk(prio=100)
    t = started_master(m) + 100 * MS
    assert m.advert(t, adv(0)) == [SendAdvert(100), ArmTimer(ADVER, t + S)]
    assert m.state == State.MASTER


@pytest.mark.parametrize("ours,theirs,stays", [
    ("192.0.2.10", "192.0.2.9", True),
    ("192.0.2.9", "192.0.2.10", False),
    ("10.0.0.1", "192.0.2.1", False),  # unsigned comparison, not string order
])
def test_equal_priority_masters_the_higher_primary_address_wins(
        ours: str, theirs: str, stays: bool) -> None:
    m = mk(prio=100, addr=ours)
    t = started_master(m) + 100 * MS
    m.advert(t, adv(100, theirs))
    assert (m.state == State.MASTER) is stays


@given(pa=st.integers(1, 255), pb=st.integers(1, 255),
       a=st.binary(min_size=4, max_size=4), b=st.binary(min_size=4, max_size=4))
def test_two_masters_hearing_each_other_leave_exactly_the_better_one(
        pa: int, pb: int, a: bytes, b: bytes) -> None:
    if a == b:
        return
    ma = InstanceFsm(InstanceParams(name="A", vrid=51, primary=a, version=3, priority=pa))
    mb = InstanceFsm(InstanceParams(name="B", vrid=51, primary=b, version=3, priority=pb))
    t = max(started_master(ma), started_master(mb)) + MS
    from_a, from_b = adv_from(ma), adv_from(mb)
    ma.advert(t, from_b)
    mb.advert(t, from_a)
    winner, loser = (ma, mb) if (pa, a) > (pb, b) else (mb, ma)
    assert winner.state == State.MASTER and loser.state == State.BACKUP
    # ... and the loser then follows the winner quietly.
    assert loser.advert(t + S, adv_from(winner)) == [
        ArmTimer(MASTER_DOWN, t + S + loser.master_down_interval)]


# --- address owners -------------------------------------------------------------------

def test_two_owners_the_lower_address_backs_off_the_higher_watches_then_relaxes() -> None:
    hi = mk("A", prio=255, addr="192.0.2.2", initial_state="MASTER")
    lo = mk("B", prio=255, addr="192.0.2.1", initial_state="MASTER")
    lan = Lan([hi, lo])
    lan.start()
    lan.run_until(10 * S)
    assert lan.states() == {"A": State.MASTER, "B": State.BACKUP}
    rogue = [a for _, a in lan.actions("A", kind=ArmTimer) if a.kind == TimerKind.ROGUE]
    assert len(rogue) == 1 and hi.priority == 255 and hi.master_steady


def test_an_owner_that_keeps_advertising_makes_the_higher_owner_drop_to_254() -> None:
    m = mk(prio=255, addr="192.0.2.2", initial_state="MASTER")
    m.start(0)
    rogue = adv(255, "192.0.2.1")
    m.advert(500 * MS, rogue)
    assert not m.master_steady
    assert m.timer(1500 * MS, ADVER) == [SendAdvert(255), ArmTimer(ADVER, 2500 * MS)]
    assert m.timer(2500 * MS, ADVER) == [
        SendAdvert(255), ArmTimer(TimerKind.ROGUE, 2500 * MS + 1200 * MS),
        ArmTimer(ADVER, 3500 * MS)]
    acts = norm(m.advert(3 * S, rogue))
    assert acts[0] == CancelTimer(TimerKind.ROGUE)
    assert m.state == State.BACKUP and m.priority == 254
    assert acts[-1] == Notify(State.BACKUP, 254)
    # The rogue goes quiet: we take over again, as 255.
    t = m.timers[MASTER_DOWN]
    assert t == 3 * S + 3 * S + 3_906_000  # owner skew even while at 254
    assert m.timer(t, MASTER_DOWN)[0] == SendAdvert(255)


def test_a_lowered_owner_restores_255_when_the_other_owner_advertises_less() -> None:
    m = mk(prio=255, addr="192.0.2.2", initial_state="MASTER")
    m.start(0)
    rogue = adv(255, "192.0.2.1")
    m.advert(500 * MS, rogue)
    m.timer(1500 * MS, ADVER)
    m.timer(2500 * MS, ADVER)
    m.advert(3 * S, rogue)
    assert m.priority == 254
    m.advert(4 * S, rogue)
    assert m.priority == 254
    m.advert(5 * S, adv(200, "192.0.2.1"))
    assert m.priority == 255


def test_rogue_timer_expiry_changes_nothing() -> None:
    m = mk(prio=255, addr="192.0.2.2", initial_state="MASTER")
    m.start(0)
    m.advert(500 * MS, adv(255, "192.0.2.1"))
    m.timer(1500 * MS, ADVER)
    m.timer(2500 * MS, ADVER)
    assert m.timer(3700 * MS, TimerKind.ROGUE) == []
    assert m.master_steady and m.priority == 255


# --- faults -------------------------------------------------------------------------

def test_master_to_fault_sends_priority_zero_twice_as_keepalived_does() -> None:
    m = mk()
    t = started_master(m) + MS
    assert norm(m.set_fault(t, True, "eth0 down")) == [
        SendAdvert(0), SendAdvert(0), RemoveVips(), CancelTimer(ADVER),
        CancelTimer(TimerKind.GARP_DELAY), T(State.MASTER, State.FAULT),
        Notify(State.FAULT, 100)]
    assert m.timers == {}


def test_backup_to_fault_cancels_the_down_timer() -> None:
    m = mk()
    m.start(0)
    assert norm(m.set_fault(S, True, "chk_nginx")) == [
        CancelTimer(MASTER_DOWN), T(State.BACKUP, State.FAULT), Notify(State.FAULT, 100)]


def test_overlapping_fault_reasons_leave_fault_only_when_all_clear() -> None:
    m = mk()
    m.start(0)
    m.set_fault(S, True, "eth0")
    assert m.set_fault(S, True, "chk") == []
    assert m.set_fault(S, True, "chk") == []
    assert m.set_fault(2 * S, False, "eth0") == []
    assert m.set_fault(2 * S, False, "unknown") == []
    assert m.state == State.FAULT and m.faults == {"chk"}
    acts = m.set_fault(3 * S, False, "chk")
    assert ArmTimer(MASTER_DOWN, 3 * S + md(100)) in acts
    assert m.state == State.BACKUP


def test_leaving_fault_forgets_a_learned_interval() -> None:
    m = mk()
    m.start(0)
    m.advert(S, adv(200, interval=300))
    m.set_fault(2 * S, True, "eth0")
    m.set_fault(3 * S, False, "eth0")
    assert m.master_adver_interval == S


# --- priority changes -----------------------------------------------------------------

def test_priority_change_in_backup_moves_the_down_timer_by_the_skew_change() -> None:
    m = mk(prio=100)
    m.start(0)
    m.advert(S, adv(250))
    old = m.timers[MASTER_DOWN]
    assert m.set_priority(2 * S, 200) == [
        ArmTimer(MASTER_DOWN, old + skew_time(3, 200, S) - skew_time(3, 100, S))]
    assert m.priority == 200


def test_priority_change_in_master_shows_in_the_next_advert_only() -> None:
    m = mk(prio=100)
    t = started_master(m)
    assert m.set_priority(t + MS, 90) == []
    assert m.timer(t + S, ADVER)[0] == SendAdvert(90)


def test_priority_change_notification_when_asked_for() -> None:
    m = mk(prio=100, notify_priority_changes=True)
    started_master(m)
    assert m.set_priority(5 * S, 90) == [NotifyPriorityChange(State.MASTER, 90)]


def test_owner_priority_is_never_changed() -> None:
    m = mk(prio=255)
    m.start(0)
    assert m.set_priority(S, 100) == [] and m.priority == 255


def test_effective_priority_out_of_range_is_an_error() -> None:
    m = mk()
    with pytest.raises(ValueError):
        m.set_priority(0, 255)


def test_raising_priority_makes_a_preempting_backup_take_over() -> None:
    a, b = mk("A", 150, "192.0.2.1"), mk("B", 100, "192.0.2.2")
    lan = Lan([a, b])
    lan.start()
    lan.run_until(10 * S)
    assert lan.states() == {"A": State.MASTER, "B": State.BACKUP}
    lan.set_priority("B", 200)
    lan.run_until(20 * S)
    assert lan.states() == {"A": State.BACKUP, "B": State.MASTER}
    # B discarded A's adverts from 10 s on and took over at its down deadline.
    last_accept = max(t for t, x in lan.actions("B", kind=ArmTimer) if t < 10 * S)
    assert lan.became("B", State.MASTER) == [last_accept + md(200)]


# --- elections on a wire --------------------------------------------------------------

def test_higher_priority_router_started_later_preempts_after_its_down_interval() -> None:
    a, b = mk("A", 100, "192.0.2.1"), mk("B", 200, "192.0.2.2")
    lan = Lan([a, b])
    lan.start("A")
    lan.run_until(5 * S)
    lan.start("B")
    lan.run_until(20 * S)
    assert lan.became("A", State.MASTER) == [md(100)]
    assert lan.became("B", State.MASTER) == [5 * S + md(200)]
    assert lan.became("A", State.BACKUP) == [0, 5 * S + md(200) + lan.delay_ns]
    assert lan.states() == {"A": State.BACKUP, "B": State.MASTER}


def test_nopreempt_backup_never_takes_over_a_live_master() -> None:
    a, b = mk("A", 100, "192.0.2.1"), mk("B", 200, "192.0.2.2", preempt=False)
    lan = Lan([a, b])
    lan.start("A")
    lan.run_until(5 * S)
    lan.start("B")
    lan.run_until(60 * S)
    assert lan.states() == {"A": State.MASTER, "B": State.BACKUP}


def test_preempt_delay_holds_off_preemption_from_the_first_lower_advert() -> None:
    a = mk("A", 100, "192.0.2.1")
    b = mk("B", 200, "192.0.2.2", preempt_delay_ns=10 * S)
    lan = Lan([a, b], delay_ns=0)
    lan.start("A")
    lan.run_until(5 * S)
    lan.start("B")
    lan.run_until(6 * S)
    assert b.backup_steady_key() is None  # accepted only while the delay runs
    lan.run_until(40 * S)
    first_rx = md(100) + 2 * S  # A's first advert after B started
    last_accepted = first_rx + 9 * S  # the one at first_rx + 10 s is discarded
    assert lan.became("B", State.MASTER) == [last_accepted + md(200)]


def test_graceful_shutdown_hands_over_after_skew_time() -> None:
    a, b = mk("A", 200, "192.0.2.1"), mk("B", 100, "192.0.2.2")
    lan = Lan([a, b])
    lan.start()
    lan.run_until(10 * S)
    lan.shutdown("A")
    lan.run_until(20 * S)
    assert lan.became("B", State.MASTER) == [10 * S + lan.delay_ns + skew_time(3, 100, S)]


def test_shutdown_of_master_backup_and_twice() -> None:
    m = mk()
    t = started_master(m) + MS
    assert norm(m.shutdown(t)) == [
        SendAdvert(0), RemoveVips(), CancelTimer(TimerKind.GARP_DELAY), CancelTimer(ADVER),
        T(State.MASTER, State.STOP), Notify(State.STOP, 100)]
    assert m.shutdown(t) == []
    b = mk()
    b.start(0)
    assert norm(b.shutdown(S)) == [CancelTimer(MASTER_DOWN), T(State.BACKUP, State.STOP),
                                   Notify(State.STOP, 100)]


def test_fault_on_the_master_hands_over_after_skew_time() -> None:
    a, b = mk("A", 200, "192.0.2.1"), mk("B", 100, "192.0.2.2")
    lan = Lan([a, b])
    lan.start()
    lan.run_until(10 * S)
    lan.set_fault("A", True, "eth1 down")
    lan.run_until(20 * S)
    assert lan.became("B", State.MASTER) == [10 * S + lan.delay_ns + skew_time(3, 100, S)]
    lan.set_fault("A", False, "eth1 down")
    lan.run_until(40 * S)
    assert lan.states() == {"A": State.MASTER, "B": State.BACKUP}


def test_crashed_master_is_replaced_after_the_master_down_interval() -> None:
    a, b = mk("A", 200, "192.0.2.1"), mk("B", 100, "192.0.2.2")
    lan = Lan([a, b])
    lan.start()
    lan.run_until(10 * S)
    last = max(t for t, x in lan.actions("A", kind=SendAdvert))
    lan.crash("A")
    lan.run_until(20 * S)
    assert lan.became("B", State.MASTER) == [last + lan.delay_ns + md(100)]


# --- the fast-path contract ------------------------------------------------------------

def three_routers() -> list[InstanceFsm]:
    return [mk("A", 150, "192.0.2.1"), mk("B", 100, "192.0.2.2"),
            mk("C", 100, "192.0.2.3", advert_int_cs=50)]


def eventful_run(fast_path: bool) -> Lan:
    lan = Lan(three_routers(), fast_path=fast_path)
    lan.start()
    lan.run_until(20 * S)
    lan.set_priority("A", 50)
    lan.run_until(40 * S)
    lan.set_priority("A", 150)
    lan.run_until(60 * S)
    lan.set_priority("B", 120)
    lan.crash("A")
    lan.run_until(80 * S)
    lan.shutdown("B")
    lan.run_until(100 * S)
    return lan


def test_traces_are_identical_with_and_without_the_fast_path() -> None:
    slow, fast = eventful_run(False), eventful_run(True)
    assert fast.trace == slow.trace
    assert fast.fast_hits > 250
    # Every input either went through the fast path or into Python, never both.
    python_calls = sum(m.counters.advert + m.counters.timer for m in fast.machines.values())
    slow_calls = sum(m.counters.advert + m.counters.timer for m in slow.machines.values())
    assert python_calls + fast.fast_hits == slow_calls


def test_in_the_steady_state_no_input_enters_the_python_machine() -> None:
    lan = Lan(three_routers(), fast_path=True)
    lan.start()
    lan.run_until(15 * S)
    before = {n: (m.counters.advert, m.counters.timer) for n, m in lan.machines.items()}
    hits = lan.fast_hits
    lan.run_until(115 * S)
    assert {n: (m.counters.advert, m.counters.timer) for n, m in lan.machines.items()} == before
    assert lan.fast_hits - hits == 100 * 3  # A's 100 adverts, each heard by B and C


def test_the_steady_state_without_fast_path_is_exactly_the_contract() -> None:
    lan = Lan(three_routers())
    lan.start()
    lan.run_until(15 * S)
    start = len(lan.trace)
    lan.run_until(115 * S)
    for t, name, action in lan.trace[start:]:
        m = lan.machines[name]
        if name == "A":
            assert isinstance(action, (SendAdvert, ArmTimer))
            if isinstance(action, ArmTimer):
                assert action == ArmTimer(ADVER, t + S)
            else:
                assert action == SendAdvert(150)
        else:
            assert action == ArmTimer(MASTER_DOWN, t + m.master_down_interval)
