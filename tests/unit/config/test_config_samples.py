"""Every sample config shipped in Debian's keepalived package, checked.

VRRP parts must be modelled, LVS/static parts skipped with one warning each, and valid
files must give no error. Three samples are not valid as shipped; each test below shows
what keepalived itself does with them.
"""

from __future__ import annotations

import gzip
from ipaddress import IPv4Address, IPv4Interface, IPv4Network
from pathlib import Path

import pytest

from fastvrrp.config import Config, ConfigError, load, parse_text
from fastvrrp.config.model import AuthType, InitialState, TrackedInterface, TrackedScript

SAMPLES = Path("/usr/share/doc/keepalived/samples")
pytestmark = pytest.mark.skipif(
    not SAMPLES.is_dir(), reason="Debian package keepalived is not installed (apt-get install keepalived)"
)

# Files in the samples directory that are not keepalived.conf files.
NOT_CONFIGS = {
    "sample.misccheck.smbcheck.sh": "MISC_CHECK helper script",
    "sample_notify_fifo.sh.gz": "notify FIFO reader script (gzip)",
}

# sample -> (instances modelled, sections skipped with a warning)
VALID: dict[str, tuple[list[str], int]] = {
    "keepalived.conf.HTTP_GET.port": ([], 1),
    "keepalived.conf.IPv6": ([], 2),
    "keepalived.conf.PING_CHECK": ([], 1),
    "keepalived.conf.SMTP_CHECK": ([], 1),
    "keepalived.conf.SSL_GET": (["VI_1"], 2),
    "keepalived.conf.UDP_CHECK": ([], 1),
    "keepalived.conf.fwmark": ([], 1),
    "keepalived.conf.inhibit": ([], 1),
    "keepalived.conf.misc_check": ([], 1),
    "keepalived.conf.misc_check_arg": ([], 1),
    "keepalived.conf.quorum": ([], 1),
    "keepalived.conf.sample": (["VI_1"], 1),
    "keepalived.conf.status_code": ([], 1),
    "keepalived.conf.track_interface": (["VI_1"], 1),
    "keepalived.conf.virtual_server_group": ([], 2),
    "keepalived.conf.virtualhost": ([], 1),
    "keepalived.conf.vrrp": (["VI_1", "VI_2", "VI_3", "VI_4"], 0),
    "keepalived.conf.vrrp.localcheck": ([f"VI_{n}" for n in range(1, 10)], 0),
    "keepalived.conf.vrrp.routes": (["VI_1"], 1),
    "keepalived.conf.vrrp.scripts": (["VI_1", "VI_2", "VI_3"], 0),
    "keepalived.conf.vrrp.static_ipaddress": (["VI_1"], 1),
    "keepalived.conf.vrrp.sync": ([f"VI_{n}" for n in range(1, 10)], 0),
}
# Valid only with the config id they were written for (keepalived -i high|low).
CONDITIONAL = "keepalived.conf.conditional_conf"
# Not valid as shipped, see their tests.
INVALID = {"keepalived.conf.vrrp.lvs_syncd", "keepalived.conf.vrrp.rules"}


def _load_sample(name: str, config_id: str = "test") -> Config:
    path = SAMPLES / name
    if name.endswith(".gz"):
        with gzip.open(path, "rt") as f:
            return parse_text(f.read(), str(path), config_id=config_id)
    return load(str(path), config_id=config_id)


def test_every_sample_file_is_accounted_for() -> None:
    on_disk = {p.name for p in SAMPLES.iterdir()}
    accounted = set(VALID) | INVALID | {CONDITIONAL} | set(NOT_CONFIGS)
    assert on_disk == accounted, "a new sample appeared (or one went): classify it here"


@pytest.mark.parametrize("name", sorted(VALID))
def test_valid_sample_models_vrrp_and_skips_the_rest(name: str) -> None:
    instances, skipped = VALID[name]
    config = _load_sample(name)
    assert [i.name for i in config.instances] == instances
    skip_warnings = [w for w in config.warnings if "is skipped" in w.message]
    assert len(skip_warnings) == skipped
    for w in skip_warnings:
        assert w.location.file == str(SAMPLES / name) and w.location.line > 0


def test_vrrp_sample_details() -> None:
    config = _load_sample("keepalived.conf.vrrp")
    vi1 = config.instance("VI_1")
    assert (vi1.state, vi1.priority, vi1.vrid, vi1.interface) == (InitialState.MASTER, 100, 51, "eth0")
    assert (vi1.auth_type, vi1.auth_pass) == (AuthType.PASS, b"1111")
    assert vi1.garp_master_delay_s == 10.0 and vi1.smtp_alert
    assert [str(v.address) for v in vi1.vips] == [f"192.168.200.{n}/32" for n in (16, 17, 18, 18)]
    assert vi1.vips[3].label == "eth0:1"
    vi2 = config.instance("VI_2")
    # No `state`, priority 50: keepalived derives BACKUP from the priority.
    assert (vi2.state, vi2.priority, vi2.auth_type) == (InitialState.BACKUP, 50, AuthType.NONE)
    assert any("192.168.200.18/32 is listed twice" in w.message for w in config.warnings)


def test_ssl_get_sample_ah_master_starts_as_backup() -> None:
    # keepalived: "Initial state master is incompatible with AH authentication - clearing".
    vi1 = _load_sample("keepalived.conf.SSL_GET").instance("VI_1")
    assert (vi1.auth_type, vi1.state, vi1.priority) == (AuthType.AH, InitialState.BACKUP, 100)


def test_localcheck_sample_tracking() -> None:
    config = _load_sample("keepalived.conf.vrrp.localcheck")
    chk_sshd = config.script("chk_sshd")
    assert chk_sshd.script.argv == ("killall", "-0", "sshd")
    assert (chk_sshd.interval_s, chk_sshd.timeout_s, chk_sshd.weight, chk_sshd.rise, chk_sshd.fall) == (2.0, 2.0, -4, 2, 2)
    assert config.script("chk_http_port").script.argv == ("</dev/tcp/127.0.0.1/80",)
    vi1 = config.instance("VI_1")
    assert vi1.track_interfaces == (
        TrackedInterface("eth1", 2),
        TrackedInterface("eth2", -2),
        TrackedInterface("eth3", 0),
    )
    assert vi1.track_scripts == (
        TrackedScript("chk_sshd", -4),  # the script's own weight
        TrackedScript("chk_haproxy", 2),
        TrackedScript("chk_http_port", -2),
        TrackedScript("chk_https_port", -2),
        TrackedScript("chk_smtp_port", -2),
    )
    assert vi1.vips[0].address == IPv4Interface("192.168.200.18/25")


def test_sync_sample_groups() -> None:
    config = _load_sample("keepalived.conf.vrrp.sync")
    g1, g2 = config.sync_groups
    assert g1.instances == ("VI_1", "VI_2", "VI_5", "VI_6", "VI_7", "VI_8", "VI_9")
    assert g1.notifies.master is not None and g1.notifies.master.argv == ("/usr/local/bin/vrrp.mast", "arg1", "arg2")
    assert g2.instances == ("VI_3", "VI_4")
    assert config.instance("VI_3").sync_group == "G2"


def test_routes_sample_virtual_routes() -> None:
    routes = _load_sample("keepalived.conf.vrrp.routes").instance("VI_1").routes
    assert [str(r.destination) for r in routes] == [
        "192.168.109.0/24", "192.168.110.0/24", "192.168.111.0/24", "192.168.112.0/24",
        "192.168.113.0/24", "192.168.113.1/32", "0.0.0.0/0",
    ]  # fmt: skip
    assert routes[0].source == IPv4Address("192.168.100.1") and routes[0].device == "eth1"
    assert routes[5].route_type == "blackhole"
    assert routes[6].gateway == IPv4Address("192.168.0.1") and routes[6].table == "100"
    assert routes[4].words[-3:] == ("192.168.100.252", "or", "192.168.100.253")


def test_track_interface_sample() -> None:
    vi1 = _load_sample("keepalived.conf.track_interface").instance("VI_1")
    assert vi1.interface == "eth0.1"
    assert [v.device for v in vi1.vips] == [None, "eth1", "eth2"]
    assert vi1.routes[2].destination == IPv4Network("192.168.112.0/24")


@pytest.mark.parametrize(("config_id", "priority", "script"), [("high", 170, "check_high"), ("low", 85, "check_low")])
def test_conditional_sample_with_its_config_ids(config_id: str, priority: int, script: str) -> None:
    config = _load_sample(CONDITIONAL, config_id=config_id)
    vi0 = config.instance("VI_0")
    assert (vi0.priority, vi0.version, vi0.advert_int_cs, vi0.use_vmac) == (priority, 3, 1200, True)
    assert vi0.track_interfaces == (TrackedInterface("eth3", 0), TrackedInterface("eth2", 20))
    assert config.script("check_VI_0").script.argv == (f"/etc/keepalived/scripts/{script}_VI_0.sh",)
    assert config.script("check_VI_0").timeout_s == 10.0
    assert config.globals.net_namespace == config_id


def test_conditional_sample_without_a_matching_id_has_no_script() -> None:
    # The file says "Run keepalived with either '-i high' or '-i low'": with any other id
    # keepalived too drops the script ("No script set for vrrp_script check_VI_0").
    path = SAMPLES / CONDITIONAL
    with pytest.raises(ConfigError) as caught:
        _load_sample(CONDITIONAL, config_id="other")
    assert caught.value.messages == [
        f"{path}:6: vrrp_script check_VI_0 has no 'script'",
        f"{path}:25: vrrp_instance VI_0: track_script 'check_VI_0' is not a defined vrrp_script",
    ]


def test_lvs_syncd_sample_sync_group_without_group_block() -> None:
    # `vrrp_sync_group VG1 { VI_2 VI_3 }` lacks the `group { }` block: keepalived 2.2.7 logs
    # "Unknown keyword 'VI_2'" / "'VI_3'" and removes the empty group. We report the same.
    path = SAMPLES / "keepalived.conf.vrrp.lvs_syncd"
    with pytest.raises(ConfigError) as caught:
        _load_sample("keepalived.conf.vrrp.lvs_syncd")
    assert caught.value.messages == [
        f"{path}:3: sync group VG1 lists no instances (use 'group {{ NAME ... }}')",
        f"{path}:4: unknown keyword 'VI_2' in vrrp_sync_group VG1",
        f"{path}:5: unknown keyword 'VI_3' in vrrp_sync_group VG1",
    ]
    assert any("lvs_sync_daemon_interface" in w.message for w in caught.value.warnings)


def test_rules_sample_has_an_invalid_address() -> None:
    # `to 192.168.200./24` is not an address; keepalived rejects that rule too. The same
    # typo in static_rules goes unreported because static_rules is skipped.
    path = SAMPLES / "keepalived.conf.vrrp.rules"
    with pytest.raises(ConfigError) as caught:
        _load_sample("keepalived.conf.vrrp.rules")
    assert caught.value.messages == [f"{path}:26: virtual_rules: invalid address '192.168.200./24'"]
