"""fastvrrp beside Debian's keepalived 2.2.7 on one LAN (issue 6).

fastvrrp always runs in node "a" (192.0.2.1), keepalived in node "b" (192.0.2.2),
except where the address decides (equal priorities), where both placements run.
"""

from __future__ import annotations

import time

import pytest

from peers import FastVrrp, KeepalivedPeer, partition, heal
from scenarios import (
    ADDR,
    HI,
    LO,
    Variant,
    Wire,
    assert_roles,
    capture,
    holds_vip,
    lifecycle,
    settle_and_check,
    vrrp_conf,
)

pytestmark = [pytest.mark.netns, pytest.mark.usefixtures("keepalived_ok")]

# v3 runs at 100 ms adverts; v2 needs whole seconds, so its scenarios are few: no auth
# over multicast, PASS over unicast (a wrong password is in the mismatch tests).
VARIANTS = [
    Variant("v2-mcast", version=2, advert=1),
    Variant("v2-pass-unicast", version=2, advert=1, auth="s3cret", unicast=True),
    Variant("v3-ipv4-mcast"),
    Variant("v3-ipv4-unicast", unicast=True),
    Variant("v3-ipv6-mcast", family=6),
    Variant("v3-ipv6-unicast", family=6, unicast=True),
]


def peers_of(lab) -> tuple[FastVrrp, KeepalivedPeer]:
    fv = FastVrrp(lab.nodes["a"], lab.tmp / "fv", "fastvrrp")
    ka = KeepalivedPeer(lab.nodes["b"], lab.tmp / "ka")
    (lab.tmp / "fv").mkdir(exist_ok=True)
    lab.peers.extend([fv, ka])
    return fv, ka


@pytest.mark.parametrize("master", ["fastvrrp", "keepalived"], ids=lambda m: f"{m}-master")
@pytest.mark.parametrize("v", VARIANTS, ids=lambda v: v.id)
def test_election_and_handovers(lab, v, master):
    """One master, a quiet backup, crash and graceful handover and preemption back --
    with the other implementation as the survivor each time."""
    fv, ka = peers_of(lab)
    fv_conf = vrrp_conf("a", HI if master == "fastvrrp" else LO, v)
    ka_conf = vrrp_conf("b", LO if master == "fastvrrp" else HI, v)
    if master == "fastvrrp":
        lifecycle(lab, v, fv, "VI_1", fv_conf, ka, "VI_1", ka_conf, f"{v.id}-{master}")
    else:
        lifecycle(lab, v, ka, "VI_1", ka_conf, fv, "VI_1", fv_conf, f"{v.id}-{master}")


@pytest.mark.parametrize("family", [4, 6], ids=["ipv4", "ipv6"])
@pytest.mark.parametrize("fv_node", ["a", "b"],
                         ids=["fastvrrp-lower-addr", "fastvrrp-higher-addr"])
def test_equal_priority_partition_heal(lab, fv_node, family):
    """Equal priorities: after a partition made both sides MASTER, the higher primary
    address (IPv4: 192.0.2.2; IPv6: the link-local of node b) stays the only master."""
    v = Variant(f"eq-ipv{family}", family=family)
    ka_node = "b" if fv_node == "a" else "a"
    fv = FastVrrp(lab.nodes[fv_node], lab.tmp / "fv", "fastvrrp")
    ka = KeepalivedPeer(lab.nodes[ka_node], lab.tmp / "ka")
    (lab.tmp / "fv").mkdir(exist_ok=True)
    lab.peers.extend([fv, ka])
    by_node = {fv_node: fv, ka_node: ka}
    wire = Wire(capture(lab, f"eq-{fv_node}-{family}"))
    fv.start(vrrp_conf(fv_node, LO, v))
    ka.start(vrrp_conf(ka_node, LO, v))
    # Whoever times out first is master; an equal-priority backup does not preempt.
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        states = sorted([fv.state("VI_1"), ka.state("VI_1")], key=str)
        if states == ["BACKUP", "MASTER"]:
            break
        time.sleep(0.02)
    else:
        raise AssertionError(f"no single master: fastvrrp {fv.transitions('VI_1')}, "
                             f"keepalived {ka.transitions('VI_1')}")
    first_backup = fv if fv.state("VI_1") == "BACKUP" else ka
    # Partition the backup: it hears nothing and becomes a second master.
    partition(first_backup.node)
    try:
        first_backup.wait_state("VI_1", "MASTER", 3)
        other = ka if first_backup is fv else fv
        assert other.state("VI_1") == "MASTER"
    finally:
        heal(first_backup.node)
    winner, loser = by_node["b"], by_node["a"]
    loser.wait_state("VI_1", "BACKUP", 3)
    winner.wait_state("VI_1", "MASTER", 3)
    t0 = time.time_ns()
    settle_and_check(wire, v, winner, "VI_1", LO, loser, "VI_1")
    assert_roles(winner, "VI_1", loser, "VI_1", family)
    # Same priority on both: tell the advertisers apart by source address.
    winner_src = (ADDR["b", 4] if family == 4 else str(winner.node.link("eth0").link_local))
    srcs = {s for t, s, _p in wire.adverts() if t > t0}
    assert srcs == {winner_src}, f"advertising after the heal: {srcs}, want only {winner_src}"


MISMATCHES = {
    # (fastvrrp's settings, keepalived's settings) as vrrp_conf keyword overrides
    "wrong-password": ({"auth": "secret1"}, {"auth": "secret2"}),
    "v2-advert-int": ({"advert": 1}, {"advert": 2}),
    "fv-v3-ka-v2": ({"version": 3}, {"version": 2}),
    "fv-v2-ka-v3": ({"version": 2}, {"version": 3}),
}


@pytest.mark.parametrize("fv_prio", [LO, HI], ids=["fastvrrp-lower", "fastvrrp-higher"])
@pytest.mark.parametrize("case", list(MISMATCHES))
def test_mismatch_gives_keepalived_result(lab, case, fv_prio):
    """keepalived 2.2.7 drops adverts with a wrong password ("received an invalid
    passwd!"), another v2 advert_int ("advertisement interval mismatch") or another
    version ("wrong version"): the lower-priority side does not hear the higher one,
    times out and both stay MASTER. fastvrrp must do the same on either side."""
    v = Variant(case, version=2, advert=1)
    fv, ka = peers_of(lab)
    fv_kw, ka_kw = MISMATCHES[case]
    ka_prio = HI if fv_prio == LO else LO
    fv.start(vrrp_conf("a", fv_prio, v, **fv_kw))
    ka.start(vrrp_conf("b", ka_prio, v, **ka_kw))
    # Both elect themselves: Master_Down_Interval of the slowest side (advert 2 s) + start-up.
    fv.wait_state("VI_1", "MASTER", 10)
    ka.wait_state("VI_1", "MASTER", 10)
    marks = len(fv.transitions("VI_1")), len(ka.transitions("VI_1"))
    time.sleep(4)  # several adverts of each side: the higher one must not win
    assert fv.transitions("VI_1")[marks[0]:] == [], fv.transitions("VI_1")
    assert ka.transitions("VI_1")[marks[1]:] == [], ka.transitions("VI_1")
    assert fv.state("VI_1") == "MASTER" and ka.state("VI_1") == "MASTER"
    assert holds_vip(fv, 4) and holds_vip(ka, 4)
    assert fv.transitions("VI_1") == ["BACKUP", "MASTER"], fv.transitions("VI_1")
