"""A deterministic virtual-time LAN of VRRP routers, driving the real machinery.

Each Router runs N instances (InstanceFsm, optionally in SyncGroups) over one timer
wheel and one fast path, exactly as the daemon will: timers are wheel entries
(idx * KINDS + kind), received datagrams go through the codec's ReceiveTable, and
steady-state events are handled by the fast path with only escalations reaching
Python (`proto.fastpath` protocol: sync_back before an input, sync_from_fsm after).
Packets on the wire are real IPv4 datagrams (20-byte header + encoded advert).

Fast-path modes (MODES): "compiled" (fastvrrp._fastpath), "twin" (proto.fastpath over
the compiled wheel and codec), "pure" (every twin: what FASTVRRP_PURE=1 runs) and
"off" (no fast path: every timer and packet goes to the FSM).

Time is int ns. Every router sits on the same broadcast segments (VLANs; VRIDs are
per segment, so 1000 instances need four): what a router sends on a segment reaches
that segment's receive group on every other live router of its partition after the
link delay (+ seeded jitter, loss and duplication when set). A Router wakes for a batch of due timers, or for a batch of
datagrams that arrive together (one sender's sendmmsg); at equal times deliveries go
before timers, and everything is ordered by (time, sequence number), so a run is a
pure function of its inputs and seed.

The trace records what is visible outside a router: adverts on the wire (recorded
from the packet bytes, so steady sends from C appear exactly like Python's),
transitions, VIP add/remove, GARP bursts and notifies. Within one wake-up a router's
events are ordered by instance (stable), and packets go on the wire in that order:
the daemon sends a batch with one sendmmsg, so the order *between* instances inside
a batch is not meaningful, while each instance's own order is kept. This makes the
trace (and the random draws for loss) independent of which events C handled.
"""

from __future__ import annotations

import heapq
import importlib
import random
import struct
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from operator import itemgetter
from types import ModuleType

import fastvrrp.proto.fastpath as twin_fastpath
import fastvrrp.proto.packet as twin_codec
import fastvrrp.proto.wheel as twin_wheel
from fastvrrp.proto.actions import (
    Action,
    AddVips,
    ArmTimer,
    CancelTimer,
    GroupNotify,
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
from fastvrrp.proto.fastpath import sync_from_fsm
from fastvrrp.proto.fsm import InstanceFsm, InstanceParams
from fastvrrp.proto.packet import is_drop
from fastvrrp.proto.sync import SyncGroup, Tagged

NS_PER_MS = 1_000_000
NS_PER_S = 1_000_000_000
KINDS = len(TimerKind)
MCAST4 = bytes((224, 0, 0, 18))
VRIDS_PER_SEGMENT = 255
MODES = ("compiled", "twin", "pure", "off")

TraceEvent = tuple[int, str, str, str, object]  # (time, router, instance|group, what, detail)


def _compiled(name: str) -> ModuleType:
    try:
        return importlib.import_module(f"fastvrrp.{name}")
    except ImportError as exc:  # pragma: no cover - a broken build must be loud
        raise AssertionError(f"fastvrrp.{name} is not built ({exc}); run "
                             "python setup.py build_ext --inplace") from exc


@dataclass(frozen=True)
class Machinery:
    """Which implementation of each accelerated module a router runs."""

    fastpath: ModuleType | None
    wheel: ModuleType
    codec: ModuleType


def machinery(mode: str) -> Machinery:
    if mode == "compiled":
        return Machinery(_compiled("_fastpath"), _compiled("_wheel"), _compiled("_wire"))
    if mode == "twin":
        return Machinery(twin_fastpath, _compiled("_wheel"), _compiled("_wire"))
    if mode == "pure":
        return Machinery(twin_fastpath, twin_wheel, twin_codec)
    if mode == "off":
        return Machinery(None, _compiled("_wheel"), _compiled("_wire"))
    raise ValueError(f"fast path mode must be one of {MODES}, not {mode!r}")


def ipv4_header(src: bytes, dst: bytes, payload_len: int, ttl: int = 255) -> bytes:
    """The 20-byte header a raw IPPROTO_VRRP socket delivers (no options)."""
    header = bytearray(struct.pack("!BBHHHBBH4s4s", 0x45, 0xC0, 20 + payload_len, 0, 0x4000,
                                   ttl, 112, 0, src, dst))
    csum = twin_codec.inet_checksum(header)
    header[10:12] = csum.to_bytes(2, "big")
    return bytes(header)


def wire_interval(params: InstanceParams) -> int:
    """The advert's interval field: seconds (v2) or centiseconds (v3)."""
    return params.advert_int_cs // 100 if params.version == 2 else params.advert_int_cs


@dataclass
class Impairments:
    delay_ns: int = 100_000
    jitter_ns: int = 0  # uniform 0..jitter_ns extra, per packet
    loss: float = 0.0  # per packet and receiver
    duplicate: float = 0.0  # per delivered packet: a second copy


@dataclass
class Stats:
    timer_events: int = 0  # due timers (C or Python)
    packet_events: int = 0  # datagrams received (C or Python)
    python_timer_inputs: int = 0  # fsm.timer calls
    python_advert_inputs: int = 0  # fsm.advert calls
    drops: int = 0


class Router:
    """One host: instances over one wheel and one fast path (or none); one IPv4 receive
    group per segment (gid = segment number)."""

    def __init__(self, lan: Lan, name: str, address: bytes, params: Sequence[InstanceParams],
                 vips: dict[str, bytes], sync_groups: dict[str, Sequence[str]],
                 segments: dict[str, int]) -> None:
        self.lan = lan
        self.name = name
        self.address = address
        self.alive = True
        self.started = False
        mach = lan.machinery
        self.codec = mach.codec
        self.fsms = [InstanceFsm(p) for p in params]
        self.names = [p.name for p in params]
        self.idx_of = {p.name: i for i, p in enumerate(params)}
        self.segment = [segments.get(p.name, 0) for p in params]
        self.idx_of_vrid: dict[tuple[int, int], int] = {}  # (segment, vrid) -> idx
        n = len(params)
        self.wheel = mach.wheel.TimerWheel(n * KINDS, 0)
        self.tables = {seg: self.codec.ReceiveTable() for seg in sorted(set(self.segment))}
        self.encoders = []
        self.packets: list[list[tuple[int, object, bytes]]] = []
        for i, p in enumerate(params):
            if p.family != 4:
                raise ValueError("the simulated LAN is IPv4")
            seg = self.segment[i]
            if (seg, p.vrid) in self.idx_of_vrid:
                raise ValueError(f"{name}: VRID {p.vrid} twice on segment {seg}")
            addresses = vips.get(p.name, b"")
            self.tables[seg][p.vrid] = self.codec.Expect(
                p.version, interval=wire_interval(p) if p.version == 2 else None,
                addresses=addresses)
            self.idx_of_vrid[(seg, p.vrid)] = i
            enc = self.codec.AdvertEncoder(p.version, p.vrid, p.priority, wire_interval(p),
                                           addresses, src=address, dst=MCAST4)
            self.encoders.append(enc)
            self.packets.append([(seg, enc, MCAST4)])
        self.groups: list[SyncGroup] = []
        self.group_of: dict[int, SyncGroup] = {}
        self.members: dict[int, list[int]] = {}  # idx -> the indices its inputs may touch
        self.group_key: dict[str, int] = {}  # trace ordering: groups after all instances
        for gname, member_names in sync_groups.items():
            g = SyncGroup(gname, [self.fsms[self.idx_of[m]] for m in member_names])
            self.group_key[gname] = n + len(self.groups)
            self.groups.append(g)
            idxs = [self.idx_of[m] for m in member_names]
            for i in idxs:
                self.group_of[i] = g
                self.members[i] = idxs
        self.fp = None
        if mach.fastpath is not None:
            self.fp = mach.fastpath.FastPath(self.wheel, KINDS)
            self.fp.reserve(n)
            for seg, table in self.tables.items():
                self.fp.add_group(seg, 4, table)
            for (seg, vrid), idx in self.idx_of_vrid.items():
                self.fp.bind(seg, vrid, idx)
        self.stats = Stats()
        self._step: list[tuple[int, str, str, object]] = []  # this wake-up's output

    # --- what the LAN calls ---

    def next_deadline(self) -> int | None:
        return self.wheel.next_deadline() if self.alive else None

    def start(self, now: int) -> None:
        self.started = True
        for g in self.groups:
            self._apply_tagged(g.start(now), now)
        for i, m in enumerate(self.fsms):
            if i not in self.group_of:
                self._apply(i, m.start(now), now)
        self._resync(range(len(self.fsms)))
        self._flush(now)

    def wake(self, now: int) -> None:
        """Every timer due at `now`, as one batch."""
        fp = self.fp
        if fp is not None:
            escalated = fp.expire(now)  # counted by the fast path itself
            outbox = fp.take_outbox()
            if not escalated and not self._step:
                # Only steady sends: already in instance order (one deadline, tid order).
                self._transmit_steady(outbox, now)
                return
            step = self._step
            for _, msg, _, idx in outbox:
                step.append((idx, self.names[idx], "advert", msg))
            for idx, kind in escalated:
                self._timer(idx, TimerKind(kind), now)
        else:
            due = self.wheel.expire(now)  # (with a fast path, it counts them)
            self.stats.timer_events += len(due)
            for tid in due:
                idx, kind = divmod(tid, KINDS)
                self._timer(idx, TimerKind(kind), now)
        self._flush(now)

    def _transmit_steady(self, outbox: list[tuple[int, bytes, object, int]], now: int) -> None:
        if self.lan.record:
            names, me, trace = self.names, self.name, self.lan.trace
            for _, msg, _, idx in outbox:
                trace.append((now, me, names[idx], "advert", (msg[1], msg[2])))
        if outbox and self.alive:
            self.lan.transmit(self, outbox, now)

    def receive(self, seg: int, datagrams: Sequence[bytes], now: int) -> None:
        """A batch of datagrams arriving together on a segment (one recvmmsg)."""
        self.stats.packet_events += len(datagrams)
        if seg not in self.tables:
            self.stats.drops += len(datagrams)  # no socket on that VLAN
            self._flush(now)
            return
        fp = self.fp
        if fp is not None:
            pos = 0
            while (found := fp.feed_ipv4_batch(seg, datagrams, pos, now)) is not None:
                pos, (idx, _reason, adv) = found
                pos += 1
                if idx >= 0:
                    self._advert(idx, adv, now)
        else:
            validate, table = self.codec.validate_ipv4, self.tables[seg]
            for datagram in datagrams:
                reason, adv = validate(datagram, table)
                if is_drop(reason):
                    self.stats.drops += 1
                    continue
                idx = self.idx_of_vrid.get((seg, adv.vrid))
                if idx is not None:
                    self._advert(idx, adv, now)
        self._flush(now)

    def external(self, name: str, now: int, direct: Callable[[InstanceFsm], list[Action]],
                 via_group: Callable[[SyncGroup, InstanceFsm], list[Tagged]]) -> None:
        """An input from outside the protocol (tracking, fault, operator)."""
        idx = self.idx_of[name]
        self._input(idx, now, direct, via_group)
        self._flush(now)

    def shutdown(self, now: int) -> None:
        """SIGTERM: every instance stops; masters send priority 0."""
        everyone = range(len(self.fsms))
        self._sync_back(everyone)
        for g in self.groups:
            self._apply_tagged(g.shutdown(now), now)
        for i, m in enumerate(self.fsms):
            if i not in self.group_of:
                self._apply(i, m.shutdown(now), now)
        self._resync(everyone)
        self._flush(now)

    # --- inputs into Python ---

    def _timer(self, idx: int, kind: TimerKind, now: int) -> None:
        self.stats.python_timer_inputs += 1
        self._input(idx, now, lambda m: m.timer(now, kind),
                    lambda g, m: g.timer(now, m, kind))

    def _advert(self, idx: int, adv, now: int) -> None:
        self.stats.python_advert_inputs += 1
        self._input(idx, now, lambda m: m.advert(now, adv),
                    lambda g, m: g.advert(now, m, adv))

    def _input(self, idx: int, now: int, direct: Callable, via_group: Callable) -> None:
        touched = self.members.get(idx, (idx,))
        self._sync_back(touched)
        g = self.group_of.get(idx)
        if g is None:
            self._apply(idx, direct(self.fsms[idx]), now)
        else:
            self._apply_tagged(via_group(g, self.fsms[idx]), now)
        self._resync(touched)

    def _sync_back(self, idxs: Iterable[int]) -> None:
        fp = self.fp
        if fp is not None:
            for i in idxs:
                fp.sync_back(i, self.fsms[i])

    def _resync(self, idxs: Iterable[int]) -> None:
        fp = self.fp
        if fp is not None:
            for i in idxs:
                sync_from_fsm(fp, i, self.fsms[i], self.packets[i])

    # --- outputs ---

    def _apply_tagged(self, tagged: Iterable[Tagged], now: int) -> None:
        for t in tagged:
            idx = self.idx_of.get(t.name)
            if idx is None:
                self._trace_action(self.group_key[t.name], t.name, t.action)
            else:
                self._apply(idx, (t.action,), now)

    def _apply(self, idx: int, actions: Iterable[Action], now: int) -> None:
        tid0 = idx * KINDS
        for a in actions:
            if isinstance(a, ArmTimer):
                self.wheel.schedule(tid0 + a.kind, a.deadline)
            elif isinstance(a, CancelTimer):
                self.wheel.cancel(tid0 + a.kind)
            elif isinstance(a, SendAdvert):
                enc = self.encoders[idx]
                enc.priority = a.priority  # sync_from_fsm restores the steady priority
                self._step.append((idx, self.names[idx], "advert", bytes(enc.packet())))
            else:
                self._trace_action(idx, self.names[idx], a)

    def _trace_action(self, key: int, name: str, a: Action) -> None:
        if isinstance(a, Transition):
            what, detail = "transition", (a.old.name, a.new.name)
        elif isinstance(a, AddVips):
            what, detail = "add_vips", None
        elif isinstance(a, RemoveVips):
            what, detail = "remove_vips", None
        elif isinstance(a, SendGarp):
            what, detail = "garp", a.repeat
        elif isinstance(a, Notify):
            what, detail = "notify", (a.state.name, a.priority)
        elif isinstance(a, NotifyPriorityChange):
            what, detail = "notify_priority", (a.state.name, a.priority)
        elif isinstance(a, NotifyMasterRxLowerPri):
            what, detail = "notify_master_rx_lower_pri", None
        elif isinstance(a, GroupNotify):
            what, detail = "group_notify", (a.state.name, a.priority)
        else:  # pragma: no cover - a new action type must be traced deliberately
            raise TypeError(f"untraced action {a!r}")
        self._step.append((key, name, what, detail))

    def _flush(self, now: int) -> None:
        """End of a wake-up: trace and transmit its output, ordered by instance."""
        step = self._step
        if not step:
            return
        self._step = []
        step.sort(key=itemgetter(0))  # stable: each instance keeps its own order
        record = self.lan.record
        trace = self.lan.trace
        me = self.name
        packets: list[tuple[int, bytes]] = []  # (segment, message, ...)
        for key, name, what, detail in step:
            if what == "advert":
                packets.append((self.segment[key], detail))
                if record:
                    # From the bytes on the wire: (vrid, priority); src is this router.
                    trace.append((now, me, name, "advert", (detail[1], detail[2])))
            elif record:
                trace.append((now, me, name, what, detail))
        if packets and self.alive:
            self.lan.transmit(self, packets, now)


class Lan:
    """The segment, the routers on it and the global event queue."""

    def __init__(self, *, fast_path: str = "compiled", impairments: Impairments | None = None,
                 seed: int = 0, record: bool = True) -> None:
        self.mode = fast_path
        self.machinery = machinery(fast_path)
        self.imp = impairments or Impairments()
        self.rng = random.Random(seed)
        self.record = record
        self.now = 0
        self.routers: dict[str, Router] = {}
        self.trace: list[TraceEvent] = []
        self._queue: list[tuple[int, int, Router, int, Sequence[bytes]]] = []
        self._seq = 0
        self._component: dict[str, int] = {}  # partition: router -> side; empty = none
        self._headers: dict[bytes, dict[int, bytes]] = {}  # src -> length -> header

    # --- building ---

    def add_router(self, name: str, address: bytes, params: Sequence[InstanceParams], *,
                   vips: dict[str, bytes] | None = None,
                   sync_groups: dict[str, Sequence[str]] | None = None,
                   segments: dict[str, int] | None = None) -> Router:
        if name in self.routers:
            raise ValueError(f"router {name} exists")
        router = Router(self, name, address, params, vips or {}, sync_groups or {},
                        segments or {})
        self.routers[name] = router
        return router

    # --- inputs (at the current virtual time) ---

    def start(self, *names: str) -> None:
        for name in names or tuple(self.routers):
            self.routers[name].start(self.now)

    def crash(self, name: str) -> None:
        """Power off: nothing more is sent, received or timed."""
        self.routers[name].alive = False

    def shutdown(self, name: str) -> None:
        self.routers[name].shutdown(self.now)

    def set_priority(self, router: str, instance: str, priority: int) -> None:
        now = self.now
        self.routers[router].external(instance, now, lambda m: m.set_priority(now, priority),
                                      lambda g, m: g.set_priority(now, m, priority))

    def set_fault(self, router: str, instance: str, faulted: bool, reason: str = "eth0") -> None:
        now = self.now
        self.routers[router].external(
            instance, now, lambda m: m.set_fault(now, faulted, reason),
            lambda g, m: g.set_fault(now, m, faulted, reason))

    def partition(self, *sides: Iterable[str]) -> None:
        """Routers on different sides stop hearing each other (unlisted: alone)."""
        self._component = {r: i for i, side in enumerate(sides) for r in side}

    def heal(self) -> None:
        self._component = {}

    def set_impairments(self, **changes) -> None:
        for key, value in changes.items():
            setattr(self.imp, key, value)

    # --- running ---

    def run_until(self, t_end: int) -> None:
        queue = self._queue
        routers = list(self.routers.values())
        while True:
            t_timer, waking = None, None
            for r in routers:
                d = r.next_deadline()
                if d is not None and (t_timer is None or d < t_timer):
                    t_timer, waking = d, r
            t_packet = queue[0][0] if queue else None
            if t_packet is not None and (t_timer is None or t_packet <= t_timer):
                if t_packet > t_end:
                    break
                _, _, receiver, seg, datagrams = heapq.heappop(queue)
                self.now = t_packet
                if receiver.alive:
                    receiver.receive(seg, datagrams, t_packet)
            elif t_timer is not None and t_timer <= t_end:
                self.now = max(self.now, t_timer)
                waking.wake(self.now)
            else:
                break
        self.now = max(self.now, t_end)

    def transmit(self, sender: Router, messages: Sequence[tuple], now: int) -> None:
        """Put messages on the wire, each a tuple starting (segment, VRRP message) (so a
        fast path's outbox entries go as they are); the kernel adds the IP header."""
        headers = self._headers.get(sender.address)
        if headers is None:
            headers = self._headers[sender.address] = {}
        by_segment: dict[int, list[bytes]] = {}
        last_seg, batch = None, None
        for t in messages:
            seg, m = t[0], t[1]
            h = headers.get(len(m))
            if h is None:
                h = headers[len(m)] = ipv4_header(sender.address, MCAST4, len(m))
            if seg != last_seg:
                batch = by_segment.get(seg)
                if batch is None:
                    batch = by_segment[seg] = []
                last_seg = seg
            batch.append(h + m)
        side = self._component.get(sender.name, -1) if self._component else None
        imp = self.imp
        clean = not (imp.loss or imp.duplicate or imp.jitter_ns)
        rng = self.rng
        for r in self.routers.values():
            if r is sender or not r.alive:
                continue
            if side is not None and (side == -1 or self._component.get(r.name, -2) != side):
                continue
            for seg, datagrams in by_segment.items():
                if clean:
                    self._push(now + imp.delay_ns, r, seg, datagrams)
                    continue
                for d in datagrams:
                    if rng.random() < imp.loss:
                        continue
                    copies = 2 if rng.random() < imp.duplicate else 1
                    for _ in range(copies):
                        jitter = rng.randint(0, imp.jitter_ns) if imp.jitter_ns else 0
                        self._push(now + imp.delay_ns + jitter, r, seg, (d,))

    def _push(self, when: int, receiver: Router, seg: int, datagrams: Sequence[bytes]) -> None:
        self._seq += 1
        heapq.heappush(self._queue, (when, self._seq, receiver, seg, datagrams))

    # --- queries ---

    def fsm(self, router: str, instance: str) -> InstanceFsm:
        r = self.routers[router]
        return r.fsms[r.idx_of[instance]]

    def states(self, instance: str) -> dict[str, State]:
        return {n: r.fsms[r.idx_of[instance]].state for n, r in self.routers.items()
                if instance in r.idx_of}

    def masters(self, instance: str, alive_only: bool = True) -> list[str]:
        return [n for n, s in self.states(instance).items()
                if s == State.MASTER and (self.routers[n].alive or not alive_only)]

    def events(self, what: str, router: str | None = None, instance: str | None = None,
               since: int = 0) -> list[TraceEvent]:
        return [e for e in self.trace if e[3] == what and e[0] >= since
                and (router is None or e[1] == router)
                and (instance is None or e[2] == instance)]

    def became(self, router: str, instance: str, state: State, since: int = 0) -> list[int]:
        return [e[0] for e in self.events("transition", router, instance, since)
                if e[4][1] == state.name]

    def stats(self) -> Stats:
        total = Stats()
        for r in self.routers.values():
            for f in Stats.__dataclass_fields__:
                setattr(total, f, getattr(total, f) + getattr(r.stats, f))
            if r.fp is not None:
                c = r.fp.counters()
                total.timer_events += c["steady_sends"] + c["escalated_timers"]
                total.drops += sum(c["drops"].values())
        return total

    def fast_path_counters(self) -> dict[str, int]:
        """Steady events and escalations summed over every router's fast path."""
        keys = ("steady_sends", "steady_rearms", "takeover_sends", "escalated_timers",
                "escalated_adverts")
        total = dict.fromkeys(keys, 0)
        for r in self.routers.values():
            if r.fp is not None:
                c = r.fp.counters()
                for k in keys:
                    total[k] += c[k]
        return total


# --- building blocks for tests and the bench ---------------------------------------

def router_address(i: int) -> bytes:
    return bytes((192, 0, 2, 1 + i))


def vip_of(i: int) -> bytes:
    """Instance i's virtual address: 198.18.0.0/15 (RFC 2544 benchmarking) has room
    for thousands, and the simulated VIPs never reach a real network."""
    return (0xC6120000 + i + 1).to_bytes(4, "big")


@dataclass
class Topology:
    """K routers x N instances; priorities[r][i]. Instance i is named VI_<i+1> and
    has VRID i % 255 + 1 on segment i // 255."""

    priorities: list[list[int]]
    version: int = 3
    advert_int_cs: int = 100
    extra: dict = field(default_factory=dict)  # more InstanceParams fields, per router
    sync_groups: dict[int, dict[str, list[str]]] = field(default_factory=dict)

    @property
    def routers(self) -> int:
        return len(self.priorities)

    @property
    def instances(self) -> int:
        return len(self.priorities[0])

    def build(self, lan: Lan) -> Lan:
        for r, prios in enumerate(self.priorities):
            params = [InstanceParams(name=f"VI_{i + 1}", vrid=i % VRIDS_PER_SEGMENT + 1,
                                     primary=router_address(r),
                                     version=self.version, priority=prio,
                                     advert_int_cs=self.advert_int_cs,
                                     **self.extra.get(r, {}))
                      for i, prio in enumerate(prios)]
            lan.add_router(f"r{r}", router_address(r), params,
                           vips={p.name: vip_of(i) for i, p in enumerate(params)},
                           sync_groups=self.sync_groups.get(r),
                           segments={p.name: i // VRIDS_PER_SEGMENT
                                     for i, p in enumerate(params)})
        return lan


def expected_master(topo: Topology, i: int, among: set[int] | None = None) -> str:
    """Who should be instance i's master among those routers: highest priority, then
    highest primary address (RFC 5798 6.4.3)."""
    rs = range(topo.routers) if among is None else among
    best = max(rs, key=lambda r: (topo.priorities[r][i], router_address(r)))
    return f"r{best}"


def settle_ns(topo: Topology) -> int:
    """Long enough for an election: Master_Down_Interval is < 4 advert intervals, and
    a few more let every backup hear the winner and a transient double master resolve."""
    return 10 * topo.advert_int_cs * 10 * NS_PER_MS
