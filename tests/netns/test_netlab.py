"""fastvrrp.netlab builds working namespace LANs and always cleans up after itself."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from fastvrrp import netlab
from fastvrrp.netlab import Lab, LabError

pytestmark = pytest.mark.netns


@pytest.fixture(scope="module", autouse=True)
def _needs_netns() -> None:
    reason = netlab.netns_usable()
    if reason:
        pytest.skip(reason)


@pytest.fixture
def lab() -> Iterator[Lab]:
    with Lab() as lab:
        yield lab


def namespaces_with(prefix: str) -> list[str]:
    return [ns for ns in netlab._netns_list() if ns.startswith(prefix + "-")]


def ping(node: netlab.Node, target: str) -> None:
    node.run(["ping", "-c", "2", "-i", "0.1", "-W", "2", target])


def test_two_nodes_ping_over_ipv4_and_ipv6(lab: Lab) -> None:
    a = lab.node("a", ["192.0.2.1/24", "2001:db8::1/64"])
    b = lab.node("b", ["192.0.2.2/24", "2001:db8::2/64"])
    ping(a, "192.0.2.2")
    ping(b, "192.0.2.1")
    ping(a, "2001:db8::2")  # usable at once: DAD is off
    ping(b, f"{a.link().link_local}%eth0")


def test_macs_and_link_locals_are_deterministic(lab: Lab) -> None:
    a = lab.node("a", ["192.0.2.1/24"])
    a.add_link("eth1", segment="lan2")
    assert a.link("eth0").mac == "02:00:00:00:01:01"
    assert a.link("eth1").mac == "02:00:00:00:01:02"
    shown = a.ip("-6", "addr", "show", "dev", "eth0").stdout
    assert f"{a.link().link_local}/64" == "fe80::ff:fe00:101/64"
    assert "fe80::ff:fe00:101/64" in shown
    assert "tentative" not in shown


@pytest.mark.skipif(not os.path.exists(netlab.BRIDGE_NF_SYSCTL), reason="br_netfilter is not loaded")
def test_the_switch_does_not_run_bridged_frames_through_netfilter(lab: Lab) -> None:
    # br_netfilter, when the host has it loaded, is on in every new namespace.
    lab.node("a", ["192.0.2.1/24"])
    out = lab.switch.run(["sysctl", "-n", "net.bridge.bridge-nf-call-iptables",
                          "net.bridge.bridge-nf-call-ip6tables", "net.bridge.bridge-nf-call-arptables"])
    assert out.stdout.split() == ["0", "0", "0"]


def test_extra_links_on_separate_segments(lab: Lab) -> None:
    r = lab.node("r", ["192.0.2.1/24"])
    r.add_link("eth1", segment="s1", addrs=["198.51.100.1/24"])
    r.add_link("eth2", segment="s2", addrs=["203.0.113.1/24"])
    r.add_link("eth3", segment="s3", addrs=["2001:db8:3::1/64"])
    p1 = lab.node("p1", ["198.51.100.2/24"], segment="s1")
    p2 = lab.node("p2", ["198.51.100.3/24"], segment="s2")  # same subnet, other bridge
    p3 = lab.node("p3", ["2001:db8:3::2/64"], segment="s3")
    ping(p1, "198.51.100.1")
    ping(p3, "2001:db8:3::1")
    isolated = p2.run(["ping", "-c", "1", "-W", "1", "198.51.100.2"], check=False)
    assert isolated.returncode != 0
    assert [link.segment for link in r.links.values()] == ["lan", "s1", "s2", "s3"]


def test_capture_sees_the_pings(lab: Lab, tmp_path: Path) -> None:
    from scapy.all import rdpcap
    from scapy.layers.inet import ICMP
    from scapy.layers.inet6 import ICMPv6EchoReply, ICMPv6EchoRequest

    a = lab.node("a", ["192.0.2.1/24", "2001:db8::1/64"])
    lab.node("b", ["192.0.2.2/24", "2001:db8::2/64"])
    pcap = tmp_path / "pings.pcap"
    cap = lab.capture(lab.switch, "br-lan", "icmp or icmp6", pcap)
    ping(a, "192.0.2.2")
    ping(a, "2001:db8::2")
    assert cap.stop() is not None
    packets = rdpcap(str(pcap))
    echo4 = [p[ICMP].type for p in packets if ICMP in p]
    assert echo4.count(8) == 2 and echo4.count(0) == 2
    assert sum(ICMPv6EchoRequest in p for p in packets) == 2
    assert sum(ICMPv6EchoReply in p for p in packets) == 2
    # Nanosecond pcap magic when tcpdump supports it (4.99 does).
    assert pcap.read_bytes()[:4] in (b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\x3c\x4d")


def test_a_capture_out_of_immediate_mode_keeps_its_last_packets(lab: Lab, tmp_path: Path) -> None:
    """Out of immediate mode the kernel hands packets to tcpdump in blocks; the ones in
    the block still filling when stop() is called must reach the file all the same."""
    from scapy.all import rdpcap

    a = lab.node("a", ["192.0.2.1/24"])
    lab.node("b", ["192.0.2.2/24"])
    caps = [lab.capture(lab.switch, "br-lan", "icmp", tmp_path / f"{i}.pcap", immediate=False)
            for i in range(2)]
    ping(a, "192.0.2.2")
    netlab.stop_captures(caps)
    for i in range(2):
        assert len(rdpcap(str(tmp_path / f"{i}.pcap"))) == 4
    # The same with the wait left out (SIGINT at once) loses them: the test can fail.
    cap = lab.capture(lab.switch, "br-lan", "icmp", tmp_path / "x.pcap", immediate=False)
    ping(a, "192.0.2.2")
    cap.immediate = True  # stop() no longer waits for the block
    cap.stop()
    assert len(rdpcap(str(tmp_path / "x.pcap"))) < 4

@pytest.mark.parametrize("hub", [True, False])
def test_observer_sees_unicast_only_on_a_hub(hub: bool, tmp_path: Path) -> None:
    with Lab(hub=hub) as lab:
        a = lab.node("a", ["192.0.2.1/24"])
        lab.node("b", ["192.0.2.2/24"])
        obs = lab.node("obs")
        cap = lab.capture(obs, "eth0", "icmp", tmp_path / "obs.pcap")
        ping(a, "192.0.2.2")
        # A learning bridge forwards known unicast to its port only.
        assert cap.stop() == (4 if hub else 0), cap.stderr


def test_close_removes_everything_and_ends_processes(tmp_path: Path) -> None:
    lab = Lab().open()
    a = lab.node("a", ["192.0.2.1/24"])
    sleeper = a.popen(["sleep", "300"])
    cap = lab.capture(a, "eth0", "icmp", tmp_path / "x.pcap")
    assert len(namespaces_with(lab.prefix)) == 2  # switch + a
    lab.close()
    assert namespaces_with(lab.prefix) == []
    assert sleeper.returncode == -signal.SIGTERM
    assert cap.proc.returncode is not None
    lab.close()  # idempotent


def test_cleanup_when_the_body_raises() -> None:
    prefix = ""
    procs: list[subprocess.Popen[bytes]] = []
    with pytest.raises(ZeroDivisionError):
        with Lab() as lab:
            prefix = lab.prefix
            node = lab.node("a", ["192.0.2.1/24"])
            procs.append(node.popen(["sleep", "300"]))
            1 / 0
    assert prefix and namespaces_with(prefix) == []
    assert procs[0].poll() is not None


def test_process_ignoring_sigterm_is_killed_with_its_children(lab: Lab) -> None:
    node = lab.node("a")
    # The shell ignores TERM; its child sleep must die too (process-group SIGKILL).
    proc = node.popen(["sh", "-c", "trap '' TERM; sleep 300 & echo $!; wait"],
                      stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    child = int(proc.stdout.readline())
    started = time.monotonic()
    netlab._stop_process(proc, timeout=0.3)
    assert proc.returncode == -signal.SIGKILL
    assert time.monotonic() - started < 3
    netlab.wait_until(lambda: not Path(f"/proc/{child}").exists() or netlab._is_zombie(child),
                      2, what="child sleep gone")


def test_sweep_removes_only_its_prefix() -> None:
    leftover = Lab().open()
    leftover.node("a")
    neighbour = Lab(prefix=leftover.prefix + "x").open()  # shares the start of the name
    try:
        removed = netlab.sweep(leftover.prefix)
        assert sorted(removed) == sorted([f"{leftover.prefix}-sw", f"{leftover.prefix}-a"])
        assert namespaces_with(leftover.prefix) == []
        assert namespaces_with(neighbour.prefix) == [f"{neighbour.prefix}-sw"]
    finally:
        neighbour.close()
        leftover.close()
    with pytest.raises(ValueError):
        netlab.sweep("")


def test_addresses_outside_documentation_ranges_are_refused(lab: Lab) -> None:
    with pytest.raises(ValueError, match="documentation"):
        lab.node("a", ["10.0.0.1/24"])
    with pytest.raises(ValueError, match="documentation"):
        lab.node("b", ["2001:4860::1/64"])
    assert "a" not in lab.nodes and "b" not in lab.nodes


def test_call_runs_python_inside_the_namespace(lab: Lab) -> None:
    node = lab.node("a", ["192.0.2.1/24"])
    names = {name for _, name in node.call(socket.if_nameindex)}
    assert names == {"lo", "eth0"}
    with pytest.raises(KeyError):
        node.call(dict().__getitem__, "missing")
    out = node.python("import socket; print(sorted(n for _, n in socket.if_nameindex()))")
    assert out.stdout.strip() == "['eth0', 'lo']"


def test_failed_command_reports_stderr(lab: Lab) -> None:
    node = lab.node("a")
    with pytest.raises(LabError, match="nosuchdev"):
        node.ip("link", "set", "nosuchdev", "up")


@pytest.mark.skipif(shutil.which("keepalived") is None, reason="keepalived not installed")
def test_keepalived_runs_privately_and_sends_prio0_on_stop(lab: Lab, tmp_path: Path) -> None:
    from scapy.all import rdpcap
    from scapy.layers.vrrp import VRRPv3

    host_pid_file = Path("/run/keepalived.pid")
    host_pid_before = host_pid_file.read_text() if host_pid_file.exists() else None
    node = lab.node("ka", ["192.0.2.1/24"])
    lab.node("obs")
    cap = lab.capture(lab.switch, "br-lan", "ip proto 112", tmp_path / "vrrp.pcap")
    ka = node.start_keepalived(
        "vrrp_instance VI_1 {\n  state MASTER\n  interface eth0\n  virtual_router_id 7\n"
        "  version 3\n  priority 150\n  advert_int 0.1\n"
        "  virtual_ipaddress {\n    198.51.100.7/32\n  }\n}\n",
        tmp_path / "ka")
    ka.wait_for_log(r"\(VI_1\) Entering MASTER STATE", 5)
    assert (tmp_path / "ka" / "keepalived.pid").read_text().strip() == str(ka.pid)
    netlab.wait_until(lambda: "198.51.100.7/32" in node.ip("addr", "show", "eth0").stdout,
                      2, what="VIP on eth0")
    assert ka.stop() == 0
    assert "198.51.100.7" not in node.ip("addr", "show", "eth0").stdout
    cap.stop()
    prios = [p[VRRPv3].priority for p in rdpcap(str(tmp_path / "vrrp.pcap"))]
    assert prios[-1] == 0 and set(prios[:-1]) == {150}
    host_pid_after = host_pid_file.read_text() if host_pid_file.exists() else None
    assert host_pid_after == host_pid_before
    assert re.search(r"sent 0 priority", ka.log())
    assert os.path.exists(ka.config_path)


LAB_SCRIPT = """
import sys, time
from fastvrrp.netlab import Lab
lab = Lab().open()          # deliberately not a `with`: atexit/SIGTERM must clean up
node = lab.node("a", ["192.0.2.1/24"])
node.popen(["sleep", "300"])
print(lab.prefix, flush=True)
if sys.argv[1] == "wait":
    time.sleep(60)
"""


@pytest.mark.parametrize("how", ["sigterm", "exit"])
def test_cleanup_at_exit_and_on_sigterm(how: str) -> None:
    proc = subprocess.Popen([sys.executable, "-c", LAB_SCRIPT,
                             "wait" if how == "sigterm" else "exit"],
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        prefix = proc.stdout.readline().strip()
        assert re.fullmatch(r"fv[0-9a-f]{6}", prefix)
        if how == "sigterm":
            assert namespaces_with(prefix)
            proc.send_signal(signal.SIGTERM)
        rc = proc.wait(20)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert rc == (-signal.SIGTERM if how == "sigterm" else 0)
    assert namespaces_with(prefix) == []
