"""`global_defs` and the root-level global keywords (keepalived core/global_parser.c)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from fastvrrp.config.diagnostics import Location
from fastvrrp.config.model import RT_PRIORITY_MAX, RT_PRIORITY_MIN, Fifo, Globals
from fastvrrp.config.parser import Statement
from fastvrrp.config.values import Reader, dispatch

_NO_MAIL = "is accepted but does nothing here: fastvrrp sends no e-mail"
_LVS = "is an LVS/checker setting and does nothing here"
_NO_EFFECT = "is accepted but has no effect in fastvrrp"

INERT_GLOBAL_KEYWORDS: dict[str, str] = {
    **{k: _NO_MAIL for k in (
        "notification_email", "notification_email_from", "smtp_server", "smtp_helo_name",
        "smtp_connect_timeout", "smtp_alert", "smtp_alert_vrrp", "smtp_alert_checker",
        "no_email_faults",
    )},
    **{k: _LVS for k in (
        "lvs_timeouts", "lvs_flush", "lvs_flush_on_stop", "lvs_flush_onstop", "lvs_sync_daemon",
        "lvs_notify_fifo", "lvs_notify_fifo_script", "checker_priority", "checker_no_swap",
        "checker_rt_priority", "checker_cpu_affinity", "checker_rlimit_rttime",
        "checker_rlimit_rtime", "checker_process_name", "lvs_process_name",
        "checker_log_all_failures", "lvs_netlink_cmd_rcv_bufs", "lvs_netlink_cmd_rcv_bufs_force",
        "lvs_netlink_monitor_rcv_bufs", "lvs_netlink_monitor_rcv_bufs_force", "rs_init_notifies",
        "no_checker_emails", "nftables_ipvs", "nftables_ipvs_priority",
        "nftables_ipvs_start_fwmark", "enable_snmp_checker",
    )},
    **{k: _NO_EFFECT for k in (
        "process_names", "process_name", "vrrp_process_name", "bfd_process_name",
        "startup_script", "startup_script_timeout", "shutdown_script", "shutdown_script_timeout",
        "max_auto_priority", "min_auto_priority_delay", "dynamic_interfaces", "default_interface",
        "disable_local_igmp", "vrrp_iptables", "vrrp_ipsets", "nftables", "nftables_priority",
        "nftables_ifindex", "nftables_counters", "bfd_priority", "bfd_no_swap", "bfd_rt_priority",
        "bfd_cpu_affinity", "bfd_rlimit_rttime", "bfd_rlimit_rtime", "snmp_socket", "enable_traps", "enable_snmp_vrrp",
        "enable_snmp_keepalived", "enable_snmp_rfc", "enable_snmp_rfcv2", "enable_snmp_rfcv3",
        "enable_dbus", "dbus_service_name", "vrrp_netlink_cmd_rcv_bufs",
        "vrrp_netlink_cmd_rcv_bufs_force", "vrrp_netlink_monitor_rcv_bufs",
        "vrrp_netlink_monitor_rcv_bufs_force", "process_monitor_rcv_bufs",
        "process_monitor_rcv_bufs_force", "vrrp_rx_bufs_policy", "vrrp_rx_bufs_multiplier",
        "log_unknown_vrids", "vmac_addr_prefix", "umask", "random_seed", "reload_check_config",
        "reload_time_file", "reload_repeat", "reload_file", "include_check", "config_save_dir",
        "tmp_config_directory", "data_use_instance", "vrrp_garp_extra_if", "vrrp_vmac_garp_intvl",
        "json_version", "vrrp_owner_ignore_adverts", "vrrp_delay_after_boot",
    )},
}  # fmt: skip

# Root-level keywords that are global settings (outside any block in keepalived.conf).
INERT_ROOT_KEYWORDS: dict[str, str] = {
    k: _NO_EFFECT
    for k in (
        "net_namespace_ipvs", "namespace_with_ipsets", "use_pid_dir", "instance",
        "child_wait_time", "linkbeat_use_polling",
    )
}  # fmt: skip


@dataclass(slots=True)
class GlobalsDraft:
    """Only what the configuration set; `finish` fills keepalived's defaults."""

    values: dict[str, Any] = field(default_factory=dict)
    location: Location = Location("", 0)

    def set(self, name: str, value: Any) -> None:
        self.values[name] = value


def _set_seconds(name: str, low: Decimal, high: Decimal, whole: bool = False):
    def handler(reader: Reader, stmt: Statement, draft: GlobalsDraft) -> None:
        reader.no_block(stmt)
        value = reader.decimal(stmt, low, high)
        if value is None:
            return
        reader.at_most(stmt, 1)
        if whole and value != value.to_integral_value():
            reader.diag.error(stmt.location, f"'{stmt.keyword}' must be whole seconds, not '{stmt.words[1]}'")
            return
        draft.set(name, float(value))

    return handler


def _set_int(name: str, low: int, high: int):
    def handler(reader: Reader, stmt: Statement, draft: GlobalsDraft) -> None:
        reader.no_block(stmt)
        value = reader.integer(stmt, low, high)
        if value is not None:
            reader.at_most(stmt, 1)
            draft.set(name, value)

    return handler


def _set_bool(name: str):
    def handler(reader: Reader, stmt: Statement, draft: GlobalsDraft) -> None:
        value = reader.boolean(stmt)
        if value is not None:
            draft.set(name, value)

    return handler


def _set_flag(name: str):
    def handler(reader: Reader, stmt: Statement, draft: GlobalsDraft) -> None:
        draft.set(name, reader.flag(stmt))

    return handler


def _garp_repeat(name: str):
    def handler(reader: Reader, stmt: Statement, draft: GlobalsDraft) -> None:
        reader.no_block(stmt)
        value = reader.integer(stmt, 0, 2**32 - 1)
        if value is None:
            return
        if value == 0:
            reader.diag.warning(stmt.location, f"'{stmt.keyword}' must be greater than 0; using 1")
            value = 1
        draft.set(name, value)

    return handler


def _router_id(reader: Reader, stmt: Statement, draft: GlobalsDraft) -> None:
    reader.no_block(stmt)
    value = reader.arg(stmt, 1, "a name")
    if value is not None:
        reader.at_most(stmt, 1)
        draft.set("router_id", value)


def _mcast_group4(reader: Reader, stmt: Statement, draft: GlobalsDraft) -> None:
    reader.no_block(stmt)
    addr = reader.ipv4(stmt)
    if addr is None:
        return
    if not addr.is_multicast:
        reader.diag.error(stmt.location, f"vrrp_mcast_group4 {addr} is not a multicast address")
        return
    draft.set("vrrp_mcast_group4", addr)


def _mcast_group6(reader: Reader, stmt: Statement, draft: GlobalsDraft) -> None:
    reader.no_block(stmt)
    addr = reader.ipv6(stmt)
    if addr is None:
        return
    if not addr.is_multicast:
        reader.diag.error(stmt.location, f"vrrp_mcast_group6 {addr} is not a multicast address")
        return
    draft.set("vrrp_mcast_group6", addr)


def _script_user(reader: Reader, stmt: Statement, draft: GlobalsDraft) -> None:
    reader.no_block(stmt)
    user = reader.arg(stmt, 1, "a user name")
    if user is not None:
        reader.at_most(stmt, 2)
        draft.set("script_user", user)
        draft.set("script_group", stmt.words[2] if len(stmt.words) > 2 else None)


def _fifo(name: str):
    def handler(reader: Reader, stmt: Statement, draft: GlobalsDraft) -> None:
        reader.no_block(stmt)
        path = reader.arg(stmt, 1, "a path")
        if path is None:
            return
        reader.at_most(stmt, 3)
        user = stmt.words[2] if len(stmt.words) > 2 else None
        group = stmt.words[3] if len(stmt.words) > 3 else None
        draft.set(name, Fifo(path, user, group))

    return handler


def _fifo_script(name: str):
    def handler(reader: Reader, stmt: Statement, draft: GlobalsDraft) -> None:
        script = reader.script(stmt)
        if script is not None:
            draft.set(name, script)

    return handler


def _process_priority(reader: Reader, stmt: Statement, draft: GlobalsDraft) -> None:
    """keepalived's get_priority(): a nice value, -20 to 19."""
    reader.no_block(stmt)
    value = reader.integer(stmt, -20, 19)
    if value is not None:
        reader.at_most(stmt, 1)
        draft.set("vrrp_process_priority", value)


def _realtime_priority(reader: Reader, stmt: Statement, draft: GlobalsDraft) -> None:
    """keepalived's get_realtime_priority(): out-of-range values are clamped to SCHED_RR's
    1-99 with a warning."""
    reader.no_block(stmt)
    value = reader.integer(stmt, -(2**31), 2**31 - 1)
    if value is None:
        return
    reader.at_most(stmt, 1)
    if not RT_PRIORITY_MIN <= value <= RT_PRIORITY_MAX:
        clamped = min(max(value, RT_PRIORITY_MIN), RT_PRIORITY_MAX)
        reader.diag.warning(stmt.location, f"'{stmt.keyword}' {value} is out of range "
                            f"({RT_PRIORITY_MIN}-{RT_PRIORITY_MAX}); using {clamped}")
        value = clamped
    draft.set("vrrp_realtime_priority", value)


def _rlimit_rttime(reader: Reader, stmt: Statement, draft: GlobalsDraft) -> None:
    """keepalived's get_rt_rlimit(): microseconds; 1 becomes 2 (half of it is the soft
    limit, which must not be 0)."""
    reader.no_block(stmt)
    if stmt.keyword == "vrrp_rlimit_rtime":
        reader.diag.warning(stmt.location, "'vrrp_rlimit_rtime' is deprecated; use 'vrrp_rlimit_rttime'")
    value = reader.integer(stmt, 1, 2**32 - 1)
    if value is not None:
        reader.at_most(stmt, 1)
        draft.set("vrrp_rlimit_rttime_us", max(value, 2))


def _cpu_affinity(reader: Reader, stmt: Statement, draft: GlobalsDraft) -> None:
    """keepalived's get_cpu_affinity(): CPU numbers of this machine (0 to online CPUs - 1)."""
    reader.no_block(stmt)
    if reader.arg(stmt, 1, "one or more CPU numbers") is None:
        return
    last = (os.cpu_count() or 1) - 1
    cpus = []
    for i in range(1, len(stmt.words)):
        cpu = reader.integer(stmt, 0, last, index=i, what=f"'{stmt.keyword}' CPU")
        if cpu is None:
            return  # keepalived drops the whole set at the first bad number
        cpus.append(cpu)
    draft.set("vrrp_cpu_affinity", tuple(sorted(set(cpus))))


def _vmac_prefix(reader: Reader, stmt: Statement, draft: GlobalsDraft) -> None:
    reader.no_block(stmt)
    prefix = reader.arg(stmt, 1, "a name prefix")
    if prefix is not None:
        draft.set("vmac_prefix", prefix)


_DAY = Decimal(86400)

GLOBAL_KEYWORDS = {
    "router_id": _router_id,
    "vrrp_version": _set_int("vrrp_version", 2, 3),
    "vrrp_mcast_group4": _mcast_group4,
    "vrrp_mcast_group6": _mcast_group6,
    "vrrp_garp_master_delay": _set_seconds("vrrp_garp_master_delay_s", Decimal(0), Decimal(4294), whole=True),
    "vrrp_garp_master_repeat": _garp_repeat("vrrp_garp_master_repeat"),
    "vrrp_garp_master_refresh": _set_seconds("vrrp_garp_master_refresh_s", Decimal(0), Decimal(2**32 - 1), whole=True),
    "vrrp_garp_master_refresh_repeat": _garp_repeat("vrrp_garp_master_refresh_repeat"),
    "vrrp_garp_lower_prio_delay": _set_seconds("vrrp_garp_lower_prio_delay_s", Decimal(0), Decimal(4294), whole=True),
    "vrrp_garp_lower_prio_repeat": _set_int("vrrp_garp_lower_prio_repeat", 0, 2**31 - 1),
    "vrrp_garp_interval": _set_seconds("vrrp_garp_interval_s", Decimal("0.000001"), _DAY),
    "vrrp_gna_interval": _set_seconds("vrrp_gna_interval_s", Decimal("0.000001"), _DAY),
    "vrrp_min_garp": _set_bool("vrrp_min_garp"),
    "vrrp_down_timer_adverts": _set_int("vrrp_down_timer_adverts", 1, 100),
    "vrrp_strict": _set_flag("vrrp_strict"),
    "vrrp_skip_check_adv_addr": _set_flag("vrrp_skip_check_adv_addr"),
    "vrrp_check_unicast_src": _set_flag("vrrp_check_unicast_src"),
    "vrrp_lower_prio_no_advert": _set_bool("vrrp_lower_prio_no_advert"),
    "vrrp_higher_prio_send_advert": _set_bool("vrrp_higher_prio_send_advert"),
    "v3_checksum_as_v2": _set_bool("v3_checksum_as_v2"),
    "enable_script_security": _set_flag("enable_script_security"),
    "script_user": _script_user,
    "notify_fifo": _fifo("notify_fifo"),
    "notify_fifo_script": _fifo_script("notify_fifo_script"),
    "vrrp_notify_fifo": _fifo("vrrp_notify_fifo"),
    "vrrp_notify_fifo_script": _fifo_script("vrrp_notify_fifo_script"),
    "vrrp_notify_priority_changes": _set_bool("vrrp_notify_priority_changes"),
    "fifo_write_vrrp_states_on_reload": _set_flag("fifo_write_vrrp_states_on_reload"),
    "vrrp_startup_delay": _set_seconds("vrrp_startup_delay_s", Decimal("0.001"), Decimal(2**32 - 1)),
    "vmac_prefix": _vmac_prefix,
    "vrrp_priority": _process_priority,
    "vrrp_rt_priority": _realtime_priority,
    "vrrp_rlimit_rttime": _rlimit_rttime,
    "vrrp_rlimit_rtime": _rlimit_rttime,
    "vrrp_no_swap": _set_flag("vrrp_no_swap"),
    "vrrp_cpu_affinity": _cpu_affinity,
}


def parse_global_defs(reader: Reader, stmt: Statement, draft: GlobalsDraft) -> None:
    reader.at_most(stmt, 0)
    if draft.location.line == 0:
        draft.location = stmt.location
    dispatch(reader, reader.block(stmt) or (), GLOBAL_KEYWORDS, "global_defs", draft, INERT_GLOBAL_KEYWORDS)


def parse_net_namespace(reader: Reader, stmt: Statement, draft: GlobalsDraft) -> None:
    reader.no_block(stmt)
    name = reader.arg(stmt, 1, "a namespace name")
    if name is not None:
        reader.diag.warning(
            stmt.location, f"net_namespace {name}: fastvrrp does not enter namespaces itself; run it inside '{name}'"
        )
        draft.set("net_namespace", name)


def finish_globals(draft: GlobalsDraft) -> Globals:
    values = dict(draft.values)
    if values.get("vrrp_min_garp"):
        # keepalived: one GARP, no repeats, no second burst -- unless set explicitly.
        values.setdefault("vrrp_garp_master_repeat", 1)
        values.setdefault("vrrp_garp_master_refresh_s", 0.0)
        values.setdefault("vrrp_garp_master_refresh_repeat", 0)
        values.setdefault("vrrp_garp_master_delay_s", 0.0)
    defaults = Globals()
    values.setdefault("vrrp_garp_lower_prio_delay_s", values.get("vrrp_garp_master_delay_s", defaults.vrrp_garp_master_delay_s))
    values.setdefault("vrrp_garp_lower_prio_repeat", values.get("vrrp_garp_master_repeat", defaults.vrrp_garp_master_repeat))
    return Globals(**values, location=draft.location)
