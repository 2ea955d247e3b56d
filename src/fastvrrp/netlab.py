"""A small lab of Linux network namespaces for tests, benchmarks, demos and interop runs.

One *switch* namespace holds a Linux bridge per segment; every node is a namespace
joined to a segment by a veth pair created directly inside the switch namespace (so no
interface ever exists in the host namespace, even for a moment). Everything the lab
creates carries a per-run prefix and is removed on close, on exceptions, at interpreter
exit and on SIGTERM.

    with Lab() as lab:
        a = lab.node("a", ["192.0.2.1/24", "2001:db8::1/64"])
        b = lab.node("b", ["192.0.2.2/24", "2001:db8::2/64"])
        a.run(["ping", "-c1", "192.0.2.2"])

Rules enforced here rather than trusted to callers: interface addresses must come from
the documentation ranges (or link-local), and `sweep()` only removes namespaces named
`{prefix}-...`.

Needs root, iproute2 and (for captures) tcpdump.
"""

from __future__ import annotations

import atexit
import ctypes
import ipaddress
import os
import pickle
import re
import secrets
import select
import shutil
import signal
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, TypeVar

__all__ = [
    "ALLOWED_NETWORKS",
    "Capture",
    "Keepalived",
    "Lab",
    "LabError",
    "Link",
    "Node",
    "Switch",
    "eui64_link_local",
    "netns_usable",
    "sweep",
    "wait_until",
]

T = TypeVar("T")

# Only these may be put on lab interfaces (DESIGN.md "Test network rules").
ALLOWED_NETWORKS: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = (
    ipaddress.ip_network("192.0.2.0/24"),
    ipaddress.ip_network("198.51.100.0/24"),
    ipaddress.ip_network("203.0.113.0/24"),
    ipaddress.ip_network("2001:db8::/32"),
    ipaddress.ip_network("fe80::/10"),
)

IFNAMSIZ = 15  # usable characters in a Linux interface name
# Present when br_netfilter is loaded; its settings are per namespace (Linux 5.3+).
BRIDGE_NF_SYSCTL = "/proc/sys/net/bridge/bridge-nf-call-iptables"
_PREFIX_RE = re.compile(r"^[a-z][a-z0-9]{1,9}$")
_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_]{0,19}$")
_CLONE_NEWNET = 0x40000000

_PROC_STOP_TIMEOUT = 3.0  # keepalived needs ~0.1-1 s to send prio 0 and drop VIPs


class LabError(RuntimeError):
    """A lab command failed; the message carries the command and its stderr."""


# --------------------------------------------------------------------------- helpers


def _run(argv: Sequence[str], *, check: bool = True, input: str | None = None,
         timeout: float = 30.0) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(list(argv), capture_output=True, text=True, input=input,
                          timeout=timeout)
    if check and proc.returncode != 0:
        raise LabError(f"{' '.join(argv)!r} exited {proc.returncode}: {proc.stderr.strip()}")
    return proc


def netns_usable() -> str | None:
    """Return None if namespaces can be used here, else a reason (for pytest.skip)."""
    if os.geteuid() != 0:
        return "network namespace tests need root"
    if shutil.which("ip") is None:
        return "iproute2 'ip' not found"
    probe = f"fvprobe{secrets.token_hex(3)}-x"
    try:
        r = _run(["ip", "netns", "add", probe], check=False)
        if r.returncode != 0:
            return f"'ip netns add' does not work: {r.stderr.strip()}"
        r = _run(["ip", "-n", probe, "link", "set", "lo", "up"], check=False)
        if r.returncode != 0:
            return f"'ip -n NS link' does not work: {r.stderr.strip()}"
    finally:
        _run(["ip", "netns", "del", probe], check=False)
    return None


def wait_until(predicate: Callable[[], T], timeout: float, interval: float = 0.02,
               what: str = "condition") -> T:
    """Poll `predicate` until it returns something truthy; raise TimeoutError after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise TimeoutError(f"timed out after {timeout:.1f} s waiting for {what}")
        time.sleep(interval)


def _check_address(addr: str) -> ipaddress.IPv4Interface | ipaddress.IPv6Interface:
    if "/" not in addr:
        addr += "/24" if ":" not in addr else "/64"
    iface = ipaddress.ip_interface(addr)
    if not any(iface.ip in net for net in ALLOWED_NETWORKS):
        raise ValueError(f"{addr}: lab addresses must be in documentation ranges "
                         f"or link-local ({', '.join(map(str, ALLOWED_NETWORKS))})")
    return iface


def eui64_link_local(mac: str) -> ipaddress.IPv6Address:
    """The fe80:: address the kernel derives from `mac` with addrgenmode eui64."""
    octets = [int(x, 16) for x in mac.split(":")]
    octets[0] ^= 0x02
    eui = octets[:3] + [0xFF, 0xFE] + octets[3:]
    return ipaddress.IPv6Address(bytes([0xFE, 0x80] + [0] * 6 + eui))


def _netns_list() -> list[str]:
    out = _run(["ip", "netns", "list"]).stdout
    # Lines look like "name" or "name (id: 3)".
    return [line.split()[0] for line in out.splitlines() if line.strip()]


def _netns_pids(ns: str) -> list[int]:
    r = _run(["ip", "netns", "pids", ns], check=False)
    return [int(p) for p in r.stdout.split() if p.isdigit()]


def _kill_netns_processes(ns: str, timeout: float = 2.0) -> None:
    """End processes still living in one of *our* namespaces (they keep it and its
    veths alive after `ip netns del`). Only called for lab-owned namespace names."""
    pids = _netns_pids(ns)
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in pids:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + timeout
        while pids and time.monotonic() < deadline:
            pids = [p for p in pids if Path(f"/proc/{p}").exists() and not _is_zombie(p)]
            time.sleep(0.02)
        if not pids:
            return


def _is_zombie(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] == "Z"


def _delete_netns(ns: str) -> None:
    _kill_netns_processes(ns)
    _run(["ip", "netns", "del", ns], check=False)


def sweep(prefix: str) -> list[str]:
    """Remove leftover namespaces named `{prefix}-*` (and the processes inside them).

    Touches nothing else: the name must start with exactly `prefix` followed by '-'.
    Returns the names removed.
    """
    if not _PREFIX_RE.match(prefix):
        raise ValueError(f"refusing to sweep with prefix {prefix!r} (want {_PREFIX_RE.pattern})")
    removed = []
    for ns in _netns_list():
        if ns.startswith(prefix + "-"):
            _delete_netns(ns)
            removed.append(ns)
    return removed


# --------------------------------------------------------------------------- processes


def _stop_process(proc: subprocess.Popen[Any], sig: int = signal.SIGTERM,
                  timeout: float = _PROC_STOP_TIMEOUT) -> int | None:
    """Signal one process we started, wait, then SIGKILL its process group.

    Our processes are started with start_new_session=True, so the group id is the
    leader's pid and holds only the process and its children.
    """
    if proc.poll() is None:
        try:
            os.kill(proc.pid, sig)
        except ProcessLookupError:
            pass
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            pass
    # Children (e.g. keepalived's VRRP child) may outlive the leader: kill the group.
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    try:
        return proc.wait(timeout)
    except subprocess.TimeoutExpired:
        return None


# --------------------------------------------------------------------------- topology


class Link:
    """One interface of a node, attached to a segment (bridge) in the switch namespace."""

    def __init__(self, node: Node, ifname: str, segment: str, mac: str, port: str,
                 addrs: list[ipaddress.IPv4Interface | ipaddress.IPv6Interface]) -> None:
        self.node = node
        self.ifname = ifname
        self.segment = segment
        self.mac = mac
        self.port = port  # the veth end inside the switch namespace
        self.addrs = addrs

    @property
    def ipv4(self) -> list[ipaddress.IPv4Address]:
        return [a.ip for a in self.addrs if isinstance(a, ipaddress.IPv4Interface)]

    @property
    def ipv6(self) -> list[ipaddress.IPv6Address]:
        return [a.ip for a in self.addrs if isinstance(a, ipaddress.IPv6Interface)]

    @property
    def link_local(self) -> ipaddress.IPv6Address:
        return eui64_link_local(self.mac)

    def __repr__(self) -> str:
        return f"Link({self.node.name}:{self.ifname} seg={self.segment} mac={self.mac})"


class _Namespace:
    """What nodes and the switch share: a namespace name and ways to run things in it."""

    def __init__(self, lab: Lab, name: str, ns: str) -> None:
        self.lab = lab
        self.name = name
        self.ns = ns

    def ip(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """`ip -n NS ARGS...`"""
        return _run(["ip", "-n", self.ns, *args], check=check)

    def set_sysctls(self, settings: dict[str, str | int]) -> None:
        """Set sysctls in this namespace. Keys use '/' separators
        (net/ipv6/conf/eth0.10/accept_dad) so interface names may contain dots."""
        args = [f"{k}={v}" for k, v in settings.items()]
        _run(["ip", "netns", "exec", self.ns, "sysctl", "-qw", *args])

    def argv(self, argv: Sequence[str]) -> list[str]:
        """The command line that runs `argv` inside this namespace."""
        return ["ip", "netns", "exec", self.ns, *argv]

    def run(self, argv: Sequence[str], check: bool = True, timeout: float = 60.0,
            input: str | None = None) -> subprocess.CompletedProcess[str]:
        """Run to completion inside the namespace; text output captured."""
        return _run(self.argv(argv), check=check, timeout=timeout, input=input)

    def popen(self, argv: Sequence[str], **kw: Any) -> subprocess.Popen[Any]:
        """Start a process inside the namespace, in its own session; ended at lab close."""
        kw.setdefault("start_new_session", True)
        if not kw["start_new_session"]:
            raise ValueError("lab processes need their own session so close() can kill their group")
        kw.setdefault("stdin", subprocess.DEVNULL)
        proc: subprocess.Popen[Any] = subprocess.Popen(self.argv(argv), **kw)
        self.lab._track(proc)
        return proc

    def python(self, code: str, *args: str, check: bool = True,
               timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
        """`python -c CODE ARGS...` inside the namespace (same interpreter as ours)."""
        return self.run([sys.executable, "-c", code, *args], check=check, timeout=timeout)

    def call(self, func: Callable[..., T], *args: Any, timeout: float = 60.0, **kwargs: Any) -> T:
        """Run `func(*args, **kwargs)` in a forked child that entered this namespace.

        The result (or exception) comes back pickled. Only the network namespace is
        entered, so /sys still shows the host's view; use run() for tools that read it.
        """
        rfd, wfd = os.pipe()
        pid = os.fork()
        if pid == 0:  # child: never return into the caller's stack
            status = 0
            try:
                os.close(rfd)
                _setns(self.ns)
                try:
                    payload = pickle.dumps((True, func(*args, **kwargs)))
                except BaseException as exc:  # noqa: BLE001 - shipped to the parent
                    status = 1
                    try:
                        payload = pickle.dumps((False, exc))
                    except Exception:
                        payload = pickle.dumps((False, LabError(traceback.format_exc())))
                with os.fdopen(wfd, "wb") as w:
                    w.write(payload)
            except BaseException:
                status = 2
            finally:
                os._exit(status)
        os.close(wfd)
        chunks: list[bytes] = []
        deadline = time.monotonic() + timeout
        try:
            while True:
                left = deadline - time.monotonic()
                if left <= 0 or not select.select([rfd], [], [], left)[0]:
                    os.kill(pid, signal.SIGKILL)
                    raise TimeoutError(f"call() in {self.ns} took over {timeout} s")
                chunk = os.read(rfd, 1 << 16)
                if not chunk:
                    break
                chunks.append(chunk)
        finally:
            os.close(rfd)
            os.waitpid(pid, 0)
        if not chunks:
            raise LabError(f"call() in {self.ns}: child died without a result")
        ok, value = pickle.loads(b"".join(chunks))
        if not ok:
            raise value
        return value  # type: ignore[no-any-return]

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.ns})"


def _setns(ns: str) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open(f"/run/netns/{ns}", os.O_RDONLY)
    try:
        if libc.setns(fd, _CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"setns({ns}): {os.strerror(err)}")
    finally:
        os.close(fd)


class Switch(_Namespace):
    """The switch namespace: one bridge `br-{segment}` per segment, no IP addresses."""

    def bridge(self, segment: str) -> str:
        return self.lab.segment(segment)


class Node(_Namespace):
    """A host namespace with interfaces on lab segments."""

    def __init__(self, lab: Lab, name: str, ns: str, index: int) -> None:
        super().__init__(lab, name, ns)
        self.index = index
        self.links: dict[str, Link] = {}

    def add_link(self, ifname: str = "eth0", segment: str = "lan",
                 addrs: Iterable[str] = (), mac: str | None = None) -> Link:
        """Add interface `ifname` on `segment` (a bridge made on first use), up, with addrs.

        The MAC defaults to 02:00:00:00:<node index>:<link index> so the EUI-64
        link-local address is predictable (see Link.link_local).
        """
        if ifname in self.links:
            raise ValueError(f"{self.name} already has {ifname}")
        if not 0 < len(ifname) <= IFNAMSIZ or "/" in ifname or ifname == "lo":
            raise ValueError(f"bad interface name {ifname!r}")
        parsed = [_check_address(a) for a in addrs]
        link_index = len(self.links) + 1
        if mac is None:
            if self.index > 255 or link_index > 255:
                raise ValueError("automatic MACs cover 255 nodes x 255 links")
            mac = f"02:00:00:00:{self.index:02x}:{link_index:02x}"
        bridge = self.lab.segment(segment)
        port = self.lab._port_name(self.name, ifname)
        sw = self.lab.switch
        sw.ip("link", "add", port, "type", "veth", "peer", "name", ifname,
              "address", mac, "netns", self.ns)
        sw.ip("link", "set", port, "master", bridge)
        sw.ip("link", "set", port, "up")
        # Per-interface too: the namespace defaults cover it, but be explicit (DAD would
        # leave new IPv6 addresses "tentative" and unusable for ~1-2 s).
        self.set_sysctls({f"net/ipv6/conf/{ifname}/accept_dad": 0,
                          f"net/ipv6/conf/{ifname}/accept_ra": 0})
        self.ip("link", "set", "dev", ifname, "addrgenmode", "eui64")
        for a in parsed:
            extra = ["nodad"] if a.version == 6 else []
            self.ip("addr", "add", str(a), "dev", ifname, *extra)
        self.ip("link", "set", "dev", ifname, "up")
        link = Link(self, ifname, segment, mac, port, parsed)
        self.links[ifname] = link
        return link

    def link(self, ifname: str = "eth0") -> Link:
        return self.links[ifname]

    def addr(self, ifname: str = "eth0", family: int = 4) -> str:
        """First configured address of `ifname` (4 or 6) as a string, without prefix length."""
        link = self.links[ifname]
        got = link.ipv4 if family == 4 else link.ipv6
        if not got:
            raise LookupError(f"{self.name}:{ifname} has no IPv{family} address")
        return str(got[0])

    def start_keepalived(self, config_text: str, workdir: str | os.PathLike[str],
                         extra_args: Sequence[str] = ()) -> Keepalived:
        """Write keepalived.conf into `workdir` and run keepalived (VRRP only) in the
        foreground here, logging to workdir/keepalived.log, with private pid files."""
        return Keepalived.start(self, config_text, Path(workdir), extra_args)


# --------------------------------------------------------------------------- capture


# tcpdump's packet buffer timeout (pcap_set_timeout(1000) in tcpdump.c): without
# immediate mode, libpcap's TPACKET_V3 ring retires a partly filled block after it.
BLOCK_TIMEOUT_S = 1.0
BLOCK_READ_S = 0.3  # for tcpdump to read and write the retired block


def stop_captures(captures: Iterable[Capture], timeout: float = 5.0) -> None:
    """Stop several captures, waiting for block retirement (non-immediate ones) once."""
    since = time.monotonic()
    for cap in captures:
        cap.stop(timeout, retired_since=since)


class Capture:
    """A running tcpdump writing a pcap; stop() flushes it (SIGINT) and reports counts."""

    def __init__(self, target: _Namespace, ifname: str, bpf_filter: str, path: Path,
                 count: int | None, precision: str, snaplen: int, timeout: float,
                 buffer_kib: int | None = None, immediate: bool = True) -> None:
        self.target = target
        self.ifname = ifname
        self.path = path
        self.immediate = immediate
        self._stderr: list[str] = []
        self._listening = threading.Event()
        # --immediate-mode: without it TPACKET_V3 hands packets over in blocks, and the
        # ones still in the ring when we stop are lost. -U: write each packet at once.
        # Both wake tcpdump (and write) once per packet, which on a small machine takes
        # CPU from what a bench measures; immediate=False leaves them out and stop()
        # first waits for the kernel to hand over the last block (BLOCK_TIMEOUT_S).
        argv = ["tcpdump", "-i", ifname, "-nn", "-s", str(snaplen), "-w", str(path),
                # Debian's tcpdump drops to user "tcpdump" before opening -w files.
                "-Z", "root"]
        if immediate:
            argv[1:1] = ["--immediate-mode", "-U"]
        if buffer_kib is not None:
            # The default 2 MiB ring overflows in a burst of a thousand takeovers.
            argv[1:1] = ["-B", str(buffer_kib)]
        if precision == "nano":
            argv.insert(1, "--time-stamp-precision=nano")
        elif precision != "micro":
            raise ValueError("precision is 'nano' or 'micro'")
        if count is not None:
            argv += ["-c", str(count)]
        if bpf_filter:
            argv.append(bpf_filter)
        self.proc = target.popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                 text=True, bufsize=1)
        self._reader = threading.Thread(target=self._drain, daemon=True,
                                        name=f"tcpdump-{target.ns}-{ifname}")
        self._reader.start()
        self._listening.wait(timeout)
        if "listening on" not in self.stderr:
            self.stop()
            raise LabError(f"tcpdump on {target.ns}:{ifname} did not start: {self.stderr.strip()}")

    def _drain(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self._stderr.append(line)
            if "listening on" in line:
                self._listening.set()
        self._listening.set()  # EOF: unblock the waiter; it checks the process

    @property
    def stderr(self) -> str:
        return "".join(self._stderr)

    def wait(self, timeout: float) -> bool:
        """Wait for tcpdump to exit by itself (after -c COUNT packets). True if it did."""
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return False
        self._reader.join(2)
        return True

    def stop(self, timeout: float = 5.0, *, retired_since: float | None = None) -> int | None:
        """Stop with SIGINT (tcpdump flushes and closes the file); return packets captured.

        Without immediate mode, first wait until every packet the kernel took before the
        call (or before `retired_since`, a time.monotonic() value: stop_captures() waits
        once for several captures) is in a block handed over to tcpdump and written."""
        if self.proc.poll() is None:
            if not self.immediate:
                since = time.monotonic() if retired_since is None else retired_since
                time.sleep(max(0.0, since + BLOCK_TIMEOUT_S + BLOCK_READ_S - time.monotonic()))
            _stop_process(self.proc, signal.SIGINT, timeout)
        self._reader.join(2)
        m = re.search(r"(\d+) packets? captured", self.stderr)
        return int(m.group(1)) if m else None

    @property
    def dropped_by_kernel(self) -> int | None:
        """Frames the capture ring lost (tcpdump's summary; known after stop())."""
        m = re.search(r"(\d+) packets? dropped by kernel", self.stderr)
        return int(m.group(1)) if m else None


# --------------------------------------------------------------------------- keepalived


class Keepalived:
    """A keepalived (VRRP subsystem only) running in the foreground in a lab node.

    Flags: -n no fork (the tracked pid is the parent), -l log to stderr, -D detailed,
    -G no syslog, -P VRRP only, -f config, and private pid files -p/-r/-c in the
    workdir (the defaults live in /run and would collide with the host's and each other).
    SIGTERM to the parent makes a master send a priority-0 advert and drop its VIPs.
    """

    def __init__(self, node: Node, proc: subprocess.Popen[Any], workdir: Path) -> None:
        self.node = node
        self.proc = proc
        self.workdir = workdir
        self.config_path = workdir / "keepalived.conf"
        self.log_path = workdir / "keepalived.log"

    @classmethod
    def start(cls, node: Node, config_text: str, workdir: Path,
              extra_args: Sequence[str] = ()) -> Keepalived:
        if shutil.which("keepalived") is None:
            raise LabError("keepalived is not installed")
        workdir.mkdir(parents=True, exist_ok=True)
        conf = workdir / "keepalived.conf"
        conf.write_text(config_text)
        argv = ["keepalived", "-n", "-l", "-D", "-G", "-P",
                "-f", str(conf),
                "-p", str(workdir / "keepalived.pid"),
                "-r", str(workdir / "vrrp.pid"),
                "-c", str(workdir / "checkers.pid"),
                *extra_args]
        log = open(workdir / "keepalived.log", "w")  # noqa: SIM115 - child owns it
        try:
            proc = node.popen(argv, stdout=log, stderr=subprocess.STDOUT)
        finally:
            log.close()
        return cls(node, proc, workdir)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def poll(self) -> int | None:
        return self.proc.poll()

    def wait(self, timeout: float | None = None) -> int:
        return self.proc.wait(timeout)

    def send_signal(self, sig: int) -> None:
        self.proc.send_signal(sig)

    def terminate(self) -> None:
        self.proc.terminate()

    def kill(self) -> None:
        self.proc.kill()

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def wait_for_log(self, pattern: str, timeout: float = 10.0) -> re.Match[str]:
        """Wait until the log matches `pattern` (a regex); fail early if keepalived died."""
        rx = re.compile(pattern)

        def found() -> re.Match[str] | None:
            m = rx.search(self.log())
            if m is None and self.proc.poll() is not None:
                raise LabError(f"keepalived exited {self.proc.returncode} before "
                               f"{pattern!r}; log:\n{self.log()}")
            return m

        return wait_until(found, timeout, what=f"keepalived log {pattern!r}")

    def stop(self, timeout: float = _PROC_STOP_TIMEOUT) -> int | None:
        """SIGTERM (priority-0 advert from a master), wait, SIGKILL the group if needed."""
        return _stop_process(self.proc, signal.SIGTERM, timeout)


# --------------------------------------------------------------------------- the lab

_open_labs: set[Lab] = set()  # strong refs: an unreferenced open lab must still be cleaned
_hooks_installed = False


def _close_all_labs() -> None:
    for lab in list(_open_labs):
        lab.close()


def _on_sigterm(signum: int, frame: object) -> None:
    # Clean up, then die of SIGTERM as we would have without the handler. close() is
    # resumable, so interrupting a close() already in progress is harmless.
    try:
        _close_all_labs()
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGTERM)


def _install_hooks() -> None:
    global _hooks_installed
    if _hooks_installed:
        return
    _hooks_installed = True
    atexit.register(_close_all_labs)
    # Only take over SIGTERM if nobody else has (and only the main thread may).
    if (threading.current_thread() is threading.main_thread()
            and signal.getsignal(signal.SIGTERM) is signal.SIG_DFL):
        signal.signal(signal.SIGTERM, _on_sigterm)


class Lab:
    """A LAN of namespaces: `{prefix}-sw` holds the bridges, `{prefix}-{name}` are nodes."""

    def __init__(self, prefix: str | None = None, *, hub: bool = False) -> None:
        if prefix is None:
            prefix = "fv" + secrets.token_hex(3)  # 8 chars: room for "-name" in ns names
        if not _PREFIX_RE.match(prefix):
            raise ValueError(f"lab prefix {prefix!r} must match {_PREFIX_RE.pattern}")
        self.prefix = prefix
        self.hub = hub
        self.nodes: dict[str, Node] = {}
        self.segments: dict[str, str] = {}  # segment name -> bridge name
        self._switch: Switch | None = None
        self._namespaces: list[str] = []  # creation order; removed in reverse
        self._procs: list[subprocess.Popen[Any]] = []
        self._captures: list[Capture] = []
        self._ports: set[str] = set()
        self._lock = threading.RLock()
        self.closed = False

    # -- lifecycle

    def __enter__(self) -> Lab:
        try:
            self.open()
        except BaseException:
            self.close()  # __exit__ is not called when __enter__ fails
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def open(self) -> Lab:
        if self.closed:
            raise LabError("a closed lab cannot be reopened; make a new Lab")
        if self._switch is not None:
            return self
        _install_hooks()
        _open_labs.add(self)
        sw = self._add_namespace("sw")
        # The switch has no addresses: no IPv6 on it keeps its ports from sending
        # RS/MLD/DAD frames into captures.
        sw.set_sysctls({"net/ipv6/conf/all/disable_ipv6": 1,
                     "net/ipv6/conf/default/disable_ipv6": 1})
        # A host with br_netfilter loaded (Docker loads it) runs every bridged frame
        # through iptables, ip6tables and arptables, new namespaces included: a third
        # of a sender's cost per multicast advert or GARP here (perf). A switch does
        # not, and the lab must not depend on what the host has loaded.
        if os.path.exists(BRIDGE_NF_SYSCTL):
            sw.set_sysctls({f"net/bridge/bridge-nf-call-{t}": 0
                            for t in ("iptables", "ip6tables", "arptables")})
        self._switch = Switch(self, "sw", sw.ns)
        return self

    @property
    def switch(self) -> Switch:
        if self._switch is None:
            raise LabError("lab is not open (use `with Lab() as lab:` or lab.open())")
        return self._switch

    def close(self) -> None:
        """Stop captures and processes, delete namespaces. Idempotent and resumable:
        each resource is forgotten only after it is gone."""
        with self._lock:
            while self._captures:
                cap = self._captures[-1]
                try:
                    cap.stop()
                finally:
                    self._captures.pop()
            while self._procs:
                proc = self._procs[-1]
                try:
                    _stop_process(proc)
                finally:
                    self._procs.pop()
            while self._namespaces:
                ns = self._namespaces[-1]
                try:
                    _delete_netns(ns)
                finally:
                    self._namespaces.pop()
            self.closed = True
            _open_labs.discard(self)

    # -- building

    def _add_namespace(self, name: str) -> _Namespace:
        ns = f"{self.prefix}-{name}"
        _run(["ip", "netns", "add", ns])
        self._namespaces.append(ns)
        space = _Namespace(self, name, ns)
        space.ip("link", "set", "lo", "up")
        return space

    def segment(self, name: str = "lan", hub: bool | None = None) -> str:
        """The bridge for segment `name`, created on first use (STP off, no snooping,
        so ports forward at once and VRRP multicast is flooded to every port).

        hub=True (default: the lab's `hub`) sets ageing_time 0: the bridge forgets
        MACs at once and floods every frame, so an observer node sees unicast too.
        Leave it off for tests that need a learning switch (GARP moving a VIP's MAC).
        """
        with self._lock:
            if name in self.segments:
                return self.segments[name]
            bridge = f"br-{name}"
            if len(bridge) > IFNAMSIZ or not _NAME_RE.match(name):
                raise ValueError(f"segment name {name!r} too long or odd")
            hub = self.hub if hub is None else hub
            self.switch.ip("link", "add", bridge, "type", "bridge", "stp_state", "0",
                           "forward_delay", "0", "mcast_snooping", "0",
                           *(["ageing_time", "0"] if hub else []))
            self.switch.ip("link", "set", bridge, "up")
            self.segments[name] = bridge
            return bridge

    def _port_name(self, node: str, ifname: str) -> str:
        name = f"{node}-{ifname}"
        if len(name) > IFNAMSIZ or name in self._ports:
            name = f"p{len(self._ports) + 1}"
        self._ports.add(name)
        return name

    def node(self, name: str, addrs: Iterable[str] = (), *, ifname: str = "eth0",
             segment: str | None = "lan", mac: str | None = None,
             sysctls: dict[str, str | int] | None = None) -> Node:
        """Create namespace `{prefix}-{name}` with loopback up and, unless segment is
        None, interface `ifname` on `segment` carrying `addrs` (CIDR strings)."""
        if not _NAME_RE.match(name) or name == "sw":
            raise ValueError(f"bad node name {name!r} (want {_NAME_RE.pattern}, not 'sw')")
        addrs = list(addrs)
        for a in addrs:  # fail before creating anything
            _check_address(a)
        with self._lock:
            if name in self.nodes:
                raise ValueError(f"node {name} exists")
            space = self._add_namespace(name)
            node = Node(self, name, space.ns, index=len(self.nodes) + 1)
            self.nodes[name] = node
        # Before any interface exists, so every new interface inherits them: usable IPv6
        # addresses at once (no DAD), no SLAAC/default routes from stray RAs.
        node.set_sysctls({"net/ipv6/conf/all/accept_dad": 0,
                       "net/ipv6/conf/default/accept_dad": 0,
                       "net/ipv6/conf/all/accept_ra": 0,
                       "net/ipv6/conf/default/accept_ra": 0})
        if sysctls:
            node.set_sysctls(sysctls)
        if segment is not None:
            node.add_link(ifname, segment=segment, addrs=addrs, mac=mac)
        elif addrs:
            raise ValueError("addresses need an interface: give a segment")
        return node

    # -- processes and captures

    def _track(self, proc: subprocess.Popen[Any]) -> None:
        with self._lock:
            if self.closed:
                _stop_process(proc)
                raise LabError("lab is closed")
            self._procs.append(proc)

    def capture(self, target: Node | Switch, ifname: str, bpf_filter: str,
                path: str | os.PathLike[str], *, count: int | None = None,
                precision: str = "nano", snaplen: int = 262144,
                timeout: float = 10.0, buffer_kib: int | None = None,
                immediate: bool = True) -> Capture:
        """Start tcpdump on `target`'s `ifname` writing `path`; returns once it is
        really capturing. Use lab.switch with a bridge name to see every frame of a
        segment (tcpdump puts the bridge in promiscuous mode, so it sees unicast
        between other ports too). Check `dropped_by_kernel` after stop() when every
        frame counts; a short snaplen and a larger `buffer_kib` keep bursts whole.
        immediate=False wakes tcpdump per ring block instead of per packet (for
        benches, where the capture shares the CPUs with what it measures); its stop()
        then waits BLOCK_TIMEOUT_S for the last block (stop_captures() waits once)."""
        cap = Capture(target, ifname, bpf_filter, Path(path), count, precision, snaplen,
                      timeout, buffer_kib, immediate)
        with self._lock:
            self._captures.append(cap)
        return cap

    def __repr__(self) -> str:
        return f"Lab({self.prefix}, nodes={list(self.nodes)})"
