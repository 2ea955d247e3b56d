"""`fastvrrp run --max-notify-scripts N`: parsed, validated, and handed through Service
to the NotifyRunner that bounds how many notify scripts run at once."""

from __future__ import annotations

import asyncio

import pytest

from fastvrrp import cli
from fastvrrp.config import parse_text
from fastvrrp.daemon import main as daemon_main
from fastvrrp.daemon import service as service_mod

CONFIG = """
vrrp_instance VI_1 {
    interface lo
    virtual_router_id 51
    priority 100
    virtual_ipaddress {
        192.0.2.10
    }
}
"""


def parse(*args: str):
    return cli.build_parser().parse_args(["run", *args])


def test_default_is_32():
    assert parse().max_notify_scripts == 32 == daemon_main.DEFAULT_MAX_NOTIFY_SCRIPTS


def test_value_is_parsed():
    assert parse("--max-notify-scripts", "8").max_notify_scripts == 8
    assert parse("--max-notify-scripts=1").max_notify_scripts == 1


@pytest.mark.parametrize("bad, message", [
    ("0", "must be at least 1, not 0"),
    ("-3", "must be at least 1, not -3"),
    ("many", "'many' is not a whole number"),
    ("2.5", "'2.5' is not a whole number"),
])
def test_bad_values_are_a_usage_error(bad, message, capsys):
    with pytest.raises(SystemExit) as exc:
        parse("--max-notify-scripts", bad)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "argument --max-notify-scripts" in err and message in err


def test_help_documents_it(capsys):
    with pytest.raises(SystemExit):
        cli.main(["run", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "--max-notify-scripts N" in out
    assert "at most N notify scripts at once" in out and "default: 32" in out


def test_service_hands_it_to_the_notify_runner():
    loop = asyncio.new_event_loop()
    try:
        config = parse_text(CONFIG)
        assert service_mod.Service(config, loop).notifier.max_concurrency == 32
        assert service_mod.Service(config, loop, max_notify_scripts=3).notifier.max_concurrency == 3
        with pytest.raises(ValueError, match="at least 1"):
            service_mod.Service(config, loop, max_notify_scripts=0)
    finally:
        loop.close()


def test_run_passes_the_option_to_service(tmp_path, monkeypatch):
    """`fastvrrp run` end to end up to the service: the parsed value reaches Service."""
    conf = tmp_path / "keepalived.conf"
    conf.write_text(CONFIG)
    seen: dict[str, object] = {}

    class FakeService:
        def __init__(self, config, loop, **kwargs) -> None:
            seen.update(kwargs)

        def open(self) -> None:
            raise OSError("stop here: nothing is opened in a unit test")

        def close(self) -> None:
            seen["closed"] = True

    monkeypatch.setattr(service_mod, "Service", FakeService)
    args = parse("-f", str(conf), "--control", "", "--max-notify-scripts", "5")
    assert daemon_main.run(args) == 1
    assert seen["max_notify_scripts"] == 5 and seen["closed"] is True
