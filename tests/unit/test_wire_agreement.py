"""The compiled codec and its Python twin agree on every input."""

import ipaddress

from hypothesis import given, settings
from hypothesis import strategies as st

from fastvrrp.proto.packet import ChecksumForm, Reason
from wire_impls import IMPLS, ipv4_datagram

PY = IMPLS["python"]()
C = IMPLS["compiled"]()
SRC4 = ipaddress.IPv4Address("192.0.2.1").packed
MCAST4 = ipaddress.IPv4Address("224.0.0.18").packed
SRC6 = ipaddress.IPv6Address("fe80::1").packed
MCAST6 = ipaddress.IPv6Address("ff02::12").packed


def same(a, b):
    ra, aa = a
    rb, ab = b
    assert ra == rb
    assert (aa is None) == (ab is None)
    if aa is not None:
        assert aa.fields() == ab.fields()


def tables(expects):
    tp, tc = PY.ReceiveTable(), C.ReceiveTable()
    for vrid, kw in expects:
        tp[vrid] = PY.Expect(**kw)
        tc[vrid] = C.Expect(**kw)
    return tp, tc


expect_kw = st.fixed_dictionaries({
    "version": st.sampled_from([2, 3]),
    "unicast": st.booleans(),
    "auth_type": st.integers(0, 3),
    "auth_data": st.binary(max_size=10),
    "interval": st.none() | st.integers(0, 255),
    "addresses": st.none() | st.lists(st.binary(min_size=4, max_size=4), max_size=4).map(b"".join),
    "checksum_forms": st.integers(0, 15),
})
expect_tables = st.lists(st.tuples(st.integers(0, 255), expect_kw), max_size=4)


@settings(max_examples=500)
@given(data=st.binary(max_size=120), expects=expect_tables)
def test_random_bytes(data, expects):
    tp, tc = tables(expects)
    same(PY.parse_ipv4(data), C.parse_ipv4(data))
    same(PY.validate_ipv4(data, tp), C.validate_ipv4(data, tc))


def valid_v4(version, vrid, prio, interval, naddr, auth, dst, form):
    addrs = bytes(range(naddr * 4))
    msg = PY.encode(version, vrid, prio, interval if version == 3 else interval & 0xFF, addrs,
                    src=SRC4, dst=dst, auth_type=auth if version == 2 else 0,
                    auth_data=b"pw", checksum_form=form if version == 3 else 0)
    return ipv4_datagram(msg, SRC4, dst, ttl=255)


@settings(max_examples=500)
@given(version=st.sampled_from([2, 3]), vrid=st.integers(0, 255), prio=st.integers(0, 255),
       interval=st.integers(0, 0xFFF), naddr=st.integers(0, 5), auth=st.integers(0, 2),
       dst=st.sampled_from([MCAST4, bytes([192, 0, 2, 2])]),
       form=st.sampled_from([ChecksumForm.PSEUDO, ChecksumForm.PLAIN, ChecksumForm.OLD_UNICAST]),
       flips=st.lists(st.tuples(st.integers(0, 200), st.integers(1, 255)), max_size=3),
       cut=st.integers(0, 8), expects=expect_tables)
def test_mutated_valid_packets(version, vrid, prio, interval, naddr, auth, dst, form, flips,
                               cut, expects):
    pkt = bytearray(valid_v4(version, vrid, prio, interval, naddr, auth, dst, form))
    for pos, xor in flips:
        if pos < len(pkt):
            pkt[pos] ^= xor
    if cut:
        del pkt[-cut:]
    data = bytes(pkt)
    tp, tc = tables(expects + [(vrid, {"version": version, "auth_type": auth,
                                        "auth_data": b"pw", "checksum_forms": 15})])
    same(PY.validate_ipv4(data, tp), C.validate_ipv4(data, tc))


@settings(max_examples=300)
@given(data=st.binary(max_size=100), hop=st.integers(-1, 255), expects=expect_tables,
       valid=st.booleans(), vrid=st.integers(0, 255), naddr=st.integers(0, 3))
def test_ipv6(data, hop, expects, valid, vrid, naddr):
    if valid:
        data = PY.encode(3, vrid, 100, 100, bytes(16 * naddr), family=6, src=SRC6, dst=MCAST6)
    expects = [(v, {**kw, "family": 6, "addresses": None}) for v, kw in expects]
    tp, tc = tables(expects)
    same(PY.parse_ipv6(data, SRC6, MCAST6, hop), C.parse_ipv6(data, SRC6, MCAST6, hop))
    same(PY.validate_ipv6(data, SRC6, MCAST6, hop, tp), C.validate_ipv6(data, SRC6, MCAST6, hop, tc))


@given(st.binary(max_size=300), st.integers(0, 0xFFFF))
def test_checksum(data, initial):
    assert PY.inet_checksum(data, initial) == C.inet_checksum(data, initial)


def test_reason_codes_are_one_list():
    # The C enum in ext/fastvrrp/_wire.pxd mirrors Reason; the compiled module reuses
    # the twin's enums, so names and numbers cannot drift apart.
    assert C.Reason is Reason and C.ChecksumForm is ChecksumForm
    assert [r.value for r in Reason] == list(range(len(Reason)))


@settings(max_examples=200)
@given(version=st.sampled_from([2, 3]), vrid=st.integers(0, 255), prio=st.integers(0, 255),
       interval=st.integers(0, 255), addrs=st.lists(st.binary(min_size=4, max_size=4), max_size=8),
       auth=st.integers(0, 2), pw=st.binary(max_size=12), new_prio=st.integers(0, 255),
       ttl=st.sampled_from([0, 1, 255]))
def test_encoders_agree(version, vrid, prio, interval, addrs, auth, pw, new_prio, ttl):
    kw = dict(src=SRC4, dst=MCAST4, auth_type=auth, auth_data=pw, ipv4_ttl=ttl)
    a = PY.AdvertEncoder(version, vrid, prio, interval, b"".join(addrs), **kw)
    b = C.AdvertEncoder(version, vrid, prio, interval, b"".join(addrs), **kw)
    assert bytes(a.packet()) == bytes(b.packet())
    a.priority = b.priority = new_prio
    assert bytes(a.packet()) == bytes(b.packet())
    assert a.encodings == b.encodings
