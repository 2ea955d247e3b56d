"""keepalived's defaults and derived values for vrrp_instance (shared/reference §2.1, §2.7, §2.9, §2.12)."""

from __future__ import annotations

from ipaddress import IPv6Address

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fastvrrp.config import ConfigError, parse_text
from fastvrrp.config.model import MCAST_GROUP6, Family, InitialState, Instance


def one(body: str, globals_: str = "") -> tuple[Instance, list[str]]:
    text = f"{globals_}vrrp_instance VI {{\n    interface eth0\n    virtual_router_id 7\n{body}}}\n"
    config = parse_text(text, "t.conf", config_id="test")
    return config.instance("VI"), [w.message for w in config.warnings]


V4 = "    virtual_ipaddress {\n        192.0.2.1/24\n    }\n"
V6 = "    virtual_ipaddress {\n        fe80::1/64\n        2001:db8::1/64\n    }\n"


def test_defaults() -> None:
    inst, warnings = one(V4)
    assert (inst.priority, inst.state, inst.version, inst.advert_int_cs) == (100, InitialState.BACKUP, 2, 100)
    assert (inst.preempt, inst.accept, inst.down_timer_adverts, inst.unicast_ttl) == (True, True, 3, 255)
    assert (inst.garp_master_delay_s, inst.garp_master_repeat, inst.garp_master_refresh_s) == (5.0, 5, 0.0)
    assert (inst.garp_lower_prio_delay_s, inst.garp_lower_prio_repeat) == (5.0, 5)
    assert (inst.lower_prio_no_advert, inst.higher_prio_send_advert) == (False, False)
    assert str(inst.mcast_dst_ip) == "224.0.0.18"
    assert warnings == []


def test_master_without_priority_is_owner_and_owner_without_state_is_master() -> None:
    inst, _ = one("    state MASTER\n" + V4)
    assert (inst.priority, inst.state, inst.is_address_owner) == (255, InitialState.MASTER, True)
    inst, _ = one("    priority 255\n" + V4)
    assert inst.state is InitialState.MASTER


def test_ipv6_forces_version_3_and_its_group() -> None:
    inst, _ = one(V6)
    assert (inst.family, inst.version, inst.mcast_dst_ip, inst.unicast_ttl) == (Family.IPV6, 3, MCAST_GROUP6, None)


def test_global_version_applies_to_ipv4() -> None:
    inst, _ = one(V4, "global_defs {\n    vrrp_version 3\n}\n")
    assert inst.version == 3


@pytest.mark.parametrize(
    ("version", "given", "expected_cs", "rounded"),
    [(2, "1", 100, False), (2, "2.5", 300, True), (2, "0.3", 100, True), (2, "255", 25500, False),
     (3, "0.01", 1, False), (3, "0.125", 13, True), (3, "40.95", 4095, False), (3, "12", 1200, False)],
)  # fmt: skip
def test_advert_int_rounding_per_version(version: int, given: str, expected_cs: int, rounded: bool) -> None:
    inst, warnings = one(f"    version {version}\n    advert_int {given}\n" + V4)
    assert inst.advert_int_cs == expected_cs
    assert any("rounded" in w for w in warnings) == rounded


@given(st.integers(min_value=1, max_value=25500))
def test_v3_advert_int_is_always_in_the_12_bit_field(hundredths_of_seconds_times_ten: int) -> None:
    value = hundredths_of_seconds_times_ten / 1000  # 0.001 .. 25.5 s, millisecond steps
    if value < 0.01:
        return
    inst, _ = one(f"    version 3\n    advert_int {value:.3f}\n" + V4)
    assert 1 <= inst.advert_int_cs <= 4095
    assert abs(inst.advert_int_cs / 100 - value) <= 0.005 + 1e-9


def test_nopreempt_with_master_is_cleared_as_keepalived_does() -> None:
    inst, warnings = one("    state MASTER\n    priority 100\n    nopreempt\n" + V4)
    assert inst.preempt
    assert "nopreempt does not work with state MASTER; ignored (use state BACKUP)" in warnings


def test_nopreempt_with_backup_is_kept() -> None:
    inst, _ = one("    state BACKUP\n    nopreempt\n    preempt_delay 0\n" + V4)
    assert not inst.preempt


def test_strict_mode_derivations() -> None:
    inst, _ = one("    state MASTER\n    priority 255\n" + V4, "global_defs {\n    vrrp_strict\n}\n")
    assert inst.strict_mode and inst.accept and inst.lower_prio_no_advert
    assert (inst.garp_lower_prio_delay_s, inst.garp_lower_prio_repeat) == (0.0, 0)
    inst, _ = one(V4, "global_defs {\n    vrrp_strict\n}\n")
    assert not inst.accept  # strict: accept only for the owner


def test_owner_ignores_weighted_trackers() -> None:
    body = "    priority 255\n    track_interface {\n        eth1 weight 10\n        eth2\n    }\n" + V4
    inst, warnings = one(body)
    assert [t.name for t in inst.track_interfaces] == ["eth2"]
    assert any("ignoring the weight of tracked interface eth1" in w for w in warnings)


def test_sync_group_members_lose_tracker_weights_unless_asked() -> None:
    text = """
vrrp_script s {
    script /bin/true
    weight -10
}
vrrp_sync_group G {
    group {
        A
        B
    }
    %s
}
vrrp_instance A {
    interface eth0
    virtual_router_id 1
    track_script {
        s
    }
    virtual_ipaddress {
        192.0.2.1
    }
}
vrrp_instance B {
    interface eth0
    virtual_router_id 2
    virtual_ipaddress {
        192.0.2.2
    }
}
"""
    assert parse_text(text % "", "g.conf").instance("A").track_scripts == ()
    kept = parse_text(text % "sync_group_tracking_weight", "g.conf").instance("A").track_scripts
    assert [(t.name, t.weight) for t in kept] == [("s", -10)]


def test_unicast_peer_ttl_bounds_imply_source_check() -> None:
    inst, _ = one("    unicast_src_ip 192.0.2.5\n    unicast_peer {\n        192.0.2.6 min_ttl 250\n    }\n" + V4)
    assert inst.is_unicast and inst.check_unicast_src and inst.mcast_dst_ip is None
    assert (inst.unicast_peers[0].min_ttl, inst.unicast_peers[0].max_ttl) == (250, 255)


def test_excluded_vips_may_mix_families() -> None:
    inst, _ = one(V4 + "    virtual_ipaddress_excluded {\n        2001:db8::9/64\n    }\n")
    assert inst.family is Family.IPV4
    assert inst.excluded_vips[0].address.ip == IPv6Address("2001:db8::9")


def test_too_many_ipv6_vips_move_to_excluded() -> None:
    vips = "".join(f"        2001:db8::{n:x}/64\n" for n in range(1, 101))
    inst, warnings = one("    virtual_ipaddress {\n        fe80::1/64\n" + vips + "    }\n")
    assert (len(inst.vips), len(inst.excluded_vips)) == (89, 12)
    assert any("do not fit in one advert (max 89)" in w for w in warnings)


def test_all_errors_are_reported_together() -> None:
    with pytest.raises(ConfigError) as caught:
        one("    priority 300\n    advert_int 0\n    version 4\n" + V4)
    assert [m.split(": ", 1)[1] for m in caught.value.messages] == [
        "priority 300 is out of range (1-255)",
        "'advert_int' 0 is out of range (0.01-255 s)",
        "version 4 is out of range (2-3)",
    ]
