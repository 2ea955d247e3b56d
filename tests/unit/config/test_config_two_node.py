"""The two-node example from issue 3 parses verbatim; its model is checked field by field."""

from __future__ import annotations

from ipaddress import IPv4Address

import pytest

from fastvrrp.config import load
from fastvrrp.config.model import (
    MCAST_GROUP4,
    AuthType,
    Config,
    Family,
    Globals,
    InitialState,
    Instance,
    Notifies,
    OldUnicastChecksum,
    Script,
    UnicastPeer,
)

ISSUE_MASTER_TEXT = """\
vrrp_instance VI_1 {
  state MASTER
  interface eth0
  garp_master_delay 10
  smtp_alert
  virtual_router_id 51
  priority 100
  vrrp_unicast_bind 192.168.121.51
  vrrp_unicast_peer 192.168.121.52
  advert_int 1
  authentication {
    auth_type PASS
    auth_pass testpass
  }
  notify_master "/etc/keepalived/notify.sh master"
  notify_backup "/etc/keepalived/notify.sh backup"
}
"""


def test_example_files_are_the_issue_text_verbatim(in_repo: object) -> None:
    master = open("examples/two-node-master.conf").read()
    backup = open("examples/two-node-backup.conf").read()
    assert master == ISSUE_MASTER_TEXT
    expected_backup = (
        ISSUE_MASTER_TEXT.replace("state MASTER", "state BACKUP")
        .replace("priority 100", "priority 50")
        .replace("bind 192.168.121.51", "bind 192.168.121.52")
        .replace("peer 192.168.121.52", "peer 192.168.121.51")
    )
    assert backup == expected_backup


def _expected(state: InitialState, priority: int, me: str, peer: str, file: str) -> Instance:
    return Instance(
        name="VI_1",
        vrid=51,
        family=Family.IPV4,
        version=2,
        interface="eth0",
        state=state,
        priority=priority,
        advert_int_cs=100,
        preempt=True,
        preempt_delay_s=0.0,
        auth_type=AuthType.PASS,
        auth_pass=b"testpass",
        vips=(),
        excluded_vips=(),
        routes=(),
        rules=(),
        source_ip=IPv4Address(me),
        unicast_peers=(UnicastPeer(IPv4Address(peer), min_ttl=0, max_ttl=255),),
        unicast_ttl=255,
        check_unicast_src=False,
        unicast_fault_no_peer=False,
        mcast_dst_ip=None,
        down_timer_adverts=3,
        v3_checksum_as_v2=False,
        old_unicast_checksum=OldUnicastChecksum.AUTO,
        notifies=Notifies(
            master=Script(("/etc/keepalived/notify.sh", "master")),
            backup=Script(("/etc/keepalived/notify.sh", "backup")),
        ),
        notify_deleted=False,
        notify_deleted_script=None,
        notify_master_rx_lower_pri=None,
        notify_priority_changes=False,
        smtp_alert=True,
        dont_track_primary=False,
        track_interfaces=(),
        track_scripts=(),
        track_files=(),
        garp_master_delay_s=10.0,
        garp_master_repeat=5,
        garp_master_refresh_s=0.0,
        garp_master_refresh_repeat=1,
        garp_lower_prio_delay_s=5.0,
        garp_lower_prio_repeat=5,
        lower_prio_no_advert=False,
        higher_prio_send_advert=False,
        accept=True,
        skip_check_adv_addr=False,
        use_vmac=False,
        vmac_name=None,
        vmac_address=None,
        vmac_xmit_base=False,
        native_ipv6=False,
        strict_mode=False,
        promote_secondaries=False,
        debug=0,
        sync_group=None,
        legacy_unicast_spelling=True,
    )


@pytest.mark.parametrize(
    ("file", "state", "priority", "me", "peer"),
    [
        ("examples/two-node-master.conf", InitialState.MASTER, 100, "192.168.121.51", "192.168.121.52"),
        ("examples/two-node-backup.conf", InitialState.BACKUP, 50, "192.168.121.52", "192.168.121.51"),
    ],
)
def test_two_node_model_field_by_field(in_repo: object, file: str, state: InitialState, priority: int, me: str, peer: str) -> None:
    config = load(file, config_id="node")
    assert config == Config(globals=Globals(), instances=(_expected(state, priority, me, peer, file),))
    inst = config.instance("VI_1")
    assert inst.is_unicast and not inst.is_address_owner
    assert inst.advert_int_s == 1.0
    assert inst.location.line == 1 and inst.location.file == file
    assert config.globals.vrrp_mcast_group4 == MCAST_GROUP4  # unused: the instance is unicast
    assert [str(w) for w in config.warnings] == [
        f"{file}:1: warning: vrrp_instance VI_1 has no virtual_ipaddress (keepalived: 'at least one is sensible')",
        f"{file}:5: warning: smtp_alert is accepted but does nothing here: fastvrrp sends no e-mail",
        f"{file}:8: warning: vrrp_unicast_bind/vrrp_unicast_peer come from a keepalived patch that was never "
        "merged: keepalived ignores them ('Unknown keyword') and runs this instance as multicast; "
        "fastvrrp uses them as unicast_src_ip/unicast_peer",
    ]


def test_legacy_spelling_is_the_same_instance_as_the_current_one(in_repo: object) -> None:
    from fastvrrp.config import parse_text

    current = ISSUE_MASTER_TEXT.replace("vrrp_unicast_bind", "unicast_src_ip").replace(
        "  vrrp_unicast_peer 192.168.121.52\n", "  unicast_peer {\n    192.168.121.52\n  }\n"
    )
    legacy = parse_text(ISSUE_MASTER_TEXT, "legacy.conf").instance("VI_1")
    modern = parse_text(current, "modern.conf").instance("VI_1")
    assert legacy.legacy_unicast_spelling and not modern.legacy_unicast_spelling
    assert legacy == modern.__class__(**{**_fields(modern), "legacy_unicast_spelling": True})


def _fields(inst: Instance) -> dict[str, object]:
    import dataclasses

    return {f.name: getattr(inst, f.name) for f in dataclasses.fields(inst)}
