"""The README's main command, `fastvrrp demo`, works and leaves nothing behind."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from fastvrrp import netlab

pytestmark = pytest.mark.netns


def test_demo_elects_fails_over_and_cleans_up():
    reason = netlab.netns_usable()
    if reason:
        pytest.skip(reason)
    out = subprocess.run([sys.executable, "-m", "fastvrrp", "demo"], capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "election: r1 is MASTER, r2 is BACKUP" in out.stdout
    m = re.search(r"failover: r2 is MASTER; the client went ([\d.]+) ms without an answer "
                  r"\(Master_Down_Interval ([\d.]+) ms\)", out.stdout)
    assert m, out.stdout
    # A crash at a random moment: the outage is at most Master_Down_Interval plus the
    # time to install the VIP and GARP (slack for a loaded CI machine).
    assert 0 < float(m[1]) <= float(m[2]) + 100, out.stdout
    # Its lab is gone (only its own namespaces: other labs may come and go meanwhile).
    prefix = re.search(r"^lab (\S+):", out.stdout, re.M)
    assert prefix, out.stdout
    assert [ns for ns in netlab._netns_list() if ns.startswith(prefix[1] + "-")] == []
