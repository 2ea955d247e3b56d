"""Tracking (track_interface, track_script, track_file) as keepalived does it, sans I/O.

Inputs are observations (a script exited with success or failure, an interface went up or
down, a track file now holds a value); the output, per instance, is its `Outcome`: the
fault reasons (non-empty = the instance must be in FAULT) and its effective priority.

keepalived's arithmetic (vrrp_track.c, vrrp_scheduler.c, trackers/track_file.c), for a
tracker of weight w, `reverse` giving the multiplier m = -1 (else 1):
- w = 0: the instance is in FAULT while the tracked object is failed (down, script failed,
  file value non-zero); with `reverse`, while it is OK (up, succeeded, value 0).
- w > 0: contributes m*w while OK, 0 while failed. w < 0: m*w while failed, 0 while OK.
  So `reverse` negates a weighted contribution, it does not swap OK and failed
  (process_if_status_change(), process_script_update_priority()).
- track_file: w = 0 as above; otherwise the contribution is value*w*m clamped to
  [-254, 253], and -254 (or less) means FAULT (update_track_file_status()).
- effective priority = base + contributions, clamped to 1..254; an address owner (255)
  keeps 255 (vrrp_set_effective_priority()).

A vrrp_script starts in keepalived's INIT state: unweighted, it holds its instances out of
service until its first result; weighted, it contributes nothing until then; its first
result, success or failure, decides its state whatever rise/fall say (vrrp_init_script():
result = rise - 1; vrrp_script_child_thread()).
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import NamedTuple

from fastvrrp.config.model import Config, Instance, PRIORITY_OWNER, SyncGroup
from fastvrrp.proto.fsm import effective_priority

__all__ = [
    "FILE_FAULT",
    "FILE_MAX",
    "Outcome",
    "ScriptCounter",
    "ScriptInit",
    "ScriptState",
    "Tracker",
    "TrackerKind",
    "TrackingState",
    "all_pending",
    "file_effect",
    "instance_trackers",
    "interface_effect",
    "parse_file_value",
    "script_effect",
]

# A track_file result at or below this puts the instance in FAULT; above FILE_MAX it is
# capped (process_update_vrrp_track_file_status()).
FILE_FAULT = -254
FILE_MAX = 253
# keepalived reads at most this many bytes of a track file (process_track_file()).
FILE_READ_LIMIT = 127
_INT32_MIN = -(2**31)
_INT32_LIMIT = 2**31  # keepalived accepts INT32_MAX + 1 (its check is `> INT32_MAX + 1`)

PENDING = "has no result yet"


class TrackerKind(enum.Enum):
    INTERFACE = "track_interface"
    SCRIPT = "track_script"
    FILE = "track_file"


@dataclass(frozen=True, slots=True)
class Tracker:
    """One tracked object of one instance, after keepalived's merging rules."""

    kind: TrackerKind
    name: str  # interface name, vrrp_script name or track_file name
    weight: int = 0
    reverse: bool = False

    @property
    def multiplier(self) -> int:
        return -1 if self.reverse else 1


class Outcome(NamedTuple):
    fault_reasons: frozenset[str]
    priority: int


Effect = tuple[str | None, int]  # (fault reason or None, priority contribution)
_NO_EFFECT: Effect = (None, 0)


def all_pending(reasons: Iterable[str]) -> bool:
    """True when every reason is an unweighted script still waiting for its first result.

    keepalived keeps such an instance out of service but sends no FAULT notify for it
    (vrrp_init_state(): notifies only when num_script_if_fault is set).
    """
    found = False
    for reason in reasons:
        if not reason.endswith(PENDING):
            return False
        found = True
    return found


# --- one tracker ----------------------------------------------------------------------


def _binary_effect(tracker: Tracker, ok: bool, failed_text: str, ok_text: str) -> Effect:
    if tracker.weight == 0:
        if ok != tracker.reverse:
            return _NO_EFFECT
        text = f"{ok_text} (reverse)" if tracker.reverse else failed_text
        return f"{tracker.kind.value} {tracker.name} {text}", 0
    if (ok and tracker.weight > 0) or (not ok and tracker.weight < 0):
        return None, tracker.weight * tracker.multiplier
    return _NO_EFFECT


def interface_effect(tracker: Tracker, up: bool) -> Effect:
    """process_if_status_change() / initialise_interface_tracking_priorities()."""
    return _binary_effect(tracker, up, "down", "up")


class ScriptState(enum.Enum):
    INIT = "init"  # no result yet; holds unweighted trackers' instances out of service
    INIT_RELOAD = "init_reload"  # added at a reload: no result yet, holds nothing
    OK = "ok"
    FAILED = "failed"


def script_effect(tracker: Tracker, state: ScriptState) -> Effect:
    """process_script_update_priority() / initialise_track_script_state()."""
    if state is ScriptState.INIT:
        if tracker.weight == 0:
            return f"{tracker.kind.value} {tracker.name} {PENDING}", 0
        return _NO_EFFECT
    if state is ScriptState.INIT_RELOAD:
        return _NO_EFFECT
    return _binary_effect(tracker, state is ScriptState.OK, "failed", "succeeded")


def file_effect(tracker: Tracker, value: int | None) -> Effect:
    """update_track_file_status(); None: the file is not tracked (keepalived dropped it)."""
    if value is None:
        return _NO_EFFECT
    label = f"{tracker.kind.value} {tracker.name} = {value}"
    if tracker.weight == 0:
        if (value != 0) != tracker.reverse:
            return (f"{label} (reverse)" if tracker.reverse else label), 0
        return _NO_EFFECT
    status = value * tracker.weight * tracker.multiplier
    if status <= FILE_FAULT:
        return f"{label} (weight {tracker.weight * tracker.multiplier})", 0
    return None, min(status, FILE_MAX)


def parse_file_value(data: bytes) -> int | None:
    """A track file's value as keepalived reads it: strtol(buf, NULL, 0) of its first
    127 bytes. Empty or non-numeric text is 0; None when out of range (keepalived logs
    "Invalid number" and keeps the previous value)."""
    text = data[:FILE_READ_LIMIT].split(b"\0", 1)[0].decode("latin-1")
    i = 0
    n = len(text)
    while i < n and text[i] in " \t\n\v\f\r":
        i += 1
    sign = 1
    if i < n and text[i] in "+-":
        sign = -1 if text[i] == "-" else 1
        i += 1
    base = 10
    if text.startswith(("0x", "0X"), i) and i + 2 < n and text[i + 2] in "0123456789abcdefABCDEF":
        base = 16
        i += 2
    elif text.startswith("0", i):
        base = 8
    digits = "0123456789abcdef"[:base]
    start = i
    while i < n and text[i].lower() in digits:
        i += 1
    if i == start:
        return 0
    value = sign * int(text[start:i], base)
    if value < _INT32_MIN or value > _INT32_LIMIT:
        return None
    return value


# --- vrrp_script rise/fall ------------------------------------------------------------


class ScriptInit(enum.Enum):
    """keepalived's script_init_state_t, without FAILED (that is a counter value here)."""

    INIT = "init"
    INIT_RELOAD = "init_reload"
    DONE = "done"


@dataclass(slots=True)
class ScriptCounter:
    """keepalived's vscript->result: 0..rise-1 = failed, rise..rise+fall-1 = OK.

    A success counts up, and reaching `rise` makes the script OK (then it jumps to the
    top, rise+fall-1); a failure counts down, and dropping below `rise` makes it failed
    (then it jumps to 0). So from OK, `fall` consecutive failures fail it; from failed,
    `rise` consecutive successes restore it (vrrp_script_child_thread()).
    """

    rise: int
    fall: int
    result: int
    init: ScriptInit = ScriptInit.DONE

    @classmethod
    def initial(cls, rise: int, fall: int, init_fail: bool = False, reload: bool = False) -> ScriptCounter:
        """A new script (vrrp_init_script()). `init_fail` starts it failed, needing `rise`
        successes; otherwise its first result decides (result = rise - 1)."""
        if init_fail:
            return cls(rise, fall, 0, ScriptInit.DONE)
        return cls(rise, fall, rise - 1, ScriptInit.INIT_RELOAD if reload else ScriptInit.INIT)

    @property
    def state(self) -> ScriptState:
        if self.init is ScriptInit.INIT:
            return ScriptState.INIT
        if self.init is ScriptInit.INIT_RELOAD:
            return ScriptState.INIT_RELOAD
        return ScriptState.OK if self.result >= self.rise else ScriptState.FAILED

    def record(self, success: bool) -> bool:
        """Count one result; True when the state (see `state`) changed."""
        before = self.state
        top = self.rise + self.fall - 1
        if success:
            if self.result < self.rise - 1:
                self.result += 1
            else:
                self.result = top
        elif self.result > self.rise:
            self.result -= 1
        else:
            self.result = 0
        self.init = ScriptInit.DONE
        return self.state is not before

    def carried_over(self, rise: int, fall: int, init_fail: bool = False) -> ScriptCounter:
        """This script's counter under a reloaded config with `rise`/`fall`
        (vrrp.c clear_diff_script())."""
        if self.init is ScriptInit.INIT:
            return ScriptCounter.initial(rise, fall, init_fail)
        if self.init is ScriptInit.INIT_RELOAD:
            return ScriptCounter(rise, fall, rise - 1, ScriptInit.INIT_RELOAD)
        if self.result < self.rise:
            result = 0 if self.result == 0 else max(0, rise - (self.rise - self.result))
        elif self.result == self.rise + self.fall - 1:
            result = rise + fall - 1
        else:
            result = min(rise + (self.result - self.rise), rise + fall - 1)
        return ScriptCounter(rise, fall, result, ScriptInit.DONE)


# --- which trackers an instance has ---------------------------------------------------


def _group_of(config: Config, instance: Instance) -> SyncGroup | None:
    if instance.sync_group is not None:
        try:
            return config.sync_group(instance.sync_group)
        except KeyError:
            pass
    for group in config.sync_groups:
        if instance.name in group.instances:
            return group
    return None


def instance_trackers(config: Config, instance: Instance) -> tuple[Tracker, ...]:
    """The instance's own trackers plus its sync group's, merged as keepalived does.

    - A track_interface naming the instance's own interface is ignored: the router
      tracks that one (vrrp.c vrrp_complete_instance() "Ignoring track_interface %s
      since own interface"); a sync group's entry for it only counts with
      dont_track_primary (add_vrrp_to_interface() merges it into the primary's tracker).
    - An object tracked by both the instance and its group is tracked once: unweighted
      if the instance's entry is, else with the group's weight and reverse
      (add_vrrp_to_track_script(), add_obj_to_track_file(), add_vrrp_to_interface()).
    - A group with an address owner among its members has its weights cleared
      (vrrp_complete_init()).
    Weights the config layer already dropped (sync group members without
    sync_group_tracking_weight, owners' own trackers) are taken as given.
    """
    own_if = instance.interface
    merged: dict[tuple[TrackerKind, str], Tracker] = {}
    for t in instance.track_interfaces:
        if t.name != own_if:
            merged.setdefault((TrackerKind.INTERFACE, t.name), Tracker(TrackerKind.INTERFACE, t.name, t.weight, t.reverse))
    for s in instance.track_scripts:
        merged.setdefault((TrackerKind.SCRIPT, s.name), Tracker(TrackerKind.SCRIPT, s.name, s.weight, s.reverse))
    for f in instance.track_files:
        merged.setdefault((TrackerKind.FILE, f.name), Tracker(TrackerKind.FILE, f.name, f.weight, f.reverse))
    group = _group_of(config, instance)
    if group is None:
        return tuple(merged.values())
    has_owner = any(
        member.priority == PRIORITY_OWNER for member in config.instances if member.name in group.instances
    ) or instance.priority == PRIORITY_OWNER
    group_entries: list[Tracker] = []
    for t in group.track_interfaces:
        if t.name == own_if and not instance.dont_track_primary:
            continue
        group_entries.append(Tracker(TrackerKind.INTERFACE, t.name, t.weight, t.reverse))
    group_entries += [Tracker(TrackerKind.SCRIPT, s.name, s.weight, s.reverse) for s in group.track_scripts]
    group_entries += [Tracker(TrackerKind.FILE, f.name, f.weight, f.reverse) for f in group.track_files]
    for entry in group_entries:
        if has_owner and entry.weight:
            entry = Tracker(entry.kind, entry.name, 0, entry.reverse)
        key = (entry.kind, entry.name)
        existing = merged.get(key)
        if existing is not None and existing.weight == 0:
            continue
        merged[key] = entry
    return tuple(merged.values())


# --- all instances --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _InstanceTracking:
    name: str
    base: int
    owner: bool
    trackers: tuple[Tracker, ...]


class TrackingState:
    """Every instance's trackers and every tracked object's state; pure and synchronous.

    Interfaces are taken as up until told otherwise, track files as holding 0 (a
    missing file reads as 0 in keepalived). Each input returns the names of the
    instances whose Outcome changed, in config order.
    """

    def __init__(self, config: Config, *, previous: TrackingState | None = None) -> None:
        self._instances: dict[str, _InstanceTracking] = {}
        self._by_object: dict[tuple[TrackerKind, str], list[str]] = {}
        for inst in config.instances:
            trackers = instance_trackers(config, inst)
            self._instances[inst.name] = _InstanceTracking(inst.name, inst.priority, inst.is_address_owner, trackers)
            for t in trackers:
                self._by_object.setdefault((t.kind, t.name), []).append(inst.name)
        tracked_scripts = {name for kind, name in self._by_object if kind is TrackerKind.SCRIPT}
        self.scripts: dict[str, ScriptCounter] = {}
        for script in config.scripts:
            if script.name not in tracked_scripts:
                continue  # keepalived runs only tracked scripts
            old = previous.scripts.get(script.name) if previous is not None else None
            if old is not None:
                self.scripts[script.name] = old.carried_over(script.rise, script.fall, script.init_fail)
            else:
                self.scripts[script.name] = ScriptCounter.initial(
                    script.rise, script.fall, script.init_fail, reload=previous is not None)
        self._interfaces: dict[str, bool] = dict(previous._interfaces) if previous is not None else {}
        self._files: dict[str, int | None] = {}
        self._outcomes: dict[str, Outcome] = {name: self._evaluate(it) for name, it in self._instances.items()}

    # -- queries --

    def outcome(self, instance: str) -> Outcome:
        return self._outcomes[instance]

    def outcomes(self) -> Mapping[str, Outcome]:
        return dict(self._outcomes)

    def base_priority(self, instance: str) -> int:
        return self._instances[instance].base

    def trackers(self, instance: str) -> tuple[Tracker, ...]:
        return self._instances[instance].trackers

    def tracked(self, kind: TrackerKind) -> frozenset[str]:
        """Names of the objects of `kind` that some instance tracks."""
        return frozenset(name for k, name in self._by_object if k is kind)

    def script_state(self, name: str) -> ScriptState:
        return self.scripts[name].state

    def interface_up(self, name: str) -> bool:
        return self._interfaces.get(name, True)

    def file_value(self, name: str) -> int | None:
        return self._files.get(name, 0)

    # -- inputs --

    def script_result(self, name: str, success: bool) -> list[str]:
        counter = self.scripts.get(name)
        if counter is None or not counter.record(success):
            return []
        return self._reevaluate(TrackerKind.SCRIPT, name)

    def set_interface(self, name: str, up: bool) -> list[str]:
        if self._interfaces.get(name, True) == up:
            self._interfaces[name] = up
            return []
        self._interfaces[name] = up
        return self._reevaluate(TrackerKind.INTERFACE, name)

    def set_file(self, name: str, value: int | None) -> list[str]:
        """A track file's value; None: stop tracking it (keepalived removes a track
        file whose directory does not exist)."""
        if self._files.get(name, 0) == value:
            return []
        self._files[name] = value
        return self._reevaluate(TrackerKind.FILE, name)

    # -- internals --

    def _effect(self, tracker: Tracker) -> Effect:
        if tracker.kind is TrackerKind.INTERFACE:
            return interface_effect(tracker, self._interfaces.get(tracker.name, True))
        if tracker.kind is TrackerKind.SCRIPT:
            counter = self.scripts.get(tracker.name)
            return _NO_EFFECT if counter is None else script_effect(tracker, counter.state)
        return file_effect(tracker, self._files.get(tracker.name, 0))

    def _evaluate(self, it: _InstanceTracking) -> Outcome:
        reasons: list[str] = []
        weights: list[int] = []
        for tracker in it.trackers:
            reason, delta = self._effect(tracker)
            if reason is not None:
                reasons.append(reason)
            elif delta:
                weights.append(delta)
        return Outcome(frozenset(reasons), effective_priority(it.base, weights, it.owner))

    def _reevaluate(self, kind: TrackerKind, name: str) -> list[str]:
        changed: list[str] = []
        for inst in self._by_object.get((kind, name), ()):
            new = self._evaluate(self._instances[inst])
            if new != self._outcomes[inst]:
                self._outcomes[inst] = new
                changed.append(inst)
        return changed
