"""`vrrp_instance` keywords -> an InstanceDraft (keepalived vrrp/vrrp_parser.c).

The draft records only what the file says (None = not given). Defaults, derived values
and checks that need the whole instance live in instance_resolve.py.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from ipaddress import IPv4Address, IPv6Address

from fastvrrp.config.addresses import parse_route, parse_rule, parse_unicast_peer, parse_vip
from fastvrrp.config.diagnostics import Location
from fastvrrp.config.model import (
    AUTH_PASS_LEN,
    AuthType,
    Family,
    InitialState,
    IPAddress,
    OldUnicastChecksum,
    Script,
    TrackedInterface,
    UnicastPeer,
    VirtualAddress,
    VirtualRoute,
    VirtualRule,
)
from fastvrrp.config.parser import Statement
from fastvrrp.config.tracking_section import TrackRef, parse_track_interfaces, parse_track_refs
from fastvrrp.config.values import Reader, dispatch

US_PER_S = 1_000_000


@dataclass(slots=True)
class InstanceDraft:
    name: str
    location: Location
    seen: dict[str, Location] = field(default_factory=dict)  # keyword -> where it was accepted
    mentioned: set[str] = field(default_factory=set)  # keywords present, valid or not
    state: InitialState | None = None
    interface: str | None = None
    vrid: int | None = None
    priority: int | None = None
    advert_int_us: int | None = None  # microseconds as keepalived reads it, before rounding
    version: int | None = None
    nopreempt: bool = False
    preempt_delay: Decimal | None = None
    auth_type: AuthType | None = None
    auth_pass: bytes | None = None
    vips: list[VirtualAddress] = field(default_factory=list)
    excluded_vips: list[VirtualAddress] = field(default_factory=list)
    routes: list[VirtualRoute] = field(default_factory=list)
    rules: list[VirtualRule] = field(default_factory=list)
    family: Family | None = None
    family_source: str = ""
    source_ip: IPAddress | None = None
    unicast_configured: bool = False
    unicast_peers: list[UnicastPeer] = field(default_factory=list)
    unicast_ttl: int | None = None
    check_unicast_src: bool = False
    unicast_fault_no_peer: bool = False
    mcast_dst_ip: IPAddress | None = None
    down_timer_adverts: int | None = None
    v3_checksum_as_v2: bool | None = None
    old_unicast_checksum: OldUnicastChecksum = OldUnicastChecksum.AUTO
    notifies: dict[str, Script] = field(default_factory=dict)
    notify_deleted: bool = False
    notify_deleted_script: Script | None = None
    notify_master_rx_lower_pri: Script | None = None
    notify_priority_changes: bool | None = None
    smtp_alert: bool | None = None
    dont_track_primary: bool = False
    track_interfaces: list[TrackedInterface] = field(default_factory=list)
    track_scripts: list[TrackRef] = field(default_factory=list)
    track_files: list[TrackRef] = field(default_factory=list)
    garp_master_delay_s: float | None = None
    garp_master_repeat: int | None = None
    garp_master_refresh_s: float | None = None
    garp_master_refresh_repeat: int | None = None
    garp_lower_prio_delay_s: float | None = None
    garp_lower_prio_repeat: int | None = None
    lower_prio_no_advert: bool | None = None
    higher_prio_send_advert: bool | None = None
    accept: bool | None = None
    skip_check_adv_addr: bool | None = None
    use_vmac: bool = False
    vmac_name: str | None = None
    vmac_address: str | None = None
    vmac_xmit_base: bool = False
    native_ipv6: bool = False
    strict_mode: bool | None = None
    promote_secondaries: bool = False
    debug: int = 0
    legacy_unicast: Location | None = None  # first vrrp_unicast_bind / vrrp_unicast_peer line

    def where(self, keyword: str) -> Location:
        return self.seen.get(keyword, self.location)


def _once(reader: Reader, stmt: Statement, draft: InstanceDraft) -> None:
    """keepalived lets a later line override an earlier one; we say so."""
    first = draft.seen.get(stmt.keyword)
    if first is not None:
        reader.diag.warning(stmt.location, f"'{stmt.keyword}' repeated (first at {first}); the last value is used")
    draft.seen[stmt.keyword] = stmt.location


def _integer_setting(attr: str, low: int, high: int) -> Callable[[Reader, Statement, InstanceDraft], None]:
    """A keyword taking one integer in [low, high], stored in the draft's `attr`."""

    def handler(reader: Reader, stmt: Statement, d: InstanceDraft) -> None:
        reader.no_block(stmt)
        value = reader.integer(stmt, low, high, what=stmt.keyword)
        if value is not None:
            reader.at_most(stmt, 1)
            _once(reader, stmt, d)
            setattr(d, attr, value)

    return handler


def _claim_family(reader: Reader, stmt: Statement, draft: InstanceDraft, address: IPAddress | VirtualAddress, what: str) -> bool:
    """The first address given fixes the instance's family; later ones must agree."""
    version = address.address.version if isinstance(address, VirtualAddress) else address.version
    family = Family.IPV4 if version == 4 else Family.IPV6
    if draft.family is None:
        draft.family = family
        draft.family_source = f"{what} at {stmt.location}"
        return True
    if draft.family is family:
        return True
    shown = address.address if isinstance(address, VirtualAddress) else address
    reader.diag.error(
        stmt.location,
        f"{what} {shown} is IPv{version} but instance {draft.name} is IPv{draft.family.value} "
        f"(from {draft.family_source})",
    )
    return False


# -- simple values ------------------------------------------------------------------------


def _state(reader: Reader, stmt: Statement, d: InstanceDraft) -> None:
    reader.no_block(stmt)
    value = reader.choice(stmt, {"MASTER": InitialState.MASTER, "BACKUP": InitialState.BACKUP})
    if value is None:
        return
    reader.at_most(stmt, 1)
    if value is InitialState.BACKUP and d.state is InitialState.MASTER:
        reader.diag.warning(stmt.location, "state was already MASTER; keepalived ignores this BACKUP")
        return
    _once(reader, stmt, d)
    assert isinstance(value, InitialState)
    d.state = value


def _interface(reader: Reader, stmt: Statement, d: InstanceDraft) -> None:
    reader.no_block(stmt)
    name = reader.arg(stmt, 1, "an interface name")
    if name is None:
        return
    reader.at_most(stmt, 1)
    if len(name) >= 16:
        reader.diag.error(stmt.location, f"interface name '{name}' is longer than 15 characters")
        return
    _once(reader, stmt, d)
    d.interface = name


def _advert_int(reader: Reader, stmt: Statement, d: InstanceDraft) -> None:
    reader.no_block(stmt)
    # keepalived reads 0.01-255 s here, then rounds per version once the version is known.
    value = reader.decimal(stmt, Decimal("0.01"), Decimal(255))
    if value is not None:
        reader.at_most(stmt, 1)
        _once(reader, stmt, d)
        d.advert_int_us = int(value * US_PER_S)


def _nopreempt(reader: Reader, stmt: Statement, d: InstanceDraft) -> None:
    d.nopreempt = reader.flag(stmt)
    d.seen.setdefault("nopreempt", stmt.location)


def _preempt(reader: Reader, stmt: Statement, d: InstanceDraft) -> None:
    reader.flag(stmt)
    d.nopreempt = False


def _preempt_delay(reader: Reader, stmt: Statement, d: InstanceDraft) -> None:
    reader.no_block(stmt)
    value = reader.decimal(stmt, Decimal(0), Decimal(1000))
    if value is not None:
        reader.at_most(stmt, 1)
        _once(reader, stmt, d)
        d.preempt_delay = value


def _authentication(reader: Reader, stmt: Statement, d: InstanceDraft) -> None:
    reader.at_most(stmt, 0)
    d.seen.setdefault("authentication", stmt.location)
    dispatch(reader, reader.block(stmt) or (), AUTH_KEYWORDS, "authentication", d)


def _auth_type(reader: Reader, stmt: Statement, d: InstanceDraft) -> None:
    d.mentioned.add("auth_type")
    reader.no_block(stmt)
    value = reader.choice(stmt, {"PASS": AuthType.PASS, "AH": AuthType.AH})
    if value is not None:
        assert isinstance(value, AuthType)
        reader.at_most(stmt, 1)
        d.auth_type = value


def _auth_pass(reader: Reader, stmt: Statement, d: InstanceDraft) -> None:
    reader.no_block(stmt)
    text = reader.arg(stmt, 1, "a password")
    if text is None:
        return
    reader.at_most(stmt, 1)
    data = text.encode()
    if len(data) > AUTH_PASS_LEN:
        reader.diag.warning(stmt.location, f"auth_pass is longer than {AUTH_PASS_LEN} characters; only the first {AUTH_PASS_LEN} are used")
        data = data[:AUTH_PASS_LEN]
    d.auth_pass = data


AUTH_KEYWORDS = {"auth_type": _auth_type, "auth_pass": _auth_pass}


# -- address lists -------------------------------------------------------------------------


def _vips(reader: Reader, stmt: Statement, d: InstanceDraft) -> None:
    reader.at_most(stmt, 0)
    d.seen.setdefault(stmt.keyword, stmt.location)
    excluded = stmt.keyword == "virtual_ipaddress_excluded"
    target = d.excluded_vips if excluded else d.vips
    for item in reader.block(stmt) or ():
        vip = parse_vip(reader, item, stmt.keyword)
        if vip is None:
            continue
        # VIPs must share the instance's family; excluded ones may mix (keepalived vrrp_data.c).
        if not excluded and not _claim_family(reader, item, d, vip, "virtual_ipaddress"):
            continue
        if any(v.address == vip.address and v.device == vip.device for v in target):
            reader.diag.warning(item.location, f"{stmt.keyword} {vip.address} is listed twice")
        target.append(vip)


def _routes(reader: Reader, stmt: Statement, d: InstanceDraft) -> None:
    reader.at_most(stmt, 0)
    for item in reader.block(stmt) or ():
        route = parse_route(reader, item)
        if route is not None:
            d.routes.append(route)


def _rules(reader: Reader, stmt: Statement, d: InstanceDraft) -> None:
    reader.at_most(stmt, 0)
    for item in reader.block(stmt) or ():
        rule = parse_rule(reader, item)
        if rule is not None:
            d.rules.append(rule)


def _source(reader: Reader, stmt: Statement, d: InstanceDraft, address: IPAddress, what: str) -> None:
    if d.source_ip is not None and d.source_ip != address:
        reader.diag.error(stmt.location, f"{what} {address}: the source address is already {d.source_ip} ({d.family_source})")
        return
    if _claim_family(reader, stmt, d, address, what):
        d.source_ip = address


def _unicast_src_ip(reader: Reader, stmt: Statement, d: InstanceDraft) -> None:
    reader.no_block(stmt)
    text = reader.arg(stmt, 1, "an address")
    if text is None:
        return
    reader.at_most(stmt, 1)
    d.unicast_configured = True
    address = reader.address(stmt, text, stmt.keyword)
    if address is not None:
        _source(reader, stmt, d, address, stmt.keyword)


def _mcast_src_ip(reader: Reader, stmt: Statement, d: InstanceDraft) -> None:
    reader.no_block(stmt)
    text = reader.arg(stmt, 1, "an address")
    if text is None:
        return
    reader.at_most(stmt, 1)
    address = reader.address(stmt, text, stmt.keyword)
    if address is not None:
        _source(reader, stmt, d, address, stmt.keyword)


def _mcast_dst_ip(reader: Reader, stmt: Statement, d: InstanceDraft) -> None:
    reader.no_block(stmt)
    text = reader.arg(stmt, 1, "an address")
    if text is None:
        return
    reader.at_most(stmt, 1)
    address = reader.address(stmt, text, stmt.keyword)
    if address is None:
        return
    if isinstance(address, IPv4Address) and not address.is_multicast:
        reader.diag.error(stmt.location, f"mcast_dst_ip {address} is not a multicast address")
        return
    if isinstance(address, IPv6Address) and not (address.is_multicast and (address.packed[1] & 0x0F) == 2):
        reader.diag.error(stmt.location, f"mcast_dst_ip {address} is not a link-local multicast address")
        return
    if _claim_family(reader, stmt, d, address, "mcast_dst_ip"):
        _once(reader, stmt, d)
        d.mcast_dst_ip = address


def _add_peer(reader: Reader, item: Statement, d: InstanceDraft, peer: UnicastPeer) -> None:
    if not _claim_family(reader, item, d, peer.address, "unicast_peer"):
        return
    if any(p.address == peer.address for p in d.unicast_peers):
        reader.diag.warning(item.location, f"unicast_peer {peer.address} is listed twice")
        return
    d.unicast_peers.append(peer)


def _unicast_peer(reader: Reader, stmt: Statement, d: InstanceDraft) -> None:
    reader.at_most(stmt, 0)
    d.unicast_configured = True
    d.seen.setdefault("unicast_peer", stmt.location)
    for item in reader.block(stmt) or ():
        if item.block is not None:
            reader.diag.error(item.location, "unicast_peer entries do not take a { } block")
            continue
        parsed = parse_unicast_peer(reader, item)
        if parsed is None:
            continue
        peer, bounded = parsed
        if bounded:
            d.check_unicast_src = True  # min_ttl/max_ttl imply source checking (keepalived)
        _add_peer(reader, item, d, peer)


def _legacy_unicast(reader: Reader, stmt: Statement, d: InstanceDraft) -> None:
    """The unmerged-patch spelling: honoured as unicast_src_ip / unicast_peer."""
    if d.legacy_unicast is None:
        d.legacy_unicast = stmt.location
        reader.diag.warning(
            stmt.location,
            "vrrp_unicast_bind/vrrp_unicast_peer come from a keepalived patch that was never merged: "
            "keepalived ignores them ('Unknown keyword') and runs this instance as multicast; "
            "fastvrrp uses them as unicast_src_ip/unicast_peer",
        )
    reader.no_block(stmt)
    address = reader.ipv4(stmt)  # the patch took exactly one IPv4 address
    if address is None:
        return
    reader.at_most(stmt, 1)
    d.unicast_configured = True
    if stmt.keyword == "vrrp_unicast_bind":
        _source(reader, stmt, d, address, stmt.keyword)
    else:
        _add_peer(reader, stmt, d, UnicastPeer(address))


def _check_unicast_src(reader: Reader, stmt: Statement, d: InstanceDraft) -> None:
    d.check_unicast_src = reader.flag(stmt)
    d.unicast_configured = True


def _unicast_fault_no_peer(reader: Reader, stmt: Statement, d: InstanceDraft) -> None:
    d.unicast_fault_no_peer = reader.flag(stmt)
    d.unicast_configured = True


def _old_unicast_checksum(reader: Reader, stmt: Statement, d: InstanceDraft) -> None:
    reader.no_block(stmt)
    d.unicast_configured = True
    if len(stmt.words) == 1:
        d.old_unicast_checksum = OldUnicastChecksum.ALWAYS
    elif stmt.words[1] == "never":
        reader.at_most(stmt, 1)
        d.old_unicast_checksum = OldUnicastChecksum.NEVER
    else:
        reader.diag.error(stmt.location, f"old_unicast_checksum takes only 'never', not '{stmt.words[1]}'")


# -- notify ---------------------------------------------------------------------------------


def _notify(reader: Reader, stmt: Statement, d: InstanceDraft) -> None:
    kind = stmt.keyword.removeprefix("notify_") if stmt.keyword != "notify" else "generic"
    if kind in d.notifies:
        reader.diag.error(stmt.location, f"{stmt.keyword} is already set (at {d.where(stmt.keyword)})")
        return
    script = reader.script(stmt)
    if script is not None:
        d.seen[stmt.keyword] = stmt.location
        d.notifies[kind] = script


def _notify_deleted(reader: Reader, stmt: Statement, d: InstanceDraft) -> None:
    if d.notify_deleted:
        reader.diag.error(stmt.location, "notify_deleted is already set")
        return
    d.notify_deleted = True
    if len(stmt.words) > 1:
        d.notify_deleted_script = reader.script(stmt)
    else:
        reader.no_block(stmt)


def _notify_master_rx_lower_pri(reader: Reader, stmt: Statement, d: InstanceDraft) -> None:
    if d.notify_master_rx_lower_pri is not None:
        reader.diag.error(stmt.location, "notify_master_rx_lower_pri is already set")
        return
    d.notify_master_rx_lower_pri = reader.script(stmt)


def _bool_field(name: str):
    def handler(reader: Reader, stmt: Statement, d: InstanceDraft) -> None:
        value = reader.boolean(stmt)
        if value is not None:
            setattr(d, name, value)
            d.seen[stmt.keyword] = stmt.location

    return handler


def _flag_field(name: str):
    def handler(reader: Reader, stmt: Statement, d: InstanceDraft) -> None:
        setattr(d, name, reader.flag(stmt))
        d.seen[stmt.keyword] = stmt.location

    return handler


# -- tracking -------------------------------------------------------------------------------


def _track_interface(reader: Reader, stmt: Statement, d: InstanceDraft) -> None:
    reader.at_most(stmt, 0)
    parse_track_interfaces(reader, stmt, d.track_interfaces)


def _track_script(reader: Reader, stmt: Statement, d: InstanceDraft) -> None:
    reader.at_most(stmt, 0)
    parse_track_refs(reader, stmt, "track_script", d.track_scripts)


def _track_file(reader: Reader, stmt: Statement, d: InstanceDraft) -> None:
    reader.at_most(stmt, 0)
    parse_track_refs(reader, stmt, "track_file", d.track_files)


# -- GARP -----------------------------------------------------------------------------------


def _whole_seconds(name: str, high: int):
    def handler(reader: Reader, stmt: Statement, d: InstanceDraft) -> None:
        reader.no_block(stmt)
        value = reader.integer(stmt, 0, high)
        if value is not None:
            reader.at_most(stmt, 1)
            _once(reader, stmt, d)
            setattr(d, name, float(value))

    return handler


def _repeat(name: str, minimum_one: bool):
    def handler(reader: Reader, stmt: Statement, d: InstanceDraft) -> None:
        reader.no_block(stmt)
        value = reader.integer(stmt, 0, 2**31 - 1)
        if value is None:
            return
        reader.at_most(stmt, 1)
        _once(reader, stmt, d)
        if value == 0 and minimum_one:
            reader.diag.warning(stmt.location, f"'{stmt.keyword}' must be greater than 0; using 1")
            value = 1
        setattr(d, name, value)

    return handler


# -- accept, VMAC, misc -----------------------------------------------------------------------


def _accept(reader: Reader, stmt: Statement, d: InstanceDraft) -> None:
    reader.flag(stmt)
    d.accept = stmt.keyword == "accept"
    d.seen["accept"] = stmt.location


def _use_vmac(reader: Reader, stmt: Statement, d: InstanceDraft) -> None:
    reader.no_block(stmt)
    d.use_vmac = True
    d.seen["use_vmac"] = stmt.location
    for word in stmt.args[:2]:
        if ":" in word:  # interface names cannot contain ':'; a MAC address does
            d.vmac_address = word
        elif len(word) >= 16 or "/" in word or word in (".", ".."):
            reader.diag.error(stmt.location, f"use_vmac: '{word}' is not a valid interface name")
        else:
            d.vmac_name = word
    reader.at_most(stmt, 2)


def _debug(reader: Reader, stmt: Statement, d: InstanceDraft) -> None:
    reader.no_block(stmt)
    value = reader.integer(stmt, 0, 4, what="debug")
    if value is not None:
        d.debug = value


def _unsupported(reader: Reader, stmt: Statement, d: InstanceDraft) -> None:
    reader.diag.error(stmt.location, f"'{stmt.keyword}' is a keepalived feature that fastvrrp does not support")


INSTANCE_KEYWORDS = {
    "state": _state,
    "interface": _interface,
    "virtual_router_id": _integer_setting("vrid", 1, 255),
    "priority": _integer_setting("priority", 1, 255),
    "advert_int": _advert_int,
    "version": _integer_setting("version", 2, 3),
    "nopreempt": _nopreempt,
    "preempt": _preempt,
    "preempt_delay": _preempt_delay,
    "authentication": _authentication,
    "virtual_ipaddress": _vips,
    "virtual_ipaddress_excluded": _vips,
    "virtual_routes": _routes,
    "virtual_rules": _rules,
    "unicast_src_ip": _unicast_src_ip,
    "unicast_peer": _unicast_peer,
    "unicast_ttl": _integer_setting("unicast_ttl", 0, 255),
    "check_unicast_src": _check_unicast_src,
    "unicast_fault_no_peer": _unicast_fault_no_peer,
    "old_unicast_checksum": _old_unicast_checksum,
    "mcast_src_ip": _mcast_src_ip,
    "mcast_dst_ip": _mcast_dst_ip,
    "vrrp_unicast_bind": _legacy_unicast,
    "vrrp_unicast_peer": _legacy_unicast,
    "down_timer_adverts": _integer_setting("down_timer_adverts", 1, 100),
    "v3_checksum_as_v2": _bool_field("v3_checksum_as_v2"),
    "notify_master": _notify,
    "notify_backup": _notify,
    "notify_fault": _notify,
    "notify_stop": _notify,
    "notify": _notify,
    "notify_deleted": _notify_deleted,
    "notify_master_rx_lower_pri": _notify_master_rx_lower_pri,
    "notify_priority_changes": _bool_field("notify_priority_changes"),
    "smtp_alert": _bool_field("smtp_alert"),
    "dont_track_primary": _flag_field("dont_track_primary"),
    "track_interface": _track_interface,
    "track_script": _track_script,
    "track_file": _track_file,
    "garp_master_delay": _whole_seconds("garp_master_delay_s", 4294),
    "garp_master_repeat": _repeat("garp_master_repeat", minimum_one=True),
    "garp_master_refresh": _whole_seconds("garp_master_refresh_s", 2**32 - 1),
    "garp_master_refresh_repeat": _repeat("garp_master_refresh_repeat", minimum_one=True),
    "garp_lower_prio_delay": _whole_seconds("garp_lower_prio_delay_s", 4294),
    "garp_lower_prio_repeat": _repeat("garp_lower_prio_repeat", minimum_one=False),
    "lower_prio_no_advert": _bool_field("lower_prio_no_advert"),
    "higher_prio_send_advert": _bool_field("higher_prio_send_advert"),
    "accept": _accept,
    "no_accept": _accept,
    "skip_check_adv_addr": _bool_field("skip_check_adv_addr"),
    "use_vmac": _use_vmac,
    "vmac_xmit_base": _flag_field("vmac_xmit_base"),
    "native_ipv6": _flag_field("native_ipv6"),
    "strict_mode": _bool_field("strict_mode"),
    "promote_secondaries": _flag_field("promote_secondaries"),
    "debug": _debug,
    "track_process": _unsupported,
    "track_bfd": _unsupported,
    "use_ipvlan": _unsupported,
    "vrf": _unsupported,
}

INERT_INSTANCE_KEYWORDS = {
    "lvs_sync_daemon_interface": "is an LVS setting (deprecated in keepalived) and does nothing here",
    "track_src_ip": "is accepted but has no effect in fastvrrp",
    "linkbeat_use_polling": "is accepted but has no effect in fastvrrp",
    "kernel_rx_buf_size": "is accepted but has no effect in fastvrrp",
    "garp_extra_if": "is accepted but has no effect in fastvrrp",
    "vmac_garp_intvl": "is accepted but has no effect in fastvrrp",
    "use_vmac_addr": "is accepted but has no effect in fastvrrp",
}


def parse_instance(reader: Reader, stmt: Statement) -> InstanceDraft | None:
    if len(stmt.words) != 2:
        reader.diag.error(stmt.location, "vrrp_instance needs exactly one name")
        return None
    draft = InstanceDraft(stmt.words[1], stmt.location)
    block = reader.block(stmt)
    if block is None:
        return None
    draft.mentioned.update(child.words[0] for child in block)
    dispatch(reader, block, INSTANCE_KEYWORDS, f"vrrp_instance {draft.name}", draft, INERT_INSTANCE_KEYWORDS)
    return draft
