"""Notify scripts with keepalived's arguments, run in order per instance, never blocking.

What runs is keepalived's (vrrp_notify.c `send_instance_notifies()`,
`send_group_notifies()`, `send_event_notify()`, `notify_script_exec()`): on a transition
the state's own script (`notify_master`, ...) with its configured argv, then the generic
`notify` script with `INSTANCE|GROUP name STATE priority` appended (a group's priority
is always 0).

How it runs is not keepalived's. keepalived forks every script inline and never waits,
so two quick transitions can finish out of order (keepalived #996, #2158, #2389), and
only STOP scripts get a timer (1 s, then SIGKILL of the process group). Here:

- `NotifyRunner.submit()` is synchronous and O(1): it queues the event and returns; the
  state machine never waits for a fork.
- Per key (instance or group) the events run strictly in order: one transition's
  scripts have exited (or were killed at the timeout) before the next one's start.
- Across keys at most `max_concurrency` scripts run at once. Processes are started from
  one helper thread (Popen waits there until the child has exec'd), so a storm of
  transitions does not hold the loop, and the adverts and timers it serves, for forks.
- A script that outlives `timeout` gets SIGTERM on its whole process group, then SIGKILL
  after `kill_grace`. A failure is logged with the exit status and the stderr tail.
- Scripts wait while transitions are still coming in: a script starts once no event
  has been submitted for `hold` (2 ms), or `max_hold` (50 ms) after the first event of
  the burst, whichever is first. A graceful stop of a peer with many instances makes
  them take over one by one over tens of ms (its priority-0 adverts arrive 35-70 us
  apart); forks, script processes and their bookkeeping on the loop would otherwise
  compete with the takeovers still due, for the CPU and the GIL.

Processes are spawned with `subprocess.Popen` (vfork when no user switch is needed) and
watched through a pidfd on the loop, not through asyncio's subprocess layer: uvloop
silently ignores Popen's `user=`/`group=` arguments, asyncio 3.11's `Process.wait()` does
not return while a backgrounded grandchild still holds the stderr pipe, and a pidfd lets
us kill a timed-out process group before reaping its leader, so the group id cannot have
been reused.
"""

from __future__ import annotations

import asyncio
import enum
import grp
import logging
import os
import pwd
import shlex
import signal
import subprocess
from collections import deque
from collections.abc import Callable, Hashable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace

from fastvrrp.config.model import Instance, Script, SyncGroup
from fastvrrp.net.scheduling import script_thread
from fastvrrp.proto.actions import State

__all__ = [
    "DEFAULT_SCRIPT_USER",
    "NotifyEvent",
    "NotifyKind",
    "NotifyRunner",
    "NotifyState",
    "NotifyStats",
    "ScriptIdentity",
    "ScriptUsers",
    "group_event",
    "instance_event",
    "priority_change_event",
    "rx_lower_pri_event",
    "script_env",
    "signal_script",
    "spawn_script",
    "wait_readable",
]

log = logging.getLogger("fastvrrp.notify")

# keepalived runs scripts as this user when it exists and no script_user is configured
# (core/notify.c get_default_script_user()).
DEFAULT_SCRIPT_USER = "keepalived_script"

# keepalived unsets these in the child before exec (core/notify.c system_call_script()).
_UNSAFE_ENV = ("IFS", "LD_PRELOAD", "LD_LIBRARY_PATH")

STDERR_TAIL_BYTES = 2048
NOTIFY_HOLD_S = 0.002  # no script starts until transitions have stopped coming this long
NOTIFY_MAX_HOLD_S = 0.05  # ... or this long after the first of the burst
_READ_CHUNK = 65536


class NotifyKind(enum.StrEnum):
    INSTANCE = "INSTANCE"
    GROUP = "GROUP"


class NotifyState(enum.StrEnum):
    """The STATE word of notify arguments and FIFO lines (vrrp_notify.c notify_fifo())."""

    MASTER = "MASTER"
    BACKUP = "BACKUP"
    FAULT = "FAULT"
    STOP = "STOP"
    DELETED = "DELETED"
    # FIFO-only instance events (scripts: only notify_master_rx_lower_pri, no generic).
    MASTER_RX_LOWER_PRI = "MASTER_RX_LOWER_PRI"
    MASTER_PRIORITY = "MASTER_PRIORITY"
    BACKUP_PRIORITY = "BACKUP_PRIORITY"

    @classmethod
    def of(cls, state: NotifyState | State) -> NotifyState:
        """The notify state for a state machine state (INIT has none: ValueError)."""
        if isinstance(state, NotifyState):
            return state
        if state in (State.MASTER, State.BACKUP, State.FAULT, State.STOP):
            return cls[state.name]
        raise ValueError(f"no notify for state {state.name}")


@dataclass(frozen=True, slots=True)
class NotifyEvent:
    """One transition to report: the FIFO line's fields plus the scripts it runs."""

    kind: NotifyKind
    name: str
    state: NotifyState
    priority: int
    script: Script | None = None  # notify_<state>: run with its configured argv only
    generic: Script | None = None  # `notify`: the four arguments are appended

    def commands(self) -> tuple[tuple[Script, tuple[str, ...]], ...]:
        """(script, argv) in keepalived's order: the state's script, then the generic one."""
        out: list[tuple[Script, tuple[str, ...]]] = []
        if self.script is not None:
            out.append((self.script, self.script.argv))
        if self.generic is not None:
            out.append((self.generic,
                        (*self.generic.argv, self.kind.value, self.name, self.state.value, str(self.priority))))
        return tuple(out)

    def label(self) -> str:
        return f"{self.kind.value} {self.name} {self.state.value} {self.priority}"


def instance_event(instance: Instance, state: NotifyState | State, priority: int) -> NotifyEvent:
    """An instance transition (vrrp_notify.c send_instance_notifies()).

    DELETED is reported as FAULT unless `notify_deleted` is set (keepalived's backward
    compatibility); the caller skips it altogether for an instance already in FAULT, as
    keepalived's clear_diff_vrrp() does.
    """
    nstate = NotifyState.of(state)
    if nstate is NotifyState.DELETED and not instance.notify_deleted:
        nstate = NotifyState.FAULT
    notifies = instance.notifies
    scripts = {
        NotifyState.MASTER: notifies.master,
        NotifyState.BACKUP: notifies.backup,
        NotifyState.FAULT: notifies.fault,
        NotifyState.STOP: notifies.stop,
        NotifyState.DELETED: instance.notify_deleted_script,
    }
    if nstate not in scripts:
        raise ValueError(f"{nstate} is not a transition; use rx_lower_pri_event or priority_change_event")
    script = scripts[nstate]
    return NotifyEvent(NotifyKind.INSTANCE, instance.name, nstate, priority, script, notifies.generic)


def group_event(group: SyncGroup, state: NotifyState | State) -> NotifyEvent:
    """A sync group transition (send_group_notifies()): priority is always 0."""
    nstate = NotifyState.of(state)
    notifies = group.notifies
    scripts = {
        NotifyState.MASTER: notifies.master,
        NotifyState.BACKUP: notifies.backup,
        NotifyState.FAULT: notifies.fault,
        NotifyState.STOP: notifies.stop,
    }
    if nstate not in scripts:
        raise ValueError(f"sync groups have no {nstate} notify")
    script = scripts[nstate]
    return NotifyEvent(NotifyKind.GROUP, group.name, nstate, 0, script, notifies.generic)


def rx_lower_pri_event(instance: Instance, priority: int) -> NotifyEvent:
    """A master heard a lower priority (send_event_notify()): its script gets no arguments."""
    return NotifyEvent(NotifyKind.INSTANCE, instance.name, NotifyState.MASTER_RX_LOWER_PRI, priority,
                       instance.notify_master_rx_lower_pri, None)


def priority_change_event(name: str, master: bool, priority: int) -> NotifyEvent:
    """A FIFO-only priority change line (send_instance_priority_notifies())."""
    state = NotifyState.MASTER_PRIORITY if master else NotifyState.BACKUP_PRIORITY
    return NotifyEvent(NotifyKind.INSTANCE, name, state, priority)


# --- who a script runs as -----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ScriptIdentity:
    user: str
    uid: int
    gid: int
    extra_groups: tuple[int, ...]


class ScriptUsers:
    """Resolves a script's user as keepalived does (core/notify.c set_uid_gid()).

    The script's own `user [group]` first, else the global `script_user [group]`, else
    `keepalived_script` if that user exists, else our own identity. `None` means "run as
    ourselves" (no switch, so Popen can use vfork). A user or group that does not exist
    raises LookupError with the message to log.
    """

    def __init__(self, script_user: str | None = None, script_group: str | None = None,
                 fallback_user: str | None = DEFAULT_SCRIPT_USER) -> None:
        self._script_user = script_user
        self._script_group = script_group
        self._fallback_user = fallback_user
        self._cache: dict[tuple[str | None, str | None], ScriptIdentity | None | LookupError] = {}

    def identity(self, script: Script) -> ScriptIdentity | None:
        if script.user is not None:
            key = (script.user, script.group)
        elif self._script_user is not None:
            key = (self._script_user, self._script_group)
        else:
            key = (None, None)
        found = self._cache.get(key, _MISSING)
        if found is _MISSING:
            try:
                found = self._resolve(*key)
            except LookupError as exc:
                found = exc
            self._cache[key] = found
        if isinstance(found, LookupError):
            raise found
        return found  # type: ignore[return-value]

    def _resolve(self, user: str | None, group: str | None) -> ScriptIdentity | None:
        if user is None:
            if self._fallback_user is None:
                return None
            try:
                pw = pwd.getpwnam(self._fallback_user)
            except KeyError:
                return None  # keepalived: no keepalived_script user, run as ourselves
            user = self._fallback_user
        else:
            try:
                pw = pwd.getpwnam(user)
            except KeyError:
                raise LookupError(f"user '{user}' does not exist") from None
        gid = pw.pw_gid
        if group is not None:
            try:
                gid = grp.getgrnam(group).gr_gid
            except KeyError:
                raise LookupError(f"group '{group}' does not exist") from None
        if pw.pw_uid == os.geteuid() and gid == os.getegid():
            return None
        return ScriptIdentity(user, pw.pw_uid, gid, tuple(os.getgrouplist(user, gid)))


_MISSING = object()


def script_env(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment scripts get: ours without the loader and IFS overrides."""
    source = os.environ if environ is None else environ
    return {k: v for k, v in source.items() if k not in _UNSAFE_ENV}


def spawn_script(argv: tuple[str, ...], identity: ScriptIdentity | None, env: Mapping[str, str], *,
                 stderr: int | None = subprocess.PIPE) -> subprocess.Popen[bytes]:
    """Start a script in its own session (so a kill reaches its whole process group).

    stdin and stdout are /dev/null; stderr is a pipe by default, or as given (None:
    inherited, subprocess.DEVNULL: discarded). Raises OSError when the program cannot
    be executed.
    """
    ids: dict[str, object] = {}
    if identity is not None:
        ids = {"user": identity.uid, "group": identity.gid, "extra_groups": list(identity.extra_groups)}
    return subprocess.Popen(
        argv,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=stderr,
        start_new_session=True,
        close_fds=True,
        env=env,
        **ids,  # type: ignore[arg-type]
    )


def _kill_group(pid: int, sig: int) -> None:
    """Signal a script's process group (its pid: it leads its own session)."""
    try:
        os.killpg(pid, sig)
    except ProcessLookupError:
        pass


def signal_script(pid: int, pidfd: int, sig: int) -> None:
    """Signal a script's process group, and its leader through its pidfd.

    Call it before reaping the leader: an unreaped leader keeps its pid, and so the
    group id, from being reused. The pidfd reaches the leader even if it left the group.
    """
    _kill_group(pid, sig)
    try:
        signal.pidfd_send_signal(pidfd, sig)
    except ProcessLookupError:
        pass


async def wait_readable(loop: asyncio.AbstractEventLoop, fd: int, timeout: float | None) -> bool:
    """True when `fd` became readable (a pidfd: the process exited), False at the timeout."""
    fut: asyncio.Future[bool] = loop.create_future()

    def ready(value: bool) -> None:
        if not fut.done():
            fut.set_result(value)

    loop.add_reader(fd, ready, True)
    timer = loop.call_later(timeout, ready, False) if timeout is not None else None
    try:
        return await fut
    finally:
        loop.remove_reader(fd)
        if timer is not None:
            timer.cancel()


def reap_when_exited(loop: asyncio.AbstractEventLoop, proc: subprocess.Popen[bytes], pidfd: int) -> None:
    """Reap `proc` (and close `pidfd`) whenever it exits, without waiting here."""

    def exited() -> None:
        loop.remove_reader(pidfd)
        os.close(pidfd)
        proc.poll()

    loop.add_reader(pidfd, exited)


class _StderrTail:
    """Keeps the last `limit` bytes a script writes to stderr, read from the loop.

    When the script exits its stderr may still be held open by a backgrounded child
    (`service foo start &`); the pipe is then kept drained (and discarded) until EOF
    rather than closed, which would hand that child a SIGPIPE.
    """

    __slots__ = ("_loop", "_fd", "_chunks", "_size", "_limit", "_keep", "_closed", "on_close")

    def __init__(self, loop: asyncio.AbstractEventLoop, fd: int, limit: int) -> None:
        self.on_close: Callable[[_StderrTail], None] | None = None
        self._loop = loop
        self._fd = fd
        self._chunks: deque[bytes] = deque()
        self._size = 0
        self._limit = limit
        self._keep = True
        self._closed = False
        os.set_blocking(fd, False)
        loop.add_reader(fd, self._read)

    @property
    def closed(self) -> bool:
        return self._closed

    def _read(self) -> None:
        while not self._closed:
            try:
                data = os.read(self._fd, _READ_CHUNK)
            except BlockingIOError:
                return
            except OSError:
                data = b""
            if not data:
                self.close()
                return
            if self._keep:
                self._chunks.append(data)
                self._size += len(data)
                while self._size - len(self._chunks[0]) >= self._limit:
                    self._size -= len(self._chunks.popleft())

    def tail(self) -> str:
        """Read what is in the pipe now, stop keeping data, return the last `limit` bytes."""
        self._read()
        self._keep = False
        data = b"".join(self._chunks)[-self._limit:]
        self._chunks.clear()
        return data.decode(errors="replace").strip()

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._loop.remove_reader(self._fd)
            os.close(self._fd)
            if self.on_close is not None:
                self.on_close(self)


# --- the runner ---------------------------------------------------------------------


@dataclass(slots=True)
class NotifyStats:
    scripts_run: int = 0  # started, or failed to start
    scripts_failed: int = 0  # non-zero exit, killed by a signal, could not start, no such user
    scripts_timed_out: int = 0  # killed at the timeout (also counted as failed)
    transitions_done: int = 0
    pending: int = 0  # transitions queued or running
    max_backlog: int = 0  # the most transitions ever waiting for one key
    running: int = 0  # scripts running now
    max_running: int = 0


class NotifyRunner:
    """Runs notify events: in order per key, concurrently across keys, never blocking.

    `key` is whatever identifies the reporting object; use `(event.kind, event.name)` so
    an instance and a sync group with the same name do not share a queue.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop | None = None, *, max_concurrency: int = 32,
                 timeout: float = 10.0, kill_grace: float = 1.0, backlog_warning: int = 100,
                 users: ScriptUsers | None = None, env: Mapping[str, str] | None = None,
                 stderr_tail: int = STDERR_TAIL_BYTES, logger: logging.Logger | None = None,
                 hold: float = NOTIFY_HOLD_S, max_hold: float = NOTIFY_MAX_HOLD_S) -> None:
        if max_concurrency < 1:
            raise ValueError("max_concurrency must be at least 1")
        if hold < 0 or max_hold < 0:
            raise ValueError("hold and max_hold are not negative")
        self._loop = loop
        self._max_concurrency = max_concurrency
        self._timeout = timeout  # keepalived's startup/shutdown script timeout is 10 s
        self._kill_grace = kill_grace  # keepalived: SIGTERM, 1 s, then SIGKILL (script_killall)
        self._backlog_warning = backlog_warning
        self._users = users if users is not None else ScriptUsers()
        self._env = dict(env) if env is not None else script_env()
        self._stderr_tail = stderr_tail
        self._log = logger if logger is not None else log
        self._queues: dict[Hashable, deque[NotifyEvent]] = {}
        self._ready: deque[Hashable] = deque()  # keys with work and no worker on them
        self._workers: set[asyncio.Task[None]] = set()  # for cancellation by drain()
        self._nworkers = 0  # workers still taking keys (a finished task may linger in the set)
        # Popen waits for the child's exec (vfork); on a busy host that wait reached 9 ms
        # at p99 when done on the loop, under 1.5 ms from this thread (bench_notify.py).
        # One thread also serialises the forks.
        self._spawner: ThreadPoolExecutor | None = None
        self._idle_waiters: list[asyncio.Future[None]] = []
        self._lingering: set[_StderrTail] = set()
        self._bad_users: set[str] = set()
        self._stats = NotifyStats()
        self._hold = hold
        self._max_hold = max_hold
        self._burst_start = self._last_submit = float("-inf")  # loop.time() values

    @property
    def max_concurrency(self) -> int:
        return self._max_concurrency

    def stats(self) -> NotifyStats:
        return replace(self._stats)

    def backlog(self, key: Hashable) -> int:
        """Transitions queued or running for `key`."""
        queue = self._queues.get(key)
        return len(queue) if queue else 0

    def submit(self, key: Hashable, event: NotifyEvent) -> None:
        """Queue `event` after every earlier one for `key`; returns at once, spawns nothing.

        Events without scripts (FIFO-only) are not queued: nothing orders them.
        """
        if event.script is None and event.generic is None:
            return
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
        now = self._loop.time()
        if now - self._last_submit > self._hold:
            self._burst_start = now
        self._last_submit = now
        stats = self._stats
        stats.pending += 1
        queue = self._queues.get(key)
        if queue is None:
            self._queues[key] = deque((event,))
            self._ready.append(key)
            if self._nworkers < self._max_concurrency:
                self._nworkers += 1
                task = self._loop.create_task(self._work())
                self._workers.add(task)
                task.add_done_callback(self._workers.discard)
            depth = 1
        else:
            queue.append(event)
            depth = len(queue)
        if depth > stats.max_backlog:
            stats.max_backlog = depth
        if depth == self._backlog_warning:
            # No coalescing: every transition's scripts run. Say so when they lag far behind.
            self._log.warning("notify: %d transitions queued for %s (scripts slower than transitions)",
                              depth, event.name)

    async def drain(self, timeout: float) -> list[tuple[Hashable, NotifyEvent]]:
        """Wait up to `timeout` s for all queued events; then kill what still runs.

        Returns the (key, event) pairs not completed, in queue order: the one each key
        was running first. The runner stays usable.
        """
        if self._stats.pending == 0:
            return []
        assert self._loop is not None
        waiter: asyncio.Future[None] = self._loop.create_future()
        self._idle_waiters.append(waiter)
        done, _ = await asyncio.wait((waiter,), timeout=timeout)
        if done:
            return []
        left = [(key, event) for key, queue in self._queues.items() for event in queue]
        self._log.warning("notify: %d transitions not completed at shutdown; killing running scripts", len(left))
        workers = list(self._workers)
        for task in workers:
            task.cancel()
        await asyncio.gather(*workers, return_exceptions=True)
        self._queues.clear()
        self._ready.clear()
        self._stats.pending = 0
        self._wake_idle()
        return left

    def close(self) -> None:
        """Stop the spawner thread and the draining of stderr pipes left open by
        backgrounded children. Call after drain()."""
        if self._spawner is not None:
            self._spawner.shutdown(wait=False)
            self._spawner = None
        for tail in list(self._lingering):
            tail.close()
        self._lingering.clear()

    def _hold_left(self) -> float:
        """Seconds before a script may start: transitions still coming in hold it."""
        assert self._loop is not None
        until = min(self._last_submit + self._hold, self._burst_start + self._max_hold)
        return until - self._loop.time()

    def _wake_idle(self) -> None:
        waiters, self._idle_waiters = self._idle_waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    async def _work(self) -> None:
        ready = self._ready
        try:
            while ready:
                key = ready.popleft()
                queue = self._queues[key]
                event = queue[0]  # stays queued while it runs, so drain() can report it
                await self._run_event(event)
                queue.popleft()
                self._stats.transitions_done += 1
                self._stats.pending -= 1
                if queue:
                    ready.append(key)  # behind the keys already waiting: fair under a storm
                else:
                    del self._queues[key]
        finally:
            self._nworkers -= 1
        if self._stats.pending == 0:
            self._wake_idle()

    async def _run_event(self, event: NotifyEvent) -> None:
        for script, argv in event.commands():
            try:
                await self._run_script(event, script, argv)
            except asyncio.CancelledError:
                raise
            except Exception:  # a bug here must not stop the other keys' notifies
                self._stats.scripts_failed += 1
                self._log.exception("notify script %s (%s): unexpected error", shlex.join(argv), event.label())

    async def _run_script(self, event: NotifyEvent, script: Script, argv: tuple[str, ...]) -> None:
        loop = self._loop
        assert loop is not None
        stats = self._stats
        stats.scripts_run += 1
        shown = shlex.join(argv)
        try:
            identity = self._users.identity(script)
        except LookupError as exc:
            stats.scripts_failed += 1
            if str(exc) not in self._bad_users:
                self._bad_users.add(str(exc))
                self._log.error("notify script %s not run: %s", shown, exc)
            return
        while (left := self._hold_left()) > 0:
            await asyncio.sleep(left)
        if self._spawner is None:
            self._spawner = ThreadPoolExecutor(max_workers=1, thread_name_prefix="notify-spawn",
                                               initializer=script_thread)
        spawning = loop.run_in_executor(self._spawner, spawn_script, argv, identity, self._env)
        try:
            proc = await asyncio.shield(spawning)
        except OSError as exc:
            stats.scripts_failed += 1
            self._log.error("notify script %s (%s) could not start: %s", shown, event.label(), exc)
            return
        except asyncio.CancelledError:
            spawning.add_done_callback(_kill_spawned)  # cancelled by drain(): it must not live on
            raise
        # No await from here to the tracking below: a cancellation cannot lose the child.
        pidfd = os.pidfd_open(proc.pid)
        assert proc.stderr is not None
        tail = _StderrTail(loop, os.dup(proc.stderr.fileno()), self._stderr_tail)
        proc.stderr.close()
        stats.running += 1
        if stats.running > stats.max_running:
            stats.max_running = stats.running
        timed_out = False
        status: int | None = None
        try:
            if await wait_readable(loop, pidfd, self._timeout):
                status = proc.wait()
            else:
                timed_out = True
                stats.scripts_timed_out += 1
                status = await self._kill(proc, pidfd, shown)
        finally:
            stats.running -= 1
            if status is None:  # cancelled by drain(), or unkillable: reap it whenever it exits
                signal_script(proc.pid, pidfd, signal.SIGKILL)
                reap_when_exited(loop, proc, pidfd)
            else:
                os.close(pidfd)
            stderr = tail.tail()
            if tail.closed:
                pass
            elif status is not None and not timed_out:
                self._lingering.add(tail)  # a background child still holds it: drain till EOF
                tail.on_close = self._lingering.discard
            else:
                tail.close()
        if timed_out:
            stats.scripts_failed += 1
            outcome = "process group killed" if status is not None else "still alive after SIGKILL; not waiting"
            self._log.error("notify script %s (%s) timed out after %g s; %s%s",
                            shown, event.label(), self._timeout, outcome, _stderr_suffix(stderr))
        elif status != 0:
            stats.scripts_failed += 1
            self._log.error("notify script %s (%s) failed: %s%s",
                            shown, event.label(), _describe_status(status), _stderr_suffix(stderr))
        elif stderr:
            self._log.debug("notify script %s (%s) stderr: %s", shown, event.label(), stderr)


    async def _kill(self, proc: subprocess.Popen[bytes], pidfd: int, shown: str) -> int | None:
        """SIGTERM, then SIGKILL after the grace (keepalived's script_killall() and
        child_killed_thread()); the exit status, or None if it still has not died."""
        loop = self._loop
        assert loop is not None
        signal_script(proc.pid, pidfd, signal.SIGTERM)
        if not await wait_readable(loop, pidfd, self._kill_grace):
            self._log.debug("notify script %s ignored SIGTERM", shown)
        # Also when the leader did exit: children it left behind in its group go too.
        signal_script(proc.pid, pidfd, signal.SIGKILL)
        if not await wait_readable(loop, pidfd, self._kill_grace):
            return None
        return proc.wait()


def _kill_spawned(spawning: asyncio.Future[subprocess.Popen[bytes]]) -> None:
    """A script whose start was abandoned: kill its group and reap it from the loop."""
    if spawning.cancelled() or spawning.exception() is not None:
        return
    proc = spawning.result()
    pidfd = os.pidfd_open(proc.pid)
    signal_script(proc.pid, pidfd, signal.SIGKILL)
    if proc.stderr is not None:
        proc.stderr.close()
    reap_when_exited(asyncio.get_running_loop(), proc, pidfd)


def _describe_status(status: int) -> str:
    if status < 0:
        try:
            return f"killed by {signal.Signals(-status).name}"
        except ValueError:
            return f"killed by signal {-status}"
    return f"exit status {status}"


def _stderr_suffix(stderr: str) -> str:
    return f"; stderr: {stderr}" if stderr else ""
