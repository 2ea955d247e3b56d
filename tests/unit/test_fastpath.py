"""The steady-state fast path (compiled fastvrrp._fastpath and twin
fastvrrp.proto.fastpath): what stays in C, what escalates, how the FSM learns of
re-arms, and that the two implementations agree step by step."""

from __future__ import annotations

import importlib
import ipaddress
from dataclasses import dataclass, field
from types import ModuleType

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import fastvrrp.proto.fastpath as twin_fp
import fastvrrp.proto.packet as twin_codec
import fastvrrp.proto.wheel as twin_wheel
from fastvrrp.proto.actions import State, TimerKind
from fastvrrp.proto.fastpath import MODE_BACKUP, MODE_MASTER, MODE_NONE, sync_from_fsm
from fastvrrp.proto.fsm import InstanceFsm, InstanceParams, next_adver
from fastvrrp.proto.packet import Reason
from wire_impls import ipv4_datagram


def _compiled() -> tuple[ModuleType, ModuleType, ModuleType]:
    try:
        return (importlib.import_module("fastvrrp._fastpath"),
                importlib.import_module("fastvrrp._wheel"),
                importlib.import_module("fastvrrp._wire"))
    except ImportError as exc:  # pragma: no cover - a broken build must be loud
        raise AssertionError(f"extension not built ({exc}); run "
                             "python setup.py build_ext --inplace") from exc


@dataclass(frozen=True)
class Impl:
    name: str
    fp: ModuleType
    wheel: ModuleType
    codec: ModuleType


C_FP, C_WHEEL, C_CODEC = _compiled()
TWIN = Impl("twin", twin_fp, twin_wheel, twin_codec)
COMPILED = Impl("compiled", C_FP, C_WHEEL, C_CODEC)
IMPLS = [pytest.param(TWIN, id="twin"), pytest.param(COMPILED, id="compiled")]

S = 1_000_000_000
MS = 1_000_000
KINDS = len(TimerKind)
ADVER, DOWN = int(TimerKind.ADVER), int(TimerKind.MASTER_DOWN)


def ip(text: str) -> bytes:
    return ipaddress.ip_address(text).packed


MCAST4 = ip("224.0.0.18")
MCAST6 = ip("ff02::12")
ME, PEER, OTHER = ip("192.0.2.1"), ip("192.0.2.2"), ip("192.0.2.3")
VIP = ip("198.51.100.1")
VRIDS = (1, 2, 3, 4)  # bound to instances 0..3; VRID 5 is in the table but unbound


def advert4(codec, vrid: int, prio: int, interval: int = 100, src: bytes = PEER,
            version: int = 3, addresses: bytes = VIP, ttl: int = 255) -> bytes:
    msg = codec.encode(version, vrid, prio, interval, addresses, src=src, dst=MCAST4)
    return ipv4_datagram(msg, src, MCAST4, ttl=ttl)


@dataclass
class Rig:
    """One fast path over its wheel, one IPv4 receive group 0 with VRIDs 1..5."""

    impl: Impl
    wheel: object
    fp: object
    table: object
    encoders: list = field(default_factory=list)


def rig(impl: Impl, n: int = 4) -> Rig:
    wheel = impl.wheel.TimerWheel(0, 0)
    fp = impl.fp.FastPath(wheel, KINDS)
    fp.reserve(n)
    table = impl.codec.ReceiveTable()
    for vrid in (*VRIDS, 5):
        table[vrid] = impl.codec.Expect(3, addresses=VIP)
    fp.add_group(0, 4, table)
    for idx, vrid in enumerate(VRIDS[:n]):
        fp.bind(0, vrid, idx)
    encoders = [impl.codec.AdvertEncoder(3, vrid, 100, 100, VIP, src=ME, dst=MCAST4)
                for vrid in VRIDS[:n]]
    return Rig(impl, wheel, fp, table, encoders)


class Recorder:
    """Stands in for an InstanceFsm: records what sync_back reports."""

    def __init__(self) -> None:
        self.rearmed: list[tuple[TimerKind, int] | str] = []

    def fastpath_rearmed(self, kind: TimerKind, deadline: int) -> None:
        self.rearmed.append((kind, deadline))

    def fastpath_sent_takeover(self) -> None:
        self.rearmed.append("takeover")


# --- backup side -------------------------------------------------------------------

@pytest.mark.parametrize("impl", IMPLS)
def test_backup_advert_from_its_master_only_rearms_master_down(impl: Impl) -> None:
    r = rig(impl)
    r.wheel.schedule(1 * KINDS + DOWN, 4 * S)
    r.fp.set_backup(1, (PEER, 200, 100), 3_609_375_000)
    assert r.fp.feed_ipv4(0, advert4(impl.codec, 2, 200), S) is None
    assert r.wheel.deadline(1 * KINDS + DOWN) == S + 3_609_375_000
    assert r.fp.counters()["steady_rearms"] == 1
    assert r.fp.touched(1) and r.fp.mode(1) == MODE_BACKUP
    rec = Recorder()
    assert r.fp.sync_back(1, rec) is True
    assert rec.rearmed == [(TimerKind.MASTER_DOWN, S + 3_609_375_000)]
    assert not r.fp.touched(1) and r.fp.sync_back(1, rec) is False


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("change", ["priority", "interval", "src"])
def test_an_advert_that_differs_from_the_key_escalates_and_disarms(impl: Impl,
                                                                  change: str) -> None:
    r = rig(impl)
    r.wheel.schedule(1 * KINDS + DOWN, 4 * S)
    r.fp.set_backup(1, (PEER, 200, 100), 3 * S)
    kw = {"priority": dict(prio=150), "interval": dict(interval=50),
          "src": dict(src=OTHER)}[change]
    args = dict(vrid=2, prio=200) | kw
    datagram = advert4(impl.codec, **args)
    esc = r.fp.feed_ipv4(0, datagram, S)
    assert esc is not None
    idx, reason, adv = esc
    assert (idx, reason) == (1, Reason.OK)
    assert adv.fields() == impl.codec.parse_ipv4(datagram)[1].fields()
    assert r.wheel.deadline(1 * KINDS + DOWN) == 4 * S  # untouched: Python decides
    assert r.fp.mode(1) == MODE_NONE
    # Disarmed: even the master's own advert escalates until Python re-syncs.
    assert r.fp.feed_ipv4(0, advert4(impl.codec, 2, 200), 2 * S) is not None
    assert r.fp.counters()["escalated_adverts"] == 2


@pytest.mark.parametrize("impl", IMPLS)
def test_an_address_list_mismatch_is_accepted_but_always_escalated(impl: Impl) -> None:
    r = rig(impl)
    r.fp.set_backup(0, (PEER, 200, 100), 3 * S)
    esc = r.fp.feed_ipv4(0, advert4(impl.codec, 1, 200, addresses=ip("198.51.100.2")), S)
    assert esc is not None and esc[:2] == (0, Reason.ADDR_LIST_MISMATCH)
    assert r.fp.counters()["drops"][Reason.BAD_CHECKSUM] == 0


@pytest.mark.parametrize("impl", IMPLS)
def test_an_advert_for_a_vrid_with_no_instance_escalates_with_minus_one(impl: Impl) -> None:
    r = rig(impl)
    esc = r.fp.feed_ipv4(0, advert4(impl.codec, 5, 100), S)
    assert esc is not None and esc[:2] == (-1, Reason.OK)


@pytest.mark.parametrize("impl", IMPLS)
def test_drops_are_counted_per_reason_and_sampled_never_escalated(impl: Impl) -> None:
    r = rig(impl)
    r.fp.set_backup(0, (PEER, 200, 100), 3 * S)
    good = advert4(impl.codec, 1, 200)
    bad_sum = bytearray(good)
    bad_sum[-1] ^= 0xFF
    for _ in range(1000):
        assert r.fp.feed_ipv4(0, bytes(bad_sum), S) is None
    assert r.fp.feed_ipv4(0, advert4(impl.codec, 9, 200), S) is None  # not in the table
    assert r.fp.feed_ipv4(0, advert4(impl.codec, 1, 200, ttl=64), S) is None
    assert r.fp.feed_ipv4(0, b"\x45" + bytes(10), S) is None
    drops = r.fp.counters()["drops"]
    assert drops[Reason.BAD_CHECKSUM] == 1000
    assert drops[Reason.VRID_UNKNOWN] == drops[Reason.BAD_TTL] == drops[Reason.TOO_SHORT] == 1
    assert r.fp.counters()["escalated_adverts"] == 0
    assert r.fp.take_drop_samples() == [
        (Reason.TOO_SHORT, 0, -1, None, 1),
        (Reason.BAD_CHECKSUM, 0, 1, PEER, 1000),
        (Reason.VRID_UNKNOWN, 0, 9, PEER, 1),
        (Reason.BAD_TTL, 0, 1, PEER, 1),
    ]
    assert r.fp.take_drop_samples() == []
    assert r.fp.mode(0) == MODE_BACKUP  # drops never reach the FSM, so nothing changes


@pytest.mark.parametrize("impl", IMPLS)
def test_ipv6_adverts_use_the_ancillary_addresses(impl: Impl) -> None:
    r = rig(impl)
    table6 = impl.codec.ReceiveTable()
    table6[7] = impl.codec.Expect(3, family=6)
    r.fp.add_group(3, 6, table6)
    r.fp.bind(3, 7, 2)
    src6 = ip("fe80::2")
    r.fp.set_backup(2, (src6, 100, 100), 3 * S)
    msg = impl.codec.encode(3, 7, 100, 100, b"", family=6, src=src6, dst=MCAST6)
    assert r.fp.feed_ipv6(3, msg, src6, MCAST6, 255, S) is None
    assert r.wheel.deadline(2 * KINDS + DOWN) == 4 * S
    assert r.fp.feed_ipv6(3, msg, src6, MCAST6, 64, S) is None  # bad hop limit: dropped
    esc = r.fp.feed_ipv6(3, msg, ip("fe80::3"), MCAST6, 255, S)  # checksum covers src
    assert esc is None and r.fp.counters()["drops"][Reason.BAD_CHECKSUM] == 1
    with pytest.raises(ValueError):
        r.fp.feed_ipv6(3, msg, src6[:4], MCAST6, 255, S)
    with pytest.raises(KeyError):
        r.fp.feed_ipv6(9, msg, src6, MCAST6, 255, S)


@pytest.mark.parametrize("impl", IMPLS)
def test_a_batch_feed_stops_at_each_escalation(impl: Impl) -> None:
    r = rig(impl)
    r.fp.set_backup(0, (PEER, 200, 100), 3 * S)
    r.fp.set_backup(1, (PEER, 200, 100), 3 * S)
    batch = [advert4(impl.codec, 1, 200), advert4(impl.codec, 3, 90),
             advert4(impl.codec, 2, 200), b"junk", advert4(impl.codec, 1, 200)]
    pos, esc = r.fp.feed_ipv4_batch(0, batch, 0, S)
    assert pos == 1 and esc[:2] == (2, Reason.OK)
    assert r.fp.feed_ipv4_batch(0, batch, pos + 1, S) is None
    c = r.fp.counters()
    assert (c["steady_rearms"], c["escalated_adverts"]) == (3, 1)


# --- master side -------------------------------------------------------------------

@pytest.mark.parametrize("impl", IMPLS)
def test_a_steady_master_sends_its_encoded_advert_and_rearms_from_now(impl: Impl) -> None:
    r = rig(impl)
    enc = r.encoders[2]
    r.wheel.schedule(2 * KINDS + ADVER, S)
    r.fp.set_master(2, S, [(0, enc, MCAST4)])
    # A late expire (the loop woke 3 ms after the deadline): fsm._master_tx re-arms at
    # now + interval, and so does the fast path.
    assert r.fp.expire(S + 3 * MS) == []
    assert r.wheel.deadline(2 * KINDS + ADVER) == 2 * S + 3 * MS
    assert r.fp.take_outbox() == [(0, bytes(enc.packet()), MCAST4, 2)]
    assert r.fp.take_outbox() == []
    for t in range(2, 12):
        r.fp.expire(t * S + 3 * MS)
    assert len(r.fp.take_outbox()) == 10
    assert enc.encodings == 1  # the steady state never re-encodes
    c = r.fp.counters()
    assert (c["steady_sends"], c["packets_queued"], c["escalated_timers"]) == (11, 11, 0)
    rec = Recorder()
    r.fp.sync_back(2, rec)
    assert rec.rearmed == [(TimerKind.ADVER, 12 * S + 3 * MS)]


@pytest.mark.parametrize("impl", IMPLS)
def test_a_steady_master_on_a_phase_grid_keeps_its_phase_however_late_it_wakes(
        impl: Impl) -> None:
    r = rig(impl)
    interval, phase = 100 * MS, 30 * MS
    r.wheel.schedule(2 * KINDS + ADVER, phase)
    r.fp.set_master(2, interval, [(0, r.encoders[2], MCAST4)], phase)
    deadline = phase
    for late in (0, 3 * MS, 99 * MS, 1, 250 * MS, 40 * MS):
        now = deadline + late
        assert r.fp.expire(now) == []
        got = r.wheel.deadline(2 * KINDS + ADVER)
        assert got == next_adver(now, interval, phase)  # what the state machine arms
        # On the grid, never later than now + interval, never at or before now.
        assert got % interval == phase and now < got <= now + interval, (late, got)
        deadline = got
    assert len(r.fp.take_outbox()) == 6


@pytest.mark.parametrize("impl", IMPLS)
def test_a_priority_change_is_re_encoded_by_the_encoder_not_the_fast_path(impl: Impl) -> None:
    r = rig(impl)
    enc = r.encoders[0]
    r.wheel.schedule(ADVER, S)
    r.fp.set_master(0, S, [(0, enc, MCAST4), (1, b"raw", "peer")])
    r.fp.expire(S)
    enc.priority = 90
    r.fp.expire(2 * S)
    out = r.fp.take_outbox()
    assert [(g, p[2] if g == 0 else p, d) for g, p, d, _ in out] == [
        (0, 100, MCAST4), (1, b"raw", "peer"), (0, 90, MCAST4), (1, b"raw", "peer")]
    assert impl.codec.parse_ipv4(ipv4_datagram(out[2][1], ME, MCAST4))[0] == Reason.OK


@pytest.mark.parametrize("impl", IMPLS)
def test_every_other_due_timer_escalates_in_order_and_disarms(impl: Impl) -> None:
    r = rig(impl)
    r.fp.set_master(0, S, [(0, r.encoders[0], MCAST4)])
    r.fp.set_master(1, S, [(0, r.encoders[1], MCAST4)])
    r.wheel.schedule(0 * KINDS + ADVER, 2 * S)
    r.wheel.schedule(0 * KINDS + TimerKind.GARP_DELAY, 1 * S)
    r.wheel.schedule(1 * KINDS + ADVER, 2 * S)
    r.wheel.schedule(2 * KINDS + ADVER, 2 * S)  # instance 2 is not steady
    r.wheel.schedule(3 * KINDS + DOWN, 2 * S)
    assert r.fp.expire(3 * S) == [(0, TimerKind.GARP_DELAY), (0, ADVER), (2, ADVER),
                                  (3, DOWN)]
    # Instance 0's GARP_DELAY escalated first, so its ADVER followed it to Python.
    assert [p[3] for p in r.fp.take_outbox()] == [1]
    assert r.fp.mode(0) == MODE_NONE and r.fp.mode(1) == MODE_MASTER
    assert r.wheel.deadline(0 * KINDS + ADVER) is None
    assert r.fp.counters()["escalated_timers"] == 4


@pytest.mark.parametrize("impl", IMPLS)
def test_many_timers_due_at_once_all_handled(impl: Impl) -> None:
    n = 1000
    r = rig(impl, n=4)
    r.fp.reserve(n)
    packet = b"\x31\x01\x64\x00\x00\x64\x00\x00"
    for idx in range(n):
        r.fp.set_master(idx, S, [(0, packet, MCAST4)])
        r.wheel.schedule(idx * KINDS + ADVER, S)
        r.wheel.schedule(idx * KINDS + TimerKind.GARP_REFRESH, S)
    esc = r.fp.expire(S)
    assert esc == [(idx, TimerKind.GARP_REFRESH) for idx in range(n)]
    assert len(r.fp.take_outbox()) == n
    assert r.wheel.next_deadline() == 2 * S


# --- keeping the FSM in step -------------------------------------------------------

@pytest.mark.parametrize("impl", IMPLS)
def test_unreported_rearms_must_be_synced_back_before_the_entry_changes(impl: Impl) -> None:
    r = rig(impl)
    r.wheel.schedule(ADVER, S)
    r.fp.set_master(0, S, [(0, r.encoders[0], MCAST4)])
    r.fp.expire(S)
    for change in (lambda: r.fp.clear(0), lambda: r.fp.set_backup(0, (PEER, 1, 100), S),
                   lambda: r.fp.set_master(0, S, [])):
        with pytest.raises(RuntimeError):
            change()
    r.fp.sync_back(0, Recorder())
    r.fp.clear(0)
    assert r.fp.mode(0) == MODE_NONE


@pytest.mark.parametrize("impl", IMPLS)
def test_bad_arguments_are_refused(impl: Impl) -> None:
    r = rig(impl)
    with pytest.raises(IndexError):
        r.fp.bind(0, 9, 4)
    with pytest.raises(KeyError):
        r.fp.bind(1, 9, 0)
    with pytest.raises(KeyError):
        r.fp.feed_ipv4(1, advert4(impl.codec, 1, 1), 0)
    with pytest.raises(ValueError):
        r.fp.set_backup(0, (b"\1\2\3", 1, 100), S)
    with pytest.raises(ValueError):
        r.fp.set_master(0, 0, [])
    with pytest.raises(TypeError):
        r.fp.set_master(0, S, [(0, 12345, MCAST4)])
    for phase in (-2, S, S + 1):
        with pytest.raises(ValueError):
            r.fp.set_master(0, S, [], phase)
    with pytest.raises(ValueError):
        impl.fp.FastPath(r.wheel, 1)


def test_the_compiled_fast_path_needs_the_compiled_wheel_and_encoder() -> None:
    with pytest.raises(TypeError):
        C_FP.FastPath(twin_wheel.TimerWheel(0, 0), KINDS)
    fp = C_FP.FastPath(C_WHEEL.TimerWheel(0, 0), KINDS)
    fp.reserve(1)
    with pytest.raises(TypeError):
        fp.set_master(0, S, [(0, twin_codec.AdvertEncoder(3, 1, 1, 100, src=ME, dst=MCAST4),
                              MCAST4)])


def fsm(prio: int = 100, **kw) -> InstanceFsm:
    return InstanceFsm(InstanceParams(name="VI_1", vrid=1, primary=ME, version=3,
                                      priority=prio, **kw))


@pytest.mark.parametrize("impl", IMPLS)
def test_sync_from_fsm_follows_the_machine(impl: Impl) -> None:
    r = rig(impl)
    enc = r.encoders[0]
    m = fsm(150)
    m.start(0)
    assert sync_from_fsm(r.fp, 0, m, [(0, enc, MCAST4)]) == MODE_NONE  # no master heard
    adv = impl.codec.parse_ipv4(advert4(impl.codec, 1, 200))[1]
    m.advert(S, adv)
    assert sync_from_fsm(r.fp, 0, m, [(0, enc, MCAST4)]) == MODE_BACKUP
    r.wheel.schedule(DOWN, m.timers[TimerKind.MASTER_DOWN])
    assert r.fp.feed_ipv4(0, advert4(impl.codec, 1, 200), 2 * S) is None
    r.fp.sync_back(0, m)
    assert m.timers[TimerKind.MASTER_DOWN] == 2 * S + m.master_down_interval
    m.timer(m.timers[TimerKind.MASTER_DOWN], TimerKind.MASTER_DOWN)
    assert m.state == State.MASTER
    m.set_priority(7 * S, 120)
    assert sync_from_fsm(r.fp, 0, m, [(0, enc, MCAST4)]) == MODE_MASTER
    assert enc.priority == 120  # the steady advert carries the effective priority


# --- a master stopping (priority 0) -------------------------------------------------

@pytest.mark.parametrize("impl", IMPLS)
def test_a_priority_0_advert_rearms_skew_time_in_c_as_the_fsm_would(impl: Impl) -> None:
    r = rig(impl)
    enc = r.encoders[0]
    in_c, in_python = fsm(150), fsm(150)
    heard = impl.codec.parse_ipv4(advert4(impl.codec, 1, 200))[1]
    for m in (in_c, in_python):
        m.start(0)
        m.advert(S, heard)
    assert sync_from_fsm(r.fp, 0, in_c, [(0, enc, MCAST4)]) == MODE_BACKUP
    r.wheel.schedule(DOWN, in_c.timers[TimerKind.MASTER_DOWN])
    # From any source, as keepalived's vrrp_state_backup: no escalation, no Python.
    stop = advert4(impl.codec, 1, 0, src=OTHER)
    assert r.fp.feed_ipv4(0, stop, 2 * S) is None
    assert r.fp.mode(0) == MODE_BACKUP
    in_python.advert(2 * S, impl.codec.parse_ipv4(stop)[1])
    r.fp.sync_back(0, in_c)
    assert in_c.timers == in_python.timers
    assert in_c.timers[TimerKind.MASTER_DOWN] == 2 * S + in_c.skew_time
    assert (in_c.counters.advert, in_python.counters.advert) == (1, 2)
    # Without the skew (set_backup's default) it escalates, as before.
    r.fp.set_backup(0, in_c.backup_steady_key(), in_c.master_down_interval)
    assert r.fp.feed_ipv4(0, stop, 3 * S) is not None


# --- takeover ----------------------------------------------------------------------

@pytest.mark.parametrize("impl", IMPLS)
def test_a_takeover_advert_leaves_with_the_master_down_expiry_and_the_fsm_learns_it(
        impl: Impl) -> None:
    r = rig(impl)
    enc = r.encoders[1]
    m = fsm(150)
    m.start(0)
    m.advert(S, impl.codec.parse_ipv4(advert4(impl.codec, 1, 200))[1])
    assert sync_from_fsm(r.fp, 1, m, [(0, enc, MCAST4)]) == MODE_BACKUP
    assert m.takeover_priority() == 150 and enc.priority == 150
    down = m.timers[TimerKind.MASTER_DOWN]
    r.wheel.schedule(KINDS + DOWN, down)
    assert r.fp.expire(down - 1) == [] and r.fp.take_outbox() == []
    # The expiry escalates as before, but the advert is already in the outbox.
    assert r.fp.expire(down) == [(1, DOWN)]
    assert r.fp.take_outbox() == [(0, bytes(enc.packet()), MCAST4, 1)]
    assert bytes(enc.packet())[2] == 150
    assert r.fp.counters()["takeover_sends"] == 1
    assert r.fp.mode(1) == MODE_NONE and r.fp.touched(1) and r.fp.took_over(1)
    assert not r.fp.took_over(0)
    r.fp.sync_back(1, m)
    assert not r.fp.took_over(1)
    out = m.timer(down, TimerKind.MASTER_DOWN)
    assert m.state == State.MASTER
    # Everything of a takeover except the advert the fast path already sent.
    assert not any(type(a).__name__ == "SendAdvert" for a in out)
    assert [type(a).__name__ for a in out][:2] == ["AddVips", "SendGarp"]
    assert sync_from_fsm(r.fp, 1, m, [(0, enc, MCAST4)]) == MODE_MASTER


@pytest.mark.parametrize("impl", IMPLS)
def test_no_takeover_send_where_the_fsm_does_not_promise_one(impl: Impl) -> None:
    r = rig(impl)
    enc = r.encoders[0]
    m = fsm(150)
    r.wheel.schedule(DOWN, S)
    assert sync_from_fsm(r.fp, 0, m, [(0, enc, MCAST4)]) == MODE_NONE  # INIT: none
    m.start(0)
    m.set_fault(0, True, "eth0")  # FAULT: no takeover either
    assert m.takeover_priority() is None
    assert sync_from_fsm(r.fp, 0, m, [(0, enc, MCAST4)]) == MODE_NONE
    assert r.fp.expire(S) == [(0, DOWN)] and r.fp.take_outbox() == []
    assert r.fp.counters()["takeover_sends"] == 0
    # An escalated advert disarms the takeover until the FSM re-syncs the entry.
    m.set_fault(S, False, "eth0")
    assert sync_from_fsm(r.fp, 0, m, [(0, enc, MCAST4)]) == MODE_NONE  # heard no master
    r.wheel.schedule(DOWN, 3 * S)
    assert r.fp.feed_ipv4(0, advert4(impl.codec, 1, 200), 2 * S) is not None
    assert r.fp.expire(3 * S) == [(0, DOWN)] and r.fp.take_outbox() == []
    with pytest.raises(ValueError):
        r.wheel.schedule(ADVER, 4 * S)
        r.fp.set_master(0, S, [(0, enc, MCAST4)])
        r.fp.set_takeover(0, [(0, enc, MCAST4)])


# --- the two implementations agree -------------------------------------------------

# Few distinct keys, so that adverts often match a backup's key (the steady path).
KEYS = ((PEER, 200, 100), (OTHER, 100, 50), (PEER, 0, 100))
HOW = st.sampled_from(["ok"] * 4 + ["checksum", "ttl", "addresses", "v2"])

op = st.one_of(
    st.tuples(st.just("feed"), st.sampled_from((*VRIDS, 5, 6)), st.sampled_from(KEYS), HOW),
    st.tuples(st.just("master"), st.integers(0, 3), st.sampled_from((S, 3 * S // 2)),
              st.sampled_from((100, 200)), st.integers(0, 2 * S),
              st.one_of(st.just(-1), st.integers(0, S - 1))),
    st.tuples(st.just("backup"), st.integers(0, 3), st.sampled_from(KEYS),
              st.integers(0, 4 * S), st.sampled_from((0, 600 * MS))),
    st.tuples(st.just("clear"), st.integers(0, 3)),
    st.tuples(st.just("takeover"), st.integers(0, 3), st.sampled_from((100, 254))),
    st.tuples(st.just("arm"), st.integers(0, 3), st.sampled_from([ADVER, DOWN, 2]),
              st.integers(0, 5 * S)),
    st.tuples(st.just("cancel"), st.integers(0, 3), st.sampled_from([ADVER, DOWN, 2])),
    st.tuples(st.just("advance"), st.integers(0, 4 * S)),
)


def _datagram(codec, vrid, key, how) -> bytes:
    src, prio, interval = key
    if how == "v2":
        return advert4(codec, vrid, prio, 1, src=src, version=2)
    d = advert4(codec, vrid, prio, interval, src=src,
                addresses=ip("198.51.100.9") if how == "addresses" else VIP,
                ttl=1 if how == "ttl" else 255)
    if how == "checksum":
        d = d[:-1] + bytes([d[-1] ^ 1])
    return d


def _step(r: Rig, now: int, operation: tuple, rec: list[Recorder]) -> object:
    kind, *args = operation
    if kind == "feed":
        esc = r.fp.feed_ipv4(0, _datagram(r.impl.codec, *args), now)
        return None if esc is None else (esc[0], int(esc[1]), esc[2].fields())
    if kind == "advance":
        # Drop samples are drained now and then (the daemon's periodic log), not per packet.
        return r.fp.expire(now), r.fp.take_drop_samples()
    idx = args[0]
    if kind in ("master", "backup", "clear"):
        # As the daemon does: report re-arms, let the FSM arm its timer, then re-sync.
        r.fp.sync_back(idx, rec[idx])
        if kind == "master":
            r.wheel.schedule(idx * KINDS + ADVER, now + args[3])
            r.encoders[idx].priority = args[2]
            r.fp.set_master(idx, args[1], [(0, r.encoders[idx], MCAST4)], args[4])
        elif kind == "backup":
            r.wheel.schedule(idx * KINDS + DOWN, now + args[2])
            r.fp.set_backup(idx, args[1], 3 * S + args[1][1] * MS, args[3])
        else:
            r.fp.clear(idx)
    elif kind == "takeover":
        r.fp.sync_back(idx, rec[idx])
        r.encoders[idx].priority = args[1]
        try:
            r.fp.set_takeover(idx, [(0, r.encoders[idx], MCAST4)])
        except ValueError:
            return "master"  # a steady master has no takeover (checked alike in both)
    elif kind == "arm":
        r.wheel.schedule(idx * KINDS + args[1], now + args[2])
    else:
        r.wheel.cancel(idx * KINDS + args[1])
    return None


def _observe(r: Rig) -> tuple:
    return (r.fp.take_outbox(), r.fp.counters(),
            [r.wheel.deadline(t) for t in range(4 * KINDS)],
            [(r.fp.mode(i), r.fp.touched(i)) for i in range(4)])


@settings(max_examples=150, deadline=None)
@given(ops=st.lists(op, max_size=40))
def test_compiled_and_twin_agree_step_by_step(ops: list[tuple]) -> None:
    rigs = [rig(TWIN), rig(COMPILED)]
    recs = [[Recorder() for _ in range(4)] for _ in rigs]
    now = 0
    for operation in ops:
        if operation[0] == "advance":
            now += operation[1]
        results = [_step(r, now, operation, rec) for r, rec in zip(rigs, recs)]
        assert results[0] == results[1], operation
        assert _observe(rigs[0]) == _observe(rigs[1]), operation
    assert [x.rearmed for x in recs[0]] == [x.rearmed for x in recs[1]]
    assert rigs[0].fp.take_drop_samples() == rigs[1].fp.take_drop_samples()
