"""From the config model to run-time instances: state machine parameters, receive
expectations, pre-encoded adverts, VIP specs and the primary address.

Pure mapping except `primary_address`, which is given the interface's addresses as
the kernel reported them (the caller reads them through netlink).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Any

from fastvrrp.config.model import AuthType, Config, Instance, OldUnicastChecksum
from fastvrrp.net.vips import AddrInfo, LinkInfo, VipSpec
from fastvrrp.proto.actions import TimerKind
from fastvrrp.proto.fsm import InstanceFsm, InstanceParams
from fastvrrp.proto.packet import AUTH_NONE, AUTH_PASS, ChecksumForm
from fastvrrp.proto.sync import SyncGroup

NS_PER_S = 1_000_000_000
TIMER_KINDS = len(TimerKind)
RT_SCOPE_LINK = 253


class StartupError(Exception):
    """An instance cannot run on this host as configured (missing interface, no address)."""


def _ns(seconds: float) -> int:
    return round(seconds * NS_PER_S)


def instance_params(inst: Instance, config: Config, primary: bytes) -> InstanceParams:
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
