"""`vrrp_script` and `track_file` sections, and the track_* lists that refer to them."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from fastvrrp.config.diagnostics import Location
from fastvrrp.config.model import Script, TrackedInterface, TrackFile, VrrpScript
from fastvrrp.config.parser import Statement
from fastvrrp.config.values import Reader, dispatch

# keepalived accepts ±254 for old configs and turns it into ±253 (vrrp_track.c).
WEIGHT_LIMIT = 253
_MAX_SCRIPT_SECONDS = Decimal(4294)  # UINT_MAX / TIMER_HZ, in whole seconds


@dataclass(frozen=True, slots=True)
class TrackRef:
    """A track_script / track_file entry before its target is known; weight None = target's."""

    name: str
    weight: int | None
    reverse: bool | None
    location: Location


def _weight(reader: Reader, item: Statement, what: str, index: int) -> int | None:
    words = item.words
    if index >= len(words):
        reader.diag.error(item.location, f"{what} {words[0]}: 'weight' needs a value")
        return None
    text = words[index]
    try:
        weight = int(text)
    except ValueError:
        reader.diag.error(item.location, f"{what} {words[0]}: weight must be an integer, not '{text}'")
        return None
    if abs(weight) == WEIGHT_LIMIT + 1:
        reader.diag.warning(item.location, f"{what} {words[0]}: weight {weight} is taken as {253 if weight > 0 else -253}")
        weight = WEIGHT_LIMIT if weight > 0 else -WEIGHT_LIMIT
    if abs(weight) > WEIGHT_LIMIT:
        reader.diag.error(item.location, f"{what} {words[0]}: weight {weight} is out of range (-253-253)")
        return None
    return weight


def _weighted_item(reader: Reader, item: Statement, what: str, allow_noreverse: bool) -> tuple[int | None, bool | None] | None:
    """`NAME [weight N [reverse]]`."""
    words = item.words
    if item.block is not None:
        reader.diag.error(item.location, f"{what} entries do not take a {{ }} block")
        return None
    if len(words) == 1:
        return None, None
    if words[1] != "weight":
        reader.diag.error(item.location, f"{what} {words[0]}: unknown option '{words[1]}'")
        return None
    weight = _weight(reader, item, what, 2)
    if weight is None:
        return None
    reverse: bool | None = None
    if len(words) >= 4:
        if words[3] == "reverse":
            reverse = True
        elif words[3] == "noreverse" and allow_noreverse:
            reverse = False
        else:
            reader.diag.error(item.location, f"{what} {words[0]}: unknown weight option '{words[3]}'")
            return None
        if len(words) > 4:
            reader.diag.warning(item.location, f"{what} {words[0]}: ignoring extra words '{' '.join(words[4:])}'")
    return weight, reverse


def parse_track_interfaces(reader: Reader, stmt: Statement, into: list[TrackedInterface]) -> None:
    for item in reader.block(stmt) or ():
        parsed = _weighted_item(reader, item, "track_interface", allow_noreverse=False)
        if parsed is None:
            continue
        name = item.words[0]
        if any(t.name == name for t in into):
            reader.diag.warning(item.location, f"track_interface {name} is listed twice; keeping the first")
            continue
        weight, reverse = parsed
        into.append(TrackedInterface(name, weight or 0, bool(reverse)))


def parse_track_refs(reader: Reader, stmt: Statement, what: str, into: list[TrackRef]) -> None:
    for item in reader.block(stmt) or ():
        parsed = _weighted_item(reader, item, what, allow_noreverse=True)
        if parsed is None:
            continue
        name = item.words[0]
        if any(t.name == name for t in into):
            reader.diag.warning(item.location, f"{what} {name} is listed twice; keeping the first")
            continue
        into.append(TrackRef(name, parsed[0], parsed[1], item.location))


# -- vrrp_script -------------------------------------------------------------------------


@dataclass(slots=True)
class ScriptDraft:
    name: str
    location: Location
    script: Script | None = None
    interval: Decimal = Decimal(1)
    timeout: Decimal | None = None
    weight: int = 0
    weight_reverse: bool = False
    rise: int = 1
    fall: int = 1
    user: str | None = None
    group: str | None = None
    init_fail: bool = False

    def finish(self) -> VrrpScript | None:
        if self.script is None:
            return None
        script = Script(self.script.argv, self.user, self.group) if self.user else self.script
        timeout = self.timeout if self.timeout is not None else self.interval
        return VrrpScript(
            name=self.name,
            script=script,
            interval_s=float(self.interval),
            timeout_s=float(timeout),
            weight=self.weight,
            weight_reverse=self.weight_reverse,
            rise=self.rise,
            fall=self.fall,
            init_fail=self.init_fail,
            location=self.location,
        )


def _script_seconds(reader: Reader, stmt: Statement) -> Decimal | None:
    value = reader.decimal(stmt, Decimal(0), _MAX_SCRIPT_SECONDS)
    if value is None:
        return None
    reader.at_most(stmt, 1)
    value = value.quantize(Decimal("0.001"))  # keepalived keeps milliseconds
    if value == 0:
        reader.diag.warning(stmt.location, f"'{stmt.keyword}' must be greater than 0; using 1")
        return Decimal(1)
    return value


def _s_script(reader: Reader, stmt: Statement, draft: ScriptDraft) -> None:
    draft.script = reader.script(stmt, with_user=False)


def _s_interval(reader: Reader, stmt: Statement, draft: ScriptDraft) -> None:
    value = _script_seconds(reader, stmt)
    if value is not None:
        draft.interval = value


def _s_timeout(reader: Reader, stmt: Statement, draft: ScriptDraft) -> None:
    value = _script_seconds(reader, stmt)
    if value is not None:
        draft.timeout = value


def _s_weight(reader: Reader, stmt: Statement, draft: ScriptDraft) -> None:
    reader.no_block(stmt)
    weight = reader.integer(stmt, -WEIGHT_LIMIT, WEIGHT_LIMIT, what="vrrp_script weight")
    if weight is not None:
        draft.weight = weight
    if len(stmt.words) >= 3:
        if stmt.words[2] == "reverse":
            draft.weight_reverse = True
        else:
            reader.diag.error(stmt.location, f"unknown weight option '{stmt.words[2]}'")


def _s_rise(reader: Reader, stmt: Statement, draft: ScriptDraft) -> None:
    reader.no_block(stmt)
    value = reader.integer(stmt, 1, 2**31 - 1)
    if value is not None:
        draft.rise = value


def _s_fall(reader: Reader, stmt: Statement, draft: ScriptDraft) -> None:
    reader.no_block(stmt)
    value = reader.integer(stmt, 1, 2**31 - 1)
    if value is not None:
        draft.fall = value


def _s_user(reader: Reader, stmt: Statement, draft: ScriptDraft) -> None:
    reader.no_block(stmt)
    user = reader.arg(stmt, 1, "a user name")
    if user is not None:
        draft.user = user
        draft.group = stmt.words[2] if len(stmt.words) > 2 else None
        reader.at_most(stmt, 2)


def _s_init_fail(reader: Reader, stmt: Statement, draft: ScriptDraft) -> None:
    draft.init_fail = reader.flag(stmt)


SCRIPT_KEYWORDS = {
    "script": _s_script,
    "interval": _s_interval,
    "timeout": _s_timeout,
    "weight": _s_weight,
    "rise": _s_rise,
    "fall": _s_fall,
    "user": _s_user,
    "init_fail": _s_init_fail,
}


def parse_vrrp_script(reader: Reader, stmt: Statement) -> VrrpScript | None:
    if len(stmt.words) != 2:
        reader.diag.error(stmt.location, "vrrp_script needs exactly one name")
        return None
    draft = ScriptDraft(stmt.words[1], stmt.location)
    dispatch(reader, reader.block(stmt) or (), SCRIPT_KEYWORDS, f"vrrp_script {draft.name}", draft)
    if draft.script is None and stmt.block is not None:
        reader.diag.error(stmt.location, f"vrrp_script {draft.name} has no 'script'")
    return draft.finish()


# -- track_file --------------------------------------------------------------------------


@dataclass(slots=True)
class TrackFileDraft:
    name: str
    location: Location
    path: str | None = None
    weight: int = 1
    weight_reverse: bool = False
    init_file: bool = False
    init_value: int = 0
    init_overwrite: bool = False


def _f_file(reader: Reader, stmt: Statement, draft: TrackFileDraft) -> None:
    reader.no_block(stmt)
    path = reader.arg(stmt, 1, "a path")
    if path is not None:
        draft.path = path
        reader.at_most(stmt, 1)


def _f_weight(reader: Reader, stmt: Statement, draft: TrackFileDraft) -> None:
    reader.no_block(stmt)
    weight = reader.integer(stmt, -254, 254, what="track_file weight")
    if weight is not None:
        draft.weight = weight
    if len(stmt.words) >= 3:
        if stmt.words[2] == "reverse":
            draft.weight_reverse = True
        else:
            reader.diag.error(stmt.location, f"unknown weight option '{stmt.words[2]}'")


def _f_init_file(reader: Reader, stmt: Statement, draft: TrackFileDraft) -> None:
    reader.no_block(stmt)
    draft.init_file = True
    for word in stmt.args:
        if word == "overwrite":
            draft.init_overwrite = True
            continue
        try:
            draft.init_value = int(word)
        except ValueError:
            reader.diag.error(stmt.location, f"init_file: unknown option '{word}'")


TRACK_FILE_KEYWORDS = {"file": _f_file, "weight": _f_weight, "init_file": _f_init_file}


def parse_track_file(reader: Reader, stmt: Statement) -> TrackFile | None:
    if len(stmt.words) != 2:
        reader.diag.error(stmt.location, f"{stmt.keyword} needs exactly one name")
        return None
    if stmt.keyword == "vrrp_track_file":
        reader.diag.warning(stmt.location, "'vrrp_track_file' is deprecated in keepalived; use 'track_file'")
    draft = TrackFileDraft(stmt.words[1], stmt.location)
    dispatch(reader, reader.block(stmt) or (), TRACK_FILE_KEYWORDS, f"track_file {draft.name}", draft)
    if draft.path is None:
        if stmt.block is not None:
            reader.diag.error(stmt.location, f"track_file {draft.name} has no 'file'")
        return None
    return TrackFile(
        name=draft.name,
        path=draft.path,
        weight=draft.weight,
        weight_reverse=draft.weight_reverse,
        init_file=draft.init_file,
        init_value=draft.init_value,
        init_overwrite=draft.init_overwrite,
        location=draft.location,
    )
