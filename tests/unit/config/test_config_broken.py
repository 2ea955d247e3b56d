"""Broken configs: every error, exactly as `FILE:LINE: message`, all reported at once."""

from __future__ import annotations

import pytest

from fastvrrp.config import ConfigError, load

B = "tests/data/configs/broken"

EXPECTED: dict[str, list[str]] = {
    "unknown_keyword.conf": [
        f"{B}/unknown_keyword.conf:4: unknown keyword 'priorty' in vrrp_instance VI_1 (did you mean 'priority'?)",
    ],
    "unknown_section.conf": [
        f"{B}/unknown_section.conf:3: unknown keyword 'vrrp_strcit' in global_defs (did you mean 'vrrp_strict'?)",
        f"{B}/unknown_section.conf:5: unknown keyword 'vrrp_instanse' at top level (did you mean 'vrrp_instance'?)",
    ],
    "ranges.conf": [
        f"{B}/ranges.conf:3: virtual_router_id 256 is out of range (1-255)",
        f"{B}/ranges.conf:4: priority 0 is out of range (1-255)",
        f"{B}/ranges.conf:5: 'advert_int' 300 is out of range (0.01-255 s)",
        f"{B}/ranges.conf:14: advert_int 41 is out of range for VRRPv3 (0.01-40.95 s)",
    ],
    "duplicate_vrid.conf": [
        # VI_3 (other interface) and VI_4 (other family) may reuse VRID 51.
        f"{B}/duplicate_vrid.conf:8: vrrp_instance VI_2: virtual_router_id 51 is already used by VI_1 "
        f"on eth0 (IPv4, {B}/duplicate_vrid.conf:1)",
    ],
    "families.conf": [
        f"{B}/families.conf:3: VRRPv2 cannot carry IPv6 addresses; IPv6 instances use version 3",
        f"{B}/families.conf:14: virtual_ipaddress 2001:db8::1/64 is IPv6 but instance MIXED is IPv4 "
        f"(from virtual_ipaddress at {B}/families.conf:13)",
        f"{B}/families.conf:25: unicast_peer 2001:db8::11 is IPv6 but instance PEER is IPv4 "
        f"(from unicast_src_ip at {B}/families.conf:23)",
    ],
    "auth.conf": [
        f"{B}/auth.conf:5: authentication is VRRPv2 only; VRRPv3 (RFC 5798) has none",
        f"{B}/auth.conf:16: authentication needs an auth_pass",
        f"{B}/auth.conf:27: 'auth_type' must be PASS|AH, not 'MD5'",
    ],
    "references.conf": [
        f"{B}/references.conf:7: sync group G1: no vrrp_instance named 'VI_9'",
        f"{B}/references.conf:12: sync group G2: VI_2 is already in sync group G1",
        f"{B}/references.conf:24: vrrp_instance VI_1: track_script 'chk_missing' is not a defined vrrp_script",
        f"{B}/references.conf:34: vrrp_instance VI_2: track_file 'nofile' is not a defined track_file",
    ],
    "braces.conf": [
        f"{B}/braces.conf:1: block 'vrrp_instance VI_1' is never closed (missing '}}')",
    ],
    "stray_brace.conf": [
        f"{B}/stray_brace.conf:4: unexpected '}}' (no block is open)",
    ],
    "values.conf": [
        f"{B}/values.conf:2: 'state' must be MASTER|BACKUP, not 'MASTR' (did you mean 'MASTER'?)",
        f"{B}/values.conf:4: virtual_router_id must be an integer, not 'one'",
        f"{B}/values.conf:5: 'advert_int' must be a number of seconds, not 'fast'",
        f"{B}/values.conf:6: 'nopreempt' does not take a {{ }} block",
        f"{B}/values.conf:9: virtual_ipaddress: '192.0.2.300/24' is not an IP address[/prefix]",
        f"{B}/values.conf:10: virtual_ipaddress 192.0.2.1/24: 'dev' needs a value",
        f"{B}/values.conf:11: virtual_ipaddress 192.0.2.2/24: unknown option 'colour'",
        f"{B}/values.conf:14: unicast_peer 192.0.2.20: 'max_ttl' needs a value 0-255",
        f"{B}/values.conf:16: unmatched '\"'",
    ],
    "missing.conf": [
        f"{B}/missing.conf:1: vrrp_instance NO_VRID has no virtual_router_id",
        f"{B}/missing.conf:7: vrrp_instance NO_IFACE has no interface",
        f"{B}/missing.conf:13: vrrp_instance V3_NO_VIP has no virtual_ipaddress; VRRPv3 needs at least one",
        f"{B}/missing.conf:22: vrrp_instance VI_DUP is already defined at {B}/missing.conf:18",
        f"{B}/missing.conf:26: include file '{B}/missing.d/none.conf' not found",
    ],
    "strict.conf": [
        f"{B}/strict.conf:5: strict mode: state MASTER is only for the address owner (priority 255)",
        f"{B}/strict.conf:10: strict mode does not allow unicast peers",
        f"{B}/strict.conf:13: strict mode does not allow authentication",
    ],
    "cycle/a.conf": [
        f"{B}/cycle/b.conf:2: include cycle: '{B}/cycle/a.conf' is already being read",
    ],
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_broken_config_reports_every_error_exactly(in_repo: object, name: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load(f"{B}/{name}", config_id="test")
    assert caught.value.messages == EXPECTED[name]
    assert str(caught.value) == "\n".join(EXPECTED[name])


def test_every_broken_fixture_is_covered(in_repo: object) -> None:
    from pathlib import Path

    on_disk = {str(p.relative_to(B)) for p in Path(B).rglob("*.conf")}
    # b.conf is only reached through a.conf's include.
    assert on_disk - {"cycle/b.conf"} == set(EXPECTED)


def test_unreadable_file_is_an_error_for_the_file(tmp_path: object) -> None:
    missing = f"{tmp_path}/nope.conf"
    with pytest.raises(ConfigError) as caught:
        load(missing)
    assert caught.value.messages == [f"{missing}: cannot read configuration: No such file or directory"]
