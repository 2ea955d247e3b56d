"""The VRRP codec, checked for both implementations and against scapy."""

import ipaddress

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scapy.layers.inet import IP
from scapy.layers.inet6 import IPv6
from scapy.layers.vrrp import VRRP, VRRPv3

from fastvrrp.proto.packet import ChecksumForm, Reason, is_drop
from wire_impls import IMPLS, ipv4_datagram

SRC4 = ipaddress.IPv4Address("192.0.2.1").packed
MCAST4 = ipaddress.IPv4Address("224.0.0.18").packed
PEER4 = ipaddress.IPv4Address("192.0.2.2").packed
SRC6 = ipaddress.IPv6Address("fe80::1").packed
MCAST6 = ipaddress.IPv6Address("ff02::12").packed
VIP4 = ipaddress.IPv4Address("192.0.2.100").packed
VIP6 = ipaddress.IPv6Address("2001:db8::100").packed


@pytest.fixture(params=sorted(IMPLS), scope="module")
def wire(request):
    return IMPLS[request.param]()


def v4_advert(wire, version=3, vrid=51, priority=100, interval=100, addrs=VIP4, dst=MCAST4,
              ttl=255, **kw):
    msg = wire.encode(version, vrid, priority, interval, addrs, src=SRC4, dst=dst, **kw)
    return ipv4_datagram(msg, SRC4, dst, ttl=ttl)


def table_with(wire, vrid=51, **expect):
    table = wire.ReceiveTable()
    table[vrid] = wire.Expect(**expect)
    return table


# ----------------------------------------------------------------- encode and decode

addresses4 = st.lists(st.binary(min_size=4, max_size=4), max_size=20).map(b"".join)
addresses6 = st.lists(st.binary(min_size=16, max_size=16), max_size=20).map(b"".join)
byte = st.integers(0, 255)


@given(vrid=byte, prio=byte, interval=st.integers(0, 0x0FFF), addrs=addresses4,
       form=st.sampled_from([ChecksumForm.PSEUDO, ChecksumForm.PLAIN, ChecksumForm.OLD_UNICAST]),
       unicast=st.booleans())
def test_v3_ipv4_round_trip(wire, vrid, prio, interval, addrs, form, unicast):
    dst = PEER4 if unicast else MCAST4
    msg = wire.encode(3, vrid, prio, interval, addrs, src=SRC4, dst=dst, checksum_form=form)
    reason, adv = wire.parse_ipv4(ipv4_datagram(msg, SRC4, dst))
    assert reason == Reason.OK
    assert (adv.version, adv.vrid, adv.priority, adv.interval, adv.addresses) == \
        (3, vrid, prio, interval, addrs)
    assert adv.count == len(addrs) // 4 and adv.src == SRC4 and adv.dst == dst
    # A multicast packet has no distinct old-unicast form: 224.0.0.18 is its real dst.
    assert adv.checksum_form == (ChecksumForm.PSEUDO if form == ChecksumForm.OLD_UNICAST
                                 and not unicast else form)


@given(vrid=byte, prio=byte, interval=byte, addrs=addresses4, auth=st.sampled_from([0, 1]),
       password=st.binary(max_size=12))
def test_v2_round_trip(wire, vrid, prio, interval, addrs, auth, password):
    msg = wire.encode(2, vrid, prio, interval, addrs, auth_type=auth, auth_data=password)
    reason, adv = wire.parse_ipv4(ipv4_datagram(msg, SRC4, MCAST4))
    assert reason == Reason.OK
    assert (adv.version, adv.vrid, adv.priority, adv.interval, adv.addresses, adv.auth_type) == \
        (2, vrid, prio, interval, addrs, auth)
    assert adv.auth_data == password[:8].ljust(8, b"\0")
    assert adv.checksum_form == ChecksumForm.V2


@given(vrid=byte, prio=byte, interval=st.integers(0, 0x0FFF), addrs=addresses6)
def test_v3_ipv6_round_trip(wire, vrid, prio, interval, addrs):
    msg = wire.encode(3, vrid, prio, interval, addrs, family=6, src=SRC6, dst=MCAST6)
    reason, adv = wire.parse_ipv6(msg, SRC6, MCAST6, 255)
    assert reason == Reason.OK
    assert (adv.family, adv.vrid, adv.priority, adv.interval, adv.addresses, adv.hop_limit) == \
        (6, vrid, prio, interval, addrs, 255)
    assert adv.checksum_form == ChecksumForm.PSEUDO


# ----------------------------------------------------------------- scapy as oracle

ipv4s = st.integers(0, 2**32 - 1).map(lambda i: str(ipaddress.IPv4Address(i)))
ipv6s = st.integers(0, 2**128 - 1).map(lambda i: str(ipaddress.IPv6Address(i)))


@settings(max_examples=60)
@given(vrid=byte, prio=byte, adv=st.integers(0, 0x0FFF), vips=st.lists(ipv4s, max_size=8),
       src=ipv4s, dst=ipv4s)
def test_v3_ipv4_matches_scapy(wire, vrid, prio, adv, vips, src, dst):
    pkt = IP(src=src, dst=dst, ttl=255) / VRRPv3(vrid=vrid, priority=prio, adv=adv, addrlist=vips)
    raw = bytes(pkt)
    addrs = b"".join(ipaddress.IPv4Address(a).packed for a in vips)
    ours = wire.encode(3, vrid, prio, adv, addrs, src=ipaddress.IPv4Address(src).packed,
                       dst=ipaddress.IPv4Address(dst).packed)
    assert ours == raw[20:]
    reason, decoded = wire.parse_ipv4(raw)
    assert reason == Reason.OK
    assert decoded.checksum == int.from_bytes(raw[26:28], "big")  # scapy's checksum


@settings(max_examples=60)
@given(vrid=byte, prio=byte, adv=st.integers(0, 0x0FFF), vips=st.lists(ipv6s, max_size=6))
def test_v3_ipv6_matches_scapy(wire, vrid, prio, adv, vips):
    pkt = IPv6(src="fe80::1", dst="ff02::12", hlim=255) / VRRPv3(
        vrid=vrid, priority=prio, adv=adv, addrlist=vips)
    raw = bytes(pkt)
    addrs = b"".join(ipaddress.IPv6Address(a).packed for a in vips)
    assert wire.encode(3, vrid, prio, adv, addrs, family=6, src=SRC6, dst=MCAST6) == raw[40:]
    reason, decoded = wire.parse_ipv6(raw[40:], SRC6, MCAST6, 255)
    assert reason == Reason.OK and decoded.checksum == int.from_bytes(raw[46:48], "big")


@settings(max_examples=60)
@given(vrid=byte, prio=byte, adv=byte, vips=st.lists(ipv4s, max_size=8),
       auth=st.sampled_from([0, 1]), pw=st.binary(min_size=8, max_size=8))
def test_v2_matches_scapy(wire, vrid, prio, adv, vips, auth, pw):
    pkt = IP(src="192.0.2.1", dst="224.0.0.18", ttl=255) / VRRP(
        vrid=vrid, priority=prio, adv=adv, addrlist=vips, authtype=auth,
        auth1=int.from_bytes(pw[:4], "big"), auth2=int.from_bytes(pw[4:], "big"))
    raw = bytes(pkt)
    addrs = b"".join(ipaddress.IPv4Address(a).packed for a in vips)
    assert wire.encode(2, vrid, prio, adv, addrs, auth_type=auth, auth_data=pw) == raw[20:]
    reason, decoded = wire.parse_ipv4(raw)
    assert reason == Reason.OK
    assert (decoded.priority, decoded.checksum, decoded.auth_data) == (prio, int.from_bytes(raw[26:28], "big"), pw)


@given(st.binary(max_size=64))
def test_checksum_matches_scapy(wire, data):
    from scapy.utils import checksum
    assert wire.inet_checksum(data) == checksum(data)


# ----------------------------------------------------------------- every reason


def test_reasons_before_decoding(wire):
    good = v4_advert(wire)
    assert wire.parse_ipv4(good[:19]) == (Reason.TOO_SHORT, None)
    assert wire.parse_ipv4(good[:27]) == (Reason.TOO_SHORT, None)  # truncated vs total length
    assert wire.parse_ipv4(b"\x65" + good[1:])[0] == Reason.BAD_IP_HEADER  # IP version 6
    assert wire.parse_ipv4(b"\x44" + good[1:])[0] == Reason.BAD_IP_HEADER  # IHL 4
    assert wire.parse_ipv4(good[:9] + b"\x11" + good[10:])[0] == Reason.BAD_IP_HEADER  # UDP
    short_total = good[:2] + (23).to_bytes(2, "big") + good[4:]
    assert wire.parse_ipv4(short_total)[0] == Reason.TOO_SHORT  # 3-byte VRRP message
    assert wire.parse_ipv4(good[:20] + b"\x41" + good[21:])[0] == Reason.BAD_VERSION
    assert wire.parse_ipv4(good[:20] + b"\x32" + good[21:])[0] == Reason.BAD_TYPE
    assert wire.parse_ipv4(good[:23] + b"\x02" + good[24:])[0] == Reason.BAD_LENGTH
    v2_over_v6 = wire.encode(2, 1, 100, 1, b"")
    assert wire.parse_ipv6(v2_over_v6, SRC6, MCAST6, 255)[0] == Reason.BAD_VERSION


def test_padding_after_ip_total_length_is_ignored(wire):
    reason, adv = wire.parse_ipv4(v4_advert(wire) + b"\0" * 6)
    assert reason == Reason.OK and adv.vrid == 51


def test_bad_checksum_still_reports_the_advert(wire):
    pkt = bytearray(v4_advert(wire))
    pkt[-1] ^= 0x01  # corrupt the address list
    reason, adv = wire.parse_ipv4(bytes(pkt))
    assert reason == Reason.BAD_CHECKSUM and adv.vrid == 51 and adv.checksum_form == 0


def test_checksum_forms_are_told_apart(wire):
    for form in (ChecksumForm.PSEUDO, ChecksumForm.PLAIN, ChecksumForm.OLD_UNICAST):
        reason, adv = wire.parse_ipv4(v4_advert(wire, dst=PEER4, checksum_form=form))
        assert (reason, adv.checksum_form) == (Reason.OK, form)
    # The instance decides which forms it takes.
    table = table_with(wire, version=3, unicast=True)
    plain = v4_advert(wire, dst=PEER4, checksum_form=ChecksumForm.PLAIN)
    assert wire.validate_ipv4(plain, table)[0] == Reason.CHECKSUM_FORM
    table[51] = wire.Expect(3, unicast=True, checksum_forms=ChecksumForm.PSEUDO | ChecksumForm.PLAIN)
    assert wire.validate_ipv4(plain, table)[0] == Reason.OK


def test_reasons_against_the_instance(wire):
    v3 = v4_advert(wire)
    assert wire.validate_ipv4(v3, wire.ReceiveTable())[0] == Reason.VRID_UNKNOWN
    assert wire.validate_ipv4(v3, table_with(wire, version=2))[0] == Reason.VERSION_MISMATCH
    assert wire.validate_ipv4(v3, table_with(wire, version=3, unicast=True))[0] == Reason.MODE_MISMATCH
    unicast = v4_advert(wire, dst=PEER4)
    assert wire.validate_ipv4(unicast, table_with(wire, version=3))[0] == Reason.MODE_MISMATCH
    assert wire.validate_ipv4(v4_advert(wire, ttl=254), table_with(wire, version=3))[0] == Reason.BAD_TTL
    # Unicast TTL is the daemon's per-peer business (min_ttl/max_ttl), not a drop here.
    assert wire.validate_ipv4(v4_advert(wire, dst=PEER4, ttl=64),
                              table_with(wire, version=3, unicast=True))[0] == Reason.OK

    pass_pkt = v4_advert(wire, version=2, interval=1, auth_type=1, auth_data=b"testpass")
    expect = dict(version=2, auth_type=1, auth_data=b"testpass", interval=1)
    assert wire.validate_ipv4(pass_pkt, table_with(wire, **expect))[0] == Reason.OK
    assert wire.validate_ipv4(pass_pkt, table_with(wire, **{**expect, "auth_data": b"wrong"}))[0] \
        == Reason.AUTH_FAILURE
    assert wire.validate_ipv4(pass_pkt, table_with(wire, **{**expect, "auth_type": 0}))[0] \
        == Reason.AUTH_TYPE_MISMATCH
    assert wire.validate_ipv4(pass_pkt, table_with(wire, **{**expect, "interval": 2}))[0] \
        == Reason.INTERVAL_MISMATCH
    ah_pkt = v4_advert(wire, version=2, interval=1, auth_type=2)
    assert wire.validate_ipv4(ah_pkt, table_with(wire, version=2, auth_type=2))[0] \
        == Reason.AUTH_AH_UNSUPPORTED
    # v3 interval differences are normal (backups adopt the master's): never a drop.
    assert wire.validate_ipv4(v4_advert(wire, interval=7), table_with(wire, version=3, interval=100))[0] \
        == Reason.OK


def test_address_list_mismatch_is_reported_not_dropped(wire):
    other = ipaddress.IPv4Address("192.0.2.101").packed
    both = v4_advert(wire, addrs=VIP4 + other)
    reversed_order = dict(version=3, addresses=other + VIP4)
    assert wire.validate_ipv4(both, table_with(wire, **reversed_order))[0] == Reason.OK
    reason, adv = wire.validate_ipv4(both, table_with(wire, version=3, addresses=VIP4))
    assert reason == Reason.ADDR_LIST_MISMATCH and not is_drop(reason) and adv.count == 2
    third = ipaddress.IPv4Address("192.0.2.102").packed
    reason, _ = wire.validate_ipv4(both, table_with(wire, version=3, addresses=VIP4 + third))
    assert reason == Reason.ADDR_LIST_MISMATCH


def test_ipv6_validation(wire):
    msg = wire.encode(3, 9, 200, 100, VIP6, family=6, src=SRC6, dst=MCAST6)
    table = table_with(wire, vrid=9, version=3, family=6, addresses=VIP6)
    assert wire.validate_ipv6(msg, SRC6, MCAST6, 255, table)[0] == Reason.OK
    assert wire.validate_ipv6(msg, SRC6, MCAST6, -1, table)[0] == Reason.OK  # hop limit unknown
    assert wire.validate_ipv6(msg, SRC6, MCAST6, 64, table)[0] == Reason.BAD_TTL
    assert wire.validate_ipv6(msg, SRC6, SRC6, 255, table)[0] == Reason.BAD_CHECKSUM
    with pytest.raises(ValueError):
        wire.parse_ipv6(msg, SRC4, MCAST6, 255)


def test_inputs_of_any_buffer_type_without_copy(wire):
    pkt = v4_advert(wire)
    for buf in (pkt, bytearray(pkt), memoryview(pkt), memoryview(bytearray(b"xx" + pkt))[2:]):
        assert wire.parse_ipv4(buf)[0] == Reason.OK


# ----------------------------------------------------------------- the master's buffer


def test_encoder_reencodes_only_on_change(wire):
    enc = wire.AdvertEncoder(3, 51, 100, 100, VIP4, src=SRC4, dst=MCAST4)
    first = bytes(enc.packet())
    for _ in range(5):
        assert bytes(enc.packet()) == first
    assert enc.encodings == 1
    enc.priority = 100  # unchanged: still no re-encode
    enc.packet()
    assert enc.encodings == 1
    enc.priority = 0
    zero = bytes(enc.packet())
    assert enc.encodings == 2 and zero[2] == 0
    assert wire.parse_ipv4(ipv4_datagram(zero, SRC4, MCAST4))[0] == Reason.OK
    enc.addresses = VIP4 * 2
    assert bytes(enc.packet())[3] == 2 and enc.encodings == 3


def test_encoder_rejects_what_the_wire_cannot_carry(wire):
    with pytest.raises(ValueError):
        wire.AdvertEncoder(2, 1, 100, 1, b"", family=6)
    with pytest.raises(ValueError):
        wire.AdvertEncoder(3, 1, 100, 0x1000, b"", src=SRC4, dst=MCAST4)
    with pytest.raises(ValueError):
        wire.AdvertEncoder(3, 1, 100, 100, b"\0" * 5, src=SRC4, dst=MCAST4)
    with pytest.raises(ValueError):
        wire.AdvertEncoder(3, 1, 100, 100, b"", src=b"", dst=MCAST4)
    with pytest.raises(ValueError):
        wire.AdvertEncoder(3, 1, 100, 100, b"", family=6, src=SRC6, dst=MCAST6,
                           checksum_form=ChecksumForm.PLAIN)


@settings(max_examples=50)
@given(st.integers(0, 255))
def test_priority_changes_keep_the_checksum_valid(wire, prio):
    enc = wire.AdvertEncoder(3, 51, 100, 100, VIP4, src=SRC4, dst=MCAST4)
    enc.packet()
    enc.priority = prio
    reason, adv = wire.parse_ipv4(ipv4_datagram(bytes(enc.packet()), SRC4, MCAST4))
    assert reason == Reason.OK and adv.priority == prio


@given(ttl=st.integers(1, 255), prio=byte, version=st.sampled_from([2, 3]))
def test_encoder_with_ipv4_header_is_a_whole_datagram(wire, ttl, prio, version):
    enc = wire.AdvertEncoder(version, 51, prio, 1, VIP4, src=SRC4, dst=MCAST4, ipv4_ttl=ttl)
    datagram = bytes(enc.packet())
    assert datagram[20:] == wire.encode(version, 51, prio, 1, VIP4, src=SRC4, dst=MCAST4)
    assert datagram[:2] == b"\x45\xc0" and datagram[8] == ttl and datagram[9] == 112
    reason, adv = wire.parse_ipv4(datagram)
    assert reason == Reason.OK and adv.hop_limit == ttl and adv.priority == prio
    with pytest.raises(ValueError):
        wire.AdvertEncoder(3, 1, 100, 100, b"", family=6, src=SRC6, dst=MCAST6, ipv4_ttl=255)
