"""Notify scripts: keepalived's arguments and order, run in order per key, never blocking."""

from __future__ import annotations

import asyncio
import inspect
import logging
import os
import pwd
import random
import tempfile
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import pytest

import fastvrrp.daemon.notify as notify_mod
from fastvrrp.config import parse_text
from fastvrrp.config.model import Script
from fastvrrp.daemon.notify import (
    NotifyEvent,
    NotifyKind,
    NotifyRunner,
    NotifyState,
    ScriptUsers,
    group_event,
    instance_event,
    priority_change_event,
    rx_lower_pri_event,
    script_env,
)
from fastvrrp.proto.actions import State

CONFIG = """
vrrp_sync_group G1 {
    group {
        VI_1
    }
    notify_backup "/g_backup.sh gb"
    notify "/g_notify.sh"
}
vrrp_instance VI_1 {
    state MASTER
    interface eth0
    virtual_router_id 51
    priority 100
    virtual_ipaddress {
        192.0.2.1
    }
    notify_master "/master.sh m1 'two words'"
    notify_fault /fault.sh
    notify_stop /stop.sh
    notify "/x.sh arg1"
    notify_master_rx_lower_pri "/rx.sh lower"
}
vrrp_instance VI_2 {
    state BACKUP
    interface eth0
    virtual_router_id 52
    priority 90
    virtual_ipaddress {
        192.0.2.2
    }
    notify /n2.sh
    notify_deleted "/deleted.sh d"
}
"""

RECORDER = """#!/bin/sh
# recorder OUT SLEEP [words...]: sleep, then append the words as one line to OUT
out=$1
pause=$2
shift 2
[ "$pause" = 0 ] || sleep "$pause"
echo "$*" >> "$out"
"""


def run(coro: Coroutine[Any, Any, Any], loop_factory: Callable[[], asyncio.AbstractEventLoop] | None = None) -> Any:
    if loop_factory is None:
        return asyncio.run(coro)
    loop = loop_factory()
    try:
        return loop.run_until_complete(coro)
    finally:
        loop.close()


@pytest.fixture
def recorder(tmp_path: Path) -> str:
    path = tmp_path / "recorder.sh"
    path.write_text(RECORDER)
    path.chmod(0o755)
    return str(path)


def record(recorder: str, out: Path, pause: float | str, *words: str) -> Script:
    return Script((recorder, str(out), str(pause), *words))


def event(name: str, state: NotifyState = NotifyState.MASTER, priority: int = 100, *,
          script: Script | None = None, generic: Script | None = None) -> NotifyEvent:
    return NotifyEvent(NotifyKind.INSTANCE, name, state, priority, script, generic)


def shell(cmd: str) -> Script:
    return Script(("/bin/sh", "-c", cmd))


def gone_or_zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


# --- what runs: keepalived's scripts and arguments ----------------------------------


def test_generic_script_gets_four_arguments_after_its_configured_ones() -> None:
    config = parse_text(CONFIG)
    vi1 = next(i for i in config.instances if i.name == "VI_1")
    ev = instance_event(vi1, State.MASTER, 100)
    assert ev.commands() == (
        (vi1.notifies.master, ("/master.sh", "m1", "two words")),
        (vi1.notifies.generic, ("/x.sh", "arg1", "INSTANCE", "VI_1", "MASTER", "100")),
    )


def test_each_state_picks_its_own_script_and_backup_has_none_here() -> None:
    vi1 = next(i for i in parse_text(CONFIG).instances if i.name == "VI_1")
    assert instance_event(vi1, State.FAULT, 90).commands()[0][1] == ("/fault.sh",)
    assert instance_event(vi1, NotifyState.STOP, 0).commands()[0][1] == ("/stop.sh",)
    backup = instance_event(vi1, State.BACKUP, 100).commands()
    assert [argv for _, argv in backup] == [("/x.sh", "arg1", "INSTANCE", "VI_1", "BACKUP", "100")]


def test_init_state_has_no_notify() -> None:
    vi1 = next(i for i in parse_text(CONFIG).instances if i.name == "VI_1")
    with pytest.raises(ValueError):
        instance_event(vi1, State.INIT, 100)


def test_deleted_is_fault_unless_notify_deleted_as_in_keepalived() -> None:
    config = parse_text(CONFIG)
    vi1, vi2 = config.instances
    legacy = instance_event(vi1, NotifyState.DELETED, 100)
    assert legacy.state is NotifyState.FAULT
    assert legacy.commands()[0][1] == ("/fault.sh",)
    deleted = instance_event(vi2, NotifyState.DELETED, 90)
    assert [argv for _, argv in deleted.commands()] == [
        ("/deleted.sh", "d"), ("/n2.sh", "INSTANCE", "VI_2", "DELETED", "90")]


def test_group_notifies_report_priority_zero() -> None:
    group = parse_text(CONFIG).sync_groups[0]
    ev = group_event(group, State.BACKUP)
    assert [argv for _, argv in ev.commands()] == [
        ("/g_backup.sh", "gb"), ("/g_notify.sh", "GROUP", "G1", "BACKUP", "0")]


def test_rx_lower_pri_runs_its_script_without_arguments_and_no_generic() -> None:
    vi1 = next(i for i in parse_text(CONFIG).instances if i.name == "VI_1")
    ev = rx_lower_pri_event(vi1, 100)
    assert [argv for _, argv in ev.commands()] == [("/rx.sh", "lower")]
    assert ev.state == "MASTER_RX_LOWER_PRI"


def test_script_env_drops_loader_and_ifs_overrides() -> None:
    env = script_env({"PATH": "/bin", "LD_PRELOAD": "/evil.so", "LD_LIBRARY_PATH": "/x", "IFS": "/"})
    assert env == {"PATH": "/bin"}


# --- how it runs --------------------------------------------------------------------


def test_state_script_runs_before_generic_which_gets_the_four_arguments(tmp_path: Path, recorder: str) -> None:
    out = tmp_path / "out"

    async def main() -> None:
        runner = NotifyRunner()
        runner.submit("VI_1", event("VI_1", script=record(recorder, out, "0.05", "specific"),
                                    generic=record(recorder, out, 0, "arg1")))
        assert await runner.drain(10) == []

    run(main())
    assert out.read_text().splitlines() == ["specific", "arg1 INSTANCE VI_1 MASTER 100"]


@pytest.mark.parametrize("loop_factory", [None, "uvloop"])
def test_every_key_runs_its_transitions_in_submitted_order_under_load(
        tmp_path: Path, recorder: str, loop_factory: str | None) -> None:
    keys, transitions = (200, 5) if loop_factory is None else (50, 4)
    rng = random.Random(5)
    states = [NotifyState.MASTER, NotifyState.BACKUP, NotifyState.FAULT]
    expected: dict[int, list[str]] = {}

    async def main() -> NotifyRunner:
        runner = NotifyRunner(max_concurrency=32)
        for t in range(transitions):
            for k in range(keys):
                state = states[(k + t) % 3]
                pause = f"0.00{rng.randint(1, 9)}"
                runner.submit(("INSTANCE", f"VI_{k}"), event(
                    f"VI_{k}", state, t, generic=record(recorder, tmp_path / f"k{k}", pause)))
                expected.setdefault(k, []).append(f"INSTANCE VI_{k} {state} {t}")
        assert await runner.drain(120) == []
        return runner

    factory = None
    if loop_factory == "uvloop":
        uvloop = pytest.importorskip("uvloop")
        factory = uvloop.new_event_loop
    runner = run(main(), factory)
    for k in range(keys):
        assert (tmp_path / f"k{k}").read_text().splitlines() == expected[k]
    stats = runner.stats()
    assert stats.transitions_done == keys * transitions
    assert stats.scripts_failed == 0
    assert stats.max_backlog == transitions


def test_submit_is_synchronous_and_starts_no_process(monkeypatch: pytest.MonkeyPatch) -> None:
    spawned: list[tuple[str, ...]] = []
    real_spawn = notify_mod.spawn_script

    def counting_spawn(argv: tuple[str, ...], *args: Any, **kwargs: Any) -> Any:
        spawned.append(argv)
        return real_spawn(argv, *args, **kwargs)

    monkeypatch.setattr(notify_mod, "spawn_script", counting_spawn)
    assert not inspect.iscoroutinefunction(NotifyRunner.submit)

    async def main() -> None:
        runner = NotifyRunner(max_concurrency=16)
        tasks_before = len(asyncio.all_tasks())
        for n in range(1000):
            assert runner.submit(n, event(f"VI_{n}", generic=Script(("/bin/true",)))) is None
        # Nothing has run yet: no fork, no more tasks than the concurrency bound.
        assert spawned == []
        assert len(asyncio.all_tasks()) - tasks_before <= 16
        assert runner.stats().pending == 1000
        assert await runner.drain(60) == []
        assert len(spawned) == 1000

    run(main())


def _timed_spawns(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    spawned: list[float] = []
    real_spawn = notify_mod.spawn_script

    def timed_spawn(argv: tuple[str, ...], *args: Any, **kwargs: Any) -> Any:
        spawned.append(time.monotonic())
        return real_spawn(argv, *args, **kwargs)

    monkeypatch.setattr(notify_mod, "spawn_script", timed_spawn)
    return spawned


def _submit_every(runner: NotifyRunner, interval: float, count: int) -> Coroutine[Any, Any, list[float]]:
    async def go() -> list[float]:
        submitted = []
        for n in range(count):
            runner.submit(n, event(f"VI_{n}", generic=Script(("/bin/true",))))
            submitted.append(time.monotonic())
            await asyncio.sleep(interval)
        return submitted
    return go()


def test_no_script_starts_while_transitions_are_still_coming_in(monkeypatch: pytest.MonkeyPatch) -> None:
    """A peer's graceful stop hands its instances over one by one: their scripts wait
    for the takeovers, which must not share the CPU and the GIL with forks."""
    spawned = _timed_spawns(monkeypatch)

    async def main() -> list[float]:
        runner = NotifyRunner(max_concurrency=8, hold=0.02, max_hold=1.0)
        submitted = await _submit_every(runner, 0.005, 12)
        assert await runner.drain(30) == []
        return submitted

    submitted = run(main())
    assert len(spawned) == 12
    assert min(spawned) >= submitted[-1] + 0.02 - 0.002


def test_a_long_stream_of_transitions_holds_scripts_only_up_to_max_hold(monkeypatch: pytest.MonkeyPatch) -> None:
    spawned = _timed_spawns(monkeypatch)

    async def main() -> list[float]:
        runner = NotifyRunner(max_concurrency=8, hold=0.02, max_hold=0.06)
        submitted = await _submit_every(runner, 0.005, 80)  # 0.4 s of transitions
        assert await runner.drain(30) == []
        return submitted

    submitted = run(main())
    first = min(spawned)
    assert submitted[0] + 0.06 - 0.002 <= first < submitted[0] + 0.25
    assert first < submitted[-1]  # started while the stream went on


def test_fifo_only_events_are_not_queued() -> None:
    async def main() -> None:
        runner = NotifyRunner()
        runner.submit("VI_1", priority_change_event("VI_1", True, 90))
        assert runner.stats().pending == 0
        assert runner.backlog("VI_1") == 0

    run(main())


def test_hung_script_and_its_children_are_killed_then_the_next_transition_runs(
        tmp_path: Path, recorder: str, caplog: pytest.LogCaptureFixture) -> None:
    pids = tmp_path / "pids"
    out = tmp_path / "out"
    # Ignores SIGTERM (and so do its children: an ignored signal survives exec).
    hung = shell(f"trap '' TERM; sleep 60 & echo $$ $! > {pids}; wait")

    async def main() -> NotifyRunner:
        runner = NotifyRunner(timeout=0.5, kill_grace=0.2)
        runner.submit("VI_1", event("VI_1", script=hung))
        runner.submit("VI_1", event("VI_1", NotifyState.BACKUP, generic=record(recorder, out, 0)))
        assert await runner.drain(10) == []
        return runner

    started = time.monotonic()
    with caplog.at_level(logging.ERROR, logger="fastvrrp.notify"):
        runner = run(main())
    assert time.monotonic() - started < 5
    assert out.read_text() == "INSTANCE VI_1 BACKUP 100\n"
    shell_pid, child_pid = map(int, pids.read_text().split())
    assert gone_or_zombie(shell_pid) and gone_or_zombie(child_pid)
    assert runner.stats().scripts_timed_out == 1
    assert "timed out after 0.5 s" in caplog.text


def test_failed_script_logs_exit_status_and_stderr_tail(caplog: pytest.LogCaptureFixture) -> None:
    noisy = shell("head -c 6000 /dev/zero | tr '\\0' x >&2; echo >&2; echo the-end >&2; exit 7")

    async def main() -> NotifyRunner:
        runner = NotifyRunner()
        runner.submit("VI_1", event("VI_1", script=noisy))
        runner.submit("VI_2", event("VI_2", script=shell("kill -9 $$")))
        await runner.drain(10)
        return runner

    with caplog.at_level(logging.ERROR, logger="fastvrrp.notify"):
        runner = run(main())
    failed = [r.getMessage() for r in caplog.records if "VI_1" in r.getMessage()]
    assert len(failed) == 1
    assert "exit status 7" in failed[0] and failed[0].endswith("the-end")
    stderr = failed[0].split("stderr: ", 1)[1]
    assert 1000 < len(stderr) <= notify_mod.STDERR_TAIL_BYTES
    assert "INSTANCE VI_2 MASTER 100) failed: killed by SIGKILL" in caplog.text
    assert runner.stats().scripts_failed == 2


def test_unstartable_script_is_logged_and_the_generic_one_still_runs(
        tmp_path: Path, recorder: str, caplog: pytest.LogCaptureFixture) -> None:
    out = tmp_path / "out"

    async def main() -> None:
        runner = NotifyRunner()
        runner.submit("VI_1", event("VI_1", script=Script((str(tmp_path / "missing.sh"),)),
                                    generic=record(recorder, out, 0)))
        await runner.drain(10)

    with caplog.at_level(logging.ERROR, logger="fastvrrp.notify"):
        run(main())
    assert "missing.sh (INSTANCE VI_1 MASTER 100) could not start" in caplog.text
    assert out.read_text() == "INSTANCE VI_1 MASTER 100\n"


def test_concurrency_never_exceeds_the_bound(tmp_path: Path) -> None:
    log_file = tmp_path / "spans"
    span = shell(f"echo start $(date +%s%N) >> {log_file}; sleep 0.3; echo end $(date +%s%N) >> {log_file}")

    async def main() -> NotifyRunner:
        runner = NotifyRunner(max_concurrency=3)
        for k in range(9):
            runner.submit(k, event(f"VI_{k}", script=span))
        assert await runner.drain(30) == []
        return runner

    runner = run(main())
    marks = sorted((int(ts), kind) for kind, ts in (line.split() for line in log_file.read_text().splitlines()))
    running = peak = 0
    for _, kind in marks:  # "end" sorts before "start" at equal times: no false overlap
        running += 1 if kind == "start" else -1
        peak = max(peak, running)
    assert len(marks) == 18
    assert peak == 3  # the bound is reached (concurrent) and never passed
    assert runner.stats().max_running == 3


def test_drain_timeout_kills_running_scripts_and_returns_what_was_left(tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    slow = shell(f"echo $$ > {pid_file}; sleep 60")

    async def main() -> tuple[list[Any], NotifyRunner]:
        runner = NotifyRunner(timeout=30)
        events = [event("VI_1", state, script=slow) for state in (NotifyState.BACKUP, NotifyState.STOP)]
        for ev in events:
            runner.submit("VI_1", ev)
        left = await runner.drain(0.5)
        assert left == [("VI_1", events[0]), ("VI_1", events[1])]
        await asyncio.sleep(0.1)  # the killed script is reaped from the loop
        return left, runner

    started = time.monotonic()
    _, runner = run(main())
    assert time.monotonic() - started < 5
    assert gone_or_zombie(int(pid_file.read_text()))
    assert runner.stats().pending == 0


def test_long_backlog_for_one_key_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    async def main() -> None:
        runner = NotifyRunner(backlog_warning=5)
        for _ in range(6):
            runner.submit("VI_1", event("VI_1", script=Script(("/bin/true",))))
        await runner.drain(10)

    with caplog.at_level(logging.WARNING, logger="fastvrrp.notify"):
        run(main())
    warnings = [r for r in caplog.records if "transitions queued" in r.getMessage()]
    assert len(warnings) == 1 and "5 transitions queued for VI_1" in warnings[0].getMessage()


@pytest.mark.skipif(os.geteuid() != 0, reason="switching user needs root")
def test_script_runs_as_its_user_and_a_missing_user_is_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    # pytest's tmp_path sits under a 0700 directory; nobody needs a world-writable place.
    with tempfile.TemporaryDirectory() as shared:
        os.chmod(shared, 0o777)
        out = Path(shared) / "ids"
        ids = _ids_as_nobody_and_ghost(out, caplog)
    nobody = pwd.getpwnam("nobody")
    assert ids == [str(nobody.pw_uid), str(nobody.pw_gid)]
    assert caplog.text.count("user 'no_such_user_fastvrrp' does not exist") == 1


def _ids_as_nobody_and_ghost(out: Path, caplog: pytest.LogCaptureFixture) -> list[str]:
    whoami = Script(("/bin/sh", "-c", f"id -u >> {out}; id -g >> {out}"), user="nobody")
    ghost = Script(("/bin/true",), user="no_such_user_fastvrrp")

    async def main() -> None:
        runner = NotifyRunner()
        runner.submit("VI_1", event("VI_1", script=whoami))
        runner.submit("VI_2", event("VI_2", script=ghost))
        runner.submit("VI_2", event("VI_2", script=ghost))
        await runner.drain(10)

    with caplog.at_level(logging.ERROR, logger="fastvrrp.notify"):
        run(main())
    return out.read_text().split()


def test_global_script_user_applies_to_scripts_without_their_own() -> None:
    users = ScriptUsers("nobody", None, fallback_user=None)
    identity = users.identity(Script(("/bin/true",)))
    assert identity is not None and identity.uid == pwd.getpwnam("nobody").pw_uid
    if os.geteuid() == 0:  # running as ourselves needs no switch (and keeps Popen on vfork)
        assert users.identity(Script(("/bin/true",), user="root")) is None
    assert ScriptUsers(None, None, fallback_user="no_such_user_fastvrrp").identity(Script(("/bin/true",))) is None


def test_a_child_left_running_by_a_script_neither_delays_the_next_transition_nor_dies(
        tmp_path: Path, recorder: str) -> None:
    # As `notify_master "service foo start"` may leave a daemon holding our stderr pipe.
    pid_file = tmp_path / "pid"
    out = tmp_path / "out"
    starts_daemon = shell(f"sleep 30 & echo $! > {pid_file}")

    async def main() -> float:
        runner = NotifyRunner(timeout=10)
        runner.submit("VI_1", event("VI_1", script=starts_daemon))
        runner.submit("VI_1", event("VI_1", NotifyState.BACKUP, generic=record(recorder, out, 0)))
        started = time.monotonic()
        assert await runner.drain(10) == []
        elapsed = time.monotonic() - started
        runner.close()
        return elapsed

    elapsed = run(main())
    daemon = int(pid_file.read_text())
    try:
        assert elapsed < 3
        assert out.read_text() == "INSTANCE VI_1 BACKUP 100\n"
        assert not gone_or_zombie(daemon)
    finally:
        os.kill(daemon, 9)
