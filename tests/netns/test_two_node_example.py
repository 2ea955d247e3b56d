"""The two-node example of issue 3 (examples/two-node-*.conf), run as written except
for addresses and interface names mapped into the test network: it uses the never-
merged vrrp_unicast_bind/peer spelling, PASS authentication, and moves its VIP only
through its notify script. A client in a third namespace keeps reaching the VIP
across a failover."""

from __future__ import annotations

import signal
import threading
import time
from pathlib import Path

import pytest

from daemonlab import Daemon, addresses, wait_for
from fastvrrp import netlab
from fastvrrp.demo import ping_gaps

pytestmark = pytest.mark.netns
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
MAPPING = {
    "192.168.121.51": "192.0.2.51",
    "192.168.121.52": "192.0.2.52",
    "192.168.121.100": "192.0.2.100",
}


@pytest.fixture(scope="module", autouse=True)
def _needs_netns() -> None:
    reason = netlab.netns_usable()
    if reason:
        pytest.skip(reason)


def mapped(text: str, script: Path) -> str:
    for old, new in MAPPING.items():
        text = text.replace(old, new)
    return text.replace("/etc/keepalived/notify.sh", str(script)).replace("DEV=eth1", "DEV=eth0")


def test_two_node_example_moves_the_vip_by_its_notify_script(tmp_path):
    script = tmp_path / "notify.sh"
    script.write_text(mapped((EXAMPLES / "notify.sh").read_text(), script))
    script.chmod(0o755)
    with netlab.Lab() as lab:
        r1 = lab.node("r1", ["192.0.2.51/24"])
        r2 = lab.node("r2", ["192.0.2.52/24"])
        # No virtual_ipaddress means no GARP from either daemon (keepalived's too): the
        # client finds the VIP's new owner by ARP once its entry goes stale, which these
        # neighbour timers make quick.
        client = lab.node("client", ["192.0.2.10/24"])
        client.set_sysctls({"net/ipv4/neigh/eth0/base_reachable_time_ms": 500,
                            "net/ipv4/neigh/eth0/delay_first_probe_time": 1})
        master = Daemon(r1, tmp_path, "master",
                        mapped((EXAMPLES / "two-node-master.conf").read_text(), script)).start()
        backup = Daemon(r2, tmp_path, "backup",
                        mapped((EXAMPLES / "two-node-backup.conf").read_text(), script)).start()
        master.wait_state("VI_1", "MASTER", 8)
        backup.wait_state("VI_1", "BACKUP", 8)
        wait_for(lambda: "192.0.2.100" in addresses(r1), 5, "the notify script's VIP on r1")
        assert "192.0.2.100" not in addresses(r2)
        assert "vrrp_unicast_bind" in master.log()  # the warning that keepalived ignores it

        result = {}
        prober = threading.Thread(target=lambda: result.update(
            samples=client.call(ping_gaps, "192.0.2.100", 12.0, 0.01, timeout=60)))
        prober.start()
        time.sleep(1.0)
        failed_at = time.monotonic()
        lab.switch.ip("link", "set", r1.link("eth0").port, "down")  # the master's host dies
        master.stop(signal.SIGKILL)
        backup.wait_state("VI_1", "MASTER", 6)
        wait_for(lambda: "192.0.2.100" in addresses(r2), 3, "the notify script's VIP on r2")
        prober.join()
        samples = result["samples"]
        before = [r for s, r in samples if r and s < failed_at]
        # Requests sent after the failure (an answer in flight at that instant does not count).
        after = [r for s, r in samples if r and s > failed_at + 0.01]
        assert before, "the client reached the VIP before the failover"
        assert after, "the client never reached the VIP after the failover"
        # Master_Down for priority 50 at 1 s: 3 + (256-50)/256 = 3.8 s; then ARP.
        assert after[0] - failed_at < 3.8 + 3.0, after[0] - failed_at
        # Every request after the first answer is answered: the VIP stays reachable.
        late = [(s, r) for s, r in samples if s > after[0] + 0.05]
        assert late and all(r for _s, r in late[:-5])
