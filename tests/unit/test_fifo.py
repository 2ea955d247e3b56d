"""The notify FIFO: keepalived's line format and opening rules, and no line ever dropped."""

from __future__ import annotations

import asyncio
import logging
import os
import pwd
import stat
import sys
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import pytest

from fastvrrp.config.model import Fifo, Globals, Script
from fastvrrp.daemon.fifo import FifoError, NotifyFifo, fifo_line, open_notify_fifos
from fastvrrp.daemon.notify import NotifyEvent, NotifyKind, NotifyState, priority_change_event

PIPE_CAPACITY = 65536  # Linux default pipe buffer: more than this makes the writer hit EAGAIN


def run(coro: Coroutine[Any, Any, Any], loop_factory: Callable[[], asyncio.AbstractEventLoop] | None = None) -> Any:
    if loop_factory is None:
        return asyncio.run(coro)
    loop = loop_factory()
    try:
        return loop.run_until_complete(coro)
    finally:
        loop.close()


def open_reader(path: Path) -> int:
    return os.open(path, os.O_RDONLY | os.O_NONBLOCK)


async def read_until(fd: int, fifo: NotifyFifo, want: int, timeout: float = 10.0) -> bytes:
    """Read from the FIFO, letting the loop flush the writer, until `want` bytes arrived."""
    got = bytearray()
    deadline = asyncio.get_running_loop().time() + timeout
    while len(got) < want and asyncio.get_running_loop().time() < deadline:
        try:
            got += os.read(fd, 65536)
        except BlockingIOError:
            await asyncio.sleep(0.001)
    return bytes(got)


def test_line_format_is_keepalived_s() -> None:
    assert fifo_line("INSTANCE", "VI_1", "MASTER", 100) == b'INSTANCE "VI_1" MASTER 100\n'
    assert fifo_line(NotifyKind.GROUP, "G", NotifyState.BACKUP, 0) == b'GROUP "G" BACKUP 0\n'


def test_lines_arrive_in_order_in_the_exact_format(tmp_path: Path) -> None:
    path = tmp_path / "notify.fifo"
    events = [
        NotifyEvent(NotifyKind.INSTANCE, "VI_1", NotifyState.MASTER, 100),
        NotifyEvent(NotifyKind.GROUP, "G1", NotifyState.BACKUP, 0),
        NotifyEvent(NotifyKind.INSTANCE, "VI_1", NotifyState.MASTER_RX_LOWER_PRI, 100),
        priority_change_event("VI_1", True, 90),
        priority_change_event("VI_2", False, 80),
        NotifyEvent(NotifyKind.INSTANCE, "VI_1", NotifyState.STOP, 90),
    ]
    expected = (b'INSTANCE "VI_1" MASTER 100\nGROUP "G1" BACKUP 0\nINSTANCE "VI_1" MASTER_RX_LOWER_PRI 100\n'
                b'INSTANCE "VI_1" MASTER_PRIORITY 90\nINSTANCE "VI_2" BACKUP_PRIORITY 80\nINSTANCE "VI_1" STOP 90\n')

    async def main() -> bytes:
        fifo = NotifyFifo(str(path))
        reader = open_reader(path)
        try:
            for ev in events:
                fifo.write_event(ev)
            return await read_until(reader, fifo, len(expected))
        finally:
            os.close(reader)
            await fifo.close()

    assert run(main()) == expected


@pytest.mark.parametrize("loop_factory", [None, "uvloop"])
def test_a_stalled_reader_gets_every_line_later(
        tmp_path: Path, caplog: pytest.LogCaptureFixture, loop_factory: str | None) -> None:
    path = tmp_path / "notify.fifo"
    lines = [fifo_line("INSTANCE", f"VI_{n}", "MASTER" if n % 2 else "BACKUP", n % 256) for n in range(5000)]
    total = sum(map(len, lines))
    assert total > 2 * PIPE_CAPACITY

    async def main() -> tuple[bytes, int]:
        fifo = NotifyFifo(str(path), stall_warning=100)
        reader = open_reader(path)  # opened, but nobody reads yet
        try:
            for line in lines:
                fifo.write_line(line)
            buffered = fifo.stats().buffered
            await asyncio.sleep(0.05)  # the loop runs; the pipe stays full
            got = await read_until(reader, fifo, total)
            assert fifo.stats().buffered == 0
            return got, buffered
        finally:
            os.close(reader)
            assert await fifo.close() == 0

    factory = None
    if loop_factory == "uvloop":
        factory = pytest.importorskip("uvloop").new_event_loop
    with caplog.at_level(logging.WARNING, logger="fastvrrp.notify.fifo"):
        got, buffered = run(main(), factory)
    assert buffered > 0  # EAGAIN really happened
    assert got == b"".join(lines)
    assert "reader stalled, 100 lines buffered" in caplog.text
    assert "reader caught up" in caplog.text


def test_close_reports_lines_a_missing_reader_never_took(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "notify.fifo"

    async def main() -> int:
        fifo = NotifyFifo(str(path))
        for n in range(5000):
            fifo.write_line(fifo_line("INSTANCE", f"VI_{n}", "STOP", 0))
        return await fifo.close(timeout=0.2)

    with caplog.at_level(logging.ERROR, logger="fastvrrp.notify.fifo"):
        lost = run(main())
    assert lost > 0
    assert f"{lost} lines not delivered" in caplog.text


def test_creates_the_fifo_mode_0644_and_removes_only_its_own(tmp_path: Path) -> None:
    created = tmp_path / "created.fifo"
    existing = tmp_path / "existing.fifo"
    os.mkfifo(existing, 0o600)

    async def main() -> None:
        ours = NotifyFifo(str(created))
        theirs = NotifyFifo(str(existing))
        st = os.stat(created)
        assert stat.S_ISFIFO(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o644
        assert ours.created and not theirs.created
        await ours.close()
        await theirs.close()

    old_umask = os.umask(0o077)  # the mode must not depend on our umask
    try:
        run(main())
    finally:
        os.umask(old_umask)
    assert not created.exists()
    assert stat.S_ISFIFO(os.stat(existing).st_mode)


@pytest.mark.parametrize("kind", ["file", "dir", "symlink"])
def test_a_path_that_is_not_a_fifo_is_refused(tmp_path: Path, kind: str) -> None:
    path = tmp_path / "notify.fifo"
    if kind == "file":
        path.write_text("keep me\n")
    elif kind == "dir":
        path.mkdir()
    else:
        os.mkfifo(tmp_path / "real.fifo")
        path.symlink_to(tmp_path / "real.fifo")
    with pytest.raises(FifoError, match="notify.fifo"):
        NotifyFifo(str(path))
    if kind == "file":
        assert path.read_text() == "keep me\n"


@pytest.mark.skipif(os.geteuid() != 0, reason="chown needs root")
def test_a_fifo_owned_by_someone_else_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "notify.fifo"
    os.mkfifo(path)
    os.chown(path, pwd.getpwnam("nobody").pw_uid, -1)
    with pytest.raises(FifoError, match="owned by uid"):
        NotifyFifo(str(path))


READER_SCRIPT = """
import signal, sys
events = []
signal.signal(signal.SIGTERM, lambda *_: events.append("TERM"))
with open(sys.argv[-1], "rb") as fifo:
    data = fifo.read()  # until EOF: every writer closed
with open(sys.argv[1], "w") as out:
    out.write(repr((sys.argv[2:], events, data)))
"""


def test_fifo_script_gets_the_path_then_sigterm_then_the_stop_lines_then_eof(tmp_path: Path) -> None:
    path = tmp_path / "notify.fifo"
    out = tmp_path / "out"
    script_file = tmp_path / "reader.py"
    script_file.write_text(READER_SCRIPT)

    async def main() -> int | None:
        fifo = NotifyFifo(str(path))
        fifo.start_script(Script((sys.executable, str(script_file), str(out), "extra")))
        pid = fifo.script_pid
        fifo.write_event(NotifyEvent(NotifyKind.INSTANCE, "VI_1", NotifyState.MASTER, 100))
        await asyncio.sleep(0.5)  # the interpreter starts and opens the FIFO
        fifo.terminate_script()  # keepalived's order at shutdown: SIGTERM, then STOP lines
        fifo.write_event(NotifyEvent(NotifyKind.INSTANCE, "VI_1", NotifyState.STOP, 100))
        fifo.write_event(NotifyEvent(NotifyKind.GROUP, "G1", NotifyState.STOP, 0))
        assert await fifo.close(timeout=1.0, script_grace=5.0) == 0
        return pid

    pid = run(main())
    assert pid is not None
    args, events, data = eval(out.read_text())  # noqa: S307 - our own repr
    assert args == ["extra", str(path)]
    assert events == ["TERM"]
    assert data == b'INSTANCE "VI_1" MASTER 100\nINSTANCE "VI_1" STOP 100\nGROUP "G1" STOP 0\n'


def test_open_notify_fifos_opens_both_and_skips_an_unusable_one(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    good = tmp_path / "vrrp.fifo"
    bad = tmp_path / "plain-file"
    bad.write_text("")

    async def main() -> list[str]:
        fifos = open_notify_fifos(Globals(notify_fifo=Fifo(str(bad)), vrrp_notify_fifo=Fifo(str(good))))
        paths = [f.path for f in fifos]
        for f in fifos:
            await f.close()
        return paths

    with caplog.at_level(logging.ERROR, logger="fastvrrp.notify.fifo"):
        assert run(main()) == [str(good)]
    assert "plain-file is not a FIFO" in caplog.text


def test_writing_to_a_closed_fifo_is_an_error(tmp_path: Path) -> None:
    async def main() -> None:
        fifo = NotifyFifo(str(tmp_path / "notify.fifo"))
        await fifo.close()
        with pytest.raises(ValueError, match="closed"):
            fifo.write_line(b"x\n")

    run(main())
