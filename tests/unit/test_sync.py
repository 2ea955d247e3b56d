"""Sync groups: member instances change state together (keepalived vrrp_sync.c)."""

from __future__ import annotations

import pytest

from fastvrrp.proto.actions import (
    Action,
    AddVips,
    ArmTimer,
    GroupNotify,
    Notify,
    NotifyMasterRxLowerPri,
    RemoveVips,
    SendAdvert,
    SendGarp,
    State,
    TimerKind,
)
from fastvrrp.proto.fsm import InstanceFsm, skew_time
from fastvrrp.proto.sync import SyncGroup, Tagged
from test_fsm import MS, S, Lan, adv, md, mk

MASTER_DOWN = TimerKind.MASTER_DOWN


def router(host: str, prio: int, addr: str, **kw) -> tuple[SyncGroup, list[InstanceFsm]]:
    members = [mk(f"{host}.VI_1", prio, addr, vrid=51, **kw),
               mk(f"{host}.VI_2", prio, addr, vrid=52, **kw)]
    return SyncGroup(f"{host}.G", members), members


def of(tagged: list[Tagged], name: str) -> list[Action]:
    return [t.action for t in tagged if t.name == name]


def group_notifies(lan: Lan, group: SyncGroup) -> list[tuple[int, State]]:
    return [(t, a.state) for t, n, a in lan.trace
            if n == group.name and isinstance(a, GroupNotify)]


def two_routers(fast_path: bool = False) -> tuple[Lan, SyncGroup, SyncGroup]:
    g1, m1 = router("R1", 100, "192.0.2.1")
    g2, m2 = router("R2", 200, "192.0.2.2")
    return Lan(m1 + m2, [g1, g2], fast_path=fast_path), g1, g2


def test_start_notifies_the_backup_group_before_its_members() -> None:
    g, (a, b) = router("R1", 100, "192.0.2.1")
    out = g.start(0)
    notifies = [t for t in out if isinstance(t.action, (Notify, GroupNotify))]
    assert notifies[0] == Tagged("R1.G", GroupNotify("R1.G", State.BACKUP))
    assert Notify(State.BACKUP, 100) in of(out, "R1.VI_1")
    assert Notify(State.BACKUP, 100) in of(out, "R1.VI_2")
    assert g.state == State.BACKUP


def test_members_go_master_together_once_all_want_it() -> None:
    lan, g1, g2 = two_routers()
    lan.start()
    lan.run_until(10 * S)
    assert lan.states() == {"R1.VI_1": State.BACKUP, "R1.VI_2": State.BACKUP,
                            "R2.VI_1": State.MASTER, "R2.VI_2": State.MASTER}
    assert lan.became("R2.VI_1", State.MASTER) == [md(200)]
    assert lan.became("R2.VI_2", State.MASTER) == [md(200)]
    assert group_notifies(lan, g2) == [(0, State.BACKUP), (md(200), State.MASTER)]
    assert group_notifies(lan, g1) == [(0, State.BACKUP)]


def test_a_member_is_held_in_backup_while_another_still_hears_its_master() -> None:
    lan, g1, g2 = two_routers()
    lan.start()
    lan.run_until(10 * S)
    lan.crash("R2.VI_1")  # only VRID 51's master goes quiet
    lan.run_until(30 * S)
    held = lan.machines["R1.VI_1"]
    assert held.state == State.BACKUP and held.wanted_state == State.MASTER
    assert held.backup_steady_key() is None
    assert lan.became("R1.VI_1", State.MASTER) == []
    # Its down timer keeps being re-armed while it waits for the group.
    assert held.timers[MASTER_DOWN] > 30 * S
    lan.crash("R2.VI_2")
    t = lan.now
    lan.run_until(40 * S)
    took_over = lan.became("R1.VI_2", State.MASTER)
    assert len(took_over) == 1 and t < took_over[0] <= t + md(100) + S
    assert lan.became("R1.VI_1", State.MASTER) == took_over
    assert group_notifies(lan, g1)[-1] == (took_over[0], State.MASTER)


def test_a_member_fault_takes_the_group_to_fault_and_the_peer_group_over() -> None:
    lan, g1, g2 = two_routers()
    lan.start()
    lan.run_until(10 * S)
    lan.set_fault("R2.VI_1", True, "eth1 down")
    # The faulty member sends two priority-0 adverts, the one it pulls along one.
    assert [a for _, a in lan.actions("R2.VI_1", kind=SendAdvert)][-2:] == [SendAdvert(0)] * 2
    assert [a for _, a in lan.actions("R2.VI_2", kind=SendAdvert)][-2:] == [
        SendAdvert(200), SendAdvert(0)]
    assert g2.state == State.FAULT
    assert Notify(State.FAULT, 200) in [a for _, a in lan.actions("R2.VI_2")]
    lan.run_until(20 * S)
    takeover = 10 * S + lan.delay_ns + skew_time(3, 100, S)
    assert lan.became("R1.VI_1", State.MASTER) == [takeover]
    assert lan.became("R1.VI_2", State.MASTER) == [takeover]
    # The fault clears: R2 comes back as BACKUP together, then preempts together.
    lan.set_fault("R2.VI_1", False, "eth1 down")
    assert lan.became("R2.VI_2", State.BACKUP)[-1] == 20 * S
    lan.run_until(40 * S)
    assert lan.states() == {"R1.VI_1": State.BACKUP, "R1.VI_2": State.BACKUP,
                            "R2.VI_1": State.MASTER, "R2.VI_2": State.MASTER}
    assert [s for _, s in group_notifies(lan, g2)] == [
        State.BACKUP, State.MASTER, State.FAULT, State.BACKUP, State.MASTER]


def test_one_member_stepping_down_pulls_the_others_without_priority_zero() -> None:
    lan, g1, g2 = two_routers()
    lan.start(*[m.name for m in g1.members])
    lan.run_until(10 * S)
    assert g1.state == State.MASTER
    lan.start(*[m.name for m in g2.members])
    lan.run_until(30 * S)
    assert g1.state == State.BACKUP and g2.state == State.MASTER
    assert SendAdvert(0) not in [a for _, a in lan.actions("R1.VI_1")]
    assert SendAdvert(0) not in [a for _, a in lan.actions("R1.VI_2")]
    stepped = lan.became("R1.VI_1", State.BACKUP)[-1]
    assert lan.became("R1.VI_2", State.BACKUP)[-1] == stepped
    assert RemoveVips() in [a for t, a in lan.actions("R1.VI_2") if t == stepped]


def test_a_group_handover_sends_every_members_adverts_before_any_notify() -> None:
    g, (a, b) = router("R1", 100, "192.0.2.1")
    g.start(0)
    held = g.timer(md(100), b, MASTER_DOWN)  # VI_1 does not want MASTER yet
    assert held == [Tagged("R1.VI_2", ArmTimer(MASTER_DOWN, 2 * md(100)))]
    assert b.wanted_state == State.MASTER and b.state == State.BACKUP
    out = g.timer(md(100), a, MASTER_DOWN)
    kinds = [type(t.action) for t in out]
    assert [t.name for t in out if isinstance(t.action, SendAdvert)] == ["R1.VI_1", "R1.VI_2"]
    last_network = max(i for i, k in enumerate(kinds) if k in (SendAdvert, AddVips, SendGarp))
    first_notify = min(i for i, k in enumerate(kinds) if k in (Notify, GroupNotify))
    assert last_network < first_notify
    assert [t.action for t in out if isinstance(t.action, (Notify, GroupNotify))] == [
        Notify(State.MASTER, 100), Notify(State.MASTER, 100),
        GroupNotify("R1.G", State.MASTER)]


def test_overlapping_member_faults_keep_the_group_in_fault_until_all_clear() -> None:
    g, (a, b) = router("R1", 100, "192.0.2.1")
    g.start(0)
    out = g.set_fault(S, a, True, "eth0")
    assert of(out, "R1.VI_2")[-1] == Notify(State.FAULT, 100)
    assert out[-1] == Tagged("R1.G", GroupNotify("R1.G", State.FAULT))
    assert g.set_fault(2 * S, b, True, "chk") == []
    assert g.set_fault(3 * S, a, False, "eth0") == []
    assert (a.state, b.state, g.state) == (State.FAULT, State.FAULT, State.FAULT)
    out = g.set_fault(4 * S, b, False, "chk")
    assert (a.state, b.state) == (State.BACKUP, State.BACKUP)
    assert ArmTimer(MASTER_DOWN, 4 * S + md(100)) in of(out, "R1.VI_1")
    assert [t.name for t in out if isinstance(t.action, Notify)] == ["R1.VI_2", "R1.VI_1"]
    assert out[-1] == Tagged("R1.G", GroupNotify("R1.G", State.BACKUP))


def test_start_with_a_faulty_member_puts_everyone_in_fault_but_only_it_notifies() -> None:
    g, (a, b) = router("R1", 100, "192.0.2.1")
    g.set_fault(0, a, True, "eth0")
    out = g.start(0)
    assert [t for t in out if isinstance(t.action, GroupNotify)] == [
        Tagged("R1.G", GroupNotify("R1.G", State.FAULT))]
    assert (a.state, b.state) == (State.FAULT, State.FAULT)
    assert Notify(State.FAULT, 100) in of(out, "R1.VI_1")
    assert not any(isinstance(x, Notify) for x in of(out, "R1.VI_2"))
    out = g.set_fault(S, a, False, "eth0")
    assert (a.state, b.state, g.state) == (State.BACKUP, State.BACKUP, State.BACKUP)


def test_all_owner_group_starts_master_and_is_notified_once() -> None:
    g, (a, b) = router("R1", 255, "192.0.2.1", initial_state="MASTER")
    out = g.start(0)
    assert (a.state, b.state) == (State.MASTER, State.MASTER)
    assert [t for t in out if t.name == "R1.G"] == [
        Tagged("R1.G", GroupNotify("R1.G", State.MASTER))]
    assert out[-1].name == "R1.G"


def test_all_owner_group_with_startup_delay_is_notified_master_once_it_is() -> None:
    g, members = router("R1", 255, "192.0.2.1", initial_state="MASTER",
                        startup_delay_ns=2 * S)
    lan = Lan(members, [g])
    lan.start()
    assert group_notifies(lan, g) == []
    lan.run_until(5 * S)
    assert lan.became("R1.VI_1", State.MASTER) == [2 * S]
    assert lan.became("R1.VI_2", State.MASTER) == [2 * S]
    assert group_notifies(lan, g) == [(2 * S, State.MASTER)]


def test_state_master_members_take_over_after_one_interval() -> None:
    g, members = router("R1", 100, "192.0.2.1", initial_state="MASTER")
    lan = Lan(members, [g])
    lan.start()
    lan.run_until(5 * S)
    first = S + skew_time(3, 1, S)  # vrrp_init_state: adver_int + VRRP_TIMER_SKEW_MIN
    assert lan.became("R1.VI_1", State.MASTER) == [first]
    assert lan.became("R1.VI_2", State.MASTER) == [first]


def test_a_lower_priority_advert_refreshes_arp_for_every_master_member() -> None:
    g, (a, b) = router("R1", 255, "192.0.2.1", initial_state="MASTER")
    g.start(0)
    out = g.advert(500 * MS, a, adv(100))
    assert NotifyMasterRxLowerPri() in of(out, "R1.VI_1")
    assert of(out, "R1.VI_2") == [
        SendGarp(5), ArmTimer(TimerKind.GARP_LOWER_PRIO, 500 * MS + 5 * S)]


def test_shutdown_sends_every_advert_before_any_notify() -> None:
    g, (a, b) = router("R1", 255, "192.0.2.1", initial_state="MASTER")
    g.start(0)
    out = g.shutdown(S)
    kinds = [type(t.action) for t in out]
    last_network = max(i for i, k in enumerate(kinds) if k in (SendAdvert, RemoveVips))
    first_notify = min(i for i, k in enumerate(kinds) if k in (Notify, GroupNotify))
    assert last_network < first_notify
    assert [t.action for t in out if t.action == SendAdvert(0)] == [SendAdvert(0)] * 2
    assert out[-3:] == [Tagged("R1.VI_1", Notify(State.STOP, 255)),
                        Tagged("R1.VI_2", Notify(State.STOP, 255)),
                        Tagged("R1.G", GroupNotify("R1.G", State.STOP))]
    assert g.shutdown(S) == []


def test_inputs_for_a_stranger_and_double_membership_are_errors() -> None:
    g, (a, b) = router("R1", 100, "192.0.2.1")
    stranger = mk("X")
    with pytest.raises(ValueError):
        g.advert(0, stranger, adv(100))
    with pytest.raises(RuntimeError):
        SyncGroup("other", [a])


def test_sync_traces_are_identical_with_and_without_the_fast_path() -> None:
    def run(fast: bool) -> Lan:
        lan, g1, g2 = two_routers(fast)
        lan.start()
        lan.run_until(20 * S)
        lan.set_fault("R2.VI_2", True, "chk")
        lan.run_until(40 * S)
        lan.set_fault("R2.VI_2", False, "chk")
        lan.run_until(60 * S)
        lan.crash("R2.VI_1")
        lan.run_until(80 * S)
        return lan
    slow, fast = run(False), run(True)
    assert fast.trace == slow.trace
    assert fast.fast_hits > 100
