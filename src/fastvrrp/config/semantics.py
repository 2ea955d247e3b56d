"""Checks across sections: sync-group membership, VRID uniqueness, unused scripts."""

from __future__ import annotations

from collections.abc import Sequence

from fastvrrp.config.diagnostics import Diagnostics
from fastvrrp.config.instance_section import InstanceDraft
from fastvrrp.config.model import Instance, VrrpScript
from fastvrrp.config.sync_group_section import SyncGroupDraft


def assign_sync_groups(
    groups: Sequence[SyncGroupDraft], instances: Sequence[InstanceDraft], diag: Diagnostics
) -> dict[str, SyncGroupDraft]:
    """Instance name -> its group; members must exist and be in one group only (vrrp_sync.c)."""
    names = {d.name for d in instances}
    membership: dict[str, SyncGroupDraft] = {}
    for group in groups:
        count = 0
        for member, location in group.members:
            if member not in names:
                diag.error(location, f"sync group {group.name}: no vrrp_instance named '{member}'")
                continue
            other = membership.get(member)
            if other is not None:
                if other is group:
                    diag.warning(location, f"sync group {group.name} lists {member} twice")
                else:
                    diag.error(location, f"sync group {group.name}: {member} is already in sync group {other.name}")
                continue
            membership[member] = group
            count += 1
        if count == 1:
            diag.warning(group.location, f"sync group {group.name} has only one instance; this probably isn't what you want")
    return membership


def check_vrid_conflicts(instances: Sequence[Instance], diag: Diagnostics) -> None:
    """A VRID must be unique per (interface, family, multicast group) -- keepalived check_vrid_conflicts().

    Unicast and multicast are separate VRID spaces. Two unicast instances conflict only when
    they could see each other's adverts: same interface (or one without), same configured
    source (or one unknown) and at least one peer in common.
    """
    multicast: dict[tuple[object, ...], Instance] = {}
    unicast: dict[tuple[int, int], list[Instance]] = {}
    for inst in instances:
        if not inst.is_unicast:
            key = (inst.interface, inst.family, inst.mcast_dst_ip, inst.vrid)
            first = multicast.get(key)
            if first is not None:
                diag.error(
                    inst.location,
                    f"vrrp_instance {inst.name}: virtual_router_id {inst.vrid} is already used by "
                    f"{first.name} on {inst.interface} (IPv{inst.family.value}, {first.location})",
                )
            else:
                multicast[key] = inst
            continue
        same = unicast.setdefault((inst.family, inst.vrid), [])
        for other in same:
            if inst.interface and other.interface and inst.interface != other.interface:
                continue
            if inst.source_ip and other.source_ip and inst.source_ip != other.source_ip:
                continue
            shared = {p.address for p in inst.unicast_peers} & {p.address for p in other.unicast_peers}
            if shared:
                diag.error(
                    inst.location,
                    f"vrrp_instance {inst.name}: virtual_router_id {inst.vrid} is already used by "
                    f"{other.name} towards the same unicast peer {min(shared)} ({other.location})",
                )
                break
        same.append(inst)


def warn_unused_scripts(scripts: Sequence[VrrpScript], used: set[str], diag: Diagnostics) -> None:
    for script in scripts:
        if script.name not in used:
            diag.warning(script.location, f"vrrp_script {script.name} is not used by any instance or sync group")
