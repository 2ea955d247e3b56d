"""The notify FIFO: keepalived's lines, and not one of them dropped.

The format and the opening are keepalived's (vrrp_notify.c `notify_fifo()`, core/notify.c
`fifo_open()`): `INSTANCE "VI_1" MASTER 100\\n`, `GROUP "G" BACKUP 0\\n`; the FIFO is
created with mode 0644 if missing and opened O_RDWR|O_NONBLOCK, so opening never waits
for a reader and a write never gets SIGPIPE when there is none. A path that exists but is
not a FIFO we (or the configured user) own is refused.

keepalived drops a line when the pipe is full (EAGAIN). Here the line is buffered in
order, flushed when the pipe is writable again (loop.add_writer), and a stalled reader
is reported: a warning when the buffer passes `stall_warning` lines (again at every
tenfold), and one when it has caught up. Writes are at most PIPE_BUF bytes and end on a
line boundary, so the kernel never splits a line between two writers.

`notify_fifo_script` is started with the FIFO path as its last argument (keepalived's
notify_fifo_script()), is sent SIGTERM at shutdown before the final STOP lines (as
keepalived's vrrp_terminate_phase1() does: script_killall() then notify_shutdown()), and
reads those lines until `close()` closes the FIFO and it sees EOF.
"""

from __future__ import annotations

import asyncio
import grp
import logging
import os
import pwd
import signal
import stat
import subprocess
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, replace
from itertools import islice
from typing import Protocol

from fastvrrp.config.model import Fifo, Globals, Script
from fastvrrp.daemon.notify import ScriptUsers, script_env, signal_script, spawn_script, wait_readable

__all__ = ["FifoError", "FifoEvent", "FifoStats", "NotifyFifo", "fifo_line", "open_notify_fifos"]

log = logging.getLogger("fastvrrp.notify.fifo")

FIFO_MODE = 0o644
PIPE_BUF = 4096  # writes up to this size are atomic on a pipe (pipe(7))
STALL_WARNING_LINES = 1000


class FifoError(Exception):
    """The FIFO cannot be used; the message names the path and the reason."""


class FifoEvent(Protocol):
    """What a line is made of (notify.NotifyEvent fits)."""

    @property
    def kind(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def state(self) -> str: ...
    @property
    def priority(self) -> int: ...


def fifo_line(kind: str, name: str, state: str, priority: int) -> bytes:
    """keepalived's `"%s \\"%s\\" %s %d\\n"`."""
    return f'{kind} "{name}" {state} {priority}\n'.encode()


@dataclass(slots=True)
class FifoStats:
    lines_written: int = 0  # handed to the kernel
    lines_delayed: int = 0  # had to wait in the buffer for the reader
    buffered: int = 0  # lines waiting now
    max_buffered: int = 0
    stalls: int = 0  # times the pipe filled up


class NotifyFifo:
    """One open notify FIFO. Create it inside the event loop that will flush it."""

    def __init__(self, path: str, *, user: str | None = None, group: str | None = None,
                 loop: asyncio.AbstractEventLoop | None = None, stall_warning: int = STALL_WARNING_LINES,
                 logger: logging.Logger | None = None) -> None:
        self.path = path
        self._loop = loop
        self._log = logger if logger is not None else log
        self._stall_warning = stall_warning
        self._next_warning = stall_warning
        self._warned = False
        self._buffer: deque[bytes] = deque()  # lines not yet written; the head may be a partial line
        self._writer_armed = False
        self._flushed: list[asyncio.Future[None]] = []
        self._stats = FifoStats()
        self._script: subprocess.Popen[bytes] | None = None
        self._script_pidfd = -1
        self._script_argv: tuple[str, ...] = ()
        try:
            owner = pwd.getpwnam(user) if user is not None else None
            owner_gid = grp.getgrnam(group).gr_gid if group is not None else None
        except KeyError as exc:
            raise FifoError(f"notify fifo {path}: no such user or group {exc}") from None
        self._owner_uid = owner.pw_uid if owner is not None else None
        if owner_gid is None and owner is not None:
            owner_gid = owner.pw_gid
        self.created = self._create(owner_gid)
        self._fd = self._open()

    def _create(self, owner_gid: int | None) -> bool:
        try:
            os.mkfifo(self.path, FIFO_MODE)
        except FileExistsError:
            return False
        except OSError as exc:
            raise FifoError(f"cannot create notify fifo {self.path}: {exc.strerror}") from None
        os.chmod(self.path, FIFO_MODE)  # exactly 0644 whatever our umask: a reader may be another user
        if self._owner_uid is not None or owner_gid is not None:
            try:
                os.chown(self.path, -1 if self._owner_uid is None else self._owner_uid,
                         -1 if owner_gid is None else owner_gid)
            except OSError as exc:
                self._log.warning("notify fifo %s: cannot set owner: %s", self.path, exc.strerror)
        return True

    def _open(self) -> int:
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOFOLLOW)
        except OSError as exc:
            self._unlink_if_created()
            raise FifoError(f"cannot open notify fifo {self.path}: {exc.strerror}") from None
        st = os.fstat(fd)
        reason = None
        if not stat.S_ISFIFO(st.st_mode):
            reason = "is not a FIFO"
        elif st.st_uid not in (os.geteuid(), self._owner_uid):
            # keepalived (fifo_open): an existing file may have been planted by someone else.
            reason = f"is owned by uid {st.st_uid}, not by us"
        if reason is not None:
            os.close(fd)
            raise FifoError(f"notify fifo {self.path} {reason}; not using it")
        return fd

    @property
    def closed(self) -> bool:
        return self._fd < 0

    def stats(self) -> FifoStats:
        return replace(self._stats, buffered=len(self._buffer))

    # --- writing ---

    def write_event(self, event: FifoEvent) -> None:
        self.write_line(fifo_line(event.kind, event.name, event.state, event.priority))

    def write_line(self, line: bytes) -> None:
        """Write one line now, or queue it behind earlier ones; never blocks, never drops."""
        if self._fd < 0:
            raise ValueError(f"notify fifo {self.path} is closed")
        if self._buffer:
            self._queue(line)
            return
        try:
            written = os.write(self._fd, line)
        except BlockingIOError:
            written = 0
        if written == len(line):
            self._stats.lines_written += 1
            return
        self._stats.stalls += 1
        self._queue(line[written:])

    def _queue(self, line: bytes) -> None:
        buffer = self._buffer
        buffer.append(line)
        self._stats.lines_delayed += 1
        n = len(buffer)
        if n > self._stats.max_buffered:
            self._stats.max_buffered = n
        if n >= self._next_warning:
            self._log.warning("notify fifo %s: reader stalled, %d lines buffered", self.path, n)
            self._warned = True
            self._next_warning *= 10
        if not self._writer_armed:
            if self._loop is None:
                self._loop = asyncio.get_running_loop()
            self._loop.add_writer(self._fd, self._flush)
            self._writer_armed = True

    def _flush(self) -> None:
        buffer = self._buffer
        while buffer:
            # Whole lines up to PIPE_BUF: atomic, so a line is never interleaved.
            chunk = [buffer[0]]
            size = len(chunk[0])
            for line in islice(buffer, 1, None):
                if size + len(line) > PIPE_BUF:
                    break
                chunk.append(line)
                size += len(line)
            data = b"".join(chunk) if len(chunk) > 1 else chunk[0]
            try:
                written = os.write(self._fd, data)
            except BlockingIOError:
                return
            except OSError as exc:
                self._log.error("notify fifo %s: write failed: %s; %d lines kept", self.path, exc.strerror, len(buffer))
                return
            while written and written >= len(buffer[0]):
                written -= len(buffer.popleft())
                self._stats.lines_written += 1
            if written:
                buffer[0] = buffer[0][written:]  # only a line longer than PIPE_BUF gets here
        self._disarm()
        if self._warned:
            self._log.warning("notify fifo %s: reader caught up, buffer drained", self.path)
            self._warned = False
        self._next_warning = self._stall_warning
        flushed, self._flushed = self._flushed, []
        for fut in flushed:
            if not fut.done():
                fut.set_result(None)

    def _disarm(self) -> None:
        if self._writer_armed:
            assert self._loop is not None
            self._loop.remove_writer(self._fd)
            self._writer_armed = False

    async def flush(self, timeout: float | None) -> bool:
        """Wait until every buffered line is in the pipe; False at the timeout."""
        if not self._buffer:
            return True
        assert self._loop is not None
        fut: asyncio.Future[None] = self._loop.create_future()
        self._flushed.append(fut)
        done, _ = await asyncio.wait((fut,), timeout=timeout)
        return bool(done)

    # --- the FIFO script ---

    def start_script(self, script: Script, *, users: ScriptUsers | None = None,
                     env: Mapping[str, str] | None = None) -> None:
        """Start `script` with the FIFO path appended; its exit is logged, not restarted."""
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
        argv = (*script.argv, self.path)
        identity = (users if users is not None else ScriptUsers()).identity(script)  # LookupError: caller logs
        proc = spawn_script(argv, identity, env if env is not None else script_env(), stderr=None)
        self._script, self._script_argv = proc, argv
        self._script_pidfd = os.pidfd_open(proc.pid)
        self._loop.add_reader(self._script_pidfd, self._script_exited)

    @property
    def script_pid(self) -> int | None:
        return self._script.pid if self._script is not None and self._script.returncode is None else None

    def _script_exited(self) -> None:
        assert self._loop is not None and self._script is not None
        self._loop.remove_reader(self._script_pidfd)
        os.close(self._script_pidfd)
        self._script_pidfd = -1
        status = self._script.wait()
        self._log.info("notify fifo script %s terminated (status %d)", " ".join(self._script_argv), status)

    def terminate_script(self) -> None:
        """SIGTERM the script's process group; at shutdown, before the STOP lines."""
        if self._script is not None and self._script_pidfd >= 0:
            signal_script(self._script.pid, self._script_pidfd, signal.SIGTERM)

    # --- closing ---

    async def close(self, timeout: float = 1.0, script_grace: float = 1.0) -> int:
        """Flush (up to `timeout`), unlink if we created it, close; returns lines undelivered.

        Then the script, which sees EOF, gets `script_grace` to exit before SIGKILL.
        """
        if self._fd < 0:
            return 0
        if not await self.flush(timeout):
            self._log.error("notify fifo %s: reader stalled at shutdown, %d lines not delivered",
                            self.path, len(self._buffer))
        lost = len(self._buffer)
        self._disarm()
        self._buffer.clear()
        # Unlink before closing (keepalived fifo_close()): a script that reopens the FIFO
        # in a loop must not find it again.
        self._unlink_if_created()
        os.close(self._fd)
        self._fd = -1
        await self._stop_script(script_grace)
        return lost

    async def _stop_script(self, grace: float) -> None:
        if self._script is None or self._script_pidfd < 0:
            return
        assert self._loop is not None
        pidfd = self._script_pidfd
        self._loop.remove_reader(pidfd)
        if not await wait_readable(self._loop, pidfd, grace):
            signal_script(self._script.pid, self._script_pidfd, signal.SIGTERM)
            if not await wait_readable(self._loop, pidfd, grace):
                self._log.warning("notify fifo script %s ignored SIGTERM; killing it", " ".join(self._script_argv))
        signal_script(self._script.pid, pidfd, signal.SIGKILL)  # unreaped leader: the group id is still ours
        if await wait_readable(self._loop, pidfd, grace):
            self._script_exited()
        else:
            self._log.error("notify fifo script %s still alive after SIGKILL", " ".join(self._script_argv))
            self._loop.add_reader(pidfd, self._script_exited)

    def _unlink_if_created(self) -> None:
        if self.created:
            try:
                os.unlink(self.path)
            except FileNotFoundError:
                pass
            self.created = False


def open_notify_fifos(globals_: Globals, *, loop: asyncio.AbstractEventLoop | None = None,
                      users: ScriptUsers | None = None, logger: logging.Logger | None = None) -> list[NotifyFifo]:
    """Open `notify_fifo` and `vrrp_notify_fifo` and start their scripts.

    A FIFO that cannot be used is logged and left out, as keepalived does.
    """
    logger_ = logger if logger is not None else log
    if users is None:
        users = ScriptUsers(globals_.script_user, globals_.script_group)
    out: list[NotifyFifo] = []
    pairs: tuple[tuple[Fifo | None, Script | None], ...] = (
        (globals_.notify_fifo, globals_.notify_fifo_script),
        (globals_.vrrp_notify_fifo, globals_.vrrp_notify_fifo_script),
    )
    for conf, script in pairs:
        if conf is None:
            continue
        try:
            fifo = NotifyFifo(conf.path, user=conf.user, group=conf.group, loop=loop, logger=logger)
        except FifoError as exc:
            logger_.error("%s", exc)
            continue
        if script is not None:
            try:
                fifo.start_script(script, users=users)
            except (LookupError, OSError) as exc:
                logger_.error("notify fifo script %s not started: %s", " ".join(script.argv), exc)
        out.append(fifo)
    return out
