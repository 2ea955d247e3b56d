"""From the config model to run-time instances: state machine parameters, receive
expectations, pre-encoded adverts, VIP specs and the primary address.

Pure mapping except `primary_address`, which is given the interface's addresses as
the kernel reported them (the caller reads them through netlink).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from fastvrrp.config.model import AuthType, Config, Instance, OldUnicastChecksum
from fastvrrp.net.vips import AddrInfo, LinkInfo, VipSpec
from fastvrrp.proto.actions import TimerKind
from fastvrrp.proto.fsm import InstanceFsm, InstanceParams
from fastvrrp.proto.packet import AUTH_NONE, AUTH_PASS, ChecksumForm
from fastvrrp.proto.sync import SyncGroup

NS_PER_S = 1_000_000_000
NS_PER_CS = 10_000_000
TIMER_KINDS = len(TimerKind)
RT_SCOPE_LINK = 253


class StartupError(Exception):
    """An instance cannot run on this host as configured (missing interface, no address)."""


def _ns(seconds: float) -> int:
    return round(seconds * NS_PER_S)


# How many adverts of one interval may share a phase (one wake-up, one sendmmsg).
# The kernel takes ~12 us per advert here (veth, bridge, two receivers: the scale
# bench's floor sender), so 16 make a burst of about 0.2 ms and the send jitter
# stays far below the 2 ms issue 7 allows (p99 0.3 ms; 64 per phase: 0.96 ms), while
# a thousand 0.1 s masters wake ~640 times a second. All of them on one phase made
# one burst of 15-25 ms, and jitter p99 of 10-16 ms (bench/README.md, scale).
ADVERTS_PER_PHASE = 16


def advert_phases(instances: Sequence[Instance]) -> list[int]:
    """Each instance's advert phase (ns into its interval, InstanceParams.adver_phase_ns).

    The instances of one advert interval on one interface are cut into
    ceil(n / ADVERTS_PER_PHASE) even chunks, and the chunks of the interval spread
    evenly over it: a phase's adverts leave in one sendmmsg. Deterministic in the
    config, so both routers of a pair give a VRID the same phase.
    """
    chunks: dict[int, dict[str, list[int]]] = {}  # interval cs -> interface -> instances
    for idx, inst in enumerate(instances):
        chunks.setdefault(inst.advert_int_cs, {}).setdefault(inst.interface or "", []).append(idx)
    phases = [0] * len(instances)
    for cs, by_interface in chunks.items():
        placed: list[tuple[int, int]] = []  # (chunk number, instance)
        for members in by_interface.values():
            n = len(members)
            k = -(-n // ADVERTS_PER_PHASE)
            first = placed[-1][0] + 1 if placed else 0
            placed.extend((first + rank * k // n, idx) for rank, idx in enumerate(members))
        total = placed[-1][0] + 1
        interval = cs * NS_PER_CS
        for chunk, idx in placed:
            phases[idx] = chunk * interval // total
    return phases


def instance_params(inst: Instance, config: Config, primary: bytes,
                    adver_phase_ns: int | None = None) -> InstanceParams:
    g = config.globals
    return InstanceParams(
        name=inst.name,
        vrid=inst.vrid,
        primary=primary,
        version=inst.version,
        family=int(inst.family),
        priority=inst.priority,
        advert_int_cs=inst.advert_int_cs,
        initial_state=inst.state.value,
        preempt=inst.preempt,
        preempt_delay_ns=_ns(inst.preempt_delay_s),
        down_timer_adverts=inst.down_timer_adverts,
        lower_prio_no_advert=inst.lower_prio_no_advert,
        higher_prio_send_advert=inst.higher_prio_send_advert,
        garp_master_delay_ns=_ns(inst.garp_master_delay_s),
        garp_master_repeat=inst.garp_master_repeat,
        garp_master_refresh_ns=_ns(inst.garp_master_refresh_s),
        garp_master_refresh_repeat=inst.garp_master_refresh_repeat,
        garp_lower_prio_delay_ns=_ns(inst.garp_lower_prio_delay_s),
        garp_lower_prio_repeat=inst.garp_lower_prio_repeat,
        startup_delay_ns=_ns(g.vrrp_startup_delay_s),
        notify_priority_changes=inst.notify_priority_changes,
        adver_phase_ns=adver_phase_ns,
    )


def send_checksum_form(inst: Instance) -> int:
    if inst.version == 2:
        return ChecksumForm.V2
    if inst.family == 4 and inst.v3_checksum_as_v2:
        return ChecksumForm.PLAIN
    if inst.family == 4 and inst.is_unicast and inst.old_unicast_checksum is OldUnicastChecksum.ALWAYS:
        return ChecksumForm.OLD_UNICAST
    return ChecksumForm.PSEUDO


def accepted_checksum_forms(inst: Instance) -> int:
    """What we accept: our own form, plus (keepalived's OLD_CHKSUM_COMPAT) the pre-1.3.7
    unicast form unless `old_unicast_checksum never`. keepalived switches its own
    sending form when it detects an old peer; fastvrrp accepts both and keeps sending
    the configured one."""
    forms = send_checksum_form(inst)
    if (inst.version == 3 and inst.family == 4 and inst.is_unicast
            and inst.old_unicast_checksum is OldUnicastChecksum.AUTO):
        forms |= ChecksumForm.OLD_UNICAST
    return forms


def auth_of(inst: Instance) -> tuple[int, bytes]:
    if inst.version == 2 and inst.auth_type is AuthType.PASS:
        return AUTH_PASS, inst.auth_pass
    return AUTH_NONE, b""


def advertised_addresses(inst: Instance) -> bytes:
    """The packed address list of the advert: virtual_ipaddress, never the excluded ones."""
    return b"".join(v.address.ip.packed for v in inst.vips)


def expect_kwargs(inst: Instance, config: Config) -> dict[str, Any]:
    auth_type, auth_data = auth_of(inst)
    skip = inst.skip_check_adv_addr or config.globals.vrrp_skip_check_adv_addr
    return dict(
        family=int(inst.family),
        unicast=inst.is_unicast,
        auth_type=auth_type,
        auth_data=auth_data,
        interval=inst.advert_int_cs // 100 if inst.version == 2 else None,
        addresses=None if skip else advertised_addresses(inst),
        checksum_forms=accepted_checksum_forms(inst),
    )


def vip_specs(inst: Instance, default_ifname: str) -> tuple[VipSpec, ...]:
    return tuple(VipSpec.from_config(v, default_ifname) for v in (*inst.vips, *inst.excluded_vips))


def primary_address(inst: Instance, addrs: list[AddrInfo], ours: set[ipaddress._BaseAddress]) -> bytes:
    """keepalived's choice when no unicast_src_ip/mcast_src_ip is given
    (keepalived_netlink.c, ignore_address_if_ours_or_link_local): IPv4, the first
    address the kernel lists on the interface that is not a VIP of any instance;
    IPv6, the interface's link-local address."""
    if inst.source_ip is not None:
        return inst.source_ip.packed
    for a in addrs:
        ip = a.address.ip
        if ip.version != int(inst.family) or ip in ours:
            continue
        if inst.family == 6 and a.scope != RT_SCOPE_LINK:
            continue
        return ip.packed
    kind = "IPv4 address" if inst.family == 4 else "IPv6 link-local address"
    raise StartupError(f"{inst.name}: interface {inst.interface} has no {kind} to send from")


@dataclass(eq=False)
class Runtime:
    """One vrrp_instance as it runs: its machine, where it sends and receives."""

    idx: int
    cfg: Instance
    fsm: InstanceFsm
    link: LinkInfo
    primary: bytes
    vips: tuple[VipSpec, ...]
    garp_ips: tuple[ipaddress._BaseAddress, ...]
    rx_key: tuple = ()
    tx_gid: int = -1
    # (destination sockaddr, encoder) per destination: the multicast group, or each peer.
    adverts: list[tuple[tuple, Any]] = field(default_factory=list)
    # The same encoders for the fast path: (send gid, encoder, packed sockaddr).
    fast_packets: list[tuple[int, Any, bytes]] = field(default_factory=list)
    fast_backup: bool = True  # False: every advert of this backup goes through Python
    group: SyncGroup | None = None
    vips_installed: bool = False
    # Its takeover's first GARP burst went out right behind its VIPs (the router's
    # _install_takeover_vips); the state machine's SendGarp for it is dropped.
    takeover_garp_sent: bool = False
    track_faults: frozenset[str] = frozenset()  # fault reasons from tracking

    @property
    def name(self) -> str:
        return self.cfg.name

    def timer_id(self, kind: int) -> int:
        return self.idx * TIMER_KINDS + kind


def reload_key(inst: Instance) -> tuple:
    """How keepalived matches an old instance to a new one on reload (vrrp.c
    vrrp_exist): VRID, family, interface, and the unicast source or multicast group —
    not the name."""
    where = ("unicast", inst.source_ip) if inst.is_unicast else ("multicast", inst.mcast_dst_ip)
    return (inst.vrid, int(inst.family), inst.interface, where)


@dataclass(eq=False)
class Carried:
    """An instance's running machine handed from the old config to the new one."""

    cfg: Instance
    fsm: InstanceFsm
    timers: dict[TimerKind, int]
    vips_installed: bool
