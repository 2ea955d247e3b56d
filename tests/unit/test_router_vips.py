"""Which instances' VIPs a batch of actions leaves installed (daemon.router): per
instance the last AddVips/RemoveVips wins, whatever order the flush phases run in."""

from __future__ import annotations

from types import SimpleNamespace

from fastvrrp.daemon.router import net_vip_changes
from fastvrrp.proto.actions import AddVips, RemoveVips


class Rt:
    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return self.name


def test_a_takeover_overtaken_in_the_same_batch_ends_with_its_vips_removed() -> None:
    # A backup's Master_Down expired (takeover, AddVips) and, before the batch was
    # flushed, a better master's advert sent it back (RemoveVips): removing first and
    # adding after left the VIPs on a BACKUP for good (seen at N=300).
    x, y, z = Rt("x"), Rt("y"), Rt("z")
    removes, adds = net_vip_changes([(x, AddVips()), (y, AddVips()), (x, RemoveVips()),
                                     (z, RemoveVips()), (z, AddVips())])
    assert removes == [x]
    assert adds == [y, z]


def test_each_instance_appears_once() -> None:
    x = Rt("x")
    assert net_vip_changes([(x, AddVips()), (x, AddVips())]) == ([], [x])
    assert net_vip_changes([(x, RemoveVips()), (x, RemoveVips())]) == ([x], [])
    assert net_vip_changes([]) == ([], [])


# --- the order of a mass takeover's VIPs (Router._install_takeover_vips) ------------

class FakeClock:
    def __init__(self) -> None:
        self.t = 0

    def __call__(self) -> int:
        return self.t


def takeover_router(monkeypatch, clock: FakeClock, slice_ns: int, arrivals: list[int]):
    """A Router with no network: _change_vips records each slice (costing slice_ns on
    the clock), _expire_and_send stands for C's pump and lets `arrivals[k]` more
    instances take over at its k-th call (their adverts sent, their VIPs queued);
    arrivals[0] are queued before the call."""
    from fastvrrp.daemon import router as router_mod

    monkeypatch.setattr(router_mod, "now_ns", clock)
    r = router_mod.Router.__new__(router_mod.Router)
    r._vip_queue, r._garp_queue, r._garp_repeats, r._due_later = [], [], [], []
    r._stopping, r._clock = False, 0
    log: list[tuple] = []
    made = iter(range(10**6))

    def rt():
        return SimpleNamespace(name=f"vi{next(made)}", vips_installed=False, garp_ips=(),
                               fsm=SimpleNamespace(params=SimpleNamespace(garp_master_repeat=0)))

    def change_vips(rts, add):
        for x in rts:
            x.vips_installed = add
        log.append(("vips", [x.name for x in rts]))
        clock.t += slice_ns

    def expire_and_send(now):
        k = 1 + sum(1 for e in log if e[0] == "pump")
        new = [rt() for _ in range(arrivals[k] if k < len(arrivals) else 0)]
        log.append(("pump", [x.name for x in new]))
        r._vip_queue.extend(new)
        return []

    r._change_vips, r._expire_and_send = change_vips, expire_and_send
    r.garp = SimpleNamespace(send_bursts=lambda bursts, repeat: 0)
    r._vip_queue.extend(rt() for _ in range(arrivals[0]))
    return r, log


def test_takeover_vips_queued_before_newer_takeovers_adverts_go_first(monkeypatch) -> None:
    # 100 instances took over; before C is asked for more (newer takeovers' adverts),
    # all 100 VIPs are in, not just one slice: with a slice per pump, a stream of
    # takeovers kept pushing the older VIPs back (30-44 ms late at N=1000, 0.1 s).
    clock = FakeClock()
    r, log = takeover_router(monkeypatch, clock, slice_ns=100_000, arrivals=[100, 50, 50])
    r._install_takeover_vips()
    first_pump = next(i for i, e in enumerate(log) if e[0] == "pump")
    before = [n for kind, names in log[:first_pump] if kind == "vips" for n in names]
    assert before == [f"vi{i}" for i in range(100)]
    # Every VIP in arrival order, each slice at most PUMP_EVERY.
    from fastvrrp.daemon.router import PUMP_EVERY
    slices = [names for kind, names in log if kind == "vips"]
    assert [n for s in slices for n in s] == [f"vi{i}" for i in range(200)]
    assert max(len(s) for s in slices) <= PUMP_EVERY


def test_takeover_vips_hold_c_sends_back_no_longer_than_the_budget(monkeypatch) -> None:
    # A thousand queued at once: C's sends (steady adverts of other masters) are looked
    # at again once TAKEOVER_VIP_BUDGET_NS has been spent on VIPs, not after all 1000.
    from fastvrrp.daemon.router import PUMP_EVERY, TAKEOVER_VIP_BUDGET_NS

    clock = FakeClock()
    slice_ns = TAKEOVER_VIP_BUDGET_NS // 4
    r, log = takeover_router(monkeypatch, clock, slice_ns=slice_ns, arrivals=[1000])
    r._install_takeover_vips()
    first_pump = next(i for i, e in enumerate(log) if e[0] == "pump")
    assert [e[0] for e in log[:first_pump]] == ["vips"] * 4
    runs, run = [], 0
    for kind, _names in log:
        if kind == "vips":
            run += 1
        elif run:
            runs.append(run)
            run = 0
    assert max(runs) == 4 and sum(runs) == -(-1000 // PUMP_EVERY)
