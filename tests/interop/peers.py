"""VRRP routers of three implementations behind one small interface, for interop tests.

    FastVrrp(node, workdir, "fv")      fastvrrp run -f ... (tests/netns/daemonlab.Daemon)
    KeepalivedPeer(node, workdir)      Debian's keepalived 2.2.7 (netlab.Keepalived)
    FrrPeer(node, workdir, vrid)       FRR 8.4 zebra + vrrpd in the node's namespace

Each one: start(config), state(instance), transitions(instance) (the states entered,
in order, over every run), wait_state(...), graceful() (SIGTERM: priority-0 advert),
crash() (cut the node's switch port, then SIGKILL: nothing more leaves the node),
restart() (port up again, start with the same config).

FRR needs (/work/shared/reference/frr-vrrpd-in-netns.md): one macvlan per family and VRID on
the VRRP interface, mode bridge, MAC 00:00:5e:00:0{1,2}:VRID, addrgenmode random set
after creation, no DAD, the VIPs on the macvlan; zebra + vrrpd started with `-N
<pathspace>` (their pid files and sockets go to /var/run/frr/<pathspace>/) and run as
the packaged user `frr` (not `-u root`: root is not in group frrvty), so their config
and log directory belong to `frr` and must be reachable by it (not under pytest's 0700
tmp_path). Stop vrrpd before zebra; a SIGKILLed vrrpd leaves its macvlans up.
"""

from __future__ import annotations

import atexit
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from fastvrrp import netlab

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "netns"))
from daemonlab import TRANSITION, Daemon  # noqa: E402

FRR_DIR = Path("/usr/lib/frr")
FRR_RUN = Path("/var/run/frr")


def cut(node: netlab.Node) -> None:
    """Take the node's switch port down: its frames no longer reach the segment."""
    node.lab.switch.ip("link", "set", node.link("eth0").port, "down")


def reconnect(node: netlab.Node) -> None:
    node.lab.switch.ip("link", "set", node.link("eth0").port, "up")


def partition(node: netlab.Node) -> None:
    """Detach the node's port from the bridge. Unlike cut(), both veth ends stay up, so
    the node sees no link change (no FAULT state): it just stops hearing the others."""
    node.lab.switch.ip("link", "set", node.link("eth0").port, "nomaster")


def heal(node: netlab.Node) -> None:
    node.lab.switch.ip("link", "set", node.link("eth0").port, "master",
                       node.lab.segment(node.link("eth0").segment))


def addresses(node: netlab.Node, ifname: str | None = None) -> set[str]:
    """Every address on the node (or on one interface), without prefix length."""
    argv = ["ip", "-j", "addr", "show"] + (["dev", ifname] if ifname else [])
    out = json.loads(node.run(argv).stdout)
    return {a["local"] for link in out for a in link.get("addr_info", [])}


class Peer:
    impl = "?"

    def __init__(self, node: netlab.Node, workdir: Path) -> None:
        self.node = node
        self.workdir = workdir
        self.config = ""
        self.runs = 0
        self.is_cut = False
        self._run_offset = 0

    # --- to implement
    def _start(self) -> None:
        raise NotImplementedError

    def _kill(self) -> None:
        raise NotImplementedError

    def graceful(self) -> None:
        raise NotImplementedError

    def _parse(self, text: str, instance: str) -> list[str]:
        """States entered by `instance`, in order, according to log text."""
        raise NotImplementedError

    def transitions(self, instance: str) -> list[str]:
        """Every state `instance` entered, over all runs."""
        return self._parse(self.log(), instance)

    def log(self) -> str:
        raise NotImplementedError

    def running(self) -> bool:
        raise NotImplementedError

    # --- common
    def start(self, config: str | None = None) -> Peer:
        if config is not None:
            self.config = config
        self.runs += 1
        self._run_offset = len(self.log())  # state() reads only what this run logs
        self._start()
        return self

    def restart(self) -> Peer:
        if self.is_cut:
            reconnect(self.node)
            self.is_cut = False
        return self.start()

    def crash(self) -> None:
        cut(self.node)
        self.is_cut = True
        self._kill()

    def state(self, instance: str) -> str | None:
        """The state `instance` entered last in the current run (None: not yet any)."""
        if not self.running():
            return None
        t = self._parse(self.log()[self._run_offset:], instance)
        return t[-1] if t else None

    def wait_state(self, instance: str, state: str, timeout: float = 10.0) -> float:
        """Wait until `instance` is in `state`; returns the monotonic time it was seen."""
        deadline = time.monotonic() + timeout
        while True:
            if self.state(instance) == state:
                return time.monotonic()
            if not self.running():
                raise AssertionError(f"{self} died before {instance} reached {state}; "
                                     f"log:\n{self.log()[-4000:]}")
            if time.monotonic() >= deadline:
                raise AssertionError(
                    f"{self}/{instance} never reached {state} in {timeout:.1f} s "
                    f"(transitions {self.transitions(instance)}); log:\n{self.log()[-4000:]}")
            time.sleep(0.02)

    def __repr__(self) -> str:
        return f"{self.impl}@{self.node.name}"


# --------------------------------------------------------------------------- fastvrrp


class FastVrrp(Peer):
    impl = "fastvrrp"

    def __init__(self, node: netlab.Node, workdir: Path, name: str = "fastvrrp") -> None:
        super().__init__(node, workdir)
        self.name = name
        self.daemon: Daemon | None = None

    def _start(self) -> None:
        # One log for every run: transitions() sees the whole history.
        self.daemon = Daemon(self.node, self.workdir, self.name, self.config).start()

    def _kill(self) -> None:
        assert self.daemon is not None
        self.daemon.stop(signal.SIGKILL)

    def graceful(self) -> None:
        assert self.daemon is not None
        rc = self.daemon.stop(signal.SIGTERM)
        assert rc == 0, f"fastvrrp exited {rc} on SIGTERM; log:\n{self.log()[-3000:]}"

    def stop(self) -> None:
        if self.daemon is not None and self.daemon.proc is not None and self.daemon.proc.poll() is None:
            self.daemon.stop(signal.SIGTERM)

    def running(self) -> bool:
        return self.daemon is not None and self.daemon.proc.poll() is None

    def log(self) -> str:
        path = self.workdir / f"{self.name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def _parse(self, text: str, instance: str) -> list[str]:
        return [m[3] for m in TRANSITION.finditer(text) if m[1] == instance]


# --------------------------------------------------------------------------- keepalived

_KA_STATE = re.compile(r"\((\S+)\) Entering (\w+) STATE")


class KeepalivedPeer(Peer):
    impl = "keepalived"

    def __init__(self, node: netlab.Node, workdir: Path) -> None:
        super().__init__(node, workdir)
        self.ka: netlab.Keepalived | None = None
        self.previous_logs = ""

    def _start(self) -> None:
        if self.ka is not None:
            self.previous_logs += self.ka.log()
        # netlab truncates the log on start: a fresh directory per run.
        self.ka = self.node.start_keepalived(self.config, self.workdir / f"keepalived-{self.runs}")

    def _kill(self) -> None:
        assert self.ka is not None
        # The parent and its VRRP child share the process group (netlab starts it in a
        # new session): one killpg takes both, so the child cannot see its parent die
        # and shut down gracefully.
        try:
            os.killpg(self.ka.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.ka.wait(5)

    def graceful(self) -> None:
        assert self.ka is not None
        rc = self.ka.stop()
        assert rc == 0, f"keepalived exited {rc} on SIGTERM; log:\n{self.ka.log()[-3000:]}"

    def stop(self) -> None:
        if self.ka is not None and self.ka.poll() is None:
            self.ka.stop()

    def running(self) -> bool:
        return self.ka is not None and self.ka.poll() is None

    def log(self) -> str:
        return self.previous_logs + (self.ka.log() if self.ka else "")

    def _parse(self, text: str, instance: str) -> list[str]:
        return [m[2] for m in _KA_STATE.finditer(text) if m[1] == instance]


# --------------------------------------------------------------------------- FRR


_live_frr: set[FrrPeer] = set()


@atexit.register
def _stop_frr_at_exit() -> None:
    """An interrupted run: stop FRR (if the lab has not already ended everything in its
    namespaces) and remove its run and config directories."""
    for peer in list(_live_frr):
        try:
            peer.stop()
        except Exception:  # noqa: BLE001 - best effort at exit
            pass


def frr_missing() -> str | None:
    for prog in ("zebra", "vrrpd"):
        if not os.access(FRR_DIR / prog, os.X_OK):
            return f"FRR's {prog} is not installed ({FRR_DIR / prog})"
    if shutil.which("vtysh") is None:
        return "FRR's vtysh is not installed"
    try:
        import pwd
        pwd.getpwnam("frr")
    except KeyError:
        return "user 'frr' (made by the frr package) does not exist"
    return None


def frr_macvlan(family: int, vrid: int) -> tuple[str, str]:
    """(device name, virtual MAC) of the macvlan FRR's vrrpd uses for (family, VRID)."""
    return f"vrrp{family}-{vrid}", f"00:00:5e:00:0{1 if family == 4 else 2}:{vrid:02x}"


class FrrPeer(Peer):
    """zebra + vrrpd of FRR in a node. Instances are named "v4"/"v6" (one VRID)."""

    impl = "frr"
    _STATE = {"Initialize": "INIT", "Backup": "BACKUP", "Master": "MASTER"}

    def __init__(self, node: netlab.Node, workdir: Path, vrid: int) -> None:
        super().__init__(node, workdir)
        self.vrid = vrid
        self.pathspace = node.ns
        self.rundir = FRR_RUN / self.pathspace
        # The daemons run as user frr, which cannot enter pytest's 0700 tmp_path: their
        # config and logs live in a directory of their own, copied to workdir on stop().
        self.confdir = Path(tempfile.mkdtemp(prefix=f"{node.ns}-frr-"))
        os.chmod(self.confdir, 0o755)
        _live_frr.add(self)
        self.zebra_started = False
        self.macvlans: list[str] = []

    # --- set-up

    def add_macvlan(self, family: int, vips: list[str]) -> str:
        """The recipe's step 2: a bridge-mode macvlan with the VRRP MAC carrying the VIPs."""
        dev, mac = frr_macvlan(family, self.vrid)
        n = self.node
        n.ip("link", "add", dev, "link", "eth0", "type", "macvlan", "mode", "bridge")
        n.ip("link", "set", "dev", dev, "addrgenmode", "random")  # separately: gotcha 1
        n.set_sysctls({f"net/ipv6/conf/{dev}/accept_dad": 0})   # gotcha 10
        n.ip("link", "set", "dev", dev, "address", mac)
        for vip in vips:
            n.ip("addr", "add", vip, "dev", dev, *(["nodad"] if family == 6 else []))
        n.ip("link", "set", "dev", dev, "up")
        self.macvlans.append(dev)
        return dev

    def _write_configs(self) -> None:
        self.confdir.mkdir(parents=True, exist_ok=True)
        (self.confdir / "zebra.conf").write_text(
            f"hostname {self.node.name}\nlog file {self.confdir}/zebra.log informational\n"
            "log timestamp precision 3\n")
        (self.confdir / "vrrpd.conf").write_text(
            f"hostname {self.node.name}\nlog file {self.confdir}/vrrpd.log debugging\n"
            "log timestamp precision 3\ndebug vrrp protocol\ndebug vrrp zebra\n!\n"
            + self.config)
        # The daemons drop privileges to user frr: it must own what they write.
        for p in [self.confdir, *self.confdir.iterdir()]:
            shutil.chown(p, "frr", "frr")
        if not self.rundir.exists():
            subprocess.run(["install", "-d", "-o", "frr", "-g", "frr", "-m", "0755",
                            str(self.rundir)], check=True)

    def _pid(self, daemon: str) -> int | None:
        try:
            return int((self.rundir / f"{daemon}.pid").read_text().strip())
        except (OSError, ValueError):
            return None

    def _alive(self, daemon: str) -> bool:
        pid = self._pid(daemon)
        if pid is None or pid not in _netns_pids(self.node.ns):
            return False  # only ever signal a pid that lives in our namespace
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            return False
        return stat.rsplit(")", 1)[1].split()[0] != "Z"

    def _signal(self, daemon: str, sig: int, wait: float = 5.0) -> None:
        if not self._alive(daemon):
            return
        pid = self._pid(daemon)
        assert pid is not None
        os.kill(pid, sig)
        deadline = time.monotonic() + wait
        while self._alive(daemon) and time.monotonic() < deadline:
            time.sleep(0.02)

    def _start(self) -> None:
        self._write_configs()
        if not self.zebra_started:
            self.node.run([str(FRR_DIR / "zebra"), "-N", self.pathspace, "-d",
                           "-f", str(self.confdir / "zebra.conf")], timeout=20)
            self.zebra_started = True
        self.node.run([str(FRR_DIR / "vrrpd"), "-N", self.pathspace, "-d",
                       "-f", str(self.confdir / "vrrpd.conf")], timeout=20)
        netlab.wait_until(lambda: self._alive("vrrpd"), 5, what="vrrpd pid")

    def _kill(self) -> None:
        self._signal("vrrpd", signal.SIGKILL)
        # gotcha 8: a SIGKILLed vrrpd leaves its macvlans up with the VIPs; the node
        # stays cut off, and before a restart they go back to protodown (zebra clears
        # it again when vrrpd becomes Master).
        for dev in self.macvlans:
            self.node.ip("link", "set", "dev", dev, "protodown", "on")

    def graceful(self) -> None:
        self._signal("vrrpd", signal.SIGTERM)
        assert not self._alive("vrrpd"), "vrrpd did not exit on SIGTERM"

    def stop(self) -> None:
        """vrrpd first (it sets protodown through zebra), then zebra (takes ~0.5-1 s)."""
        self._signal("vrrpd", signal.SIGTERM)
        self._signal("vrrpd", signal.SIGKILL)
        self._signal("zebra", signal.SIGTERM, wait=10)
        self._signal("zebra", signal.SIGKILL)
        shutil.rmtree(self.rundir, ignore_errors=True)
        if self.confdir.exists():
            self.workdir.mkdir(parents=True, exist_ok=True)
            shutil.copytree(self.confdir, self.workdir / "frr", dirs_exist_ok=True)
            shutil.rmtree(self.confdir, ignore_errors=True)
        _live_frr.discard(self)

    def running(self) -> bool:
        return self._alive("vrrpd")

    def log(self) -> str:
        try:
            return (self.confdir / "vrrpd.log").read_text(errors="replace")
        except OSError:
            return ""

    def show(self) -> dict:
        r = subprocess.run(["vtysh", "-N", self.pathspace, "-c", "show vrrp json"],
                           capture_output=True, text=True, timeout=10)
        try:
            data = json.loads(r.stdout)
        except json.JSONDecodeError:
            return {}
        return next((d for d in data if d.get("vrid") == self.vrid), {})

    _LOGGED = re.compile(r"^(\d{4}/\d\d/\d\d \d\d:\d\d:\d\d)\.(\d{3}) .*\[VRID (\d+)\] "
                         r"\[(IPv4|IPv6)\] (Initialize|Backup|Master) -> (Initialize|Backup|Master)",
                         re.M)

    def _events(self, text: str, instance: str) -> list[tuple[int, str]]:
        """(wall-clock ns, state entered) of the v4 or v6 router ("v4"/"v6") of our
        VRID, from vrrpd's protocol debug log (local time, ms precision)."""
        fam = "IPv4" if instance == "v4" else "IPv6"
        out = []
        for m in self._LOGGED.finditer(text):
            if int(m[3]) == self.vrid and m[4] == fam:
                sec = time.mktime(time.strptime(m[1], "%Y/%m/%d %H:%M:%S"))
                out.append((int(sec) * 1_000_000_000 + int(m[2]) * 1_000_000, self._STATE[m[6]]))
        return out

    def _parse(self, text: str, instance: str) -> list[str]:
        return [st for _t, st in self._events(text, instance)]

    def master_since(self, instance: str, after_ns: int) -> int | None:
        """Wall-clock ns of the first -> Master transition logged after `after_ns`
        (the log has ms precision: 1 ms of tolerance)."""
        for t, st in self._events(self.log(), instance):
            if st == "MASTER" and t >= after_ns - 1_000_000:
                return t
        return None


def _netns_pids(ns: str) -> set[int]:
    r = subprocess.run(["ip", "netns", "pids", ns], capture_output=True, text=True)
    return {int(p) for p in r.stdout.split() if p.isdigit()}

