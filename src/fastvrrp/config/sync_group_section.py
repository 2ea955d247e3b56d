"""`vrrp_sync_group` (keepalived vrrp_parser.c / vrrp_sync.c)."""

from __future__ import annotations

from dataclasses import dataclass, field

from fastvrrp.config.diagnostics import Location
from fastvrrp.config.model import Script, TrackedInterface
from fastvrrp.config.parser import Statement
from fastvrrp.config.tracking_section import TrackRef, parse_track_interfaces, parse_track_refs
from fastvrrp.config.values import Reader, dispatch


@dataclass(slots=True)
class SyncGroupDraft:
    name: str
    location: Location
    members: list[tuple[str, Location]] = field(default_factory=list)
    had_group: bool = False
    notifies: dict[str, Script] = field(default_factory=dict)
    track_interfaces: list[TrackedInterface] = field(default_factory=list)
    track_scripts: list[TrackRef] = field(default_factory=list)
    track_files: list[TrackRef] = field(default_factory=list)
    tracking_weight: bool = False
    notify_priority_changes: bool | None = None
    smtp_alert: bool = False


def _group(reader: Reader, stmt: Statement, g: SyncGroupDraft) -> None:
    if g.had_group:
        reader.diag.error(stmt.location, f"sync group {g.name} already has a group list")
        return
    g.had_group = True
    reader.at_most(stmt, 0)
    for item in reader.block(stmt) or ():
        if item.block is not None:
            reader.diag.error(item.location, "group entries do not take a { } block")
            continue
        # keepalived's read_value_block: every word of every line is a member name.
        g.members.extend((name, item.location) for name in item.words)


def _notify(reader: Reader, stmt: Statement, g: SyncGroupDraft) -> None:
    kind = stmt.keyword.removeprefix("notify_") if stmt.keyword != "notify" else "generic"
    if kind in g.notifies:
        reader.diag.error(stmt.location, f"{stmt.keyword} is already set for sync group {g.name}")
        return
    script = reader.script(stmt)
    if script is not None:
        g.notifies[kind] = script


def _smtp_alert(reader: Reader, stmt: Statement, g: SyncGroupDraft) -> None:
    value = reader.boolean(stmt)
    if value is not None:
        g.smtp_alert = value


def _track_interface(reader: Reader, stmt: Statement, g: SyncGroupDraft) -> None:
    parse_track_interfaces(reader, stmt, g.track_interfaces)


def _track_script(reader: Reader, stmt: Statement, g: SyncGroupDraft) -> None:
    parse_track_refs(reader, stmt, "track_script", g.track_scripts)


def _track_file(reader: Reader, stmt: Statement, g: SyncGroupDraft) -> None:
    parse_track_refs(reader, stmt, "track_file", g.track_files)


def _global_tracking(reader: Reader, stmt: Statement, g: SyncGroupDraft) -> None:
    reader.flag(stmt)
    reader.diag.warning(stmt.location, "global_tracking is deprecated in keepalived; use sync_group_tracking_weight")
    g.tracking_weight = True


def _tracking_weight(reader: Reader, stmt: Statement, g: SyncGroupDraft) -> None:
    g.tracking_weight = reader.flag(stmt)


def _notify_priority_changes(reader: Reader, stmt: Statement, g: SyncGroupDraft) -> None:
    value = reader.boolean(stmt)
    if value is not None:
        g.notify_priority_changes = value


def _unsupported(reader: Reader, stmt: Statement, g: SyncGroupDraft) -> None:
    reader.diag.error(stmt.location, f"'{stmt.keyword}' is a keepalived feature that fastvrrp does not support")


SYNC_GROUP_KEYWORDS = {
    "group": _group,
    "notify_master": _notify,
    "notify_backup": _notify,
    "notify_fault": _notify,
    "notify_stop": _notify,
    "notify": _notify,
    "smtp_alert": _smtp_alert,
    "track_interface": _track_interface,
    "track_script": _track_script,
    "track_file": _track_file,
    "global_tracking": _global_tracking,
    "sync_group_tracking_weight": _tracking_weight,
    "notify_priority_changes": _notify_priority_changes,
    "track_process": _unsupported,
    "track_bfd": _unsupported,
}


def parse_sync_group(reader: Reader, stmt: Statement) -> SyncGroupDraft | None:
    if len(stmt.words) != 2:
        reader.diag.error(stmt.location, "vrrp_sync_group needs exactly one name")
        return None
    draft = SyncGroupDraft(stmt.words[1], stmt.location)
    block = reader.block(stmt)
    if block is None:
        return None
    dispatch(reader, block, SYNC_GROUP_KEYWORDS, f"vrrp_sync_group {draft.name}", draft)
    if not draft.members:
        reader.diag.error(stmt.location, f"sync group {draft.name} lists no instances (use 'group {{ NAME ... }}')")
    return draft
