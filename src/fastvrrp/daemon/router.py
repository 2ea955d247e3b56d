"""The running daemon: every instance's state machine wired to sockets, the timer
wheel, netlink, GARP and notifications.

Event flow: the receive sockets and one timerfd are watched by the event loop,
which calls _fastio's wake-up functions for them directly. Both feed the fast path
first (fastvrrp._fastpath through recvmmsg and sendmmsg): a master's periodic
advert, a backup's "same master, nothing changed" and the timerfd's re-arming
never reach Python. What escalates becomes a state machine input; timer actions are
applied at once, the rest is carried out in phases for the whole batch — adverts
first, then one netlink batch for every VIP change, then GARP/NA bursts, then log
lines and notifications (DESIGN.md: nothing slow between a deadline and the packets
it causes). After every input the instance's fast-path entry is set from its state
machine, and finally the timerfd is re-armed for the wheel's next deadline.
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import logging
import socket
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import replace

from fastvrrp import accel
from fastvrrp.config.model import Config
from fastvrrp.daemon.instances import (
    TIMER_KINDS,
    Carried,
    Runtime,
    reload_key,
    StartupError,
    advert_phases,
    advertised_addresses,
    auth_of,
    expect_kwargs,
    instance_params,
    primary_address,
    send_checksum_form,
    vip_specs,
)
from fastvrrp.net import sockets
from fastvrrp.net.garp import GarpSender
from fastvrrp.net.io import pack_sockaddr
from fastvrrp.net.scheduling import Breather
from fastvrrp.net.vips import LinkEvent, NetlinkMonitor, VipManager
from fastvrrp.proto import actions as A
from fastvrrp.proto.actions import State, TimerKind
from fastvrrp.proto.fastpath import sync_from_fsm
from fastvrrp.proto.fsm import InstanceFsm
from fastvrrp.proto.packet import Reason
from fastvrrp.proto.sync import SyncGroup, Tagged

log = logging.getLogger("fastvrrp")

wire = accel.load("_wire", "fastvrrp.proto.packet")
wheel_mod = accel.load("_wheel", "fastvrrp.proto.wheel")
fastpath_mod = accel.load("_fastpath", "fastvrrp.proto.fastpath")
fastio_mod = accel.load("_fastio", "fastvrrp.net.io")


def now_ns() -> int:
    return time.monotonic_ns()


# A receive socket that delivered is drained again this much later instead of on
# its next packet, for as long as it keeps delivering (_fastio's wake-ups). Arrival
# times come from the kernel's stamps, so the delay moves no timer; it delays only
# what an advert changes (a stopping master's Skew_Time still runs from its
# arrival). 2 ms is longer than the gap between two 16-advert phases of one
# interface (1.6 ms at a thousand 0.1 s instances), so a busy backup's sockets stay
# held and it wakes ~500 times a second (1 ms: 1230, per packet: ~5000; bench/scale).
RECEIVE_HOLD_NS = 2_000_000
# Python work is done in slices of this many instances, with C's due sends in between.
PUMP_EVERY = 32
# Takeover VIPs are installed for up to this long before C's due sends (steady adverts
# and newer takeovers) are looked at again. Checking after every slice let a stream of
# takeovers (a stopping master's thousand priority-0 adverts, each instance expiring
# Skew_Time later) push the older ones' VIPs back: at N=1000, 0.1 s the last VIPs came
# 30-44 ms after their timers (bench/failover.py; the figures since: bench/README.md).
# It is what the adverts of other masters may wait at worst during a mass takeover.
TAKEOVER_VIP_BUDGET_NS = 2_000_000
_MASTER_DOWN = int(TimerKind.MASTER_DOWN)


def net_vip_changes(actions: Iterable[tuple[Runtime, A.Action]]) -> tuple[list[Runtime], list[Runtime]]:
    """(remove, add): the instances whose VIPs a batch of AddVips/RemoveVips leaves
    removed or added. Per instance the last action wins: one that went master and
    back within a batch (a takeover overtaken by a better master's advert) ends with
    its VIPs removed, whatever order the batch's phases run in."""
    last: dict[int, tuple[Runtime, bool]] = {}
    for rt, action in actions:
        last.pop(id(rt), None)  # re-inserted: the batch's order is the last action's
        last[id(rt)] = (rt, isinstance(action, A.AddVips))
    removes = [rt for rt, add in last.values() if not add]
    adds = [rt for rt, add in last.values() if add]
    return removes, adds


class Router:
    """All instances of one config, on one host (one network namespace)."""

    def __init__(self, config: Config, *, notify: Callable[..., None] | None = None) -> None:
        self.config = config
        self.runtimes: list[Runtime] = []
        self.by_name: dict[str, Runtime] = {}
        self.groups: dict[str, SyncGroup] = {}
        self.wheel = None
        self.fp = None
        self.io = fastio_mod.BatchIO()
        self.timerfd = None  # fastio_mod.TimerFd, the compiled one with the compiled I/O
        self.vips: VipManager | None = None
        self.garp: GarpSender | None = None
        self.monitor: NetlinkMonitor | None = None
        # receive socket key -> (socket, ReceiveTable, {vrid: Runtime}, family, gid)
        self.rx: dict[tuple, tuple[socket.socket, object, dict[int, Runtime], int, int]] = {}
        self.tx_gid: dict[tuple, int] = {}  # send socket key -> send gid
        self.tx_by_gid: dict[int, socket.socket] = {}
        self._pending: list[tuple[Runtime | str, A.Action]] = []
        self._carried: dict[int, Carried] = {}
        self.on_link: Callable[[str, bool], None] | None = None  # tracking's interface feed
        self.drops: Counter[str] = Counter()
        self.notify = notify or (lambda *a, **kw: None)
        self.loop: asyncio.AbstractEventLoop | None = None
        self._stopping = False
        self._clock = 0  # the latest time any input was given to a state machine
        # Timers C found due while Python was busy (_send_due), for the state machines.
        # Inputs C handed over while Python was busy (_send_due), in the order it saw
        # them: timers (idx, kind, now) and adverts (key, escalation, arrival, None).
        self._due_later: list[tuple] = []
        self._vip_queue: list[Runtime] = []  # taken over by C, VIPs not yet added
        self._garp_queue: list[Runtime] = []  # taken over by C, VIPs added, GARPs not sent
        self._garp_repeats: list[Runtime] = []  # first GARP round sent, the repeats not
        self._defer: dict[tuple, Callable] = {}  # receive key -> _defer_advert for it
        # Real time (vrrp_rt_priority): a long run of Python sleeps now and then, or the
        # kernel kills it at RLIMIT_RTTIME; every pump point below goes through here
        # (and C's sends breathe too: set_breathing).
        self.breather = Breather(0)

    def set_breathing(self, every_ns: int) -> None:
        """Real time: sleep BREATH_S this often in long runs, in Python and in C's
        sends (net.scheduling); 0: never."""
        self.breather.every_ns = every_ns
        self.io.breathe_every_ns = every_ns

    # ------------------------------------------------------------------ set-up

    def open(self, carried: dict[tuple, Carried] | None = None) -> None:
        """Resolve interfaces and addresses, open sockets, build the machines.

        `carried` (from a reload) holds the running machines of instances whose
        configuration did not change: they keep their state, timers and VIPs.
        """
        carried = carried or {}
        self.vips = VipManager()
        self.garp = GarpSender()
        links = {}
        for inst in self.config.instances:
            if inst.interface is None:
                raise StartupError(f"{inst.name}: instances without an interface are not supported yet")
            if inst.interface not in links:
                link = self.vips.resolve(inst.interface)
                if link is None:
                    raise StartupError(f"{inst.name}: interface {inst.interface} does not exist")
                links[inst.interface] = link
        ours = {v.address.ip for inst in self.config.instances for v in (*inst.vips, *inst.excluded_vips)}
        addrs = {name: self.vips.dump(link.ifindex) for name, link in links.items()}
        phases = advert_phases(self.config.instances)
        for idx, inst in enumerate(self.config.instances):
            link = links[inst.interface]
            primary = primary_address(inst, addrs[inst.interface], ours)
            params = instance_params(inst, self.config, primary, phases[idx])
            kept = carried.get(reload_key(inst))
            # A phase moved by other instances coming or going is no reason to restart:
            # the carried machine keeps its old phase.
            if (kept is not None and kept.cfg == inst and not inst.sync_group
                    and replace(kept.fsm.params, adver_phase_ns=params.adver_phase_ns) == params):
                fsm = kept.fsm
                self._carried[idx] = kept
            else:
                fsm = InstanceFsm(params)
            specs = vip_specs(inst, inst.interface)
            garp_ips = tuple(v.address.ip for v in (*inst.vips, *inst.excluded_vips))
            rt = Runtime(idx, inst, fsm, link, primary, specs, garp_ips)
            self.runtimes.append(rt)
            self.by_name[inst.name] = rt
        for g in self.config.sync_groups:
            members = [self.by_name[n].fsm for n in g.instances]
            group = SyncGroup(g.name, members)
            self.groups[g.name] = group
            for n in g.instances:
                self.by_name[n].group = group
        self.wheel = wheel_mod.TimerWheel(max(1, len(self.runtimes)) * TIMER_KINDS, now_ns())
        self.fp = fastpath_mod.FastPath(self.wheel, TIMER_KINDS)
        self.fp.reserve(max(1, len(self.runtimes)))
        for rt in self.runtimes:
            self._open_sockets(rt)
        for idx, kept in self._carried.items():
            self.runtimes[idx].vips_installed = kept.vips_installed
        # keepalived removes stale copies of its VIPs at start-up (vrrp_daemon.c);
        # a carried master's VIPs are not stale.
        # Only those the kernel has: one dump instead of a refused remove per VIP
        # (1000 instances: 160 ms of start-up).
        present = {a.address.ip for a in self.vips.dump()}
        stale = [s for rt in self.runtimes if not rt.vips_installed for s in rt.vips
                 if s.address.ip in present]
        if stale:
            result = self.vips.remove(stale)
            if result.changed:
                log.info("removed %d stale VIP(s) left from an earlier run", len(result.changed))
        # What a mass takeover sends, built now rather than between its takeovers: a
        # new process's first 1000-VIP add took 15-16 ms, 10-11 ms with its requests
        # encoded beforehand (bench/README.md, mass failover).
        self.vips.prepare([s for rt in self.runtimes for s in rt.vips])
        self.garp.prepare([(rt.link, rt.garp_ips) for rt in self.runtimes if rt.garp_ips])
        self.monitor = NetlinkMonitor(links=True, addresses=False)
        self.timerfd = fastio_mod.TimerFd()

    def _open_sockets(self, rt: Runtime) -> None:
        inst = rt.cfg
        fam = socket.AF_INET if inst.family == 4 else socket.AF_INET6
        ifname, ifindex = rt.link.ifname, rt.link.ifindex
        if inst.is_unicast:
            src = str(ipaddress.ip_address(rt.primary))
            rx_key = (ifname, int(inst.family), "unicast", src)
        else:
            src = None
            rx_key = (ifname, int(inst.family), "multicast", str(inst.mcast_dst_ip))
        if rx_key not in self.rx:
            sock = sockets.open_receive_socket(
                fam, ifname, ifindex, group=None if src else str(inst.mcast_dst_ip), unicast_src=src)
            gid = len(self.rx)
            table = wire.ReceiveTable()
            self.rx[rx_key] = (sock, table, {}, int(inst.family), gid)
            self.fp.add_group(gid, int(inst.family), table)
        _, table, by_vrid, _, gid = self.rx[rx_key]
        if inst.vrid in by_vrid:
            other = by_vrid[inst.vrid].name
            raise StartupError(f"{inst.name}: VRID {inst.vrid} is also used by {other} on the same socket")
        table[inst.vrid] = wire.Expect(inst.version, **expect_kwargs(inst, self.config))
        by_vrid[inst.vrid] = rt
        self.fp.bind(gid, inst.vrid, rt.idx)
        rt.rx_key = rx_key

        source = str(ipaddress.ip_address(rt.primary))
        tx_key = (ifname, int(inst.family), source, inst.is_unicast)
        if tx_key not in self.tx_gid:
            tx_gid = self.tx_gid[tx_key] = len(self.tx_gid)
            self.tx_by_gid[tx_gid] = sockets.open_send_socket(
                fam, ifname, ifindex, multicast=not inst.is_unicast,
                source6=source if inst.family == 6 else None)
        rt.tx_gid = tx_gid = self.tx_gid[tx_key]
        dests = [p.address for p in inst.unicast_peers] or [inst.mcast_dst_ip]
        auth_type, auth_data = auth_of(inst)
        addrs = advertised_addresses(inst)
        interval = inst.advert_int_cs // 100 if inst.version == 2 else inst.advert_int_cs
        for dst in dests:
            ttl = 0
            if inst.family == 4:
                ttl = (inst.unicast_ttl or 255) if inst.is_unicast else 255
                sockaddr = (str(dst), 0)
            else:
                sockaddr = (str(dst), 0, 0, ifindex)
            enc = wire.AdvertEncoder(
                inst.version, inst.vrid, inst.priority, interval, addrs,
                family=int(inst.family), src=rt.primary, dst=dst.packed, auth_type=auth_type,
                auth_data=auth_data, checksum_form=send_checksum_form(inst), ipv4_ttl=ttl)
            rt.adverts.append((sockaddr, enc))
            rt.fast_packets.append((tx_gid, enc, pack_sockaddr(str(dst), ifindex)))
        # Per-peer TTL bounds are checked in Python, so such a backup never goes steady.
        rt.fast_backup = not any(p.min_ttl or p.max_ttl != 255 for p in inst.unicast_peers)

    # ------------------------------------------------------------------ running

    def attach(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        # The steady state: the loop calls _fastio's wake-up functions directly, and
        # they call back into Python only when a state machine is needed.
        self.io.attach(loop, self.fp, self.wheel, self.timerfd, self.tx_by_gid,
                       self._after_timer, RECEIVE_HOLD_NS)
        for key, (sock, _table, _by_vrid, family, gid) in self.rx.items():
            self.io.watch(gid, sock, family, functools.partial(self._escalated_advert, key),
                          functools.partial(self._after_receive, key))
            self._defer[key] = functools.partial(self._defer_advert, key)
        log.info("fast path: %s; socket I/O: %s", fastpath_mod.IMPLEMENTATION,
                 fastio_mod.IMPLEMENTATION)
        loop.add_reader(self.monitor.fileno(), self._on_netlink)

    def start(self) -> None:
        now = self._now()
        started = set()
        for group in self.groups.values():
            self._take(self._untag(group.start(now)))
            started.update(m.name for m in group.members)
        for rt in self.runtimes:
            kept = self._carried.get(rt.idx)
            if kept is not None:
                # Keep its timers; a master advertises at once, so the reload costs the
                # backups no more than its own duration (keepalived does the same).
                for kind, deadline in kept.timers.items():
                    self.wheel.schedule(rt.timer_id(kind), deadline)
                if rt.fsm.state == State.MASTER:
                    self._pending.append((rt, A.SendAdvert(rt.fsm.priority)))
            elif rt.name not in started:
                self._take([(rt, a) for a in rt.fsm.start(now)])
        for rt in self.runtimes:
            if not rt.link.up and not rt.cfg.dont_track_primary:
                self._input(rt, lambda g, m: g.set_fault(now, m, True, "interface down"),
                            lambda m: m.set_fault(now, True, "interface down"))
        self._sync(self.runtimes)
        self._flush()

    def _now(self) -> int:
        """The monotonic clock for an input, remembered: an escalated advert is given
        its arrival time, but never one earlier than an input already handled."""
        self._clock = now = now_ns()
        return now

    def _untag(self, tagged: Iterable[Tagged]) -> list[tuple[Runtime | str, A.Action]]:
        return [(self.by_name.get(t.name, t.name), t.action) for t in tagged]

    def _input(self, rt: Runtime, via_group, direct) -> None:
        """One state machine input (through its sync group if it has one)."""
        members = [self.by_name[m.name] for m in rt.group.members] if rt.group else [rt]
        for m in members:
            self.fp.sync_back(m.idx, m.fsm)
        if rt.group is not None:
            self._take(self._untag(via_group(rt.group, rt.fsm)))
        else:
            self._take([(rt, a) for a in direct(rt.fsm)])
        self._sync(members)

    def _sync(self, rts: Iterable[Runtime]) -> None:
        """Let each instance's fast-path entry follow its state machine."""
        for rt in rts:
            if self._stopping:
                self.fp.clear(rt.idx)
                continue
            # Unicast: a priority-0 advert must come from a listed peer (checked in
            # Python), so only multicast instances let C take it.
            mode = sync_from_fsm(self.fp, rt.idx, rt.fsm, rt.fast_packets,
                                 stop_in_c=not rt.cfg.is_unicast)
            if mode == fastpath_mod.MODE_BACKUP and not rt.fast_backup:
                self.fp.clear(rt.idx)

    def _after_timer(self, now: int, escalated: list[tuple[int, int]]) -> None:
        """The timerfd's wake-up (io.timer_wake) left work for Python: timers for the
        state machines (C has sent the steady and takeover adverts already), or the
        actions of adverts it drained from held sockets, or drop samples."""
        self.breather.maybe(now_ns())  # C's mass takeover sends came first
        self._clock = max(self._clock, now)
        self._log_drop_samples("receive")
        due = self._escalated_timers(now, escalated)
        self._install_takeover_vips()
        self._run_timers(due)
        self._flush()

    def _expire_and_send(self, now: int) -> list[tuple[int, int, int]]:
        """Due timers: C sends the steady and takeover adverts at once; instances it
        took over queue for their VIPs; the rest is returned for the state machines."""
        self.breather.maybe(now)
        escalated = self.fp.expire(now)
        self.io.send_outbox(self.fp, self.tx_by_gid)
        return self._escalated_timers(now, escalated)

    def _escalated_timers(self, now: int, escalated: list[tuple[int, int]]) -> list[tuple[int, int, int]]:
        took_over = self.fp.took_over
        self._vip_queue.extend(self.runtimes[idx] for idx, kind in escalated
                               if kind == _MASTER_DOWN and took_over(idx))
        return [(idx, kind, now) for idx, kind in escalated]

    def _install_takeover_vips(self) -> None:
        """C has sent these instances' first adverts as master, which their state
        machines promised (takeover_priority), so their VIPs follow right behind, as
        keepalived adds them right after the advert, before any state machine runs
        (their AddVips then finds them installed); then their first GARP bursts, which
        is what moves the hosts' traffic (_become_master's SendGarp, dropped from the
        machine's actions in _run_timers). Every VIP before any GARP, every first GARP
        before any repeat; in slices, with C's sends between (VIPs queued before a
        takeover's advert go first, TAKEOVER_VIP_BUDGET_NS); timers found due meanwhile
        wait in _due_later."""
        while self._vip_queue or self._garp_queue or self._garp_repeats:
            if self._vip_queue:
                # First come, first served: the VIPs of instances that have taken over
                # go before newer takeovers' adverts, within TAKEOVER_VIP_BUDGET_NS.
                until = now_ns() + TAKEOVER_VIP_BUDGET_NS
                while self._vip_queue:
                    batch = self._vip_queue[:PUMP_EVERY]
                    del self._vip_queue[:PUMP_EVERY]
                    self._change_vips(batch, add=True)
                    self._garp_queue.extend(batch)
                    if now_ns() >= until:
                        break
            else:
                # Every instance's first GARP round, then the repeats: one sendmmsg
                # per interface per round for a slice.
                first = bool(self._garp_queue)
                queue = self._garp_queue if first else self._garp_repeats
                batch = queue[:PUMP_EVERY]
                del queue[:PUMP_EVERY]
                by_repeat: dict[int, list[Runtime]] = {}
                for rt in batch:
                    repeat = rt.fsm.params.garp_master_repeat
                    if repeat and rt.garp_ips and rt.vips_installed and (first or repeat > 1):
                        by_repeat.setdefault(repeat, []).append(rt)
                for repeat, rts in by_repeat.items():
                    self.garp.send_bursts([(rt.link, rt.garp_ips) for rt in rts],
                                          1 if first else repeat - 1)
                    if first:
                        for rt in rts:
                            rt.takeover_garp_sent = True
                        self._garp_repeats.extend(rt for rt in rts if repeat > 1)
            if not self._stopping:
                self._due_later.extend(self._expire_and_send(self._now()))

    def _run_timers(self, due: list[tuple]) -> None:
        """Escalated timers (and adverts read by a pump) into their state machines, in
        the order C handed them over; C's sends are kept on time meanwhile (a mass
        takeover is a long run of Python)."""
        i = 0
        while i < len(due):
            item = due[i]
            if len(item) == 4:
                key, esc, arrival, _ = item
                self._escalated_advert(key, esc, arrival)
            else:
                idx, kind, now = item
                rt = self.runtimes[idx]
                kind = TimerKind(kind)
                mark = len(self._pending)
                self._input(rt, lambda g, m: g.timer(now, m, kind), lambda m: m.timer(now, kind))
                if rt.takeover_garp_sent:
                    self._drop_takeover_garp(rt, mark)
            i += 1
            if i % PUMP_EVERY == 0:
                self._send_due()
                due.extend(self._due_later)
                self._due_later = []

    def _drop_takeover_garp(self, rt: Runtime, mark: int) -> None:
        """The machine's first SendGarp after `mark` is the one already sent with the
        VIPs; if its input did not take it over (a stale expiry), nothing is dropped."""
        rt.takeover_garp_sent = False
        for i in range(mark, len(self._pending)):
            who, action = self._pending[i]
            if who is rt and isinstance(action, A.SendGarp):
                del self._pending[i]
                return

    def _send_due(self) -> None:
        """Between slices of Python work: C reads the sockets (steady adverts and a
        stopping master's priority 0 re-arm there; others wait in _due_later) and
        sends what fell due meanwhile (steady adverts, takeover adverts, and right
        behind those the VIPs); timers that need Python wait in _due_later too, after
        the adverts read first. Never called while a receive batch is being handled."""
        if self._stopping:
            return
        for key, (sock, _table, _by_vrid, family, gid) in self.rx.items():
            try:
                self.io.receive(self.fp, gid, sock, family, now_ns(), self._defer[key])
            except OSError as exc:
                log.warning("receive on %s failed: %s", key[0], exc)
        self._due_later.extend(self._expire_and_send(self._now()))
        self._install_takeover_vips()

    def _after_receive(self, key: tuple, error: OSError | None) -> None:
        """What a receive wake-up (io.receive_wake) left for Python: the actions of
        escalated adverts, drop samples to log, or a receive error."""
        if error is not None:
            log.warning("receive on %s failed: %s", key[0], error)
        self._log_drop_samples(key[0])
        if self._pending or self._due_later:
            self._flush()
        else:
            self._arm_timerfd()

    def _log_drop_samples(self, where: str) -> None:
        for reason, gid, vrid, src, count in self.fp.take_drop_samples():
            ifname = next((k[0] for k, rx in self.rx.items() if rx[4] == gid), where)
            what = f"vrid {vrid} from {ipaddress.ip_address(src)}" if src else "packet"
            log.info("%s on %s: %s (%d dropped since the last report)", reason.name, ifname, what, count)

    def _defer_advert(self, key: tuple, esc, arrival: int) -> None:
        self._due_later.append((key, esc, arrival, None))

    def _escalated_advert(self, key: tuple, esc, arrival: int) -> None:
        """An advert the fast path handed over, with its arrival time (kernel stamp):
        a priority-0 advert starts Skew_Time from when it came, not from when it was
        read; never earlier than an input already handled."""
        at = self._clock = max(arrival, self._clock)
        _idx, reason, adv = esc
        rt = self.rx[key][2].get(adv.vrid) if adv is not None else None
        if rt is None:
            return
        if reason == Reason.ADDR_LIST_MISMATCH:
            self._count_drop(reason, adv, key)
        if rt.cfg.is_unicast and not self._unicast_source_ok(rt, adv):
            return
        self._input(rt, lambda g, m: g.advert(at, m, adv), lambda m: m.advert(at, adv))

    def _unicast_source_ok(self, rt: Runtime, adv) -> bool:
        """A unicast instance accepts only its listed peers, within their TTL bounds.

        keepalived checks the source only with check_unicast_src (or when a peer has
        min_ttl/max_ttl); fastvrrp always does, since an unlisted sender of a unicast
        advert is a misconfiguration at best.
        """
        for p in rt.cfg.unicast_peers:
            if p.address.packed == adv.src:
                if adv.hop_limit != -1 and not p.min_ttl <= adv.hop_limit <= p.max_ttl:
                    self.drops["unicast ttl"] += 1
                    return False
                return True
        self.drops["unicast source not a peer"] += 1
        return False

    def _count_drop(self, reason: int, adv, key: tuple) -> None:
        name = Reason(reason).name
        self.drops[name] += 1
        # Logged on the first occurrence and then every 1000th, so a flood stays cheap.
        if self.drops[name] % 1000 == 1:
            where = f"vrid {adv.vrid} from {ipaddress.ip_address(adv.src)}" if adv else "packet"
            log.info("%s on %s: %s (%d so far)", name, key[0], where, self.drops[name])

    def tracking_changed(self, name: str, faults: frozenset[str], priority: int) -> None:
        """A tracker changed an instance's outcome (track_interface/script/file)."""
        rt = self.by_name.get(name)
        if rt is None or self._stopping:
            return
        now = self._now()
        for reason in sorted(faults - rt.track_faults):
            self._input(rt, lambda g, m: g.set_fault(now, m, True, reason),
                        lambda m: m.set_fault(now, True, reason))
        for reason in sorted(rt.track_faults - faults):
            self._input(rt, lambda g, m: g.set_fault(now, m, False, reason),
                        lambda m: m.set_fault(now, False, reason))
        rt.track_faults = faults
        if priority != rt.fsm.priority:
            self._input(rt, lambda g, m: g.set_priority(now, m, priority),
                        lambda m: m.set_priority(now, priority))
        self._flush()

    def link_state(self, ifname: str) -> bool:
        link = self.vips.resolve(ifname)
        return link is not None and link.up

    def _on_netlink(self) -> None:
        now = self._now()
        for event in self.monitor.read():
            if not isinstance(event, LinkEvent):
                continue
            link = event.link
            up = link.up and not event.deleted
            if self.on_link is not None:
                self.on_link(link.ifname, up)
            for rt in self.runtimes:
                if rt.link.ifindex != link.ifindex or rt.cfg.dont_track_primary:
                    continue
                was_up = rt.link.up
                rt.link = link
                if up != was_up:
                    log.info("%s: interface %s %s", rt.name, link.ifname, "up" if up else "down")
                    self._input(rt, lambda g, m: g.set_fault(now, m, not up, "interface down"),
                                lambda m: m.set_fault(now, not up, "interface down"))
        self._flush()

    # ------------------------------------------------------------------ actions

    def _take(self, out: list[tuple[Runtime | str, A.Action]]) -> None:
        """Adverts and timer actions now — an advert is what the network waits for,
        and the fast path may re-arm the same timers before the batch ends; the rest
        waits for _flush."""
        for who, action in out:
            if isinstance(action, A.SendAdvert):
                self._send_advert(who, action.priority)
            elif isinstance(action, A.ArmTimer):
                self.wheel.schedule(who.timer_id(action.kind), action.deadline)
            elif isinstance(action, A.CancelTimer):
                self.wheel.cancel(who.timer_id(action.kind))
            else:
                self._pending.append((who, action))

    def _flush(self) -> None:
        """Carry out the batch's actions in the order the network should see them,
        then the timers that fell due meanwhile, until nothing is left."""
        while True:
            self._flush_once()
            if not self._due_later:
                break
            due, self._due_later = self._due_later, []
            self._run_timers(due)
        self._arm_timerfd()

    def _arm_timerfd(self) -> None:
        """Arm the timerfd for the wheel's next deadline (or a held socket's next
        drain), but only when that is earlier than what it is armed for: a steady
        backup pushes its deadline later with every advert, and waking once early
        (nothing due, re-arm) is cheaper than a timerfd_settime per received batch."""
        self.io.rearm()

    def _flush_once(self) -> None:
        out, self._pending = self._pending, []
        if not out:
            return
        garps, later = [], []
        vip_actions = []
        for who, action in out:
            if isinstance(action, A.SendAdvert):  # queued by start() for carried masters
                self._send_advert(who, action.priority)
            elif isinstance(action, (A.AddVips, A.RemoveVips)):
                vip_actions.append((who, action))
            elif isinstance(action, A.SendGarp):
                garps.append((who, action.repeat))
            else:
                later.append((who, action))
        removes, adds = net_vip_changes(vip_actions)
        # Slices with C's sends in between: a thousand takeovers never hold up an
        # advert for longer than one slice.
        for i in range(0, len(removes), PUMP_EVERY):
            self._send_due()
            self._change_vips(removes[i:i + PUMP_EVERY], add=False)
        adds = [rt for rt in adds if not rt.vips_installed]  # a takeover's are in
        for i in range(0, len(adds), PUMP_EVERY):
            self._send_due()
            self._change_vips(adds[i:i + PUMP_EVERY], add=True)
        for i, (rt, repeat) in enumerate(garps):
            if i % PUMP_EVERY == 0:
                self._send_due()
            if rt.garp_ips and rt.vips_installed:
                self.garp.send_burst(rt.link, rt.garp_ips, repeat)
        for i, (who, action) in enumerate(later):
            if i % PUMP_EVERY == 0:
                self._send_due()
            self._report(who, action)

    def _send_advert(self, rt: Runtime, priority: int) -> None:
        sock = self.tx_by_gid[rt.tx_gid]
        for sockaddr, enc in rt.adverts:
            enc.priority = priority
            try:
                sock.sendto(enc.packet(), sockaddr)
            except OSError as exc:
                self.drops["send error"] += 1
                if self.drops["send error"] % 1000 == 1:
                    log.warning("%s: sending advert to %s failed: %s", rt.name, sockaddr[0], exc)
            # The fast path sends this encoder's packet as is: keep it at the
            # machine's priority (a priority-0 advert is a one-off).
            enc.priority = rt.fsm.priority

    def _change_vips(self, rts: list[Runtime], add: bool) -> None:
        specs = [s for rt in rts for s in rt.vips]
        for rt in rts:
            rt.vips_installed = add
        if not specs:
            return
        result = self.vips.add(specs) if add else self.vips.remove(specs)
        for failure in result.failed:
            log.error("%s VIP %s failed: %s", "adding" if add else "removing",
                      failure.spec.address, failure.message)

    def _report(self, who: Runtime | str, action: A.Action) -> None:
        name = who.name if isinstance(who, Runtime) else who
        if isinstance(action, A.Transition):
            prio = who.fsm.priority if isinstance(who, Runtime) else 0
            log.info("%s: %s -> %s (prio %d, %s)", name, action.old.name, action.new.name, prio,
                     action.reason)
        self.notify(who, action)

    # ------------------------------------------------------------------ shutdown

    def hand_over(self, new_config: Config) -> dict[tuple, Carried]:
        """For a reload: stop listening, keep the machines of instances the new config
        has unchanged (their state, timers and VIPs carry over) and shut the others
        down as at exit (priority 0 from masters, VIPs removed, STOP notified)."""
        wanted = {reload_key(i): i for i in new_config.instances}
        keep: dict[tuple, Carried] = {}
        for rt in self.runtimes:
            new = wanted.get(reload_key(rt.cfg))
            if new is not None and new == rt.cfg and rt.group is None and not self._stopping:
                self.fp.sync_back(rt.idx, rt.fsm)
                deadlines = {k: self.wheel.deadline(rt.timer_id(k)) for k in TimerKind}
                timers = {k: d for k, d in deadlines.items() if d is not None}
                keep[reload_key(rt.cfg)] = Carried(rt.cfg, rt.fsm, timers, rt.vips_installed)
        self.shutdown(keep={id(c.fsm) for c in keep.values()})
        return keep

    def shutdown(self, keep: set[int] = frozenset()) -> None:
        """keepalived's vrrp_terminate_phase1: masters send priority 0, VIPs go, STOP.
        Machines whose id() is in `keep` are left running (reload)."""
        if self._stopping:
            return
        self._stopping = True
        now = self._now()
        grouped = set()
        for rt in self.runtimes:
            self.fp.sync_back(rt.idx, rt.fsm)
            self.fp.clear(rt.idx)
        # The priority-0 adverts leave here (_take sends at once): the backups' clock
        # starts now, so nothing else comes before them. No input can interleave:
        # this runs inside one callback, and the readers go before it returns.
        for group in self.groups.values():
            self._take(self._untag(group.shutdown(now)))
            grouped.update(m.name for m in group.members)
        for rt in self.runtimes:
            if rt.name not in grouped and id(rt.fsm) not in keep:
                self._take([(rt, a) for a in rt.fsm.shutdown(now)])
        if self.loop is not None:
            self.io.detach()
            self.loop.remove_reader(self.monitor.fileno())
        self._flush()
        # VIPs the machines did not remove themselves (a sync group's members are
        # shut down as a group) still go: nothing of ours stays behind.
        leftover = [rt for rt in self.runtimes if rt.vips_installed and id(rt.fsm) not in keep]
        if leftover:
            self._change_vips(leftover, add=False)

    def close(self) -> None:
        for sock, *_ in self.rx.values():
            sock.close()
        self.rx.clear()
        for sock in self.tx_by_gid.values():
            sock.close()
        for res in (self.timerfd, self.monitor, self.vips, self.garp):
            if res is not None:
                res.close()

    def status(self) -> dict:
        """What `fastvrrp status` shows: states, and how much stayed in C."""
        python_inputs = Counter()
        instances = {}
        for rt in self.runtimes:
            c = rt.fsm.counters
            python_inputs.update({k: getattr(c, k) for k in ("advert", "timer", "set_priority",
                                                             "set_fault", "start", "shutdown")})
            instances[rt.name] = {"state": rt.fsm.state.name, "priority": rt.fsm.priority,
                                  "vrid": rt.cfg.vrid, "interface": rt.link.ifname}
        fp = self.fp.counters() if self.fp is not None else {}
        return {
            "instances": instances,
            "python_inputs": dict(python_inputs),
            "fast_path": {k: (v if not isinstance(v, dict) else {r.name: n for r, n in v.items() if n})
                          for k, v in fp.items()},
            "socket_io": {"received": self.io.received, "sent": self.io.sent,
                          "send_errors": self.io.send_errors, "recv_calls": self.io.recv_calls,
                          "send_calls": self.io.send_calls},
            "drops_in_python": dict(self.drops),
        }
