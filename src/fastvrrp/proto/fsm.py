"""The VRRP state machine of one instance (RFC 5798 §6, RFC 3768 §6), sans I/O.

Every input is a method taking `now` (CLOCK_MONOTONIC, integer ns) and returning the
list of actions to perform, in order: adverts and VIPs first, then GARP/NA, then
timers, then the transition record and notifies (DESIGN.md "On a state change").
Where the RFCs leave room the machine does what keepalived does; the keepalived
function each rule comes from is named beside it (HEAD = keepalived master, which
differs from 2.2.7 only where noted).

Fast-path contract: the steady state is
  MASTER  timer(ADVER)  -> [SendAdvert(priority), ArmTimer(ADVER, next_adver(now))]
          whenever `master_steady` is true, where next_adver(now) is now +
          adver_interval, or with an advert phase (InstanceParams.adver_phase_ns) the
          last instant t <= now + adver_interval with t = phase (mod adver_interval);
  BACKUP  advert (src, priority, interval) == backup_steady_key()
          -> [ArmTimer(MASTER_DOWN, now + master_down_interval)], nothing else changes;
          while backup_steady_key() is not None, an advert of priority 0 (any source)
          -> [ArmTimer(MASTER_DOWN, now + skew_time)], nothing else changes.
A fast path may handle exactly those without calling in here; it must then report its
last re-arm with `fastpath_rearmed()` before the next input that it does hand over.

Takeover: while `takeover_priority()` is not None, timer(MASTER_DOWN) would start with
SendAdvert(that priority). A fast path may send that advert itself the moment the
timer expires, before the input reaches Python; it reports it with
`fastpath_sent_takeover()` and the machine then leaves that one advert out.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Protocol

from fastvrrp.proto.actions import (
    Action,
    AddVips,
    ArmTimer,
    CancelTimer,
    Notify,
    NotifyMasterRxLowerPri,
    NotifyPriorityChange,
    ReceivedAdvert,
    RemoveVips,
    SendAdvert,
    SendGarp,
    State,
    TimerKind,
    Transition,
)

NS_PER_US = 1_000
NS_PER_CS = 10_000_000
NS_PER_S = 1_000_000_000

PRIO_OWNER = 255  # VRRP_PRIO_OWNER
PRIO_STOP = 0  # VRRP_PRIO_STOP
MAX_V3_INTERVAL_CS = 4095  # 12-bit field


# --- formulas ---------------------------------------------------------------------

def skew_time(version: int, priority: int, master_adver_int_ns: int) -> int:
    """Skew_Time in ns, exactly as keepalived computes it (vrrp.h VRRP_TIMER_SKEW_CALC).

    v3: ((256 - priority) * Master_Adver_Interval) / 256 (RFC 5798 6.1), keepalived
    computes it in whole µs from the interval in centiseconds: pv * cs * 625 / 16.
    v2: (256 - priority) / 256 s (RFC 3768 6.1): keepalived 2.2.7 does not scale it by
    advert_int either, and truncates to µs. Truncation to µs is kept so that our
    deadlines match keepalived's to the microsecond.
    """
    pv = 256 - priority
    if version == 3:
        return (pv * (master_adver_int_ns // NS_PER_CS) * 625 // 16) * NS_PER_US
    return (pv * 1_000_000 // 256) * NS_PER_US


def master_down_interval(version: int, priority: int, master_adver_int_ns: int,
                         down_timer_adverts: int = 3) -> int:
    """Master_Down_Interval in ns: down_timer_adverts x Master_Adver_Interval + Skew_Time
    (RFC 5798 6.1 with 3; keepalived VRRP_MS_DOWN_TIMER makes the 3 configurable)."""
    return down_timer_adverts * master_adver_int_ns + skew_time(version, priority,
                                                                master_adver_int_ns)


def effective_priority(base: int, weights: Iterable[int], owner: bool) -> int:
    """base + tracker weights, clamped to 1..254; an address owner never changes
    (keepalived vrrp_track.c vrrp_set_effective_priority)."""
    if owner:
        return base
    total = base + sum(weights)
    return 1 if total < 1 else 254 if total > 254 else total


def next_adver(now: int, adver_ns: int, phase_ns: int | None) -> int:
    """now + adver_ns, or the last instant in (now, now + adver_ns] on the phase grid
    (t = phase_ns mod adver_ns). The fast paths compute the same."""
    t = now + adver_ns
    if phase_ns is None:
        return t
    return t - (t - phase_ns) % adver_ns


# --- parameters -------------------------------------------------------------------

@dataclass(frozen=True, slots=True, kw_only=True)
class InstanceParams:
    """What the machine needs of one vrrp_instance; defaults are keepalived's (vrrp.h,
    vrrp.c). The daemon maps the config model onto this."""

    name: str
    vrid: int
    primary: bytes  # our primary address (4 or 16 bytes): the equal-priority tie-break
    version: int = 2
    family: int = 4
    priority: int = 100  # base priority, 1..255 (255 = address owner)
    advert_int_cs: int = 100
    initial_state: str = "BACKUP"  # "MASTER" | "BACKUP"
    preempt: bool = True  # False = nopreempt
    preempt_delay_ns: int = 0
    down_timer_adverts: int = 3
    lower_prio_no_advert: bool = False
    higher_prio_send_advert: bool = False
    garp_master_delay_ns: int = 5 * NS_PER_S
    garp_master_repeat: int = 5
    garp_master_refresh_ns: int = 0
    garp_master_refresh_repeat: int = 1
    garp_lower_prio_delay_ns: int | None = None  # None: = garp_master_delay_ns
    garp_lower_prio_repeat: int | None = None  # None: = garp_master_repeat
    startup_delay_ns: int = 0  # global vrrp_startup_delay
    notify_priority_changes: bool = False
    # Where in the advert interval this master's adverts fall (ns, 0 <= phase <
    # interval), or None for now + interval as keepalived does. A daemon with many
    # instances spreads them so that they do not all fall due in one burst (whose
    # length in the kernel is the send jitter of its last advert); a timer put on the
    # grid only ever fires earlier than the RFC's Adver_Timer, and keeps its spacing
    # exact however late the loop runs.
    adver_phase_ns: int | None = None

    def __post_init__(self) -> None:
        if self.version not in (2, 3):
            raise ValueError(f"{self.name}: version must be 2 or 3")
        if self.family not in (4, 6):
            raise ValueError(f"{self.name}: family must be 4 or 6")
        if self.family == 6 and self.version != 3:
            raise ValueError(f"{self.name}: IPv6 instances are VRRPv3")
        if len(self.primary) != (4 if self.family == 4 else 16):
            raise ValueError(f"{self.name}: primary address length does not match family")
        if not 1 <= self.vrid <= 255:
            raise ValueError(f"{self.name}: vrid must be 1..255")
        if not 1 <= self.priority <= 255:
            raise ValueError(f"{self.name}: priority must be 1..255")
        if self.version == 2:
            if self.advert_int_cs % 100 or not 100 <= self.advert_int_cs <= 25500:
                raise ValueError(f"{self.name}: VRRPv2 advert_int must be whole seconds 1..255")
        elif not 1 <= self.advert_int_cs <= MAX_V3_INTERVAL_CS:
            raise ValueError(f"{self.name}: VRRPv3 advert_int must be 1..4095 cs")
        if self.initial_state not in ("MASTER", "BACKUP"):
            raise ValueError(f"{self.name}: initial_state must be MASTER or BACKUP")
        if self.down_timer_adverts < 1:
            raise ValueError(f"{self.name}: down_timer_adverts must be >= 1")
        if self.adver_phase_ns is not None and not (
                0 <= self.adver_phase_ns < self.advert_int_cs * NS_PER_CS):
            raise ValueError(f"{self.name}: adver_phase_ns must be in [0, advert_int)")
        for field in ("preempt_delay_ns", "garp_master_delay_ns", "garp_master_repeat",
                      "garp_master_refresh_ns", "garp_master_refresh_repeat",
                      "startup_delay_ns"):
            if getattr(self, field) < 0:
                raise ValueError(f"{self.name}: {field} must not be negative")

    @property
    def owner(self) -> bool:
        return self.priority == PRIO_OWNER

    @property
    def lower_prio_delay_ns(self) -> int:
        d = self.garp_lower_prio_delay_ns
        return self.garp_master_delay_ns if d is None else d

    @property
    def lower_prio_repeat(self) -> int:
        r = self.garp_lower_prio_repeat
        return self.garp_master_repeat if r is None else r


class SyncGate(Protocol):
    """What a machine asks of its sync group (implemented by proto.sync.SyncGroup)."""

    def group_state(self) -> State: ...
    def can_goto_master(self, member: InstanceFsm) -> bool: ...
    def holds_fault(self, member: InstanceFsm) -> bool: ...


@dataclass(slots=True)
class InputCounters:
    """How many times each input entered this (Python) machine."""

    start: int = 0
    advert: int = 0
    timer: int = 0
    stale_timer: int = 0  # timer inputs for a kind that was not armed (ignored)
    set_priority: int = 0
    set_fault: int = 0
    shutdown: int = 0


# --- the machine ------------------------------------------------------------------

class InstanceFsm:
    """One VRRP instance. Inputs: start, advert, timer, set_priority, set_fault,
    shutdown; each returns the actions to perform. Never does I/O."""

    __slots__ = ("_p", "_state", "_want", "_eff", "_adver_ns", "_master_adver_ns",
                 "_master_src", "_master_prio", "_preempt", "_preempt_delay",
                 "_preempt_time", "_faults", "_start_delay_end", "_timers",
                 "_rogue_counter", "_rogue_adver_ns", "_last_accepted", "_counters",
                 "_gate", "_takeover_sent")

    def __init__(self, params: InstanceParams) -> None:
        self._p = params
        self._state = State.INIT
        self._want = State.MASTER if params.initial_state == "MASTER" else State.BACKUP
        self._eff = params.priority
        self._adver_ns = params.advert_int_cs * NS_PER_CS
        self._master_adver_ns = self._adver_ns
        self._master_src: bytes | None = None
        self._master_prio = 0
        # vrrp.c vrrp_complete_instance: nopreempt is cleared for an owner and for
        # `state MASTER`; preempt_delay is cleared for `state MASTER` and nopreempt.
        self._preempt = params.preempt or params.owner or params.initial_state == "MASTER"
        self._preempt_delay = (params.preempt_delay_ns
                               if self._preempt and params.initial_state != "MASTER" else 0)
        self._preempt_time: int | None = None
        self._faults: set[str] = set()
        self._start_delay_end: int | None = None
        self._timers: dict[TimerKind, int] = {}
        self._rogue_counter = 0
        self._rogue_adver_ns = 0
        self._last_accepted: tuple[bytes, int, int] | None = None
        self._counters = InputCounters()
        self._gate: SyncGate | None = None
        self._takeover_sent = False

    # --- read-only view ---

    @property
    def params(self) -> InstanceParams:
        return self._p

    @property
    def name(self) -> str:
        return self._p.name

    @property
    def state(self) -> State:
        return self._state

    @property
    def wanted_state(self) -> State:
        """keepalived's wantstate: the state this instance would be in without its
        sync group (a BACKUP held back by its group wants MASTER)."""
        return self._want

    @property
    def priority(self) -> int:
        """Effective priority (what our adverts carry)."""
        return self._eff

    @property
    def adver_interval(self) -> int:
        """Our own Advertisement_Interval, ns."""
        return self._adver_ns

    @property
    def master_adver_interval(self) -> int:
        """Master_Adver_Interval, ns (v3 backups learn it from the master)."""
        return self._master_adver_ns

    @property
    def skew_time(self) -> int:
        # HEAD vrrp.h VRRP_TIMER_SKEW: an owner uses 255 even while lowered to 254.
        prio = PRIO_OWNER if self._p.owner else self._eff
        return skew_time(self._p.version, prio, self._master_adver_ns)

    @property
    def master_down_interval(self) -> int:
        return self._p.down_timer_adverts * self._master_adver_ns + self.skew_time

    @property
    def master_src(self) -> bytes | None:
        """Address of the master a BACKUP last heard (None in other states)."""
        return self._master_src if self._state == State.BACKUP else None

    @property
    def faults(self) -> frozenset[str]:
        return frozenset(self._faults)

    @property
    def timers(self) -> Mapping[TimerKind, int]:
        """Armed timers and their deadlines, as this machine last armed them."""
        return MappingProxyType(self._timers)

    @property
    def counters(self) -> InputCounters:
        return self._counters

    @property
    def master_steady(self) -> bool:
        """True when timer(ADVER) would return exactly [SendAdvert, ArmTimer(ADVER)]."""
        return self._state == State.MASTER and self._rogue_counter == 0

    def backup_steady_key(self) -> tuple[bytes, int, int] | None:
        """(src, priority, interval) of the advert whose repetition would only re-arm
        MASTER_DOWN at now + master_down_interval, or None if no advert is that safe."""
        last = self._last_accepted
        if (last is None or self._state != State.BACKUP or self._want != State.BACKUP
                or self._start_delay_end is not None or self._p.owner):
            return None
        if self._preempt and last[1] < self._eff:
            # Accepted only because preempt_delay is running: the outcome depends on now.
            return None
        return last

    def takeover_priority(self) -> int | None:
        """The priority of the advert timer(MASTER_DOWN) would send first, if it surely
        would: a BACKUP outside a sync group (a group may hold it back), not an
        address owner (its priority changes on the way), no startup delay running."""
        if (self._state != State.BACKUP or self._gate is not None or self._p.owner
                or self._start_delay_end is not None
                or TimerKind.MASTER_DOWN not in self._timers):
            return None
        return self._eff

    # --- wiring ---

    def attach_sync_group(self, gate: SyncGate) -> None:
        if self._state != State.INIT or self._gate is not None:
            raise RuntimeError(f"{self.name}: join a sync group once, before start")
        self._gate = gate

    def fastpath_rearmed(self, kind: TimerKind, deadline: int) -> None:
        """The fast path re-armed this timer in the steady state without calling us."""
        if kind in self._timers:
            self._timers[kind] = deadline

    def fastpath_sent_takeover(self) -> None:
        """The fast path sent timer(MASTER_DOWN)'s first advert itself, at
        takeover_priority(); the coming timer(MASTER_DOWN) input must not repeat it."""
        if self.takeover_priority() is None:
            raise RuntimeError(f"{self.name}: takeover sent by the fast path in {self._state.name}"
                               " without a takeover priority")
        self._takeover_sent = True

    # --- inputs ---

    def start(self, now: int) -> list[Action]:
        """Leave INIT (keepalived vrrp_scheduler.c vrrp_init_state)."""
        self._counters.start += 1
        if self._state != State.INIT:
            raise RuntimeError(f"{self.name}: started twice")
        base = now
        if self._p.startup_delay_ns:
            # HEAD vrrp_init_instance_sands: timers run from the end of the delay.
            base = self._start_delay_end = now + self._p.startup_delay_ns
        out: list[Action] = []
        gate = self._gate
        if self._faults:
            self._state = self._want = State.FAULT
            out.append(Transition(State.INIT, State.FAULT,
                                  "fault at start: " + ", ".join(sorted(self._faults))))
            out.append(Notify(State.FAULT, self._eff))
            return out
        if gate is not None and gate.holds_fault(self):
            # vrrp_init_state: the group's state wins; FAULT is notified only by the
            # member that is itself faulty.
            self._state = State.FAULT
            out.append(Transition(State.INIT, State.FAULT, "sync group is in FAULT"))
            return out
        group_master = gate is None or gate.group_state() == State.MASTER
        if self._want == State.MASTER and self._p.owner and group_master:
            if self._start_delay_end is None:
                # vrrp_init_state times out of BACKUP after 1 µs; we go at once.
                return self._become_master(now, State.INIT, "address owner, state MASTER")
            # Silent BACKUP until the delay ends, then master (no BACKUP notify).
            self._state = State.BACKUP
            self._arm(TimerKind.MASTER_DOWN, base, out)
            out.append(Transition(State.INIT, State.BACKUP, "address owner, startup delay"))
            return out
        if self._want == State.MASTER and not group_master:
            # vrrp_init_state: "allow one adver_int to pass to ensure there is no other
            # master" (sync group member wanting MASTER in a BACKUP group).
            down = self._master_adver_ns + skew_time(self._p.version, 1, self._master_adver_ns)
        else:
            down = self.master_down_interval
        self._state = State.BACKUP
        self._arm(TimerKind.MASTER_DOWN, base + down, out)
        out.append(Transition(State.INIT, State.BACKUP, "start"))
        out.append(Notify(State.BACKUP, self._eff))
        return out

    def advert(self, now: int, adv: ReceivedAdvert) -> list[Action]:
        """A validated advertisement for our VRID (keepalived vrrp_dispatcher_read)."""
        self._counters.advert += 1
        if self._start_delay_end is not None:
            if now < self._start_delay_end:
                return []  # HEAD vrrp_dispatcher_read: adverts are dropped during the delay
            self._start_delay_end = None
        if self._state == State.BACKUP:
            return self._backup_rx(now, adv)
        if self._state == State.MASTER:
            return self._master_rx(now, adv)
        return []  # FAULT/INIT/STOP ignore adverts

    def timer(self, now: int, kind: TimerKind) -> list[Action]:
        """A timer this machine armed is due. Kinds that are not armed are ignored."""
        self._counters.timer += 1
        sent, self._takeover_sent = self._takeover_sent, False
        if sent and kind != TimerKind.MASTER_DOWN:
            # Only MASTER_DOWN may follow a takeover report (the fast path escalates
            # the expiry it sent for); anything else means the two disagree.
            raise RuntimeError(f"{self.name}: timer({kind.name}) after a fast-path takeover")
        deadline = self._timers.get(kind)
        if deadline is None or (deadline > now and not sent):
            # Not armed, or re-armed since it fell due (an input handled between the
            # expiry and this call, e.g. an advert read while Python was busy).
            self._counters.stale_timer += 1
            return []
        del self._timers[kind]
        if self._start_delay_end is not None and now >= self._start_delay_end:
            self._start_delay_end = None
        state = self._state
        if kind == TimerKind.MASTER_DOWN and state == State.BACKUP:
            out = self._goto_master(now, "master down timer expired")
            if sent:
                # takeover_priority() promised SendAdvert(self._eff) first.
                assert isinstance(out[0], SendAdvert) and out[0].priority == self._eff, out
                del out[0]
            return out
        if state != State.MASTER:
            return []
        if kind == TimerKind.ADVER:
            return self._master_tx(now)
        out: list[Action] = []
        if kind == TimerKind.GARP_DELAY:  # vrrp_gratuitous_arp_thread
            if self._p.garp_master_repeat:
                out.append(SendGarp(self._p.garp_master_repeat))
        elif kind == TimerKind.GARP_LOWER_PRIO:  # vrrp_lower_prio_gratuitous_arp_thread
            if self._p.lower_prio_repeat:
                out.append(SendGarp(self._p.lower_prio_repeat))
        elif kind == TimerKind.GARP_REFRESH:  # HEAD vrrp_gratuitous_arp_refresh_thread
            if self._p.garp_master_refresh_repeat:
                out.append(SendGarp(self._p.garp_master_refresh_repeat))
            self._arm(TimerKind.GARP_REFRESH, now + self._p.garp_master_refresh_ns, out)
        # ROGUE: HEAD vrrp_rogue_timer_thread - the other owner went quiet; nothing to do.
        return out

    def set_priority(self, now: int, priority: int) -> list[Action]:
        """New effective priority from tracking (keepalived vrrp_set_effective_priority)."""
        self._counters.set_priority += 1
        if self._p.owner:
            return []  # an address owner's priority is never changed by trackers
        if not 1 <= priority <= 254:
            raise ValueError(f"{self.name}: effective priority {priority} not in 1..254")
        if priority == self._eff or self._state == State.STOP:
            return []
        old_down = self.master_down_interval
        self._eff = priority
        out: list[Action] = []
        deadline = self._timers.get(TimerKind.MASTER_DOWN)
        if self._state == State.BACKUP and deadline is not None:
            # Move the running Master_Down_Timer by the change of Skew_Time.
            self._arm(TimerKind.MASTER_DOWN, deadline + self.master_down_interval - old_down,
                      out)
        if self._p.notify_priority_changes and self._state != State.INIT:
            out.append(NotifyPriorityChange(
                State.MASTER if self._state == State.MASTER else State.BACKUP, priority))
        return out

    def set_fault(self, now: int, faulted: bool, reason: str) -> list[Action]:
        """Interface down/up, or a weight-0 tracker failing/recovering. Reasons overlap;
        the instance leaves FAULT when none is left (vrrp_track.c down_instance,
        vrrp_scheduler.c try_up_instance)."""
        self._counters.set_fault += 1
        if self._state == State.STOP:
            return []
        if faulted:
            if reason in self._faults:
                return []
            was_down = bool(self._faults)
            self._faults.add(reason)
            if was_down or self._state == State.INIT:
                return []
            self._want = State.FAULT
            if self._state == State.FAULT:
                return []  # already FAULT through the sync group, which notified it
            if self._state == State.MASTER:
                # down_instance calls vrrp_state_leave_master(advF=true): one priority-0
                # advert for wantstate FAULT plus one from vrrp_restore_interface.
                return self._leave_master(now, State.FAULT, f"fault: {reason}", stop_advert=True)
            return self._backup_to_fault(f"fault: {reason}")
        if reason not in self._faults:
            return []
        self._faults.discard(reason)
        if self._faults or self._state != State.FAULT:
            return []
        self._want = State.BACKUP
        if self._gate is not None and self._gate.holds_fault(self):
            return []  # try_up_instance: wait for the whole sync group
        return self._fault_to_backup(now, f"fault cleared: {reason}")

    def shutdown(self, now: int) -> list[Action]:
        """SIGTERM (vrrp_daemon.c vrrp_terminate_phase1, vrrp_notify.c notify_shutdown):
        a master sends priority 0 and removes its VIPs; everyone notifies STOP."""
        self._counters.shutdown += 1
        if self._state == State.STOP:
            return []
        out: list[Action] = []
        if self._state == State.MASTER:
            out.append(SendAdvert(PRIO_STOP))
            out.append(RemoveVips())
        for kind in list(self._timers):
            self._cancel(kind, out)
        old = self._state
        self._state = State.STOP
        self._rogue_counter = 0
        self._last_accepted = None
        out.append(Transition(old, State.STOP, "shutdown"))
        out.append(Notify(State.STOP, self._eff))
        return out

    # --- sync group hooks (vrrp_sync.c); called by proto.sync.SyncGroup ---

    def sync_to_master(self, now: int) -> list[Action]:
        """vrrp_sync_master: the group goes MASTER, so does this member."""
        if self._state != State.BACKUP:
            return []
        return self._become_master(now, State.BACKUP, "sync group MASTER")

    def sync_to_backup(self, now: int) -> list[Action]:
        """vrrp_sync_backup: a MASTER leaves without a priority-0 advert; a FAULT
        member held only by its group comes back."""
        if self._state == State.MASTER:
            self._want = State.BACKUP
            return self._leave_master(now, State.BACKUP, "sync group BACKUP", stop_advert=False)
        if self._state == State.FAULT and not self._faults:
            self._want = State.BACKUP
            return self._fault_to_backup(now, "sync group BACKUP")
        return []

    def sync_to_fault(self, now: int) -> list[Action]:
        """vrrp_sync_fault: leave_master(advF=false) still sends the one priority-0
        advert of wantstate FAULT."""
        if self._state == State.MASTER:
            self._want = State.FAULT
            return self._leave_master(now, State.FAULT, "sync group FAULT", stop_advert=False)
        if self._state == State.BACKUP:
            self._want = State.FAULT
            return self._backup_to_fault("sync group FAULT")
        return []

    def lower_prio_garp(self, now: int) -> list[Action]:
        """vrrp_state_master_rx: another member of our sync group heard a lower priority
        advert; refresh ARP caches for our VIPs too (only if they are set)."""
        out: list[Action] = []
        if self._state == State.MASTER and self._p.lower_prio_repeat:
            out.append(SendGarp(self._p.lower_prio_repeat))
            if self._p.lower_prio_delay_ns:
                self._arm(TimerKind.GARP_LOWER_PRIO, now + self._p.lower_prio_delay_ns, out)
        return out

    # --- internals ---

    def _arm(self, kind: TimerKind, deadline: int, out: list[Action]) -> None:
        self._timers[kind] = deadline
        out.append(ArmTimer(kind, deadline))

    def _cancel(self, kind: TimerKind, out: list[Action]) -> None:
        if self._timers.pop(kind, None) is not None:
            out.append(CancelTimer(kind))

    def _goto_master(self, now: int, reason: str) -> list[Action]:
        """vrrp_state_goto_master: a sync group may hold us in BACKUP."""
        gate = self._gate
        if gate is not None and not gate.can_goto_master(self):
            # vrrp_sync_can_goto_master: wait for the others, re-arm the down timer.
            self._want = State.MASTER
            out: list[Action] = []
            self._arm(TimerKind.MASTER_DOWN, now + self.master_down_interval, out)
            return out
        return self._become_master(now, self._state, reason)

    def _become_master(self, now: int, old: State, reason: str) -> list[Action]:
        """vrrp_state_master_tx + vrrp_state_become_master: advert first (the old master
        must drop the VIPs before our GARPs), VIPs, GARP burst, timers, notify."""
        p = self._p
        self._state = self._want = State.MASTER
        if p.owner:
            self._eff = PRIO_OWNER  # HEAD: the other owner has gone, restore 255
        self._master_adver_ns = self._adver_ns  # the master uses its own interval
        self._master_src = None
        self._last_accepted = None
        self._rogue_counter = 0
        out: list[Action] = [SendAdvert(self._eff), AddVips()]
        if p.garp_master_repeat:
            out.append(SendGarp(p.garp_master_repeat))
        self._cancel(TimerKind.MASTER_DOWN, out)
        if p.garp_master_delay_ns:
            self._arm(TimerKind.GARP_DELAY, now + p.garp_master_delay_ns, out)
        if p.garp_master_refresh_ns:
            # HEAD: first refresh after garp_master_delay + garp_master_refresh.
            self._arm(TimerKind.GARP_REFRESH,
                      now + p.garp_master_delay_ns + p.garp_master_refresh_ns, out)
        self._arm(TimerKind.ADVER, self.adver_deadline(now), out)
        out.append(Transition(old, State.MASTER, reason))
        out.append(Notify(State.MASTER, self._eff))
        return out

    def adver_deadline(self, now: int) -> int:
        """When the ADVER timer armed at `now` falls due (see adver_phase_ns)."""
        return next_adver(now, self._adver_ns, self._p.adver_phase_ns)

    def _master_tx(self, now: int) -> list[Action]:
        """vrrp_state_master_tx in the steady state."""
        out: list[Action] = [SendAdvert(self._eff)]
        if self._rogue_counter:
            self._rogue_counter -= 1
            if not self._rogue_counter:
                # HEAD: after two own adverts, watch "a bit more than" (x1.2) the longer
                # of both intervals for the other owner to back off.
                watch = max(self._rogue_adver_ns, self._adver_ns) * 12 // 10
                self._arm(TimerKind.ROGUE, now + watch, out)
        self._arm(TimerKind.ADVER, self.adver_deadline(now), out)
        return out

    def _leave_master(self, now: int, new: State, reason: str, *,
                      stop_advert: bool) -> list[Action]:
        """vrrp_state_leave_master + vrrp_restore_interface."""
        out: list[Action] = []
        if new == State.FAULT:
            out.append(SendAdvert(PRIO_STOP))
        if stop_advert:
            out.append(SendAdvert(PRIO_STOP))
        out.append(RemoveVips())
        for kind in (TimerKind.ADVER, TimerKind.GARP_DELAY, TimerKind.GARP_LOWER_PRIO,
                     TimerKind.GARP_REFRESH, TimerKind.ROGUE):
            self._cancel(kind, out)
        self._rogue_counter = 0
        self._state = new
        if new == State.BACKUP:
            self._preempt_time = None
            self._arm(TimerKind.MASTER_DOWN, now + self.master_down_interval, out)
        else:
            self._master_adver_ns = self._adver_ns
            self._master_src = None
        out.append(Transition(State.MASTER, new, reason))
        out.append(Notify(new, self._eff))
        return out

    def _backup_to_fault(self, reason: str) -> list[Action]:
        """vrrp_state_leave_fault with wantstate FAULT, from BACKUP."""
        out: list[Action] = []
        self._cancel(TimerKind.MASTER_DOWN, out)
        self._state = State.FAULT
        self._master_adver_ns = self._adver_ns
        self._master_src = None
        self._last_accepted = None
        out.append(Transition(State.BACKUP, State.FAULT, reason))
        out.append(Notify(State.FAULT, self._eff))
        return out

    def _fault_to_backup(self, now: int, reason: str) -> list[Action]:
        """vrrp_state_leave_fault with wantstate BACKUP (try_up_instance)."""
        out: list[Action] = []
        self._state = State.BACKUP
        self._preempt_time = None
        self._master_adver_ns = self._adver_ns
        base = now
        if self._start_delay_end is not None and now < self._start_delay_end:
            base = self._start_delay_end  # HEAD vrrp_init_instance_sands
        self._arm(TimerKind.MASTER_DOWN, base + self.master_down_interval, out)
        out.append(Transition(State.FAULT, State.BACKUP, reason))
        out.append(Notify(State.BACKUP, self._eff))
        return out

    def _backup_rx(self, now: int, adv: ReceivedAdvert) -> list[Action]:
        """vrrp_state_backup (RFC 5798 6.4.2, RFC 3768 6.4.2)."""
        prio = adv.priority
        src = adv.src
        out: list[Action] = []
        if (self._p.owner and self._eff == PRIO_OWNER - 1
                and (src != self._master_src or prio != PRIO_OWNER)):
            # HEAD: the other address owner is no longer advertising 255 - restore ours.
            self._eff = PRIO_OWNER
        if prio == PRIO_STOP:
            # The master is stopping: take over after Skew_Time.
            self._arm(TimerKind.MASTER_DOWN, now + self.skew_time, out)
            return out
        if (not self._preempt or prio >= self._eff
                or (self._preempt_delay
                    and (self._preempt_time is None or self._preempt_time > now))):
            if self._p.version == 3:
                self._master_adver_ns = adv.interval * NS_PER_CS  # RFC 5798 6.4.2
            self._master_src = src
            self._master_prio = prio
            if self._preempt_delay:
                if prio >= self._eff:
                    self._preempt_time = None
                elif self._preempt_time is None:
                    self._preempt_time = now + self._preempt_delay
            self._want = State.BACKUP
            self._last_accepted = (src, prio, adv.interval)
            self._arm(TimerKind.MASTER_DOWN, now + self.master_down_interval, out)
            return out
        # Preempting a lower priority master: discard, let the down timer run out.
        self._master_src = src
        self._last_accepted = None
        return out

    def _master_rx(self, now: int, adv: ReceivedAdvert) -> list[Action]:
        """vrrp_state_master_rx (HEAD, with the address-owner conflict handling)."""
        p = self._p
        prio = adv.priority
        src = adv.src
        ours = p.primary
        # Unsigned big-endian comparison of the primary addresses (vrrp_saddr_cmp).
        addr_cmp = (src > ours) - (src < ours) if len(src) == len(ours) else 0
        out: list[Action] = []
        if prio == PRIO_STOP or (p.higher_prio_send_advert and (
                prio > self._eff or (prio == self._eff and addr_cmp > 0))):
            out.append(SendAdvert(self._eff))
            if prio == PRIO_STOP:
                return self._stay_master(now, out)
        if prio == self._eff and addr_cmp != 0 and self._eff == PRIO_OWNER:
            if addr_cmp > 0:
                pass  # both owners; theirs is the higher address, we lose the tie below
            elif TimerKind.ROGUE in self._timers:
                # It kept advertising after we sent two more adverts: back off to 254.
                self._cancel(TimerKind.ROGUE, out)
                self._eff = PRIO_OWNER - 1
            else:
                self._rogue_adver_ns = adv.interval * (NS_PER_S if p.version == 2 else NS_PER_CS)
                if not self._rogue_counter:
                    self._rogue_counter = 2
        if prio < self._eff or (prio == self._eff and addr_cmp < 0):
            # A lower priority master: re-assert ourselves (RFC 9568 behaviour unless
            # lower_prio_no_advert) and refresh the ARP caches.
            if not p.lower_prio_no_advert:
                out.append(SendAdvert(self._eff))
            if p.lower_prio_repeat:
                out.append(SendGarp(p.lower_prio_repeat))
                if p.lower_prio_delay_ns:
                    self._arm(TimerKind.GARP_LOWER_PRIO, now + p.lower_prio_delay_ns, out)
            out = self._stay_master(now, out)
            out.append(NotifyMasterRxLowerPri())
            return out
        if prio > self._eff or (prio == self._eff and addr_cmp > 0):
            # A better master: step down (RFC 5798 6.4.3).
            if p.version == 3:
                self._master_adver_ns = adv.interval * NS_PER_CS
            self._master_src = src
            self._master_prio = prio
            self._want = State.BACKUP
            reason = (f"higher priority {prio} advert" if prio > self._eff
                      else "equal priority advert from a higher address")
            return out + self._leave_master(now, State.BACKUP, reason, stop_advert=False)
        # Equal priority from our own address: keepalived only logs a warning.
        return self._stay_master(now, out)

    def _stay_master(self, now: int, out: list[Action]) -> list[Action]:
        # vrrp_dispatcher_read re-arms the advert timer after a received advert unless
        # lower_prio_no_advert.
        if not self._p.lower_prio_no_advert:
            self._arm(TimerKind.ADVER, self.adver_deadline(now), out)
        return out
