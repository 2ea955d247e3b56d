"""Fixtures of the interop suite: a two-router lab, peers that are always stopped, skips.

Lab: nodes "a" (192.0.2.1, 2001:db8::1, fe80::ff:fe00:101) and "b" (192.0.2.2,
2001:db8::2, fe80::ff:fe00:201) on one bridge; captures are taken on the bridge itself
in the switch namespace (promiscuous: it sees unicast between the routers too).
"""

from __future__ import annotations

import shutil

import pytest

from fastvrrp import netlab

import peers


@pytest.fixture(scope="session")
def netns_ok() -> None:
    reason = netlab.netns_usable()
    if reason:
        pytest.skip(reason)


@pytest.fixture(scope="session")
def keepalived_ok(netns_ok) -> None:
    if shutil.which("keepalived") is None:
        pytest.skip("keepalived is not installed (CI installs Debian's keepalived package)")


@pytest.fixture(scope="session")
def frr_ok(netns_ok) -> None:
    reason = peers.frr_missing()
    if reason:
        pytest.skip(reason + " (CI installs Debian's frr package)")


@pytest.fixture
def lab(tmp_path, netns_ok):
    made: list[peers.Peer] = []
    with netlab.Lab() as lab:
        lab.tmp = tmp_path
        lab.peers = made
        lab.node("a", ["192.0.2.1/24", "2001:db8::1/64"])
        lab.node("b", ["192.0.2.2/24", "2001:db8::2/64"])
        try:
            yield lab
        finally:
            # Stop our daemons before the lab deletes their namespaces: FRR leaves pid
            # files and sockets in /var/run/frr/<pathspace>, and its logs are copied out.
            errors = []
            for p in reversed(made):
                try:
                    p.stop()
                except Exception as exc:  # noqa: BLE001 - clean up the others anyway
                    errors.append(exc)
            if errors:
                raise errors[0]
