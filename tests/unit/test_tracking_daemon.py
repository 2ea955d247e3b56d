"""TrackingEngine with real scripts, files and asyncio: rise/fall on real exits, timeouts
that kill the process group, track files seen through inotify (or polling), interface
events, start-up reports and stop()."""

from __future__ import annotations

import asyncio
import logging
import os
import stat
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import pytest

from fastvrrp.config import parse_text
from fastvrrp.config.model import Config
from fastvrrp.daemon.notify import ScriptUsers
from fastvrrp.daemon.tracking import TrackingEngine
from fastvrrp.proto.tracking import ScriptState

Change = tuple[str, frozenset[str], int]


def run(coro: Coroutine[Any, Any, Any], loop_factory: Callable[[], asyncio.AbstractEventLoop] | None = None) -> Any:
    if loop_factory is None:
        return asyncio.run(coro)
    loop = loop_factory()
    try:
        return loop.run_until_complete(coro)
    finally:
        loop.close()


def write_script(path: Path, body: str) -> str:
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return str(path)


def instance_block(name: str, vrid: int, trackers: str, priority: int = 100) -> str:
    return f"""
vrrp_instance {name} {{
    interface lo
    virtual_router_id {vrid}
    priority {priority}
    virtual_ipaddress {{
        192.0.2.{vrid}
    }}
{trackers}
}}
"""


class Recorder:
    """on_change: keeps the calls and wakes waiters."""

    def __init__(self) -> None:
        self.changes: list[Change] = []
        self._event = asyncio.Event()
        self.hook: Callable[[Change], None] | None = None

    def __call__(self, name: str, reasons: frozenset[str], priority: int) -> None:
        change = (name, reasons, priority)
        self.changes.append(change)
        if self.hook is not None:
            self.hook(change)
        self._event.set()

    async def wait_for(self, predicate: Callable[[Change], bool], timeout: float) -> Change:
        """The first matching change made after this call."""
        deadline = time.monotonic() + timeout
        seen = len(self.changes)
        while True:
            for change in self.changes[seen:]:
                if predicate(change):
                    return change
            seen = len(self.changes)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"no matching change within {timeout} s; got {self.changes}")
            self._event.clear()
            try:
                await asyncio.wait_for(self._event.wait(), remaining)
            except asyncio.TimeoutError:
                pass


def engine_for(config: Config, recorder: Recorder, **kwargs: Any) -> TrackingEngine:
    return TrackingEngine(config, recorder, users=ScriptUsers(fallback_user=None), **kwargs)


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is dead for our purpose.
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][0] != "Z"
    except (FileNotFoundError, IndexError):
        return False


# --- vrrp_script ------------------------------------------------------------------------


def test_script_flips_outcome_after_fall_failures_and_back_after_rise_successes(tmp_path: Path) -> None:
    rc_file = tmp_path / "rc"
    rc_file.write_text("0\n")
    log_file = tmp_path / "runs"
    script = write_script(tmp_path / "check.sh", f'rc=$(cat {rc_file}); echo $rc >> {log_file}; exit $rc\n')
    config = parse_text(f"""
vrrp_script chk {{
    script "{script}"
    interval 0.05
    rise 3
    fall 2
}}
""" + instance_block("VI_1", 1, "    track_script {\n        chk\n    }"))

    def runs() -> list[str]:
        return log_file.read_text().split() if log_file.exists() else []

    async def main() -> None:
        recorder = Recorder()
        snapshots: list[list[str]] = []
        recorder.hook = lambda change: snapshots.append(runs())
        engine = engine_for(config, recorder)
        engine.start()
        assert recorder.changes == [("VI_1", frozenset({"track_script chk has no result yet"}), 100)]
        try:
            await recorder.wait_for(lambda c: c == ("VI_1", frozenset(), 100), 2)
            assert snapshots[-1] == ["0"]  # one success is enough at start
            rc_file.write_text("1\n")
            await recorder.wait_for(lambda c: c[1] == frozenset({"track_script chk failed"}), 2)
            trailing = snapshots[-1][len(snapshots[-1]) - snapshots[-1][::-1].index("0"):]
            assert trailing == ["1", "1"]  # exactly `fall` failures
            assert engine.outcome("VI_1") == (frozenset({"track_script chk failed"}), 100)
            rc_file.write_text("0\n")
            await recorder.wait_for(lambda c: c == ("VI_1", frozenset(), 100), 2)
            after = snapshots[-1]
            assert after[-3:] == ["0", "0", "0"] and after[-4] == "1"  # exactly `rise` successes
            assert engine.script_state("chk") is ScriptState.OK
        finally:
            await engine.stop()

    run(main())


def test_weighted_script_moves_priority(tmp_path: Path) -> None:
    flag = tmp_path / "ok"
    script = write_script(tmp_path / "check.sh", f"test -e {flag}\n")
    config = parse_text(f"""
vrrp_script chk {{
    script "{script}"
    interval 0.05
    weight 25
}}
""" + instance_block("VI_1", 1, "    track_script {\n        chk\n    }"))

    async def main() -> None:
        recorder = Recorder()
        engine = engine_for(config, recorder)
        engine.start()
        assert recorder.changes == []  # weighted, no result yet: nothing to report
        try:
            flag.touch()
            await recorder.wait_for(lambda c: c == ("VI_1", frozenset(), 125), 2)
            flag.unlink()
            await recorder.wait_for(lambda c: c == ("VI_1", frozenset(), 100), 2)
        finally:
            await engine.stop()

    run(main())


def test_hung_script_times_out_and_its_process_group_is_killed(tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    script = write_script(tmp_path / "hang.sh", f"sleep 30 &\necho $$ $! > {pids}\nwait\n")
    config = parse_text(f"""
vrrp_script chk {{
    script "{script}"
    interval 0.1
    timeout 0.2
}}
""" + instance_block("VI_1", 1, "    track_script {\n        chk\n    }"))

    async def main() -> None:
        recorder = Recorder()
        engine = engine_for(config, recorder)
        started = time.monotonic()
        engine.start()
        try:
            await recorder.wait_for(lambda c: c[1] == frozenset({"track_script chk failed"}), 2)
            assert time.monotonic() - started >= 0.2
            shell, child = map(int, pids.read_text().split())
            for _ in range(100):
                if not pid_alive(shell) and not pid_alive(child):
                    break
                await asyncio.sleep(0.02)
            assert not pid_alive(shell) and not pid_alive(child)
        finally:
            await engine.stop()

    run(main())


def test_script_ignoring_sigterm_is_killed_after_the_grace(tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    script = write_script(tmp_path / "stubborn.sh", f"trap '' TERM\necho $$ > {pid_file}\nwhile :; do sleep 0.05; done\n")
    config = parse_text(f"""
vrrp_script chk {{
    script "{script}"
    interval 5
    timeout 0.1
}}
""" + instance_block("VI_1", 1, "    track_script {\n        chk\n    }"))

    async def main() -> None:
        recorder = Recorder()
        engine = engine_for(config, recorder, kill_grace_s=0.2)
        engine.start()
        try:
            await recorder.wait_for(lambda c: c[1] == frozenset({"track_script chk failed"}), 2)
            pid = int(pid_file.read_text())
            await asyncio.sleep(0.1)
            assert pid_alive(pid)  # SIGTERM ignored, still within the grace
            for _ in range(100):
                if not pid_alive(pid):
                    break
                await asyncio.sleep(0.02)
            assert not pid_alive(pid)
        finally:
            await engine.stop()

    run(main())


def test_missing_script_is_a_failure_logged_once(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    config = parse_text(f"""
vrrp_script chk {{
    script "{tmp_path}/does-not-exist"
    interval 0.02
}}
""" + instance_block("VI_1", 1, "    track_script {\n        chk\n    }"))

    async def main() -> None:
        recorder = Recorder()
        engine = engine_for(config, recorder)
        engine.start()
        try:
            await recorder.wait_for(lambda c: c[1] == frozenset({"track_script chk failed"}), 2)
            await asyncio.sleep(0.2)  # several more runs
        finally:
            await engine.stop()

    with caplog.at_level(logging.ERROR, logger="fastvrrp.tracking"):
        run(main())
    errors = [r for r in caplog.records if "cannot run" in r.getMessage()]
    assert len(errors) == 1


def test_stop_kills_a_running_script(tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    script = write_script(tmp_path / "slow.sh", f"echo $$ > {pid_file}\nexec sleep 30\n")
    config = parse_text(f"""
vrrp_script chk {{
    script "{script}"
    interval 60
    timeout 60
}}
""" + instance_block("VI_1", 1, "    track_script {\n        chk\n    }"))

    async def main() -> int:
        engine = engine_for(config, Recorder())
        engine.start()
        for _ in range(200):
            if pid_file.exists() and pid_file.read_text().strip():
                break
            await asyncio.sleep(0.01)
        pid = int(pid_file.read_text())
        assert pid_alive(pid)
        await engine.stop()
        for _ in range(100):
            if not pid_alive(pid):
                break
            await asyncio.sleep(0.02)
        return pid

    pid = run(main())
    assert not pid_alive(pid)


@pytest.mark.parametrize("loop_factory", [None, "uvloop"])
def test_slow_script_skips_runs_instead_of_piling_up(tmp_path: Path, loop_factory: str | None) -> None:
    log_file = tmp_path / "runs"
    script = write_script(tmp_path / "slow.sh", f"echo start >> {log_file}\nsleep 0.25\n")
    config = parse_text(f"""
vrrp_script chk {{
    script "{script}"
    interval 0.05
    timeout 1
}}
""" + instance_block("VI_1", 1, "    track_script {\n        chk\n    }"))
    factory = None
    if loop_factory == "uvloop":
        factory = pytest.importorskip("uvloop").new_event_loop

    async def main() -> None:
        recorder = Recorder()
        engine = engine_for(config, recorder)
        engine.start()
        try:
            await recorder.wait_for(lambda c: c == ("VI_1", frozenset(), 100), 2)
            await asyncio.sleep(0.6)
        finally:
            await engine.stop()

    run(main(), factory)
    # ~0.85 s of 0.25 s runs: never two at once, so at most 4 starts (20 if not skipped).
    assert 2 <= len(log_file.read_text().split()) <= 4


# --- track_file -------------------------------------------------------------------------


@pytest.mark.parametrize("use_inotify", [True, False])
def test_track_file_value_change_is_seen_promptly(tmp_path: Path, use_inotify: bool) -> None:
    tracked = tmp_path / "weight"
    config = parse_text(f"""
track_file tf {{
    file "{tracked}"
    weight 2
    init_file 5
}}
""" + instance_block("VI_1", 1, "    track_file {\n        tf\n    }"))

    async def main() -> None:
        recorder = Recorder()
        engine = engine_for(config, recorder, use_inotify=use_inotify, poll_interval_s=0.05)
        engine.start()
        try:
            assert tracked.read_text() == "5\n"  # init_file created it
            assert recorder.changes == [("VI_1", frozenset(), 110)]  # reported at start
            tracked.write_text("-3\n")
            await recorder.wait_for(lambda c: c == ("VI_1", frozenset(), 94), 1)
            tracked.write_text("-200\n")
            await recorder.wait_for(lambda c: c[1] == frozenset({"track_file tf = -200 (weight 2)"}), 1)
            tracked.unlink()  # a vanished file reads as 0
            await recorder.wait_for(lambda c: c == ("VI_1", frozenset(), 100), 1)
            replacement = tmp_path / "weight.new"
            replacement.write_text("7")
            replacement.rename(tracked)
            await recorder.wait_for(lambda c: c == ("VI_1", frozenset(), 114), 1)
            assert engine.outcome("VI_1") == (frozenset(), 114)
        finally:
            await engine.stop()

    run(main())


def test_unweighted_track_file_faults_on_non_zero(tmp_path: Path) -> None:
    tracked = tmp_path / "state"
    tracked.write_text("3\n")
    config = parse_text(f"""
track_file tf {{
    file "{tracked}"
    weight 0
    init_file 0
}}
""" + instance_block("VI_1", 1, "    track_file {\n        tf\n    }"))

    async def main() -> None:
        recorder = Recorder()
        engine = engine_for(config, recorder)
        engine.start()
        try:
            assert recorder.changes == [("VI_1", frozenset({"track_file tf = 3"}), 100)]  # not overwritten
            tracked.write_text("0\n")
            await recorder.wait_for(lambda c: c == ("VI_1", frozenset(), 100), 1)
        finally:
            await engine.stop()

    run(main())


def test_init_file_overwrite(tmp_path: Path) -> None:
    tracked = tmp_path / "state"
    tracked.write_text("9\n")
    config = parse_text(f"""
track_file tf {{
    file "{tracked}"
    init_file 4 overwrite
}}
""" + instance_block("VI_1", 1, "    track_file {\n        tf\n    }"))

    async def main() -> None:
        recorder = Recorder()
        engine = engine_for(config, recorder)
        engine.start()
        await engine.stop()
        assert recorder.changes == [("VI_1", frozenset(), 104)]

    run(main())
    assert tracked.read_text() == "4\n"


def test_reload_keeps_script_results_and_does_not_overwrite_init_file(tmp_path: Path) -> None:
    tracked = tmp_path / "state"
    text = f"""
vrrp_script chk {{
    script "/bin/false"
    interval 30
}}
track_file tf {{
    file "{tracked}"
    init_file 4 overwrite
}}
""" + instance_block("VI_1", 1, "    track_script {\n        chk\n    }\n    track_file {\n        tf\n    }")
    config = parse_text(text)

    async def main() -> list[Change]:
        first = Recorder()
        old = engine_for(config, first)
        old.start()
        await first.wait_for(lambda c: "track_script chk failed" in c[1], 2)
        await old.stop()
        tracked.write_text("6\n")
        second = Recorder()
        new = engine_for(parse_text(text.replace("interval 30", "interval 30\n    rise 2")), second, previous=old)
        new.start()  # the first run's result comes later: the report is the carried state
        await new.stop()
        return second.changes

    changes = run(main())
    assert changes == [("VI_1", frozenset({"track_script chk failed"}), 106)]
    assert tracked.read_text() == "6\n"


def test_track_file_in_missing_directory_is_not_tracked(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    config = parse_text(f"""
track_file tf {{
    file "{tmp_path}/nodir/state"
    weight 0 reverse
}}
""" + instance_block("VI_1", 1, "    track_file {\n        tf\n    }"))

    async def main() -> None:
        recorder = Recorder()
        engine = engine_for(config, recorder)
        engine.start()
        await engine.stop()
        # With reverse, a tracked 0 would be a fault; keepalived drops the file instead.
        assert recorder.changes == []

    with caplog.at_level(logging.ERROR, logger="fastvrrp.tracking"):
        run(main())
    assert any("does not exist" in r.getMessage() for r in caplog.records)


# --- track_interface --------------------------------------------------------------------


def test_interface_changed_drives_track_interface() -> None:
    config = parse_text(instance_block("VI_1", 1, "    track_interface {\n        eth1\n        eth2 weight -20\n    }")
                        + instance_block("VI_2", 2, "    track_interface {\n        eth2 weight 10 reverse\n    }"))

    async def main() -> None:
        recorder = Recorder()
        engine = engine_for(config, recorder)
        assert engine.tracked_interfaces() == frozenset({"eth1", "eth2"})
        engine.interface_changed("eth1", False)  # before start: part of the first report
        assert recorder.changes == []
        engine.start()
        assert recorder.changes == [
            ("VI_1", frozenset({"track_interface eth1 down"}), 100),
            ("VI_2", frozenset(), 90),  # reverse: up subtracts
        ]
        recorder.changes.clear()
        engine.interface_changed("eth2", False)
        assert recorder.changes == [
            ("VI_1", frozenset({"track_interface eth1 down"}), 80),
            ("VI_2", frozenset(), 100),
        ]
        engine.interface_changed("eth2", True)
        engine.interface_changed("eth1", True)
        assert recorder.changes[-1] == ("VI_1", frozenset(), 100)
        assert engine.outcome("VI_2") == (frozenset(), 90)
        recorder.changes.clear()
        engine.interface_changed("eth1", True)  # no change, no call
        assert recorder.changes == []
        await engine.stop()

    run(main())


def test_on_change_exception_is_logged_and_tracking_goes_on(caplog: pytest.LogCaptureFixture) -> None:
    config = parse_text(instance_block("VI_1", 1, "    track_interface {\n        eth1\n    }"))
    calls: list[bool] = []

    def broken(name: str, reasons: frozenset[str], priority: int) -> None:
        calls.append(bool(reasons))
        raise RuntimeError("router bug")

    async def main() -> None:
        engine = TrackingEngine(config, broken, users=ScriptUsers(fallback_user=None))
        engine.start()
        engine.interface_changed("eth1", False)
        engine.interface_changed("eth1", True)
        await engine.stop()

    with caplog.at_level(logging.ERROR, logger="fastvrrp.tracking"):
        run(main())
    assert calls == [True, False]
    assert sum("on_change" in r.getMessage() for r in caplog.records) == 2
