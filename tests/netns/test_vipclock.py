"""tests/vipclock.py (the benches' kernel clock for VIP installs) against a monitor
that is kept from running while the addresses go in."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

import vipclock
from fastvrrp import netlab

pytestmark = pytest.mark.netns

# A child that adds addresses when told to (a line on stdin) and prints the time
# before and after: in one batch (many requests and one ack per write, as fastvrrp
# writes) or one write per address (a request and its ack, as keepalived writes).
ADDER = """
import sys, time
from ipaddress import ip_interface
from fastvrrp.net.vips import VipManager, VipSpec
n, how = int(sys.argv[1]), sys.argv[2]
specs = [VipSpec(ip_interface(f"198.51.100.{i + 1}/32"), ifname="eth0") for i in range(n)]
vm = VipManager()
sys.stdin.readline()
t0 = time.time_ns()
for batch in ([specs] if how == "batch" else [[s] for s in specs]):
    assert not vm.add(batch).failed
print(t0, time.time_ns(), flush=True)
"""


@pytest.fixture(scope="module", autouse=True)
def _needs_netns_and_tracefs() -> None:
    reason = netlab.netns_usable() or vipclock.available()
    if reason:
        pytest.skip(reason)


@pytest.fixture
def lab() -> Iterator[netlab.Lab]:
    with netlab.Lab() as lab:
        yield lab


@pytest.mark.parametrize("how, monitors", [("batch", 1), ("per-request", 2)])
def test_kernel_times_are_the_adds_not_the_monitors_late_prints(lab, tmp_path, how, monitors):
    node = lab.node("a", ["192.0.2.1/24"])
    n = 100 if how == "batch" else 40  # within the stopped monitors' receive buffers
    mons = [vipclock.AddrMonitor(node, tmp_path / f"mon{i}.txt") for i in range(monitors)]
    adder = node.popen([sys.executable, "-c", ADDER, str(n), how],
                       stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 10
    listeners = 0
    while time.monotonic() < deadline:
        listeners = vipclock.address_listeners(node.run(["cat", "/proc/net/netlink"]).stdout)
        if listeners >= monitors:
            break
        time.sleep(0.05)
    assert listeners == monitors
    clock = vipclock.KernelAddrClock()
    try:
        for mon in mons:
            mon.proc.send_signal(signal.SIGSTOP)  # the monitors print nothing until SIGCONT
        clock.arm(adder.pid, listeners)
        adder.stdin.write("go\n")
        adder.stdin.flush()
        t0, t1 = (int(x) for x in adder.stdout.readline().split())
        time.sleep(0.3)
        for mon in mons:
            mon.proc.send_signal(signal.SIGCONT)
        time.sleep(0.5)
        monitored = mons[0].adds_since(0, t0)
        installed, why = clock.stamped(monitored)
    finally:
        clock.close()
        for mon in mons:
            mon.close()
    assert why is None
    assert [a for _if, a in installed] == [f"198.51.100.{i + 1}" for i in range(n)]
    assert all(t0 <= k <= t1 for k in installed.values())
    # The monitor printed them only after SIGCONT, >= 300 ms after the last add.
    assert min(monitored[a] - installed[a] for a in installed) > 250_000_000
