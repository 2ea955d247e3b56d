"""The steady-state fast path: pure Python twin of the compiled fastvrrp._fastpath.

Sans-IO like the rest of proto/: no sockets, no clock. One FastPath per daemon (or
per simulated router) holds a small table per instance (ints 0..n-1) and handles
exactly the two steady-state events of fsm.py's fast-path contract:

* MASTER: its ADVER timer falls due -> queue its pre-encoded advertisement(s) in the
  outbox and re-arm ADVER at now + adver_interval (as fsm `_master_tx` does);
* BACKUP: a valid advert whose (src, priority, interval) equals the instance's
  backup_steady_key() -> re-arm MASTER_DOWN at now + master_down_interval; and a
  valid priority-0 advert (a master stopping, from any source) -> re-arm MASTER_DOWN
  at now + skew_time, when set_backup was given the skew (fsm.py's contract).

and one half-step of a takeover: an instance given takeover packets (set_takeover,
while the FSM's takeover_priority() promises them) queues them the moment its
MASTER_DOWN expires, so the new master's first advert leaves before Python runs; the
expiry still escalates, and sync_back tells the FSM (fsm.fastpath_sent_takeover).

Everything else is an *escalation* the caller hands to the state machine: adverts as
(idx or -1, Reason, Advert), timers as (idx, kind). Drops (packet.is_drop) are never
escalated: they are counted per Reason, and the first drop of each reason since the
last take_drop_samples() is kept as a sample, so a flood of bad packets costs a
counter increment each and at most one log line per reason per drain.

Timer ids: the wheel entry of (instance idx, TimerKind kind) is idx * kinds + kind;
the caller arms and cancels all other timers in the same wheel.

Protocol with the caller (the daemon and tests/sim do exactly this):
1. Any escalation of an instance disarms its entry (mode NONE), so later events of
   the same instance in the same batch escalate too and keep their order.
2. Before the FSM handles *any* input of an instance (escalated or external such as
   set_priority), call `sync_back(idx, fsm)`: it reports the deadlines the fast path
   re-armed without the FSM (fsm.fastpath_rearmed). For sync groups, do it for every
   member. set_master/set_backup/clear refuse an instance with unreported re-arms.
3. After the FSM handled it, call `sync_from_fsm(fp, idx, fsm, packets)` (for every
   member of its sync group) to re-enter the steady state, or stay escalating.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, Protocol

from fastvrrp.proto import packet as _py_codec
from fastvrrp.proto.actions import TimerKind
from fastvrrp.proto.packet import Reason, is_drop

IMPLEMENTATION = "python"

MODE_NONE = 0  # everything escalates
MODE_MASTER = 1
MODE_BACKUP = 2

_TOUCH_ADVER = 1
_TOUCH_DOWN = 2
_TOUCH_TAKEOVER = 4

_ADVER = int(TimerKind.ADVER)
_DOWN = int(TimerKind.MASTER_DOWN)
_OK = int(Reason.OK)
_ADDR_LIST_MISMATCH = int(Reason.ADDR_LIST_MISMATCH)
_N_REASONS = len(Reason)

Escalation = tuple[int, Reason, Any]  # (idx or -1, reason, Advert)
OutPacket = tuple[int, bytes, object, int]  # (send gid, packet, destination, idx)
DropSample = tuple[Reason, int, int, bytes | None, int]  # reason, gid, vrid, src, count


class Wheel(Protocol):
    def reserve(self, n: int) -> None: ...
    def schedule(self, tid: int, deadline: int) -> None: ...
    def expire(self, now: int, limit: int | None = None) -> list[int]: ...


def _codec_for(table: object):
    """The codec module whose ReceiveTable this is (compiled or twin)."""
    if isinstance(table, _py_codec.ReceiveTable):
        return _py_codec
    try:
        from fastvrrp import _wire
    except ImportError:  # pragma: no cover - only a compiled table gets here
        raise TypeError(f"not a ReceiveTable: {table!r}") from None
    if isinstance(table, _wire.ReceiveTable):
        return _wire
    raise TypeError(f"not a ReceiveTable: {table!r}")


def _packet_bytes(pkt: object) -> bytes:
    """The current bytes of an AdvertEncoder (re-encoded only if stale) or a buffer."""
    encode = getattr(pkt, "packet", None)
    return bytes(encode() if encode is not None else pkt)


class _Group:
    __slots__ = ("family", "table", "codec", "idx_of")

    def __init__(self, family: int, table: object) -> None:
        self.family = family
        self.table = table
        self.codec = _codec_for(table)
        self.idx_of = [-1] * 256


class FastPath:
    """FastPath(wheel, kinds): see the module docstring."""

    __slots__ = ("_wheel", "_kinds", "_n", "_mode", "_touched", "_key", "_adver_ns", "_phase_ns",
                 "_down_ns", "_stop_ns", "_adver_deadline", "_down_deadline", "_packets", "_groups",
                 "_outbox", "_steady_sends", "_steady_rearms", "_packets_queued", "_takeovers",
                 "_esc_timers", "_esc_adverts", "_drops", "_samples")

    def __init__(self, wheel: Wheel, kinds: int) -> None:
        if kinds <= max(_ADVER, _DOWN):
            raise ValueError(f"kinds must be > {max(_ADVER, _DOWN)}")
        self._wheel = wheel
        self._kinds = kinds
        self._n = 0
        self._mode: list[int] = []
        self._touched: list[int] = []
        self._key: list[tuple[bytes, int, int] | None] = []
        self._adver_ns: list[int] = []
        self._phase_ns: list[int] = []  # -1: no phase grid
        self._down_ns: list[int] = []
        self._stop_ns: list[int] = []
        self._adver_deadline: list[int] = []
        self._down_deadline: list[int] = []
        self._packets: list[tuple[tuple[int, object, object], ...]] = []
        self._groups: dict[int, _Group] = {}
        self._outbox: list[OutPacket] = []
        self._steady_sends = 0
        self._steady_rearms = 0
        self._packets_queued = 0
        self._takeovers = 0
        self._esc_timers = 0
        self._esc_adverts = 0
        self._drops = [0] * _N_REASONS
        # reason -> [gid, vrid, src, count since the last take_drop_samples()]
        self._samples: dict[int, list] = {}

    # --- configuration ---

    @property
    def capacity(self) -> int:
        return self._n

    @property
    def kinds(self) -> int:
        return self._kinds

    def reserve(self, n: int) -> None:
        """Grow the table to at least n instances (and the wheel to n * kinds ids)."""
        if n <= self._n:
            return
        grow = n - self._n
        self._wheel.reserve(n * self._kinds)
        for lst, fill in ((self._mode, MODE_NONE), (self._touched, 0), (self._key, None),
                          (self._adver_ns, 0), (self._phase_ns, -1), (self._down_ns, 0),
                          (self._stop_ns, 0), (self._adver_deadline, 0), (self._down_deadline, 0),
                          (self._packets, ())):
            lst.extend([fill] * grow)
        self._n = n

    def add_group(self, gid: int, family: int, table: object) -> None:
        """A receive group: one (interface, family) socket and its codec ReceiveTable."""
        if not 0 <= gid <= 0xFFFF:
            raise ValueError("gid must be 0..65535")
        if family not in (4, 6):
            raise ValueError("family must be 4 or 6")
        self._groups[gid] = _Group(family, table)

    def bind(self, gid: int, vrid: int, idx: int) -> None:
        """Adverts for `vrid` on group `gid` belong to instance idx."""
        if not 0 <= vrid <= 255:
            raise ValueError("vrid must be 0..255")
        self._check(idx)
        self._groups[gid].idx_of[vrid] = idx

    def unbind(self, gid: int, vrid: int) -> None:
        if not 0 <= vrid <= 255:
            raise ValueError("vrid must be 0..255")
        self._groups[gid].idx_of[vrid] = -1

    def _check(self, idx: int) -> None:
        if not 0 <= idx < self._n:
            raise IndexError(f"instance {idx} outside 0..{self._n - 1} (reserve first)")

    def _unreported(self, idx: int) -> None:
        self._check(idx)
        if self._touched[idx]:
            raise RuntimeError(f"instance {idx}: fast-path re-arms not reported to the "
                               "FSM; call sync_back(idx, fsm) before its input")

    def set_master(self, idx: int, adver_interval_ns: int,
                   packets: Iterable[tuple[int, object, object]],
                   adver_phase_ns: int = -1) -> None:
        """MASTER-steady: on ADVER, queue `packets` ((send gid, AdvertEncoder or bytes,
        destination) each) and re-arm ADVER at now + adver_interval_ns, or with
        adver_phase_ns >= 0 at the last instant up to then on that phase grid
        (fsm.next_adver)."""
        self._unreported(idx)
        if adver_interval_ns <= 0:
            raise ValueError("adver_interval_ns must be > 0")
        if not -1 <= adver_phase_ns < adver_interval_ns:
            raise ValueError("adver_phase_ns must be -1 or in [0, adver_interval_ns)")
        pkts = tuple((int(g), p, d) for g, p, d in packets)
        for _, p, _ in pkts:
            if not hasattr(p, "packet"):
                memoryview(p)  # a buffer, or TypeError now rather than at send time
        self._packets[idx] = pkts
        self._adver_ns[idx] = adver_interval_ns
        self._phase_ns[idx] = adver_phase_ns
        self._key[idx] = None
        self._mode[idx] = MODE_MASTER

    def set_backup(self, idx: int, key: tuple[bytes, int, int],
                   master_down_interval_ns: int, skew_ns: int = 0) -> None:
        """BACKUP-steady: a valid advert with (src, priority, interval) == key re-arms
        MASTER_DOWN at now + master_down_interval_ns; with skew_ns > 0, a valid
        priority-0 advert re-arms it at now + skew_ns (else it escalates)."""
        self._unreported(idx)
        src, prio, interval = key
        src = bytes(src)
        if len(src) not in (4, 16) or not 0 <= prio <= 255 or not 0 <= interval <= 0xFFFF:
            raise ValueError(f"bad backup key {key!r}")
        if master_down_interval_ns <= 0 or skew_ns < 0:
            raise ValueError("master_down_interval_ns must be > 0 and skew_ns >= 0")
        self._key[idx] = (src, int(prio), int(interval))
        self._down_ns[idx] = master_down_interval_ns
        self._stop_ns[idx] = skew_ns
        self._packets[idx] = ()
        self._mode[idx] = MODE_BACKUP

    def set_takeover(self, idx: int, packets: Iterable[tuple[int, object, object]]) -> None:
        """Not a master: when MASTER_DOWN expires, queue `packets` (as set_master's)
        before escalating the expiry. Dropped by any later set_*/clear or escalation."""
        self._unreported(idx)
        if self._mode[idx] == MODE_MASTER:
            raise ValueError(f"instance {idx} is a steady master")
        pkts = tuple((int(g), p, d) for g, p, d in packets)
        for _, p, _ in pkts:
            if not hasattr(p, "packet"):
                memoryview(p)
        self._packets[idx] = pkts

    def clear(self, idx: int) -> None:
        """Neither steady: every event of the instance escalates."""
        self._unreported(idx)
        self._disarm(idx)

    def _disarm(self, idx: int) -> None:
        self._mode[idx] = MODE_NONE
        self._key[idx] = None
        self._packets[idx] = ()

    def mode(self, idx: int) -> int:
        self._check(idx)
        return self._mode[idx]

    # --- receive side ---

    def feed_ipv4(self, gid: int, datagram, now: int) -> Escalation | None:
        """One datagram from group gid's raw IPv4 socket (IP header included)."""
        g = self._groups[gid]
        reason, adv = g.codec.validate_ipv4(datagram, g.table)
        return self._received(gid, g, int(reason), adv, now)

    def feed_ipv6(self, gid: int, message, src, dst, hop_limit: int,
                  now: int) -> Escalation | None:
        """One VRRP message from group gid's raw IPv6 socket, with its ancillary data."""
        g = self._groups[gid]
        reason, adv = g.codec.validate_ipv6(message, src, dst, hop_limit, g.table)
        return self._received(gid, g, int(reason), adv, now)

    def feed_ipv4_batch(self, gid: int, datagrams: Sequence, start: int,
                        now: int) -> tuple[int, Escalation] | None:
        """feed_ipv4 over datagrams[start:] until one escalates: returns (its position,
        the escalation), or None once all are consumed. Handle it, then continue at
        position + 1 (a recvmmsg batch, without a Python call per steady packet)."""
        for pos in range(start, len(datagrams)):
            esc = self.feed_ipv4(gid, datagrams[pos], now)
            if esc is not None:
                return pos, esc
        return None

    def _received(self, gid: int, g: _Group, reason: int, adv, now: int) -> Escalation | None:
        if reason == _OK or reason == _ADDR_LIST_MISMATCH:
            idx = g.idx_of[adv.vrid]
            rearm = 0
            if reason == _OK and idx >= 0 and self._mode[idx] == MODE_BACKUP:
                if adv.priority == 0 and self._stop_ns[idx]:
                    rearm = self._stop_ns[idx]  # the master is stopping: Skew_Time
                elif self._key[idx] == (adv.src, adv.priority, adv.interval):
                    rearm = self._down_ns[idx]
            if rearm:
                deadline = now + rearm
                self._wheel.schedule(idx * self._kinds + _DOWN, deadline)
                self._down_deadline[idx] = deadline
                self._touched[idx] |= _TOUCH_DOWN
                self._steady_rearms += 1
                return None
            self._esc_adverts += 1
            if idx >= 0:
                self._disarm(idx)
            return idx, Reason(reason), adv
        self._drops[reason] += 1
        sample = self._samples.get(reason)
        if sample is None:
            self._samples[reason] = [gid, adv.vrid if adv is not None else -1,
                                     adv.src if adv is not None else None, 1]
        else:
            sample[3] += 1
        return None

    # --- timer side ---

    def expire(self, now: int) -> list[tuple[int, int]]:
        """Drain every due timer; handle MASTER-steady ADVERs, return the rest as
        (idx, kind) in (deadline, timer id) order."""
        kinds = self._kinds
        out: list[tuple[int, int]] = []
        for tid in self._wheel.expire(now):
            idx, kind = divmod(tid, kinds)
            if kind == _ADVER and self._mode[idx] == MODE_MASTER:
                # fsm._master_tx: from now, not from the deadline (fsm.next_adver)
                adver = self._adver_ns[idx]
                deadline = now + adver
                phase = self._phase_ns[idx]
                if phase >= 0:
                    deadline -= (deadline - phase) % adver
                self._wheel.schedule(tid, deadline)
                self._adver_deadline[idx] = deadline
                self._touched[idx] |= _TOUCH_ADVER
                self._steady_sends += 1
                for gid, pkt, dest in self._packets[idx]:
                    self._outbox.append((gid, _packet_bytes(pkt), dest, idx))
                    self._packets_queued += 1
            else:
                if kind == _DOWN and self._mode[idx] != MODE_MASTER and self._packets[idx]:
                    self._touched[idx] |= _TOUCH_TAKEOVER
                    self._takeovers += 1
                    for gid, pkt, dest in self._packets[idx]:
                        self._outbox.append((gid, _packet_bytes(pkt), dest, idx))
                        self._packets_queued += 1
                self._esc_timers += 1
                self._disarm(idx)
                out.append((idx, kind))
        return out

    def take_outbox(self) -> list[OutPacket]:
        """The queued steady adverts, (send gid, packet, destination, idx), oldest first."""
        out, self._outbox = self._outbox, []
        return out

    # --- back to the FSM ---

    def touched(self, idx: int) -> bool:
        """True if the fast path re-armed a timer the FSM has not been told of."""
        self._check(idx)
        return bool(self._touched[idx])

    def took_over(self, idx: int) -> bool:
        """True if the fast path sent idx's takeover advert and the FSM has not been
        told yet (between expire and sync_back)."""
        self._check(idx)
        return bool(self._touched[idx] & _TOUCH_TAKEOVER)

    def sync_back(self, idx: int, fsm) -> bool:
        """Report the fast path's re-arms to `fsm` (fsm.fastpath_rearmed). Call before
        the FSM handles any input of this instance; cheap when nothing happened."""
        touched = self._touched[idx]
        if not touched:
            return False
        if touched & _TOUCH_ADVER:
            fsm.fastpath_rearmed(TimerKind.ADVER, self._adver_deadline[idx])
        if touched & _TOUCH_DOWN:
            fsm.fastpath_rearmed(TimerKind.MASTER_DOWN, self._down_deadline[idx])
        if touched & _TOUCH_TAKEOVER:
            fsm.fastpath_sent_takeover()
        self._touched[idx] = 0
        return True

    # --- counters ---

    def counters(self) -> dict[str, object]:
        """Events that stayed in the fast path, escalations, and drops per Reason."""
        return {
            "steady_sends": self._steady_sends,
            "steady_rearms": self._steady_rearms,
            "packets_queued": self._packets_queued,
            "takeover_sends": self._takeovers,
            "escalated_timers": self._esc_timers,
            "escalated_adverts": self._esc_adverts,
            "drops": {Reason(r): n for r, n in enumerate(self._drops) if is_drop(r)},
        }

    def has_drop_samples(self) -> bool:
        """True when take_drop_samples() would return something."""
        return bool(self._samples)

    def take_drop_samples(self) -> list[DropSample]:
        """Per reason dropped since the last call: (reason, gid, vrid, src, count) of its
        first drop (vrid -1 and src None when the header could not be decoded)."""
        out = [(Reason(r), s[0], s[1], s[2], s[3]) for r, s in sorted(self._samples.items())]
        self._samples.clear()
        return out


def sync_from_fsm(fp, idx: int, fsm, packets: Iterable[tuple[int, object, object]], *,
                  stop_in_c: bool = True) -> int:
    """Put instance idx's fast-path entry in the state its FSM allows; returns the mode.

    `packets` are the master's (send gid, AdvertEncoder or bytes, destination); every
    encoder is set to the FSM's effective priority (the encoder re-encodes only if that
    changed), since a steady master advertises exactly fsm.priority. A machine that
    is not a steady master gets them as its takeover packets whenever its
    takeover_priority() says what its first advert as a master will be.
    `stop_in_c=False` leaves priority-0 adverts to the caller (one that must check
    their source first, e.g. unicast peers).
    """
    if fsm.master_steady:
        packets = tuple(packets)
        prio = fsm.priority
        for _, pkt, _ in packets:
            if hasattr(pkt, "priority") and pkt.priority != prio:
                pkt.priority = prio
        phase = fsm.params.adver_phase_ns
        fp.set_master(idx, fsm.adver_interval, packets, -1 if phase is None else phase)
        return MODE_MASTER
    key = fsm.backup_steady_key()
    if key is not None:
        fp.set_backup(idx, key, fsm.master_down_interval, fsm.skew_time if stop_in_c else 0)
        mode = MODE_BACKUP
    else:
        fp.clear(idx)
        mode = MODE_NONE
    prio = fsm.takeover_priority()
    if prio is not None:
        packets = tuple(packets)
        if packets:
            for _, pkt, _ in packets:
                if hasattr(pkt, "priority") and pkt.priority != prio:
                    pkt.priority = prio
            fp.set_takeover(idx, packets)
    return mode

