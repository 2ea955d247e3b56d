"""Tracking arithmetic (proto/tracking.py): rise/fall, weights, reverse, clamping, owners,
sync group trackers, keepalived's INIT state and init_fail, reload carry-over."""

from __future__ import annotations

from dataclasses import dataclass, replace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fastvrrp.config import parse_text
from fastvrrp.config.model import Config, TrackedFile, TrackedInterface, TrackedScript
from fastvrrp.proto.tracking import (
    Outcome,
    ScriptCounter,
    ScriptInit,
    ScriptState,
    Tracker,
    TrackerKind,
    TrackingState,
    all_pending,
    file_effect,
    instance_trackers,
    interface_effect,
    parse_file_value,
    script_effect,
)

# --- rise / fall ----------------------------------------------------------------------


@dataclass
class StreakOracle:
    """The documented behaviour, written as streaks: from OK, `fall` consecutive failures
    fail the script; from failed, `rise` consecutive successes make it OK; the very first
    result decides alone unless init_fail."""

    rise: int
    fall: int
    state: ScriptState
    successes: int = 0
    failures: int = 0

    def record(self, success: bool) -> None:
        if self.state is ScriptState.INIT:
            self.state = ScriptState.OK if success else ScriptState.FAILED
            return
        if success:
            self.successes += 1
            self.failures = 0
            if self.state is ScriptState.FAILED and self.successes >= self.rise:
                self.state = ScriptState.OK
        else:
            self.failures += 1
            self.successes = 0
            if self.state is ScriptState.OK and self.failures >= self.fall:
                self.state = ScriptState.FAILED


@given(
    rise=st.integers(1, 6),
    fall=st.integers(1, 6),
    init_fail=st.booleans(),
    results=st.lists(st.booleans(), max_size=60),
)
def test_script_counter_matches_streak_oracle(rise: int, fall: int, init_fail: bool, results: list[bool]) -> None:
    counter = ScriptCounter.initial(rise, fall, init_fail)
    oracle = StreakOracle(rise, fall, ScriptState.FAILED if init_fail else ScriptState.INIT)
    assert counter.state is oracle.state
    for success in results:
        before = oracle.state
        oracle.record(success)
        assert counter.record(success) == (oracle.state is not before)
        assert counter.state is oracle.state
        assert 0 <= counter.result <= rise + fall - 1


def test_fall_failures_then_rise_successes() -> None:
    counter = ScriptCounter.initial(rise=3, fall=2)
    assert counter.state is ScriptState.INIT
    assert counter.record(True)  # the first result decides: one success is enough
    assert counter.state is ScriptState.OK
    assert not counter.record(False)
    assert counter.state is ScriptState.OK
    assert counter.record(False)
    assert counter.state is ScriptState.FAILED
    assert not counter.record(True)
    assert not counter.record(True)
    assert not counter.record(False)  # a failure restarts the count of successes
    for _ in range(2):
        assert not counter.record(True)
    assert counter.record(True)
    assert counter.state is ScriptState.OK


def test_first_failure_fails_at_once_whatever_fall_is() -> None:
    counter = ScriptCounter.initial(rise=2, fall=5)
    assert counter.record(False)
    assert counter.state is ScriptState.FAILED


def test_init_fail_starts_failed_and_needs_rise_successes() -> None:
    counter = ScriptCounter.initial(rise=2, fall=1, init_fail=True)
    assert counter.state is ScriptState.FAILED
    assert not counter.record(True)
    assert counter.record(True)
    assert counter.state is ScriptState.OK


@pytest.mark.parametrize(
    ("old", "rise", "fall", "expected_result", "expected_state"),
    [
        (ScriptCounter(2, 2, 3), 3, 3, 5, ScriptState.OK),  # at the top: new top
        (ScriptCounter(2, 3, 2), 2, 2, 2, ScriptState.OK),  # one failure in: still one in
        (ScriptCounter(2, 3, 0), 3, 3, 0, ScriptState.FAILED),
        (ScriptCounter(3, 2, 2), 2, 2, 1, ScriptState.FAILED),  # one success short: still one short
        (ScriptCounter(4, 2, 1), 2, 2, 0, ScriptState.FAILED),  # clamped at 0
    ],
)
def test_counter_carried_over_a_reload_like_clear_diff_script(
    old: ScriptCounter, rise: int, fall: int, expected_result: int, expected_state: ScriptState
) -> None:
    new = old.carried_over(rise, fall)
    assert (new.rise, new.fall, new.result, new.init) == (rise, fall, expected_result, ScriptInit.DONE)
    assert new.state is expected_state


def test_counter_still_initialising_restarts_initialising_after_reload() -> None:
    assert ScriptCounter.initial(2, 2).carried_over(4, 1).state is ScriptState.INIT
    reload_new = ScriptCounter.initial(2, 2, reload=True)
    assert reload_new.carried_over(3, 3).state is ScriptState.INIT_RELOAD


# --- one tracker ------------------------------------------------------------------------


# (weight, reverse, ok) -> (faulted, contribution): keepalived's tracking_obj arithmetic
BINARY_TABLE = [
    (0, False, True, False, 0),
    (0, False, False, True, 0),
    (0, True, True, True, 0),
    (0, True, False, False, 0),
    (10, False, True, False, 10),
    (10, False, False, False, 0),
    (10, True, True, False, -10),
    (10, True, False, False, 0),
    (-10, False, True, False, 0),
    (-10, False, False, False, -10),
    (-10, True, True, False, 0),
    (-10, True, False, False, 10),
]


@pytest.mark.parametrize(("weight", "reverse", "up", "faulted", "contribution"), BINARY_TABLE)
def test_interface_weight_signs_and_reverse(weight: int, reverse: bool, up: bool, faulted: bool, contribution: int) -> None:
    reason, delta = interface_effect(Tracker(TrackerKind.INTERFACE, "eth1", weight, reverse), up)
    assert (reason is not None, delta) == (faulted, contribution)


@pytest.mark.parametrize(("weight", "reverse", "ok", "faulted", "contribution"), BINARY_TABLE)
def test_script_weight_signs_and_reverse(weight: int, reverse: bool, ok: bool, faulted: bool, contribution: int) -> None:
    state = ScriptState.OK if ok else ScriptState.FAILED
    reason, delta = script_effect(Tracker(TrackerKind.SCRIPT, "chk", weight, reverse), state)
    assert (reason is not None, delta) == (faulted, contribution)


def test_reason_texts() -> None:
    assert interface_effect(Tracker(TrackerKind.INTERFACE, "eth1"), False)[0] == "track_interface eth1 down"
    assert interface_effect(Tracker(TrackerKind.INTERFACE, "eth1", reverse=True), True)[0] == \
        "track_interface eth1 up (reverse)"
    assert script_effect(Tracker(TrackerKind.SCRIPT, "chk_haproxy"), ScriptState.FAILED)[0] == \
        "track_script chk_haproxy failed"
    assert file_effect(Tracker(TrackerKind.FILE, "f"), 3)[0] == "track_file f = 3"


def test_script_without_result_holds_only_unweighted_trackers() -> None:
    reason, delta = script_effect(Tracker(TrackerKind.SCRIPT, "chk"), ScriptState.INIT)
    assert reason is not None and all_pending([reason]) and delta == 0
    for weight in (-10, 10):
        assert script_effect(Tracker(TrackerKind.SCRIPT, "chk", weight), ScriptState.INIT) == (None, 0)
    # Added by a reload: holds nothing until its first result (keepalived PR #2037).
    assert script_effect(Tracker(TrackerKind.SCRIPT, "chk"), ScriptState.INIT_RELOAD) == (None, 0)
    assert not all_pending([])
    assert not all_pending([reason, "track_interface eth1 down"])


@pytest.mark.parametrize(
    ("weight", "reverse", "value", "faulted", "contribution"),
    [
        (0, False, 0, False, 0),
        (0, False, 3, True, 0),
        (0, False, -1, True, 0),
        (0, True, 0, True, 0),
        (0, True, 7, False, 0),
        (1, False, 3, False, 3),
        (2, False, -5, False, -10),
        (2, True, 5, False, -10),
        (-3, False, 4, False, -12),
        (2, False, 200, False, 253),  # capped
        (2, False, -127, True, 0),  # -254: FAULT
        (1, False, -253, False, -253),
        (254, False, -1, True, 0),
    ],
)
def test_file_value_times_weight(weight: int, reverse: bool, value: int, faulted: bool, contribution: int) -> None:
    reason, delta = file_effect(Tracker(TrackerKind.FILE, "f", weight, reverse), value)
    assert (reason is not None, delta) == (faulted, contribution)


def test_untracked_file_has_no_effect() -> None:
    assert file_effect(Tracker(TrackerKind.FILE, "f", 0, True), None) == (None, 0)


@pytest.mark.parametrize(
    ("data", "value"),
    [
        (b"3\n", 3),
        (b"  -42 trailing", -42),
        (b"+7", 7),
        (b"0x1f", 31),
        (b"-0x10", -16),
        (b"010", 8),  # strtol base 0: octal
        (b"08", 0),
        (b"0x", 0),
        (b"", 0),
        (b"garbage", 0),
        (b"2147483648", 2147483648),  # keepalived's bound is INT32_MAX + 1
        (b"-2147483648", -2147483648),
        (b"2147483649", None),
        (b"99999999999999999999999", None),
        (b" " * 130 + b"5", 0),  # only the first 127 bytes are read
    ],
)
def test_parse_file_value_like_strtol(data: bytes, value: int | None) -> None:
    assert parse_file_value(data) == value


# --- instances -------------------------------------------------------------------------

BASE_CONFIG = """
vrrp_script chk {
    script "/bin/true"
}
vrrp_script chk_w {
    script "/bin/true"
    weight -30
    rise 2
    fall 2
}
track_file tf {
    file "/nonexistent/tf"
}
vrrp_instance VI_1 {
    interface eth0
    virtual_router_id 1
    priority 100
    virtual_ipaddress {
        192.0.2.1
    }
}
"""


def config_with(text: str = BASE_CONFIG) -> Config:
    return parse_text(text)


def with_trackers(config: Config, name: str = "VI_1", **changes: object) -> Config:
    inst = replace(config.instance(name), **changes)  # type: ignore[arg-type]
    return replace(config, instances=tuple(inst if i.name == name else i for i in config.instances))


def test_no_trackers_base_priority_no_faults() -> None:
    state = TrackingState(config_with())
    assert state.outcome("VI_1") == Outcome(frozenset(), 100)


def test_interfaces_assumed_up_and_changes_reported() -> None:
    config = with_trackers(config_with(), track_interfaces=(
        TrackedInterface("eth1"), TrackedInterface("eth2", weight=-40)))
    state = TrackingState(config)
    assert state.outcome("VI_1") == Outcome(frozenset(), 100)
    assert state.set_interface("eth2", False) == ["VI_1"]
    assert state.outcome("VI_1") == Outcome(frozenset(), 60)
    assert state.set_interface("eth2", False) == []
    assert state.set_interface("eth1", False) == ["VI_1"]
    assert state.outcome("VI_1") == Outcome(frozenset({"track_interface eth1 down"}), 60)
    assert state.set_interface("eth9", False) == []  # nobody tracks it
    state.set_interface("eth1", True)
    state.set_interface("eth2", True)
    assert state.outcome("VI_1") == Outcome(frozenset(), 100)


def test_own_interface_in_track_interface_is_left_to_the_router() -> None:
    config = with_trackers(config_with(), track_interfaces=(TrackedInterface("eth0"),))
    state = TrackingState(config)
    assert state.set_interface("eth0", False) == []
    assert state.outcome("VI_1").fault_reasons == frozenset()


@pytest.mark.parametrize(
    ("base", "weights", "expected"),
    [(250, (10,), 254), (240, (10, 10), 254), (5, (-20,), 1), (100, (-60, -60), 1), (100, (20, -5), 115)],
)
def test_effective_priority_is_clamped_to_1_254(base: int, weights: tuple[int, ...], expected: int) -> None:
    interfaces = tuple(TrackedInterface(f"eth{i + 1}", weight=w) for i, w in enumerate(weights))
    config = with_trackers(config_with(), priority=base, track_interfaces=interfaces)
    state = TrackingState(config)
    for i, w in enumerate(weights):
        state.set_interface(f"eth{i + 1}", w > 0)  # every tracker contributes
    assert state.outcome("VI_1").priority == expected


def test_address_owner_priority_never_changes() -> None:
    # The config layer drops weighted trackers of owners; even given some, 255 stays.
    config = with_trackers(config_with(), priority=255, track_interfaces=(
        TrackedInterface("eth1", weight=-50), TrackedInterface("eth2")))
    state = TrackingState(config)
    state.set_interface("eth1", False)
    assert state.outcome("VI_1") == Outcome(frozenset(), 255)
    state.set_interface("eth2", False)
    assert state.outcome("VI_1") == Outcome(frozenset({"track_interface eth2 down"}), 255)


def test_unweighted_script_holds_instance_until_first_result() -> None:
    config = with_trackers(config_with(), track_scripts=(TrackedScript("chk"),))
    state = TrackingState(config)
    reasons = state.outcome("VI_1").fault_reasons
    assert reasons == frozenset({"track_script chk has no result yet"}) and all_pending(reasons)
    assert state.script_result("chk", True) == ["VI_1"]
    assert state.outcome("VI_1") == Outcome(frozenset(), 100)
    assert state.script_result("chk", True) == []
    assert state.script_result("chk", False) == ["VI_1"]
    assert state.outcome("VI_1").fault_reasons == frozenset({"track_script chk failed"})


def test_weighted_script_contributes_nothing_until_first_result() -> None:
    config = with_trackers(config_with(), track_scripts=(TrackedScript("chk_w", weight=-30),))
    state = TrackingState(config)
    assert state.outcome("VI_1") == Outcome(frozenset(), 100)
    assert state.script_result("chk_w", False) == ["VI_1"]  # first result decides
    assert state.outcome("VI_1") == Outcome(frozenset(), 70)
    assert state.script_result("chk_w", True) == []  # rise 2
    assert state.script_result("chk_w", True) == ["VI_1"]
    assert state.outcome("VI_1") == Outcome(frozenset(), 100)


def test_init_fail_faults_from_the_start() -> None:
    config = config_with(BASE_CONFIG.replace('script "/bin/true"\n}', 'script "/bin/true"\n    init_fail\n    rise 2\n}', 1))
    config = with_trackers(config, track_scripts=(TrackedScript("chk"),))
    state = TrackingState(config)
    assert state.outcome("VI_1").fault_reasons == frozenset({"track_script chk failed"})
    assert state.script_result("chk", True) == []
    assert state.script_result("chk", True) == ["VI_1"]
    assert state.outcome("VI_1") == Outcome(frozenset(), 100)


def test_track_file_value_and_dropped_file() -> None:
    config = with_trackers(config_with(), track_files=(TrackedFile("tf", weight=-5),))
    state = TrackingState(config)
    assert state.outcome("VI_1") == Outcome(frozenset(), 100)  # missing file reads 0
    assert state.set_file("tf", 4) == ["VI_1"]
    assert state.outcome("VI_1") == Outcome(frozenset(), 80)
    assert state.set_file("tf", 60) == ["VI_1"]
    assert state.outcome("VI_1").fault_reasons == frozenset({"track_file tf = 60 (weight -5)"})
    assert state.set_file("tf", None) == ["VI_1"]
    assert state.outcome("VI_1") == Outcome(frozenset(), 100)


def test_only_tracked_scripts_are_counted() -> None:
    state = TrackingState(config_with())
    assert state.scripts == {}
    assert state.script_result("chk", False) == []


SYNC_CONFIG = """
vrrp_script chk {
    script "/bin/true"
}
vrrp_script chk_w {
    script "/bin/true"
    weight 20
}
track_file tf {
    file "/nonexistent/tf"
    weight 3
}
vrrp_sync_group G {
    group {
        A
        B
    }
    %(tracking_weight)s
    track_interface {
        eth1
        eth0
        eth5 weight -10
    }
    track_script {
        chk
        chk_w
    }
    track_file {
        tf
    }
}
vrrp_instance A {
    interface eth0
    virtual_router_id 1
    priority %(a_priority)d
    virtual_ipaddress {
        192.0.2.1
    }
}
vrrp_instance B {
    interface eth0
    virtual_router_id 2
    priority 90
    dont_track_primary
    virtual_ipaddress {
        192.0.2.2
    }
}
"""


def sync_config(tracking_weight: bool = True, a_priority: int = 100) -> Config:
    return parse_text(SYNC_CONFIG % {
        "tracking_weight": "sync_group_tracking_weight" if tracking_weight else "",
        "a_priority": a_priority,
    })


def test_sync_group_trackers_apply_to_every_member() -> None:
    state = TrackingState(sync_config())
    state.script_result("chk", True)
    state.script_result("chk_w", True)
    assert state.outcomes() == {"A": Outcome(frozenset(), 120), "B": Outcome(frozenset(), 110)}
    assert state.set_interface("eth1", False) == ["A", "B"]
    assert state.outcome("B").fault_reasons == frozenset({"track_interface eth1 down"})
    state.set_interface("eth1", True)
    assert state.set_file("tf", 2) == ["A", "B"]
    assert state.set_interface("eth5", False) == ["A", "B"]
    assert state.outcomes() == {"A": Outcome(frozenset(), 116), "B": Outcome(frozenset(), 106)}


def test_sync_group_entry_for_own_interface_counts_only_with_dont_track_primary() -> None:
    state = TrackingState(sync_config())
    state.script_result("chk", True)
    assert state.set_interface("eth0", False) == ["B"]
    assert state.outcome("B").fault_reasons == frozenset({"track_interface eth0 down"})


def test_sync_group_weights_cleared_when_a_member_is_address_owner() -> None:
    config = sync_config(a_priority=255)
    trackers = {t.name: t for t in instance_trackers(config, config.instance("B"))}
    assert trackers["chk_w"].weight == 0 and trackers["tf"].weight == 0 and trackers["eth5"].weight == 0
    state = TrackingState(config)
    state.script_result("chk", True)
    state.script_result("chk_w", False)
    assert state.outcome("B").fault_reasons == frozenset({"track_script chk_w failed"})
    assert state.outcome("A").priority == 255


def test_instance_and_group_tracking_the_same_object_are_merged() -> None:
    config = sync_config()
    a = config.instance("A")
    # Unweighted on the instance: stays unweighted.
    config = with_trackers(config, "A", track_scripts=(TrackedScript("chk_w", weight=0),))
    assert {t.name: t.weight for t in instance_trackers(config, config.instance("A"))}["chk_w"] == 0
    # Weighted on the instance: the group's weight wins.
    config = with_trackers(config, "A", track_scripts=(TrackedScript("chk_w", weight=-7, reverse=True),))
    merged = [t for t in instance_trackers(config, config.instance("A")) if t.name == "chk_w"]
    assert merged == [Tracker(TrackerKind.SCRIPT, "chk_w", 20, False)]
    assert a.sync_group == "G"


def test_reload_carries_script_results_and_new_scripts_hold_nothing() -> None:
    old_config = with_trackers(config_with(), track_scripts=(TrackedScript("chk"),))
    old = TrackingState(old_config)
    old.script_result("chk", False)
    old.set_interface("eth1", False)
    new_config = with_trackers(config_with(), track_scripts=(TrackedScript("chk"), TrackedScript("chk_w", weight=0)),
                               track_interfaces=(TrackedInterface("eth1", weight=-10),))
    new = TrackingState(new_config, previous=old)
    assert new.script_state("chk") is ScriptState.FAILED
    assert new.script_state("chk_w") is ScriptState.INIT_RELOAD
    assert new.outcome("VI_1") == Outcome(frozenset({"track_script chk failed"}), 90)
