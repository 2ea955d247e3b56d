"""`fastvrrp check -f FILE [--json]` through the real CLI entry point."""

from __future__ import annotations

import json

import pytest

from fastvrrp.cli import main


def test_check_summary_exit_0(in_repo: object, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "-f", "examples/keepalived.conf"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0] == (
        "examples/keepalived.conf: OK: 3 instances, 6 VIPs, 1 script, 1 sync group, 0 warnings"
    )
    assert "FRONT: FRONT_V4, FRONT_V6" in out
    assert len(out.splitlines()) < 25  # one screen


def test_check_errors_exit_1(in_repo: object, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "-f", "tests/data/configs/broken/unknown_section.conf"]) == 1
    err = capsys.readouterr().err.splitlines()
    assert err == [
        "tests/data/configs/broken/unknown_section.conf:3: unknown keyword 'vrrp_strcit' in global_defs (did you mean 'vrrp_strict'?)",
        "tests/data/configs/broken/unknown_section.conf:5: unknown keyword 'vrrp_instanse' at top level (did you mean 'vrrp_instance'?)",
        "tests/data/configs/broken/unknown_section.conf: 2 error(s)",
    ]


def test_check_json_dumps_the_model(in_repo: object, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "-f", "examples/two-node-master.conf", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    (inst,) = data["instances"]
    assert (inst["name"], inst["state"], inst["priority"], inst["advert_int_cs"]) == ("VI_1", "MASTER", 100, 100)
    assert inst["source_ip"] == "192.168.121.51"
    assert inst["unicast_peers"] == [{"address": "192.168.121.52", "min_ttl": 0, "max_ttl": 255}]
    assert inst["notifies"]["master"]["argv"] == ["/etc/keepalived/notify.sh", "master"]
    assert inst["auth_pass"] == "********"  # never printed
    assert len(data["warnings"]) == 3


def test_check_config_id_option(in_repo: object, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "-f", "tests/data/configs/valid/main.conf", "-i", "lb1", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert {i["name"]: i["priority"] for i in data["instances"]} == {"VI_1": 200, "VI_2": 100}
