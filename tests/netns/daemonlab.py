"""Run `fastvrrp run` daemons in netlab namespaces and watch what they do."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

from fastvrrp import netlab

TRANSITION = re.compile(r"(\S+): (\w+) -> (\w+) \(prio (\d+)")


class Daemon:
    """One fastvrrp process in a node, with its config file and log."""

    def __init__(self, node: netlab.Node, workdir: Path, name: str, config: str,
                 extra_args: tuple[str, ...] = ()) -> None:
        self.node = node
        self.name = name
        self.conf = workdir / f"{name}.conf"
        self.logfile = workdir / f"{name}.log"
        self.conf.write_text(config)
        self.control = workdir / f"{name}.sock"
        self.extra_args = extra_args
        self.proc: subprocess.Popen | None = None

    def start(self) -> Daemon:
        self._log = open(self.logfile, "a")
        self.proc = self.node.popen(
            [sys.executable, "-m", "fastvrrp", "run", "-f", str(self.conf),
             "--control", str(self.control), *self.extra_args],
            stdout=self._log, stderr=subprocess.STDOUT)
        return self

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10.0) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout)
        finally:
            self._log.close()

    def status(self) -> dict:
        """The daemon's control-socket status document."""
        out = subprocess.run([sys.executable, "-m", "fastvrrp", "status", "--control", str(self.control)],
                             capture_output=True, text=True, timeout=10, check=True)
        return json.loads(out.stdout)

    def log(self) -> str:
        return self.logfile.read_text() if self.logfile.exists() else ""

    def transitions(self, instance: str | None = None) -> list[tuple[str, str, str, int]]:
        return [(m[1], m[2], m[3], int(m[4])) for m in TRANSITION.finditer(self.log())
                if instance is None or m[1] == instance]

    def state(self, instance: str) -> str | None:
        t = self.transitions(instance)
        return t[-1][2] if t else None

    def wait_state(self, instance: str, state: str, timeout: float = 10.0) -> None:
        try:
            netlab.wait_until(lambda: self.state(instance) == state, timeout)
        except Exception as exc:
            raise AssertionError(f"{self.name}/{instance} never reached {state}; log:\n{self.log()}") from exc


def addresses(node: netlab.Node, ifname: str = "eth0") -> set[str]:
    out = json.loads(node.run(["ip", "-j", "addr", "show", "dev", ifname]).stdout)
    return {a["local"] for link in out for a in link.get("addr_info", [])}


def wait_for(predicate, timeout: float = 10.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")
