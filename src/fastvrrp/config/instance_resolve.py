"""InstanceDraft -> Instance: keepalived's defaults, derived values and per-instance checks.

Follows vrrp_complete_instance() in keepalived/vrrp/vrrp.c. Where keepalived corrects a
setting and carries on with a well-defined result (rounding advert_int, clearing nopreempt
for a MASTER, ...) we do the same and warn; where it rejects the instance, or the issue's
contract asks for a check (IPv6 only with v3, auth only with v2, strict-mode rules), we
report an error.
"""

from __future__ import annotations

from collections.abc import Mapping

from fastvrrp.config.diagnostics import Diagnostics
from fastvrrp.config.instance_section import US_PER_S, InstanceDraft
from fastvrrp.config.model import (
    ADVERT_INT_DEFAULT_CS,
    DOWN_TIMER_ADVERTS_DEFAULT,
    PRIORITY_DEFAULT,
    PRIORITY_OWNER,
    VRRP_IP_TTL,
    AuthType,
    Family,
    Globals,
    InitialState,
    Instance,
    Notifies,
    Script,
    TrackedFile,
    TrackedInterface,
    TrackedScript,
    TrackFile,
    VrrpScript,
)
from fastvrrp.config.sync_group_section import SyncGroupDraft
from fastvrrp.config.tracking_section import TrackRef

US_PER_CS = 10_000
V3_MAX_ADVERT_CS = 4095  # 12-bit field
# Bytes before the address list in an advert on Ethernet: MAC, IP header, VRRP header.
_ETHER, _IPV4, _IPV6, _VRRP, _V2_AUTH, _AH = 14, 20, 40, 8, 8, 24
DEFAULT_MTU = 1500
MAX_ADDRESSES = 255


def max_advertised_addresses(family: Family, version: int, auth: AuthType) -> int:
    """How many VIPs fit in one advert at MTU 1500 (keepalived: excess become eVIPs)."""
    if family is Family.IPV4:
        header = _ETHER + _IPV4 + _VRRP
        if version == 2:
            header += _V2_AUTH + (_AH if auth is AuthType.AH else 0)
        return min(MAX_ADDRESSES, (DEFAULT_MTU - header) // 4)
    return min(MAX_ADDRESSES, (DEFAULT_MTU - (_ETHER + _IPV6 + _VRRP)) // 16)


def round_advert_int(draft: InstanceDraft, version: int, diag: Diagnostics) -> int:
    """Centiseconds after keepalived's rounding for the instance's version."""
    loc = draft.where("advert_int")
    us = draft.advert_int_us
    if us is None:
        return ADVERT_INT_DEFAULT_CS
    shown = f"{us / US_PER_S:g}"
    if version == 2:
        if us % US_PER_S:
            seconds = max(1, (us + US_PER_S // 2) // US_PER_S)
            diag.warning(loc, f"VRRPv2 advert_int must be whole seconds; {shown} is rounded to {seconds}")
            return seconds * 100
        return us // US_PER_CS
    if us >= (V3_MAX_ADVERT_CS + 1) * US_PER_CS:
        diag.error(loc, f"advert_int {shown} is out of range for VRRPv3 (0.01-40.95 s)")
        return V3_MAX_ADVERT_CS
    if us % US_PER_CS:
        cs = max(1, (us + US_PER_CS // 2) // US_PER_CS)
        diag.warning(loc, f"VRRPv3 advert_int is in units of 10 ms; {shown} is rounded to {cs / 100:g}")
        return cs
    return us // US_PER_CS


def resolve_script_refs(
    refs: list[TrackRef], scripts: Mapping[str, VrrpScript], owner: str, diag: Diagnostics
) -> list[TrackedScript]:
    out: list[TrackedScript] = []
    for ref in refs:
        script = scripts.get(ref.name)
        if script is None:
            diag.error(ref.location, f"{owner}: track_script '{ref.name}' is not a defined vrrp_script")
            continue
        weight = script.weight if ref.weight is None else ref.weight
        reverse = script.weight_reverse if ref.reverse is None else ref.reverse
        out.append(TrackedScript(ref.name, weight, reverse))
    return out


def resolve_file_refs(
    refs: list[TrackRef], files: Mapping[str, TrackFile], owner: str, diag: Diagnostics
) -> list[TrackedFile]:
    out: list[TrackedFile] = []
    for ref in refs:
        tracked = files.get(ref.name)
        if tracked is None:
            diag.error(ref.location, f"{owner}: track_file '{ref.name}' is not a defined track_file")
            continue
        weight = tracked.weight if ref.weight is None else ref.weight
        reverse = tracked.weight_reverse if ref.reverse is None else ref.reverse
        out.append(TrackedFile(ref.name, weight, reverse))
    return out


def resolve_instance(
    d: InstanceDraft,
    g: Globals,
    group: SyncGroupDraft | None,
    scripts: Mapping[str, VrrpScript],
    track_files: Mapping[str, TrackFile],
    diag: Diagnostics,
) -> Instance | None:
    name = d.name
    where = d.where
    errors_before = len(diag.errors)
    strict = g.vrrp_strict if d.strict_mode is None else d.strict_mode

    family = d.family
    if d.native_ipv6:
        if family is Family.IPV4:
            diag.error(where("native_ipv6"), f"native_ipv6 cannot be used with IPv4 addresses ({d.family_source})")
        family = Family.IPV6
    if family is None:
        family = Family.IPV4  # keepalived: only possible without any address

    if family is Family.IPV6:
        if d.version == 2:
            diag.error(where("version"), "VRRPv2 cannot carry IPv6 addresses; IPv6 instances use version 3")
        version = 3
    else:
        version = d.version or g.vrrp_version

    # A keyword that was present but invalid has been reported already: no second error.
    vrid = d.vrid
    if vrid is None and "virtual_router_id" not in d.mentioned:
        diag.error(d.location, f"vrrp_instance {name} has no virtual_router_id")

    unicast = bool(d.unicast_peers)
    if d.interface is None and "interface" not in d.mentioned:
        if not unicast:
            diag.error(d.location, f"vrrp_instance {name} has no interface")
        elif d.source_ip is None:
            diag.error(d.location, f"vrrp_instance {name}: a unicast instance without interface needs unicast_src_ip")
        elif family is Family.IPV6 and d.source_ip.is_link_local:
            diag.error(d.location, f"vrrp_instance {name}: without interface, unicast_src_ip must not be link-local")

    vips = list(d.vips)
    excluded = list(d.excluded_vips)
    if not vips:
        if version == 3 or strict:
            why = "VRRPv3" if version == 3 else "strict mode"
            diag.error(d.location, f"vrrp_instance {name} has no virtual_ipaddress; {why} needs at least one")
        else:
            diag.warning(d.location, f"vrrp_instance {name} has no virtual_ipaddress (keepalived: 'at least one is sensible')")

    # keepalived vrrp.c: "If no priority has been set, derive it from the initial state".
    priority = d.priority
    if priority is None:
        priority = PRIORITY_OWNER if d.state is InitialState.MASTER else PRIORITY_DEFAULT
    state = d.state
    if state is None:
        state = InitialState.MASTER if priority == PRIORITY_OWNER else InitialState.BACKUP
    elif strict and (state is InitialState.MASTER) != (priority == PRIORITY_OWNER):
        diag.error(where("state"), "strict mode: state MASTER is only for the address owner (priority 255)")

    auth_type = d.auth_type or AuthType.NONE
    auth_pass = d.auth_pass or b""
    if auth_type is not AuthType.NONE:
        loc = where("authentication")
        if strict:
            diag.error(loc, "strict mode does not allow authentication")
        elif version == 3:
            diag.error(loc, "authentication is VRRPv2 only; VRRPv3 (RFC 5798) has none")
        elif not auth_pass:
            diag.error(loc, "authentication needs an auth_pass")
        elif auth_type is AuthType.AH and state is InitialState.MASTER and priority != PRIORITY_OWNER:
            diag.warning(loc, "AH authentication needs a received advert before taking over; starting as BACKUP, as keepalived does")
            state = InitialState.BACKUP
    elif d.auth_pass is not None and "auth_type" not in d.mentioned:
        diag.warning(where("authentication"), "auth_pass without auth_type is ignored")

    if unicast and strict:
        diag.error(where("unicast_peer"), "strict mode does not allow unicast peers")
    if d.unicast_configured and not unicast and "unicast_peer" not in d.mentioned:
        if d.unicast_fault_no_peer:
            diag.warning(d.location, f"vrrp_instance {name} has no unicast peers and unicast_fault_no_peer: it will stay in FAULT")
        else:
            diag.warning(d.location, f"vrrp_instance {name}: unicast settings without any unicast_peer; the instance runs multicast")

    if family is Family.IPV6 and not unicast and vips and not vips[0].address.ip.is_link_local:
        message = "the first IPv6 virtual_ipaddress should be link-local (RFC 5798)"
        if strict:
            diag.error(vips[0].location, "strict mode: " + message.replace("should", "must"))
        else:
            diag.warning(vips[0].location, message)

    limit = max_advertised_addresses(family, version, auth_type)
    if len(vips) > limit:
        diag.warning(
            d.location,
            f"vrrp_instance {name}: {len(vips)} VIPs do not fit in one advert (max {limit}); the rest are handled as virtual_ipaddress_excluded",
        )
        excluded = vips[limit:] + excluded
        vips = vips[:limit]

    preempt = not d.nopreempt
    if not preempt and priority == PRIORITY_OWNER:
        diag.warning(where("nopreempt"), "nopreempt does not apply to the address owner (priority 255); ignored")
        preempt = True
    preempt_delay = float(d.preempt_delay or 0)
    if state is InitialState.MASTER:
        if not preempt:
            diag.warning(where("nopreempt"), "nopreempt does not work with state MASTER; ignored (use state BACKUP)")
            preempt = True
        if preempt_delay:
            diag.warning(where("preempt_delay"), "preempt_delay does not work with state MASTER; ignored")
            preempt_delay = 0.0
    if preempt_delay:
        if strict:
            diag.error(where("preempt_delay"), "strict mode does not allow preempt_delay")
        elif not preempt:
            diag.warning(where("preempt_delay"), "preempt_delay has no effect with nopreempt; ignored")
            preempt_delay = 0.0

    down_timer_adverts = d.down_timer_adverts or g.vrrp_down_timer_adverts
    if strict and down_timer_adverts != DOWN_TIMER_ADVERTS_DEFAULT:
        diag.error(where("down_timer_adverts"), "strict mode requires down_timer_adverts 3")

    accept = d.accept
    if accept is None:
        accept = priority == PRIORITY_OWNER or not strict
    elif accept and strict and version == 2 and priority != PRIORITY_OWNER:
        diag.error(where("accept"), "strict mode does not allow accept for VRRPv2 (RFC 3768)")

    mcast_dst = d.mcast_dst_ip
    if unicast:
        if mcast_dst is not None:
            diag.warning(where("mcast_dst_ip"), "mcast_dst_ip is ignored for a unicast instance")
        mcast_dst = None
    elif mcast_dst is None:
        mcast_dst = g.vrrp_mcast_group4 if family is Family.IPV4 else g.vrrp_mcast_group6

    lower_delay = d.garp_lower_prio_delay_s
    lower_repeat = d.garp_lower_prio_repeat
    if strict:
        if lower_repeat:
            diag.error(where("garp_lower_prio_repeat"), "strict mode does not allow repeated GARPs")
        if lower_delay:
            diag.error(where("garp_lower_prio_delay"), "strict mode does not allow a GARP delay")
        lower_delay, lower_repeat = 0.0, 0
    if lower_delay is None:
        lower_delay = g.vrrp_garp_lower_prio_delay_s
    if lower_repeat is None:
        lower_repeat = g.vrrp_garp_lower_prio_repeat

    lower_prio_no_advert = d.lower_prio_no_advert
    if lower_prio_no_advert is None:
        lower_prio_no_advert = True if strict else g.vrrp_lower_prio_no_advert
    elif strict and not lower_prio_no_advert:
        diag.error(where("lower_prio_no_advert"), "strict mode requires lower_prio_no_advert")
    higher_prio_send_advert = d.higher_prio_send_advert
    if higher_prio_send_advert is None:
        higher_prio_send_advert = False if strict else g.vrrp_higher_prio_send_advert
    elif strict and higher_prio_send_advert:
        diag.error(where("higher_prio_send_advert"), "strict mode does not allow higher_prio_send_advert")

    if d.smtp_alert:
        diag.warning(where("smtp_alert"), "smtp_alert is accepted but does nothing here: fastvrrp sends no e-mail")

    notify_priority_changes = d.notify_priority_changes
    if notify_priority_changes is None:
        if group is not None and group.notify_priority_changes is not None:
            notify_priority_changes = group.notify_priority_changes
        else:
            notify_priority_changes = g.vrrp_notify_priority_changes

    advert_int_cs = round_advert_int(d, version, diag)

    unicast_ttl = d.unicast_ttl
    if unicast_ttl is not None and not unicast:
        diag.warning(where("unicast_ttl"), "unicast_ttl is ignored without unicast peers")
        unicast_ttl = None
    if unicast_ttl is None and family is Family.IPV4:
        unicast_ttl = VRRP_IP_TTL

    vmac_xmit_base = d.vmac_xmit_base
    if vmac_xmit_base and not d.use_vmac:
        diag.warning(where("vmac_xmit_base"), "vmac_xmit_base is only meaningful with use_vmac; ignored")
        vmac_xmit_base = False
    if d.use_vmac and unicast and not vmac_xmit_base and d.interface is not None:
        diag.warning(where("use_vmac"), "unicast with use_vmac needs vmac_xmit_base; setting it, as keepalived does")
        vmac_xmit_base = True
    if strict and vmac_xmit_base:
        diag.error(where("vmac_xmit_base"), "strict mode does not allow vmac_xmit_base")
    if strict and d.vmac_address:
        diag.error(where("use_vmac"), "strict mode does not allow a custom VMAC address")

    owner = f"vrrp_instance {name}"
    track_interfaces = list(d.track_interfaces)
    track_scripts = resolve_script_refs(d.track_scripts, scripts, owner, diag)
    track_files_resolved = resolve_file_refs(d.track_files, track_files, owner, diag)
    in_weightless_group = group is not None and not group.tracking_weight
    if in_weightless_group or priority == PRIORITY_OWNER:
        # keepalived vrrp.c: sync group members (without sync_group_tracking_weight) and
        # address owners cannot have their priority moved by trackers.
        why = f"it is in sync group {group.name}" if in_weightless_group and group else "it is the address owner"
        kept_if: list[TrackedInterface] = []
        for t in track_interfaces:
            if t.weight:
                diag.warning(d.location, f"{owner}: ignoring the weight of tracked interface {t.name} because {why}")
                if in_weightless_group:
                    kept_if.append(TrackedInterface(t.name, 0, t.reverse))
                continue
            kept_if.append(t)
        track_interfaces = kept_if
        kept_sc: list[TrackedScript] = []
        for s in track_scripts:
            if s.weight:
                diag.warning(d.location, f"{owner}: ignoring weighted track_script {s.name} because {why}")
                continue
            kept_sc.append(s)
        track_scripts = kept_sc
        kept_tf: list[TrackedFile] = []
        for f in track_files_resolved:
            if f.weight:
                diag.warning(d.location, f"{owner}: ignoring the weight of track_file {f.name} because {why}")
                if f.weight == 1:  # keepalived keeps a default-weight file as unweighted
                    kept_tf.append(TrackedFile(f.name, 0, f.reverse))
                continue
            kept_tf.append(f)
        track_files_resolved = kept_tf

    if len(diag.errors) > errors_before or vrid is None:
        return None

    notifies = d.notifies
    return Instance(
        name=name,
        vrid=vrid,
        family=family,
        version=version,
        interface=d.interface,
        state=state,
        priority=priority,
        advert_int_cs=advert_int_cs,
        preempt=preempt,
        preempt_delay_s=preempt_delay,
        auth_type=auth_type,
        auth_pass=auth_pass if auth_type is not AuthType.NONE else b"",
        vips=tuple(vips),
        excluded_vips=tuple(excluded),
        routes=tuple(d.routes),
        rules=tuple(d.rules),
        source_ip=d.source_ip,
        unicast_peers=tuple(d.unicast_peers),
        unicast_ttl=unicast_ttl,
        check_unicast_src=d.check_unicast_src or (unicast and g.vrrp_check_unicast_src),
        unicast_fault_no_peer=d.unicast_fault_no_peer,
        mcast_dst_ip=mcast_dst,
        down_timer_adverts=down_timer_adverts,
        v3_checksum_as_v2=g.v3_checksum_as_v2 if d.v3_checksum_as_v2 is None else d.v3_checksum_as_v2,
        old_unicast_checksum=d.old_unicast_checksum,
        notifies=_notifies(notifies),
        notify_deleted=d.notify_deleted,
        notify_deleted_script=d.notify_deleted_script,
        notify_master_rx_lower_pri=d.notify_master_rx_lower_pri,
        notify_priority_changes=notify_priority_changes,
        smtp_alert=bool(d.smtp_alert),
        dont_track_primary=d.dont_track_primary,
        track_interfaces=tuple(track_interfaces),
        track_scripts=tuple(track_scripts),
        track_files=tuple(track_files_resolved),
        garp_master_delay_s=g.vrrp_garp_master_delay_s if d.garp_master_delay_s is None else d.garp_master_delay_s,
        garp_master_repeat=g.vrrp_garp_master_repeat if d.garp_master_repeat is None else d.garp_master_repeat,
        garp_master_refresh_s=g.vrrp_garp_master_refresh_s if d.garp_master_refresh_s is None else d.garp_master_refresh_s,
        garp_master_refresh_repeat=(
            g.vrrp_garp_master_refresh_repeat if d.garp_master_refresh_repeat is None else d.garp_master_refresh_repeat
        ),
        garp_lower_prio_delay_s=lower_delay,
        garp_lower_prio_repeat=lower_repeat,
        lower_prio_no_advert=lower_prio_no_advert,
        higher_prio_send_advert=higher_prio_send_advert,
        accept=accept,
        skip_check_adv_addr=g.vrrp_skip_check_adv_addr if d.skip_check_adv_addr is None else d.skip_check_adv_addr,
        use_vmac=d.use_vmac,
        vmac_name=d.vmac_name,
        vmac_address=d.vmac_address,
        vmac_xmit_base=vmac_xmit_base,
        native_ipv6=d.native_ipv6,
        strict_mode=strict,
        promote_secondaries=d.promote_secondaries,
        debug=d.debug,
        sync_group=group.name if group is not None else None,
        legacy_unicast_spelling=d.legacy_unicast is not None,
        location=d.location,
    )


def _notifies(scripts: Mapping[str, Script]) -> Notifies:
    return Notifies(
        master=scripts.get("master"),
        backup=scripts.get("backup"),
        fault=scripts.get("fault"),
        stop=scripts.get("stop"),
        generic=scripts.get("generic"),
    )
