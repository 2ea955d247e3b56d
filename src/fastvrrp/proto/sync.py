"""vrrp_sync_group: member instances change state together (keepalived vrrp_sync.c).

The daemon sends every input of a member through its group; the group runs the
member's machine, then applies keepalived's transition table (vrrp_scheduler.c
VRRP_TSM): a member reaching MASTER pulls the others to MASTER (once every member
wants MASTER), a member leaving MASTER for BACKUP or FAULT for BACKUP pulls the
others to BACKUP, a member's own fault puts the others in FAULT. Results are
`Tagged(name, action)`: the instance name, or the group name for `GroupNotify`; all
members' network actions and timers come before any notify.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from fastvrrp.proto.actions import (
    NOTIFY_ACTIONS,
    Action,
    GroupNotify,
    NotifyMasterRxLowerPri,
    ReceivedAdvert,
    State,
    TimerKind,
)
from fastvrrp.proto.fsm import InstanceFsm


@dataclass(frozen=True, slots=True)
class Tagged:
    """An action and whom it is for: an instance name, or the group's for GroupNotify."""

    name: str
    action: Action


class SyncGroup:
    """One vrrp_sync_group over member machines that have not been started yet."""

    __slots__ = ("_name", "_members", "_state", "_master_notify_pending")

    def __init__(self, name: str, members: Sequence[InstanceFsm]) -> None:
        if not members:
            raise ValueError(f"sync group {name} has no members")
        if len({m.name for m in members}) != len(members):
            raise ValueError(f"sync group {name} lists an instance twice")
        self._name = name
        self._members = tuple(members)
        # vrrp_sync_set_group: MASTER only if every member is an address owner with
        # `state MASTER`, else BACKUP (FAULT is decided at start).
        self._state = (State.MASTER if all(m.params.owner and m.params.initial_state == "MASTER"
                                           for m in members) else State.BACKUP)
        self._master_notify_pending = False
        for m in members:
            m.attach_sync_group(self)

    @property
    def name(self) -> str:
        return self._name

    @property
    def state(self) -> State:
        return self._state

    @property
    def members(self) -> tuple[InstanceFsm, ...]:
        return self._members

    # --- SyncGate, asked by the member machines ---

    def group_state(self) -> State:
        return self._state

    def can_goto_master(self, member: InstanceFsm) -> bool:
        """vrrp_sync_can_goto_master: only when every other member wants MASTER too
        ("prefer backup state to avoid thrashing")."""
        if self._state == State.MASTER:
            return True
        return all(m.wanted_state == State.MASTER for m in self._members if m is not member)

    def holds_fault(self, member: InstanceFsm) -> bool:
        """Another member is faulty itself (keepalived's num_member_fault)."""
        return any(m.faults for m in self._members if m is not member)

    # --- inputs ---

    def start(self, now: int) -> list[Tagged]:
        """vrrp_init_state: group FAULT/BACKUP is notified first, then the members."""
        if any(m.faults for m in self._members):
            self._state = State.FAULT
        out: list[Tagged] = []
        if self._state != State.MASTER:
            out.append(Tagged(self._name, GroupNotify(self._name, self._state)))
        for m in self._members:
            self._tag(m, m.start(now), out)
        if self._state == State.MASTER:
            # keepalived never notifies an all-owner group MASTER (vrrp_sync_master
            # returns early); we do, once its members are master.
            if all(m.state == State.MASTER for m in self._members):
                out.append(Tagged(self._name, GroupNotify(self._name, State.MASTER)))
            else:
                self._master_notify_pending = True
        return _notifies_last(out)

    def advert(self, now: int, member: InstanceFsm, adv: ReceivedAdvert) -> list[Tagged]:
        return self._input(now, member, lambda: member.advert(now, adv))

    def timer(self, now: int, member: InstanceFsm, kind: TimerKind) -> list[Tagged]:
        return self._input(now, member, lambda: member.timer(now, kind))

    def set_priority(self, now: int, member: InstanceFsm, priority: int) -> list[Tagged]:
        return self._input(now, member, lambda: member.set_priority(now, priority))

    def set_fault(self, now: int, member: InstanceFsm, faulted: bool,
                  reason: str) -> list[Tagged]:
        return self._input(now, member, lambda: member.set_fault(now, faulted, reason))

    def shutdown(self, now: int) -> list[Tagged]:
        """vrrp_terminate_phase1 then notify_shutdown: every member's priority-0 advert
        and VIP removal, then the members' STOP notifies, then the group's."""
        out: list[Tagged] = []
        for m in self._members:
            self._tag(m, m.shutdown(now), out)
        if self._state != State.STOP:
            self._state = State.STOP
            out.append(Tagged(self._name, GroupNotify(self._name, State.STOP)))
        return _notifies_last(out)

    # --- internals ---

    def _member(self, member: InstanceFsm) -> InstanceFsm:
        if not any(m is member for m in self._members):
            raise ValueError(f"{member.name} is not a member of sync group {self._name}")
        return member

    def _input(self, now: int, member: InstanceFsm,
               call: Callable[[], list[Action]]) -> list[Tagged]:
        self._member(member)
        prev = member.state
        actions = call()
        out: list[Tagged] = []
        self._tag(member, actions, out)
        new = member.state
        # vrrp_scheduler.c VRRP_TSM, plus down_instance/try_up_instance for FAULT.
        if new == State.MASTER and prev != State.MASTER:
            self._sync_master(now, member, out)
        elif new == State.BACKUP and prev in (State.MASTER, State.FAULT):
            self._sync_backup(now, member, out)
        elif new == State.FAULT and prev != State.FAULT:
            self._sync_fault(now, member, out)
        if any(isinstance(a, NotifyMasterRxLowerPri) for a in actions):
            # vrrp_state_master_rx: the other members refresh their ARP caches too.
            for m in self._members:
                if m is not member:
                    self._tag(m, m.lower_prio_garp(now), out)
        return _notifies_last(out)

    @staticmethod
    def _tag(member: InstanceFsm, actions: list[Action], out: list[Tagged]) -> None:
        out.extend(Tagged(member.name, action) for action in actions)

    def _notify_group(self, state: State, out: list[Tagged]) -> None:
        self._state = state
        out.append(Tagged(self._name, GroupNotify(self._name, state)))

    def _sync_master(self, now: int, member: InstanceFsm, out: list[Tagged]) -> None:
        """vrrp_sync_master."""
        if self._state == State.MASTER:
            if self._master_notify_pending:
                self._master_notify_pending = False
                out.append(Tagged(self._name, GroupNotify(self._name, State.MASTER)))
            return
        if not self.can_goto_master(member):
            return
        for m in self._members:
            if m is not member and m.state != State.MASTER:
                self._tag(m, m.sync_to_master(now), out)
        self._notify_group(State.MASTER, out)

    def _sync_backup(self, now: int, member: InstanceFsm, out: list[Tagged]) -> None:
        """vrrp_sync_backup."""
        if self._state == State.BACKUP:
            return
        for m in self._members:
            if m is not member and m.state != State.BACKUP:
                self._tag(m, m.sync_to_backup(now), out)
        self._notify_group(State.BACKUP, out)

    def _sync_fault(self, now: int, member: InstanceFsm, out: list[Tagged]) -> None:
        """vrrp_sync_fault."""
        if self._state == State.FAULT:
            return
        for m in self._members:
            if m is not member and m.state != State.FAULT:
                self._tag(m, m.sync_to_fault(now), out)
        self._notify_group(State.FAULT, out)


def _notifies_last(out: list[Tagged]) -> list[Tagged]:
    """Every member's adverts, VIPs, GARPs and timers before any notify, each kind in
    its original order: DESIGN.md's order on a state change, applied to the whole
    group (keepalived runs each member's notify scripts between members)."""
    if not any(isinstance(t.action, NOTIFY_ACTIONS) for t in out):
        return out
    return ([t for t in out if not isinstance(t.action, NOTIFY_ACTIONS)]
            + [t for t in out if isinstance(t.action, NOTIFY_ACTIONS)])
