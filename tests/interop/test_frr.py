"""fastvrrp beside FRR 8.4's vrrpd (VRRPv3, IPv4 and IPv6) on one LAN (issue 6).

fastvrrp runs in node "a", FRR (zebra + vrrpd, pathspace = the namespace name) in node
"b" with the macvlan its vrrpd needs (see peers.FrrPeer and
/work/shared/reference/frr-vrrpd-in-netns.md). FRR supports no unicast, no auth and
priorities 1-254 only, so the matrix is family x which side is master.
"""

from __future__ import annotations

import pytest

from peers import FastVrrp, FrrPeer
from scenarios import HI, LO, VIP, VRID, Variant, frr_conf, lifecycle, vrrp_conf

pytestmark = [pytest.mark.netns, pytest.mark.usefixtures("frr_ok")]


@pytest.mark.parametrize("master", ["fastvrrp", "frr"], ids=lambda m: f"{m}-master")
@pytest.mark.parametrize("family", [4, 6], ids=["ipv4", "ipv6"])
def test_election_and_handovers(lab, family, master):
    v = Variant(f"frr-v3-ipv{family}", family=family)
    fv = FastVrrp(lab.nodes["a"], lab.tmp / "fv", "fastvrrp")
    (lab.tmp / "fv").mkdir(exist_ok=True)
    frr = FrrPeer(lab.nodes["b"], lab.tmp / "frr", VRID)
    lab.peers.extend([fv, frr])
    frr.add_macvlan(family, [f"{VIP[family]}/{32 if family == 4 else 64}"])
    inst = f"v{family}"
    fv_conf = vrrp_conf("a", HI if master == "fastvrrp" else LO, v)
    frr_cfg = frr_conf(LO if master == "fastvrrp" else HI, v)
    if master == "fastvrrp":
        lifecycle(lab, v, fv, "VI_1", fv_conf, frr, inst, frr_cfg, f"ipv{family}-{master}")
    else:
        lifecycle(lab, v, frr, inst, frr_cfg, fv, "VI_1", fv_conf, f"ipv{family}-{master}")
