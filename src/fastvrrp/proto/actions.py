"""What the VRRP state machine takes in and gives out.

States, timer kinds, the received-advert interface and the actions (small frozen
records). No I/O here: the daemon turns actions into packets, netlink calls, timers
and notify scripts, in the order the machine returned them.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import Protocol, TypeAlias


class State(IntEnum):
    """Instance (and sync group) states; values are keepalived's VRRP_STATE_* (vrrp.h)."""

    INIT = 0
    BACKUP = 1
    MASTER = 2
    FAULT = 3
    STOP = 98


class TimerKind(IntEnum):
    """One timer per (instance, kind): the daemon maps the pair to one wheel entry."""

    ADVER = 0  # MASTER: send the next advertisement
    MASTER_DOWN = 1  # BACKUP: Master_Down_Timer (RFC 5798 6.4.2)
    GARP_DELAY = 2  # MASTER: second GARP/NA burst after garp_master_delay
    GARP_LOWER_PRIO = 3  # MASTER: second burst after a lower-priority advert
    GARP_REFRESH = 4  # MASTER: periodic garp_master_refresh burst
    ROGUE = 5  # MASTER owner: watching a second address owner back off


class ReceivedAdvert(Protocol):
    """A decoded, already validated advertisement (the wire codec's `Advert` fits)."""

    @property
    def version(self) -> int: ...
    @property
    def vrid(self) -> int: ...
    @property
    def priority(self) -> int: ...
    @property
    def interval(self) -> int: ...  # wire field: seconds (v2) or centiseconds (v3)
    @property
    def src(self) -> bytes: ...  # 4 or 16 bytes, network order
    @property
    def addresses(self) -> bytes: ...


@dataclass(frozen=True, slots=True)
class SendAdvert:
    """Send one advertisement with this priority (0 = the master is stopping)."""

    priority: int


@dataclass(frozen=True, slots=True)
class AddVips:
    """Add every VIP (and eVIP) of the instance."""


@dataclass(frozen=True, slots=True)
class RemoveVips:
    """Remove every VIP (and eVIP) of the instance."""


@dataclass(frozen=True, slots=True)
class SendGarp:
    """`repeat` rounds of gratuitous ARP / unsolicited NA, one per VIP each round."""

    repeat: int


@dataclass(frozen=True, slots=True)
class Notify:
    """notify_<state>, generic notify `INSTANCE name STATE priority`, FIFO line."""

    state: State
    priority: int


@dataclass(frozen=True, slots=True)
class NotifyPriorityChange:
    """FIFO `MASTER_PRIORITY`/`BACKUP_PRIORITY` (notify_priority_changes)."""

    state: State  # MASTER or BACKUP, as keepalived reports it
    priority: int


@dataclass(frozen=True, slots=True)
class NotifyMasterRxLowerPri:
    """notify_master_rx_lower_pri script and FIFO `MASTER_RX_LOWER_PRI` event."""


@dataclass(frozen=True, slots=True)
class GroupNotify:
    """Sync group notify: `GROUP name STATE 0` (group priority is always 0)."""

    group: str
    state: State
    priority: int = 0  # keepalived send_group_notifies passes 0


@dataclass(frozen=True, slots=True)
class ArmTimer:
    """(Re-)arm the instance's timer of this kind at an absolute CLOCK_MONOTONIC ns."""

    kind: TimerKind
    deadline: int


@dataclass(frozen=True, slots=True)
class CancelTimer:
    kind: TimerKind


@dataclass(frozen=True, slots=True)
class Transition:
    """A state change, for the log line; it causes nothing by itself."""

    old: State
    new: State
    reason: str


Action: TypeAlias = (SendAdvert | AddVips | RemoveVips | SendGarp | Notify
                     | NotifyPriorityChange | NotifyMasterRxLowerPri | GroupNotify
                     | ArmTimer | CancelTimer | Transition)

NOTIFY_ACTIONS: tuple[type, ...] = (Notify, NotifyPriorityChange, NotifyMasterRxLowerPri,
                                    GroupNotify)
