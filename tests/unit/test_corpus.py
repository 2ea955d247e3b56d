"""fastvrrp's codec on real advertisements captured from Debian's keepalived.

tests/data/README.md says how the pcaps were captured; corpus.json holds what the
generating configs say must be in them. Both codec implementations must accept
every packet against an instance configured like keepalived's, report the checksum
form keepalived uses, and re-encode every packet byte for byte.
"""

from __future__ import annotations

import ipaddress
import json
from pathlib import Path

import pytest

from fastvrrp.proto.packet import ChecksumForm, Reason
from pcaputil import read_pcap
from wire_impls import IMPLS

DATA = Path(__file__).resolve().parents[1] / "data"
CAPTURES = json.loads((DATA / "corpus.json").read_text())["captures"]
FORMS = {"v2": ChecksumForm.V2, "v3-pseudo-header": ChecksumForm.PSEUDO}


def vrrp_packets(name: str):
    """(family, payload, src, dst, hop_limit) for every VRRP frame of a capture."""
    for _ts, frame in read_pcap(DATA / name):
        ethertype = frame[12:14]
        if ethertype == b"\x08\x00":
            yield 4, frame[14:], None, None, None
        elif ethertype == b"\x86\xdd":
            ip6 = frame[14:]
            assert ip6[6] == 112, "VRRP directly after the IPv6 header"
            yield 6, ip6[40:], ip6[8:24], ip6[24:40], ip6[7]


def packed(addresses, family):
    cls = ipaddress.IPv4Address if family == 4 else ipaddress.IPv6Address
    return b"".join(cls(a.split("/")[0]).packed for a in addresses)


@pytest.fixture(params=sorted(IMPLS), scope="module")
def wire(request):
    return IMPLS[request.param]()


@pytest.mark.parametrize("name", sorted(CAPTURES))
def test_keepalived_capture(wire, name):
    facts = CAPTURES[name]
    family = 4 if facts["family"] == "ipv4" else 6
    version = facts["version"]
    table = wire.ReceiveTable()
    for vrid, v in facts["vrids"].items():
        table[int(vrid)] = wire.Expect(
            version, family=family, unicast=facts["unicast"], auth_type=v["auth_type"],
            auth_data=bytes.fromhex(v["auth_bytes_hex"] or ""),
            interval=v["advert_int"] if version == 2 else None,
            addresses=packed(v["vips"], family))

    seen: dict[int, list[tuple[str, int]]] = {}
    count = 0
    for fam, payload, src, dst, hop in vrrp_packets(name):
        assert fam == family
        if family == 4:
            reason, adv = wire.validate_ipv4(payload, table)
        else:
            reason, adv = wire.validate_ipv6(payload, src, dst, hop, table)
        assert reason == Reason.OK, Reason(reason).name
        assert adv.checksum_form == FORMS[facts["checksum"]]
        assert adv.version == version and adv.interval == facts["vrids"][str(adv.vrid)]["advert_int"]
        assert str(ipaddress.ip_address(adv.dst)) == facts["dst"]
        assert adv.hop_limit == facts.get("ttl", 255)
        sender = str(ipaddress.ip_address(adv.src))
        if not seen.get(adv.vrid) or seen[adv.vrid][-1] != (sender, adv.priority):
            seen.setdefault(adv.vrid, []).append((sender, adv.priority))
        # Our encoder reproduces keepalived's packet exactly, checksum included.
        again = wire.encode(version, adv.vrid, adv.priority, adv.interval, adv.addresses,
                            family=family, src=adv.src, dst=adv.dst, auth_type=adv.auth_type,
                            auth_data=adv.auth_data)
        assert again == (payload[20:] if family == 4 else payload)
        count += 1

    # A timed capture (the priority-0 one) has no fixed count; its sequence says it all.
    if facts["packets"] is not None:
        assert count == facts["packets"]
    for vrid, v in facts["vrids"].items():
        assert seen[int(vrid)] == [tuple(s) for s in v["sequence"]]


def test_wrong_password_on_a_real_packet(wire):
    name = "keepalived-v2-pass.pcap"
    table = wire.ReceiveTable()
    for vrid in (10, 11):
        table[vrid] = wire.Expect(2, auth_type=1, auth_data=b"nottheone", interval=1)
    reasons = {wire.validate_ipv4(p, table)[0] for _, p, *_ in vrrp_packets(name)}
    assert reasons == {Reason.AUTH_FAILURE}
