"""Capture a small corpus of real VRRP advertisements from Debian's keepalived.

    python tests/data/capture_corpus.py            # (re)writes tests/data/*.pcap + corpus.json
    python tests/data/capture_corpus.py --print-configs
    python tests/data/capture_corpus.py --only keepalived-v2.pcap

Needs root, keepalived, tcpdump and iproute2. Every scenario runs in a fresh
fastvrrp.netlab lab (namespaces with a per-run prefix, documentation addresses only,
removed afterwards). The facts written to corpus.json are derived from the generated
configs (and the lab's deterministic MACs/link-locals), never from decoding the capture,
so tests can hold the packets to them. tests/unit/test_corpus_scapy.py checks them.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1] / "src"))

from fastvrrp import netlab  # noqa: E402

VRRP_MCAST4 = "224.0.0.18"
VRRP_MCAST6 = "ff02::12"
VRRP_FILTER = "ip proto 112 or ip6 proto 112"

# The lab's hosts. Node order fixes the MACs netlab assigns (02:00:00:00:<index>:01).
HOSTS = {
    "ka1": {"ipv4": "192.0.2.1", "ipv6": "2001:db8::1"},
    "ka2": {"ipv4": "192.0.2.2", "ipv6": "2001:db8::2"},
}


@dataclass
class Instance:
    """One vrrp_instance; renders its keepalived.conf block and the facts it implies."""

    name: str
    vrid: int
    version: int
    family: str  # "ipv4" | "ipv6"
    priority: int
    advert_int: float  # seconds, as written in the config
    vips: list[str]  # CIDR as written in the config, in order
    state: str = "BACKUP"
    auth_pass: str | None = None  # PASS authentication (v2 only)
    unicast_src: str | None = None
    unicast_peers: list[str] = field(default_factory=list)

    def config(self) -> str:
        lines = [
            f"vrrp_instance {self.name} {{",
            f"    state {self.state}",
            "    interface eth0",
            f"    virtual_router_id {self.vrid}",
            f"    version {self.version}",
            f"    priority {self.priority}",
            f"    advert_int {self.advert_int:g}",
        ]
        if self.auth_pass is not None:
            # keepalived's parser starts a comment at '!' or '#' even mid-word
            # ("secret8!" is sent as "secret8\0"), and splits on whitespace.
            if any(c in self.auth_pass for c in "!# \t"):
                raise ValueError(f"auth_pass {self.auth_pass!r} would be cut by keepalived")
            lines += ["    authentication {", "        auth_type PASS",
                      f"        auth_pass {self.auth_pass}", "    }"]
        if self.unicast_src is not None:
            lines.append(f"    unicast_src_ip {self.unicast_src}")
            lines += ["    unicast_peer {"] + [f"        {p}" for p in self.unicast_peers] + ["    }"]
        lines += ["    virtual_ipaddress {"] + [f"        {v}" for v in self.vips] + ["    }", "}"]
        return "\n".join(lines) + "\n"

    def wire_advert_int(self) -> int:
        # v2 carries whole seconds, v3 centiseconds (keepalived rounds the same way).
        return round(self.advert_int) if self.version == 2 else round(self.advert_int * 100)

    def auth_bytes(self) -> bytes | None:
        # keepalived vrrp_parser.c vrrp_auth_pass_handler(): memset 0, copy at most 8.
        if self.auth_pass is None:
            return None
        return self.auth_pass.encode()[:8].ljust(8, b"\0")


def keepalived_conf(router_id: str, instances: list[Instance]) -> str:
    return (f"global_defs {{\n    router_id {router_id}\n}}\n"
            + "".join(i.config() for i in instances))


@dataclass
class Scenario:
    file: str
    description: str
    family: str
    version: int
    checksum: str  # "v2" | "v3-pseudo-header"
    routers: dict[str, list[Instance]]  # node name -> its instances
    packets: int | None  # tcpdump -c: stop after this many adverts
    # vrid -> expected runs of (source, priority) in capture order
    sequence: dict[int, list[tuple[str, int]]]
    prio0: bool = False  # SIGTERM ka1 and let ka2 take over (timed, not -c)

    def configs(self) -> dict[str, str]:
        return {node: keepalived_conf(node, insts) for node, insts in self.routers.items()}


def src_of(node: str, family: str, link_local: dict[str, str]) -> str:
    return HOSTS[node]["ipv4"] if family == "ipv4" else link_local[node]


def scenarios(link_local: dict[str, str]) -> list[Scenario]:
    ka1_4, ka2_4 = HOSTS["ka1"]["ipv4"], HOSTS["ka2"]["ipv4"]
    ka1_6 = link_local["ka1"]
    return [
        Scenario(
            "keepalived-v2.pcap", "VRRPv2 multicast, no authentication, 3 IPv4 VIPs",
            "ipv4", 2, "v2",
            {"ka1": [Instance("VI_V2", 51, 2, "ipv4", 150, 1,
                              ["198.51.100.10/32", "198.51.100.11/32", "203.0.113.7/24"],
                              state="MASTER")]},
            packets=4, sequence={51: [(ka1_4, 150)]}),
        Scenario(
            "keepalived-v2-pass.pcap",
            "VRRPv2 multicast, auth_type PASS: VRID 10 short password (zero padded), "
            "VRID 11 long password (truncated to 8)",
            "ipv4", 2, "v2",
            {"ka1": [Instance("VI_PASS_SHORT", 10, 2, "ipv4", 150, 1, ["198.51.100.20/32"],
                              state="MASTER", auth_pass="abc"),
                     Instance("VI_PASS_LONG", 11, 2, "ipv4", 120, 1,
                              ["198.51.100.21/32", "198.51.100.22/32"],
                              state="MASTER", auth_pass="pass-too-long")]},
            packets=6, sequence={10: [(ka1_4, 150)], 11: [(ka1_4, 120)]}),
        Scenario(
            "keepalived-v3-ipv4.pcap", "VRRPv3 IPv4 multicast, advert_int 0.1 (10 cs)",
            "ipv4", 3, "v3-pseudo-header",
            {"ka1": [Instance("VI_V3_4", 52, 3, "ipv4", 200, 0.1,
                              ["198.51.100.30/32", "198.51.100.31/32"], state="MASTER")]},
            packets=5, sequence={52: [(ka1_4, 200)]}),
        Scenario(
            "keepalived-v3-ipv6.pcap",
            "VRRPv3 IPv6 multicast from eth0's link-local to ff02::12; link-local VIP first "
            "(RFC 5798 5.2.9), then two 2001:db8 VIPs",
            "ipv6", 3, "v3-pseudo-header",
            {"ka1": [Instance("VI_V3_6", 53, 3, "ipv6", 100, 0.5,
                              ["fe80::53/64", "2001:db8:53::1/64", "2001:db8:53::2/64"],
                              state="MASTER")]},
            packets=4, sequence={53: [(ka1_6, 100)]}),
        Scenario(
            "keepalived-v3-ipv4-unicast.pcap",
            "VRRPv3 IPv4 unicast (unicast_src_ip/unicast_peer) to a silent peer; the "
            "checksum pseudo-header uses the unicast destination",
            "ipv4", 3, "v3-pseudo-header",
            {"ka1": [Instance("VI_V3_UC", 54, 3, "ipv4", 150, 1, ["198.51.100.40/32"],
                              state="MASTER", unicast_src=ka1_4, unicast_peers=[ka2_4])]},
            packets=4, sequence={54: [(ka1_4, 150)]}),
        Scenario(
            "keepalived-v2-unicast-pass.pcap",
            "VRRPv2 IPv4 unicast with auth_type PASS to a silent peer",
            "ipv4", 2, "v2",
            {"ka1": [Instance("VI_V2_UC", 55, 2, "ipv4", 150, 1, ["198.51.100.50/32"],
                              state="MASTER", auth_pass="exactly8",
                              unicast_src=ka1_4, unicast_peers=[ka2_4])]},
            packets=4, sequence={55: [(ka1_4, 150)]}),
        Scenario(
            "keepalived-prio0.pcap",
            "VRRPv3 IPv4 multicast pair: ka1 (prio 200) master, SIGTERM -> one priority-0 "
            "advert, then ka2 (prio 100) takes over",
            "ipv4", 3, "v3-pseudo-header",
            {"ka1": [Instance("VI_PRIO0", 56, 3, "ipv4", 200, 1, ["198.51.100.60/32"])],
             "ka2": [Instance("VI_PRIO0", 56, 3, "ipv4", 100, 1, ["198.51.100.60/32"])]},
            packets=None, prio0=True,
            sequence={56: [(ka1_4, 200), (ka1_4, 0), (ka2_4, 100)]}),
    ]


def facts(sc: Scenario, macs: dict[str, str], link_local: dict[str, str]) -> dict[str, object]:
    """corpus.json entry: everything a decoder must find, from the configs alone."""
    vrids: dict[str, object] = {}
    dst = VRRP_MCAST4 if sc.family == "ipv4" else VRRP_MCAST6
    for node, insts in sc.routers.items():
        for inst in insts:
            if inst.unicast_peers:
                dst = inst.unicast_peers[0]
            ab = inst.auth_bytes()
            entry = {
                "advert_int": inst.wire_advert_int(),
                "advert_int_unit": "s" if inst.version == 2 else "cs",
                "vips": [str(ipaddress.ip_interface(v).ip) for v in inst.vips],
                "auth_type": 1 if ab is not None else 0,
                "auth_name": "PASS" if ab is not None else "none",
                "auth_bytes_hex": ab.hex() if ab is not None else None,
                "configured_password": inst.auth_pass,
                "sequence": [[s, p] for s, p in sc.sequence[inst.vrid]],
                "priorities": sorted({p for _, p in sc.sequence[inst.vrid]}, reverse=True),
                "sources": sorted({s for s, _ in sc.sequence[inst.vrid]}),
            }
            vrids.setdefault(str(inst.vrid), entry)
    nodes = list(sc.routers)
    return {
        "description": sc.description,
        "family": sc.family,
        "version": sc.version,
        "checksum": sc.checksum,
        "dst": dst,
        "unicast": not ipaddress.ip_address(dst).is_multicast,
        # keepalived 2.2.7: IPv4 TTL 255 and TOS 0xc0 (vrrp.c vrrp_build_ip4); IPv6
        # hop limit 255 (IPV6_MULTICAST_HOPS) and traffic class 0xc0 (IPV6_TCLASS).
        "ttl": 255,
        "tos": 0xC0,
        "packets": sc.packets,
        "hosts": {n: {"mac": macs[n], "ipv4": HOSTS[n]["ipv4"], "ipv6": HOSTS[n]["ipv6"],
                      "link_local": link_local[n]} for n in ["ka1", "ka2"]},
        "routers": nodes,
        "vrids": vrids,
        "configs": sc.configs(),
    }


def run_scenario(sc: Scenario, out: Path, work: Path) -> None:
    with netlab.Lab(hub=True) as lab:  # hub: the observer also sees unicast adverts
        nodes = {n: lab.node(n, [f"{h['ipv4']}/24", f"{h['ipv6']}/64"]) for n, h in HOSTS.items()}
        obs = lab.node("obs")
        cap = lab.capture(obs, "eth0", VRRP_FILTER, out, count=sc.packets, precision="micro")
        kas = {n: nodes[n].start_keepalived(conf, work / n) for n, conf in sc.configs().items()}
        if not sc.prio0:
            assert sc.packets is not None
            # Non-owners wait Master_Down_Interval (~3.5 s at 1 s) before advertising.
            if not cap.wait(sc.packets * max(i.advert_int for r in sc.routers.values()
                                             for i in r) + 10):
                raise RuntimeError(f"{sc.file}: too few adverts; log:\n{kas['ka1'].log()}")
        else:
            ka1, ka2 = kas["ka1"], kas["ka2"]
            ka1.wait_for_log(r"Entering MASTER STATE", 10)
            time.sleep(1.5)  # one or two adverts at prio 200
            ka1.stop()  # SIGTERM: prio-0 advert, VIPs removed
            ka2.wait_for_log(r"Entering MASTER STATE", 5)
            time.sleep(1.5)  # one or two adverts from the new master
            cap.stop()
        cap.stop()
        for ka in kas.values():
            ka.stop()


def check_sequence(sc: Scenario, path: Path) -> None:
    """Quick self-check before accepting a capture (the full one is the unit test)."""
    from scapy.all import rdpcap
    from scapy.layers.inet import IP
    from scapy.layers.inet6 import IPv6
    from scapy.layers.vrrp import VRRP, VRRPv3

    runs: dict[int, list[tuple[str, int]]] = {}
    for pkt in rdpcap(str(path)):
        ip = pkt[IP] if IP in pkt else pkt[IPv6]
        v = pkt[VRRPv3] if VRRPv3 in pkt else pkt[VRRP]
        seq = runs.setdefault(v.vrid, [])
        if not seq or seq[-1] != (ip.src, v.priority):
            seq.append((ip.src, v.priority))
    if runs != sc.sequence:
        raise RuntimeError(f"{sc.file}: got runs {runs}, want {sc.sequence}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--print-configs", action="store_true")
    ap.add_argument("--only", action="append", help="capture only this file (repeatable)")
    ap.add_argument("--outdir", type=Path, default=HERE)
    ap.add_argument("--facts-only", action="store_true",
                    help="rewrite corpus.json from the configs without capturing")
    args = ap.parse_args()

    # MACs follow node creation order in run_scenario (ka1, ka2, obs).
    macs = {n: f"02:00:00:00:{i:02x}:01" for i, n in enumerate(HOSTS, start=1)}
    link_local = {n: str(netlab.eui64_link_local(m)) for n, m in macs.items()}
    scs = scenarios(link_local)
    if args.print_configs:
        for sc in scs:
            for node, conf in sc.configs().items():
                print(f"# {sc.file} -- {node}\n{conf}")
        return 0

    reason = None if args.facts_only else netlab.netns_usable()
    if reason:
        print(f"cannot capture: {reason}", file=sys.stderr)
        return 2
    version = subprocess.run(["keepalived", "--version"], capture_output=True,
                             text=True).stderr.splitlines()[0]
    corpus_path = args.outdir / "corpus.json"
    corpus = json.loads(corpus_path.read_text()) if corpus_path.exists() else {}
    corpus.update({"generator": "tests/data/capture_corpus.py", "keepalived": version})
    captures = corpus.setdefault("captures", {})
    for sc in scs:
        if args.only and sc.file not in args.only:
            continue
        out = args.outdir / sc.file
        if args.facts_only:
            captures[sc.file] = facts(sc, macs, link_local)
            continue
        for attempt in range(1, 4):
            with tempfile.TemporaryDirectory(prefix="fv-corpus-") as tmp:
                run_scenario(sc, out, Path(tmp))
            try:
                check_sequence(sc, out)
                break
            except RuntimeError as exc:
                print(f"attempt {attempt}: {exc}", file=sys.stderr)
        else:
            return 1
        captures[sc.file] = facts(sc, macs, link_local)
        print(f"{sc.file}: {out.stat().st_size} bytes")
    corpus_path.write_text(json.dumps(corpus, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
