"""The public entry points: `load(path)` and `parse_text(text, filename)` -> Config.

A pure function of the files read (and the config id), so SIGHUP can call it again and
compare. All errors are collected and raised together as one ConfigError.
"""

from __future__ import annotations

import gc
import socket
from collections.abc import Callable

from fastvrrp.config.diagnostics import ConfigError, Diagnostics, did_you_mean
from fastvrrp.config.globals_section import (
    INERT_ROOT_KEYWORDS,
    GlobalsDraft,
    finish_globals,
    parse_global_defs,
    parse_net_namespace,
)
from fastvrrp.config.instance_resolve import resolve_file_refs, resolve_instance, resolve_script_refs
from fastvrrp.config.instance_section import InstanceDraft, parse_instance
from fastvrrp.config.lexer import Lexer
from fastvrrp.config.model import Config, Instance, Notifies, SyncGroup, TrackFile, VrrpScript
from fastvrrp.config.parser import Statement, build_tree
from fastvrrp.config.semantics import assign_sync_groups, check_vrid_conflicts, warn_unused_scripts
from fastvrrp.config.sync_group_section import SyncGroupDraft, parse_sync_group
from fastvrrp.config.tracking_section import parse_track_file, parse_vrrp_script
from fastvrrp.config.values import Reader

# Sections keepalived knows that have nothing to do with fastvrrp's VRRP: skipped, one
# warning each.
SKIPPED_SECTIONS: dict[str, str] = {
    "virtual_server": "LVS {section} is skipped (fastvrrp does VRRP only)",
    "virtual_server_group": "LVS {section} is skipped (fastvrrp does VRRP only)",
    "static_ipaddress": "{section} is skipped (fastvrrp does not manage static addresses)",
    "static_routes": "{section} is skipped (fastvrrp does not manage static routes)",
    "static_rules": "{section} is skipped (fastvrrp does not manage static rules)",
    "track_group": "{section} (for static addresses) is skipped",
    "garp_group": "{section} is skipped (fastvrrp has no GARP groups)",
    "linkbeat_interfaces": "{section} is skipped (fastvrrp uses netlink link state)",
    "interface_up_down_delays": "{section} is skipped (not supported by fastvrrp)",
    "bfd_instance": "BFD {section} is skipped (fastvrrp has no BFD)",
    "vrrp_track_process": "{section} is skipped (fastvrrp does not track processes)",
}

_TOP_LEVEL = (
    "global_defs", "vrrp_instance", "vrrp_script", "vrrp_sync_group", "track_file",
    "vrrp_track_file", "net_namespace",
)  # fmt: skip


def default_config_id() -> str:
    """keepalived's default for `-i`: the host name up to its first dot."""
    return socket.gethostname().split(".", 1)[0]


def _read_text(path: str) -> str:
    with open(path, encoding="utf-8", errors="surrogateescape") as f:
        return f.read()


def parse_text(
    text: str,
    filename: str = "<config>",
    config_id: str | None = None,
    read_text: Callable[[str], str] = _read_text,
) -> Config:
    """Parse configuration text (includes are read relative to `filename`)."""
    diag = Diagnostics()
    lexer = Lexer(diag, default_config_id() if config_id is None else config_id, read_text)
    lexer.lex_text(text, filename)
    return _build(lexer, diag)


def load(path: str, config_id: str | None = None) -> Config:
    """Read, validate and model a keepalived.conf; raises ConfigError with every error."""
    diag = Diagnostics()
    lexer = Lexer(diag, default_config_id() if config_id is None else config_id, _read_text)
    lexer.lex_file(path)
    return _build(lexer, diag)


def _build(lexer: Lexer, diag: Diagnostics) -> Config:
    # The model is a large tree of immutable objects with no cycles: collecting garbage
    # while building it only costs time (about a third of a 1000-instance load).
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        return _build_config(lexer, diag)
    finally:
        if gc_was_enabled:
            gc.enable()


def _build_config(lexer: Lexer, diag: Diagnostics) -> Config:
    statements = build_tree(lexer.lines, diag)
    reader = Reader(diag)
    globals_draft = GlobalsDraft()
    instance_drafts: list[InstanceDraft] = []
    group_drafts: list[SyncGroupDraft] = []
    scripts: dict[str, VrrpScript] = {}
    track_files: dict[str, TrackFile] = {}
    first_seen: dict[tuple[str, str], Statement] = {}

    def duplicate(kind: str, stmt: Statement) -> bool:
        if len(stmt.words) < 2:
            return False
        key = (kind, stmt.words[1])
        if key in first_seen:
            diag.error(stmt.location, f"{kind} {stmt.words[1]} is already defined at {first_seen[key].location}")
            return True
        first_seen[key] = stmt
        return False

    for stmt in statements:
        keyword = stmt.keyword
        if keyword == "global_defs":
            parse_global_defs(reader, stmt, globals_draft)
        elif keyword == "vrrp_instance":
            if not duplicate("vrrp_instance", stmt):
                draft = parse_instance(reader, stmt)
                if draft is not None:
                    instance_drafts.append(draft)
        elif keyword == "vrrp_script":
            if not duplicate("vrrp_script", stmt):
                script = parse_vrrp_script(reader, stmt)
                if script is not None:
                    scripts[script.name] = script
        elif keyword in ("track_file", "vrrp_track_file"):
            if not duplicate("track_file", stmt):
                tracked = parse_track_file(reader, stmt)
                if tracked is not None:
                    track_files[tracked.name] = tracked
        elif keyword == "vrrp_sync_group":
            if not duplicate("vrrp_sync_group", stmt):
                group = parse_sync_group(reader, stmt)
                if group is not None:
                    group_drafts.append(group)
        elif keyword == "net_namespace":
            parse_net_namespace(reader, stmt, globals_draft)
        elif keyword in SKIPPED_SECTIONS:
            diag.warning(stmt.location, SKIPPED_SECTIONS[keyword].format(section=" ".join(stmt.words)))
        elif keyword in INERT_ROOT_KEYWORDS:
            diag.warning(stmt.location, f"'{keyword}' {INERT_ROOT_KEYWORDS[keyword]}")
        else:
            known = list(_TOP_LEVEL) + list(SKIPPED_SECTIONS) + list(INERT_ROOT_KEYWORDS)
            diag.error(stmt.location, f"unknown keyword '{keyword}' at top level{did_you_mean(keyword, known)}")

    globals_ = finish_globals(globals_draft)
    membership = assign_sync_groups(group_drafts, instance_drafts, diag)
    instances: list[Instance] = []
    for draft in instance_drafts:
        inst = resolve_instance(draft, globals_, membership.get(draft.name), scripts, track_files, diag)
        if inst is not None:
            instances.append(inst)
    check_vrid_conflicts(instances, diag)

    sync_groups = [_finish_group(g, membership, scripts, track_files, diag) for g in group_drafts]
    used = {t.name for inst in instances for t in inst.track_scripts}
    used |= {t.name for draft in instance_drafts for t in draft.track_scripts}
    used |= {t.name for g in group_drafts for t in g.track_scripts}
    warn_unused_scripts(list(scripts.values()), used, diag)

    if diag.errors:
        raise ConfigError(diag.sorted_errors(), diag.sorted_warnings())
    return Config(
        globals=globals_,
        instances=tuple(instances),
        scripts=tuple(scripts.values()),
        track_files=tuple(track_files.values()),
        sync_groups=tuple(sync_groups),
        warnings=tuple(diag.sorted_warnings()),
        files=tuple(lexer.files),
    )


def _finish_group(
    g: SyncGroupDraft,
    membership: dict[str, SyncGroupDraft],
    scripts: dict[str, VrrpScript],
    track_files: dict[str, TrackFile],
    diag: Diagnostics,
) -> SyncGroup:
    owner = f"vrrp_sync_group {g.name}"
    members = tuple(name for name, _ in g.members if membership.get(name) is g)
    return SyncGroup(
        name=g.name,
        instances=tuple(dict.fromkeys(members)),
        notifies=Notifies(
            master=g.notifies.get("master"),
            backup=g.notifies.get("backup"),
            fault=g.notifies.get("fault"),
            stop=g.notifies.get("stop"),
            generic=g.notifies.get("generic"),
        ),
        track_interfaces=tuple(g.track_interfaces),
        track_scripts=tuple(resolve_script_refs(g.track_scripts, scripts, owner, diag)),
        track_files=tuple(resolve_file_refs(g.track_files, track_files, owner, diag)),
        tracking_weight=g.tracking_weight,
        notify_priority_changes=g.notify_priority_changes,
        smtp_alert=g.smtp_alert,
        location=g.location,
    )
