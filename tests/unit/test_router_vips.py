"""Which instances' VIPs a batch of actions leaves installed (daemon.router): per
instance the last AddVips/RemoveVips wins, whatever order the flush phases run in."""

from __future__ import annotations

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
