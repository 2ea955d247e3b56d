"""The validated configuration: frozen dataclasses, one per section, keepalived's defaults.

Units are in the field names where they could be ambiguous: `advert_int_cs` is integer
centiseconds (the VRRPv3 wire unit) after keepalived's per-version rounding, `*_s` fields
are float seconds. Addresses are `ipaddress` objects. Nothing here does I/O, and nothing
here imports from net/ or daemon/.

Every section keeps `location` (file and line of its opening keyword) for messages; it is
excluded from equality so that a reload can compare sections by content.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Interface, IPv4Network, IPv6Address, IPv6Interface, IPv6Network

from fastvrrp.config.diagnostics import Diagnostic, Location

IPAddress = IPv4Address | IPv6Address
IPInterface = IPv4Interface | IPv6Interface
IPNetwork = IPv4Network | IPv6Network

# keepalived's constants (keepalived/include/vrrp.h, core/global_data.c).
PRIORITY_OWNER = 255
PRIORITY_DEFAULT = 100
ADVERT_INT_DEFAULT_CS = 100
DOWN_TIMER_ADVERTS_DEFAULT = 3
# SCHED_RR's range on Linux (sched_get_priority_min/max), as keepalived clamps to it.
RT_PRIORITY_MIN, RT_PRIORITY_MAX = 1, 99
# keepalived's RT_RLIMIT_DEFAULT (lib/process.h): RLIMIT_RTTIME for a real-time VRRP process, us.
RT_RLIMIT_DEFAULT_US = 10000
VRRP_IP_TTL = 255
MCAST_GROUP4 = IPv4Address("224.0.0.18")
MCAST_GROUP6 = IPv6Address("ff02::12")
AUTH_PASS_LEN = 8  # the v2 authentication field; keepalived truncates longer passwords


class Family(enum.IntEnum):
    """Address family of an instance: every VIP, peer and source address is of this family."""

    IPV4 = 4
    IPV6 = 6


class InitialState(enum.Enum):
    MASTER = "MASTER"
    BACKUP = "BACKUP"


class AuthType(enum.Enum):
    NONE = "NONE"
    PASS = "PASS"
    AH = "AH"


class OldUnicastChecksum(enum.Enum):
    """keepalived's `old_unicast_checksum [never]` (VRRPv3 unicast pseudo-header destination)."""

    AUTO = "auto"  # keyword absent: detect a pre-1.3.7 peer and switch to its checksum
    ALWAYS = "always"  # `old_unicast_checksum`: use 224.0.0.18 as pseudo-header destination
    NEVER = "never"  # `old_unicast_checksum never`: no detection


@dataclass(frozen=True, slots=True)
class Script:
    """A command line as keepalived splits it: the quoted string is the argv."""

    argv: tuple[str, ...]
    user: str | None = None
    group: str | None = None


@dataclass(frozen=True, slots=True)
class Fifo:
    path: str
    user: str | None = None
    group: str | None = None


@dataclass(frozen=True, slots=True)
class VirtualAddress:
    address: IPInterface  # address with its prefix (/32 or /128 when none was given)
    broadcast: IPv4Address | None = None
    device: str | None = None  # None: the instance's interface
    scope: str | None = None
    label: str | None = None
    peer: IPAddress | None = None
    no_track: bool = False
    use_vmac: bool = False
    flags: frozenset[str] = frozenset()  # home, -nodad, mngtmpaddr, noprefixroute, autojoin
    preferred_lft: int | None = None  # seconds; None: kernel default ("forever" -> 0xFFFFFFFF)
    location: Location = field(default=Location("", 0), compare=False)


@dataclass(frozen=True, slots=True)
class VirtualRoute:
    """A `virtual_routes` entry: the `ip route` words, with the common parts picked out."""

    words: tuple[str, ...]
    destination: IPNetwork | None  # None: `default`/`any`/`all`
    route_type: str | None = None  # blackhole, unreachable, prohibit, throw, ...
    gateway: IPAddress | None = None
    device: str | None = None
    source: IPAddress | None = None
    table: str | None = None
    no_track: bool = False
    location: Location = field(default=Location("", 0), compare=False)


@dataclass(frozen=True, slots=True)
class VirtualRule:
    """A `virtual_rules` entry: the `ip rule` words, with the selectors picked out."""

    words: tuple[str, ...]
    from_network: IPNetwork | None = None
    to_network: IPNetwork | None = None
    table: str | None = None
    no_track: bool = False
    location: Location = field(default=Location("", 0), compare=False)


@dataclass(frozen=True, slots=True)
class UnicastPeer:
    address: IPAddress
    min_ttl: int = 0
    max_ttl: int = 255


@dataclass(frozen=True, slots=True)
class TrackedInterface:
    name: str
    weight: int = 0  # 0: interface down puts the instance in FAULT
    reverse: bool = False


@dataclass(frozen=True, slots=True)
class TrackedScript:
    name: str  # a VrrpScript in Config.scripts
    weight: int = 0  # resolved: the script's own weight unless the reference overrides it
    reverse: bool = False


@dataclass(frozen=True, slots=True)
class TrackedFile:
    name: str  # a TrackFile in Config.track_files
    weight: int = 1
    reverse: bool = False


@dataclass(frozen=True, slots=True)
class VrrpScript:
    name: str
    script: Script
    interval_s: float = 1.0
    timeout_s: float = 1.0  # keepalived: the interval when not given
    weight: int = 0  # 0: failure puts tracking instances in FAULT
    weight_reverse: bool = False
    rise: int = 1
    fall: int = 1
    init_fail: bool = False
    location: Location = field(default=Location("", 0), compare=False)


@dataclass(frozen=True, slots=True)
class TrackFile:
    name: str
    path: str
    weight: int = 1
    weight_reverse: bool = False
    init_file: bool = False  # create the file if missing
    init_value: int = 0
    init_overwrite: bool = False
    location: Location = field(default=Location("", 0), compare=False)


@dataclass(frozen=True, slots=True)
class Notifies:
    """Notify scripts of an instance or sync group; `notify` gets 4 extra args appended."""

    master: Script | None = None
    backup: Script | None = None
    fault: Script | None = None
    stop: Script | None = None
    generic: Script | None = None


@dataclass(frozen=True, slots=True)
class SyncGroup:
    name: str
    instances: tuple[str, ...]
    notifies: Notifies = Notifies()
    track_interfaces: tuple[TrackedInterface, ...] = ()
    track_scripts: tuple[TrackedScript, ...] = ()
    track_files: tuple[TrackedFile, ...] = ()
    tracking_weight: bool = False  # sync_group_tracking_weight: members keep weighted trackers
    notify_priority_changes: bool | None = None
    smtp_alert: bool = False
    location: Location = field(default=Location("", 0), compare=False)


@dataclass(frozen=True, slots=True)
class Instance:
    name: str
    vrid: int
    family: Family
    version: int  # 2 or 3
    interface: str | None  # None only for unicast with unicast_src_ip
    state: InitialState  # derived from priority when `state` is absent
    priority: int  # base priority; 255 = address owner
    advert_int_cs: int  # centiseconds, already rounded for `version`
    preempt: bool = True
    preempt_delay_s: float = 0.0
    auth_type: AuthType = AuthType.NONE
    auth_pass: bytes = b""  # at most 8 bytes, as sent
    vips: tuple[VirtualAddress, ...] = ()
    excluded_vips: tuple[VirtualAddress, ...] = ()
    routes: tuple[VirtualRoute, ...] = ()
    rules: tuple[VirtualRule, ...] = ()
    source_ip: IPAddress | None = None  # unicast_src_ip / mcast_src_ip; None: interface address
    unicast_peers: tuple[UnicastPeer, ...] = ()
    unicast_ttl: int | None = VRRP_IP_TTL  # IPv4 TTL sent; None for IPv6 (kernel default)
    check_unicast_src: bool = False
    unicast_fault_no_peer: bool = False
    mcast_dst_ip: IPAddress | None = MCAST_GROUP4  # None when unicast
    down_timer_adverts: int = DOWN_TIMER_ADVERTS_DEFAULT
    v3_checksum_as_v2: bool = False
    old_unicast_checksum: OldUnicastChecksum = OldUnicastChecksum.AUTO
    notifies: Notifies = Notifies()
    notify_deleted: bool = False
    notify_deleted_script: Script | None = None
    notify_master_rx_lower_pri: Script | None = None
    notify_priority_changes: bool = False
    smtp_alert: bool = False
    dont_track_primary: bool = False
    track_interfaces: tuple[TrackedInterface, ...] = ()
    track_scripts: tuple[TrackedScript, ...] = ()
    track_files: tuple[TrackedFile, ...] = ()
    garp_master_delay_s: float = 5.0  # 0: no second burst
    garp_master_repeat: int = 5
    garp_master_refresh_s: float = 0.0  # 0: no periodic refresh
    garp_master_refresh_repeat: int = 1
    garp_lower_prio_delay_s: float = 5.0
    garp_lower_prio_repeat: int = 5
    lower_prio_no_advert: bool = False
    higher_prio_send_advert: bool = False
    accept: bool = True
    skip_check_adv_addr: bool = False
    use_vmac: bool = False
    vmac_name: str | None = None
    vmac_address: str | None = None
    vmac_xmit_base: bool = False
    native_ipv6: bool = False
    strict_mode: bool = False
    promote_secondaries: bool = False
    debug: int = 0
    sync_group: str | None = None
    legacy_unicast_spelling: bool = False  # vrrp_unicast_bind / vrrp_unicast_peer were used
    location: Location = field(default=Location("", 0), compare=False)

    @property
    def is_address_owner(self) -> bool:
        return self.priority == PRIORITY_OWNER

    @property
    def is_unicast(self) -> bool:
        return bool(self.unicast_peers)

    @property
    def advert_int_s(self) -> float:
        return self.advert_int_cs / 100


@dataclass(frozen=True, slots=True)
class Globals:
    router_id: str | None = None  # None: keepalived uses the host name
    vrrp_version: int = 2
    vrrp_mcast_group4: IPv4Address = MCAST_GROUP4
    vrrp_mcast_group6: IPv6Address = MCAST_GROUP6
    vrrp_garp_master_delay_s: float = 5.0
    vrrp_garp_master_repeat: int = 5
    vrrp_garp_master_refresh_s: float = 0.0
    vrrp_garp_master_refresh_repeat: int = 1
    vrrp_garp_lower_prio_delay_s: float = 5.0  # keepalived: = vrrp_garp_master_delay if unset
    vrrp_garp_lower_prio_repeat: int = 5  # keepalived: = vrrp_garp_master_repeat if unset
    vrrp_garp_interval_s: float = 0.0  # gap between GARPs of one burst
    vrrp_gna_interval_s: float = 0.0  # gap between unsolicited NAs of one burst
    vrrp_min_garp: bool = False
    vrrp_down_timer_adverts: int = DOWN_TIMER_ADVERTS_DEFAULT
    vrrp_strict: bool = False
    vrrp_skip_check_adv_addr: bool = False
    vrrp_check_unicast_src: bool = False
    vrrp_lower_prio_no_advert: bool = False
    vrrp_higher_prio_send_advert: bool = False
    v3_checksum_as_v2: bool = False
    enable_script_security: bool = False
    script_user: str | None = None
    script_group: str | None = None
    notify_fifo: Fifo | None = None
    notify_fifo_script: Script | None = None
    vrrp_notify_fifo: Fifo | None = None
    vrrp_notify_fifo_script: Script | None = None
    vrrp_notify_priority_changes: bool = False
    fifo_write_vrrp_states_on_reload: bool = False
    vrrp_startup_delay_s: float = 0.0
    vmac_prefix: str = "vrrp"
    net_namespace: str | None = None
    # The daemon's scheduling (keepalived's vrrp_priority, vrrp_rt_priority, ...):
    # 0 / () leave the process as started.
    vrrp_process_priority: int = 0  # nice value
    vrrp_realtime_priority: int = 0  # SCHED_RR priority
    vrrp_rlimit_rttime_us: int = RT_RLIMIT_DEFAULT_US  # only with vrrp_realtime_priority
    vrrp_no_swap: bool = False
    vrrp_cpu_affinity: tuple[int, ...] = ()
    location: Location = field(default=Location("", 0), compare=False)


@dataclass(frozen=True, slots=True)
class Config:
    globals: Globals
    instances: tuple[Instance, ...]
    scripts: tuple[VrrpScript, ...] = ()
    track_files: tuple[TrackFile, ...] = ()
    sync_groups: tuple[SyncGroup, ...] = ()
    warnings: tuple[Diagnostic, ...] = field(default=(), compare=False)
    files: tuple[str, ...] = field(default=(), compare=False)  # every file read, includes too

    def instance(self, name: str) -> Instance:
        for inst in self.instances:
            if inst.name == name:
                return inst
        raise KeyError(name)

    def script(self, name: str) -> VrrpScript:
        for scr in self.scripts:
            if scr.name == name:
                return scr
        raise KeyError(name)

    def sync_group(self, name: str) -> SyncGroup:
        for group in self.sync_groups:
            if group.name == name:
                return group
        raise KeyError(name)
