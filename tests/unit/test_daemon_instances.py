"""From config to run-time instances: primary address, checksum forms, expectations."""

from __future__ import annotations

import ipaddress

import pytest

from fastvrrp.config import parse_text
from fastvrrp.daemon.instances import (
    ADVERTS_PER_PHASE,
    StartupError,
    advert_phases,
    accepted_checksum_forms,
    advertised_addresses,
    expect_kwargs,
    instance_params,
    primary_address,
    send_checksum_form,
)
from fastvrrp.net.vips import AddrInfo
from fastvrrp.proto.packet import AUTH_PASS, ChecksumForm

BASE = """
vrrp_instance VI_1 {{
  interface eth0
  virtual_router_id 51
  {extra}
  virtual_ipaddress {{
    {vips}
  }}
}}
"""


def inst(extra: str = "", vips: str = "192.0.2.100/24"):
    config = parse_text(BASE.format(extra=extra, vips=vips), "t.conf")
    return config, config.instances[0]


def addr(a: str, scope: int = 0) -> AddrInfo:
    return AddrInfo(ifindex=2, address=ipaddress.ip_interface(a), scope=scope, flags=0)


def test_primary_is_the_first_interface_address_that_is_not_a_vip():
    _, i = inst()
    ours = {ipaddress.ip_address("192.0.2.100")}
    addrs = [addr("192.0.2.100/24"), addr("2001:db8::1/64"), addr("192.0.2.7/24"), addr("192.0.2.8/24")]
    assert primary_address(i, addrs, ours) == ipaddress.ip_address("192.0.2.7").packed


def test_primary_ipv6_is_the_link_local_address():
    _, i = inst("version 3", "2001:db8::100/64")
    addrs = [addr("2001:db8::1/64"), addr("fe80::1/64", scope=253)]
    assert primary_address(i, addrs, set()) == ipaddress.ip_address("fe80::1").packed
    with pytest.raises(StartupError, match="link-local"):
        primary_address(i, [addr("2001:db8::1/64")], set())


def test_configured_source_wins():
    _, i = inst("mcast_src_ip 192.0.2.9")
    assert primary_address(i, [addr("192.0.2.7/24")], set()) == ipaddress.ip_address("192.0.2.9").packed


def test_checksum_forms_follow_the_config():
    assert send_checksum_form(inst()[1]) == ChecksumForm.V2
    assert send_checksum_form(inst("version 3")[1]) == ChecksumForm.PSEUDO
    assert send_checksum_form(inst("version 3\n  v3_checksum_as_v2")[1]) == ChecksumForm.PLAIN
    unicast = "version 3\n  unicast_src_ip 192.0.2.1\n  unicast_peer {\n 192.0.2.2\n }"
    _, u = inst(unicast)
    assert send_checksum_form(u) == ChecksumForm.PSEUDO
    # keepalived's OLD_CHKSUM_COMPAT: a pre-1.3.7 unicast peer is recognised.
    assert accepted_checksum_forms(u) == ChecksumForm.PSEUDO | ChecksumForm.OLD_UNICAST
    _, never = inst(unicast + "\n  old_unicast_checksum never")
    assert accepted_checksum_forms(never) == ChecksumForm.PSEUDO
    _, old = inst(unicast + "\n  old_unicast_checksum")
    assert send_checksum_form(old) == ChecksumForm.OLD_UNICAST


def test_expectations_and_params():
    config, i = inst("priority 120\n  advert_int 2\n  authentication {\n auth_type PASS\n auth_pass secret\n }")
    kw = expect_kwargs(i, config)
    assert kw["auth_type"] == AUTH_PASS and kw["auth_data"] == b"secret"
    assert kw["interval"] == 2 and kw["addresses"] == advertised_addresses(i)
    p = instance_params(i, config, ipaddress.ip_address("192.0.2.1").packed)
    assert (p.priority, p.advert_int_cs, p.version, p.garp_master_delay_ns) == (120, 200, 2, 5_000_000_000)


def test_excluded_vips_are_not_advertised():
    _, i = inst("virtual_ipaddress_excluded {\n 192.0.2.200/24\n }")
    assert advertised_addresses(i) == ipaddress.ip_address("192.0.2.100").packed


def test_advert_phases_spread_each_interval_evenly_neighbours_on_an_interface_together():
    def conf(n: int, ifaces: int, advert_int: str, ifname: str = "eth") -> str:
        return "".join(f"""
vrrp_instance VI_{advert_int}_{i} {{
  interface {ifname}{i % ifaces}
  virtual_router_id {i % 255 + 1}
  advert_int {advert_int}
  virtual_ipaddress {{
    192.0.2.{i % 250 + 1}/32
  }}
}}""" for i in range(n))
    config = parse_text("global_defs {\n  vrrp_version 3\n}\n" + conf(1000, 4, "0.1")
                        + conf(3, 1, "1", "one") + conf(1, 1, "2", "two"), "t.conf")
    phases = advert_phases(config.instances)
    assert phases == advert_phases(config.instances)  # the same config, the same phases
    fast = phases[:1000]
    per_phase = {p: [i for i, q in enumerate(fast) if q == p] for p in set(fast)}
    # As few wake-ups as allowed: 250 per interface need 16 phases each.
    assert len(per_phase) == 4 * -(-250 // ADVERTS_PER_PHASE)
    assert max(len(v) for v in per_phase.values()) <= ADVERTS_PER_PHASE
    assert min(len(v) for v in per_phase.values()) >= ADVERTS_PER_PHASE - 1
    gaps = [b - a for a, b in zip(sorted(per_phase), sorted(per_phase)[1:])]
    assert all(0 <= p < 100_000_000 for p in fast)
    assert set(gaps) <= {100_000_000 // len(per_phase), 100_000_000 // len(per_phase) + 1}
    # A phase's adverts share an interface, so they leave in one sendmmsg.
    assert all(len({i % 4 for i in v}) == 1 for v in per_phase.values())
    # Three instances of 1 s and one of 2 s are few: one phase each interval.
    assert phases[1000:] == [0, 0, 0, 0]
