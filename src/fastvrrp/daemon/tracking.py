"""Runs what tracking observes: vrrp_scripts, track files, and interface events from the caller.

The arithmetic lives in proto/tracking.py; this module feeds it and reports changes:
`on_change(instance, fault_reasons, effective_priority)` whenever an instance's outcome
changes, and once per instance at start() when it is not "no faults, base priority".

vrrp_script (keepalived vrrp_scheduler.c vrrp_script_thread(), vrrp_script_child_thread()):
- every tracked script runs at start, then every `interval` s, measured from the start of
  the previous run; a run that is still going when the next is due makes that one be
  skipped (keepalived logs "already running - skipping run");
- it runs with keepalived's script identity (ScriptUsers), in its own session (so a kill
  reaches its whole process group), without a shell, stdin/stdout/stderr on /dev/null;
- exit status 0 is a success; any other status or a signal is a failure; a run that
  outlives `timeout` is a failure at once, and its process group gets SIGTERM, then
  SIGKILL after `kill_grace_s` (keepalived: 2 s);
- a script that cannot be started (missing, not executable, unknown user) is a failure,
  logged once until it starts again. keepalived instead disables such a script at
  startup ("Disabling track script %s since not found/accessible"), which silently
  drops the tracker; treating it as failed keeps a broken health check from looking OK.
Processes are started from one helper thread, so a fork never holds the loop.

track_file (keepalived trackers/track_file.c): `init_file` writes the value at start if the
file is missing (or always with `overwrite`, except on a reload); the files are watched
with inotify on their directories (IN_CLOSE_WRITE | IN_DELETE | IN_MOVE, as keepalived),
re-read on close-after-write or move-in, and read as 0 when deleted or moved away. A file
whose directory does not exist is not tracked (keepalived removes it). Without inotify
the files are polled every second.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import functools
import errno
import logging
import math
import os
import signal
import stat
import struct
import subprocess
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from fastvrrp.config.model import Config, TrackFile, VrrpScript
from fastvrrp.daemon.notify import (
    ScriptUsers,
    reap_when_exited,
    script_env,
    signal_script,
    spawn_script,
    wait_readable,
)
from fastvrrp.net.scheduling import script_thread
from fastvrrp.proto.tracking import (
    FILE_READ_LIMIT,
    Outcome,
    ScriptState,
    TrackerKind,
    TrackingState,
    parse_file_value,
)

__all__ = ["TrackingEngine"]

log = logging.getLogger("fastvrrp.tracking")

OnChange = Callable[[str, frozenset[str], int], None]

DEFAULT_KILL_GRACE_S = 2.0  # keepalived: SIGTERM, 2 s, SIGKILL (vrrp_script_child_thread())
POLL_INTERVAL_S = 1.0  # track files, when inotify is not available

# <sys/inotify.h>
IN_CLOSE_WRITE = 0x00000008
IN_MOVED_FROM = 0x00000040
IN_MOVED_TO = 0x00000080
IN_DELETE = 0x00000200
IN_Q_OVERFLOW = 0x00004000
IN_IGNORED = 0x00008000
IN_ISDIR = 0x40000000
IN_NONBLOCK = os.O_NONBLOCK
IN_CLOEXEC = os.O_CLOEXEC
_WATCH_MASK = IN_CLOSE_WRITE | IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO
_EVENT = struct.Struct("iIII")  # wd, mask, cookie, len; then len bytes of name


class _Inotify:
    """inotify through ctypes: one fd, watches on directories, events as (wd, mask, name)."""

    def __init__(self) -> None:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        self._add_watch = libc.inotify_add_watch
        self._add_watch.argtypes = (ctypes.c_int, ctypes.c_char_p, ctypes.c_uint32)
        self._add_watch.restype = ctypes.c_int
        init1 = libc.inotify_init1
        init1.argtypes = (ctypes.c_int,)
        init1.restype = ctypes.c_int
        fd = init1(IN_NONBLOCK | IN_CLOEXEC)
        if fd < 0:
            err = ctypes.get_errno()
            raise OSError(err, os.strerror(err))
        self.fd = fd

    def add_watch(self, directory: str) -> int:
        wd = self._add_watch(self.fd, os.fsencode(directory), _WATCH_MASK)
        if wd < 0:
            err = ctypes.get_errno()
            raise OSError(err, os.strerror(err), directory)
        return wd

    def read_events(self) -> list[tuple[int, int, str]]:
        events: list[tuple[int, int, str]] = []
        while True:
            try:
                data = os.read(self.fd, 65536)
            except BlockingIOError:
                return events
            except InterruptedError:
                continue
            if not data:
                return events
            offset = 0
            while offset + _EVENT.size <= len(data):
                wd, mask, _cookie, length = _EVENT.unpack_from(data, offset)
                start = offset + _EVENT.size
                name = os.fsdecode(data[start:start + length].split(b"\0", 1)[0])
                events.append((wd, mask, name))
                offset = start + length

    def close(self) -> None:
        os.close(self.fd)


@dataclass(slots=True)
class _WatchedFile:
    config: TrackFile
    path: str  # resolved as keepalived does (realpath of the file, or of its directory)
    directory: str
    basename: str


def _resolve_track_file_path(path: str) -> str | None:
    """keepalived init_track_files(): the file's real path, or its real directory plus
    its name when it does not exist; None when the directory does not exist either."""
    if os.path.exists(path):
        return os.path.realpath(path)
    directory, base = os.path.split(path)
    real_dir = os.path.realpath(directory or ".")
    if not os.path.isdir(real_dir):
        return None
    return os.path.join(real_dir, base)


def _read_track_file(path: str) -> int | None:
    """The file's value; 0 when it is missing, empty or unreadable (process_track_file());
    None when the number is out of range (keep the previous value)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return 0
    try:
        data = os.read(fd, FILE_READ_LIMIT)
    except OSError:
        data = b""
    finally:
        os.close(fd)
    value = parse_file_value(data)
    if value is None:
        log.warning("track_file: invalid number read from %s - ignoring", path)
    return value


def _write_init_file(tf: TrackFile, reload: bool) -> None:
    """init_file [VALUE] [overwrite] (track_file_end_handler())."""
    try:
        st = os.stat(tf.path)
    except FileNotFoundError:
        st = None
    except OSError as exc:
        log.error("track_file %s: cannot check %s: %s", tf.name, tf.path, exc)
        return
    if st is not None:
        if not tf.init_overwrite:
            return
        if not stat.S_ISREG(st.st_mode):
            log.error("track_file %s: cannot initialise %s - it is not a regular file", tf.name, tf.path)
            return
        if reload:
            return  # keepalived does not overwrite on reload
    try:
        with open(tf.path, "w", encoding="ascii") as out:
            out.write(f"{tf.init_value}\n")
    except OSError as exc:
        log.error("track_file %s: unable to initialise %s: %s", tf.name, tf.path, exc)


def _describe_status(status: int) -> str:
    if status < 0:
        try:
            return f"killed by {signal.Signals(-status).name}"
        except ValueError:
            return f"killed by signal {-status}"
    return f"exit status {status}"


class TrackingEngine:
    """Tracking for every instance of one config; see the module docstring.

    Interfaces are taken as up until `interface_changed()` says otherwise; call it for
    every name in `tracked_interfaces()` (before `start()` to have the initial state in
    the first report). `previous` is the engine of the config being replaced by a
    reload: script results carry over as keepalived's clear_diff_script() does, scripts
    new in the reload do not hold instances out of service, interface states are kept,
    and `init_file ... overwrite` does not overwrite. Stop the previous engine first.
    """

    def __init__(self, config: Config, on_change: OnChange,
                 loop: asyncio.AbstractEventLoop | None = None, *,
                 previous: TrackingEngine | None = None,
                 kill_grace_s: float = DEFAULT_KILL_GRACE_S,
                 users: ScriptUsers | None = None,
                 use_inotify: bool = True,
                 poll_interval_s: float = POLL_INTERVAL_S) -> None:
        self._config = config
        self._on_change = on_change
        self._loop = loop
        self._reload = previous is not None
        self._state = TrackingState(config, previous=previous._state if previous is not None else None)
        self._kill_grace_s = kill_grace_s
        g = config.globals
        self._users = users if users is not None else ScriptUsers(g.script_user, g.script_group)
        self._env = script_env()
        self._use_inotify = use_inotify
        self._poll_interval_s = poll_interval_s
        self._started = False
        self._tasks: set[asyncio.Task[None]] = set()
        self._spawner: ThreadPoolExecutor | None = None
        self._start_errors: dict[str, str] = {}  # script -> error already logged
        self._last_status: dict[str, int | None] = {}
        self._files: dict[str, _WatchedFile] = {}
        self._inotify: _Inotify | None = None
        self._watches: dict[int, list[_WatchedFile]] = {}

    # --- the API the router uses ---

    def start(self) -> None:
        """Initialise and read the track files, report initial outcomes, start scripts."""
        if self._started:
            raise RuntimeError("TrackingEngine already started")
        self._started = True
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
        for tf in self._config.track_files:
            if tf.init_file:
                _write_init_file(tf, self._reload)
        self._start_files()
        for name, outcome in self._state.outcomes().items():
            if outcome.fault_reasons or outcome.priority != self._state.base_priority(name):
                self._report(name, outcome)
        tracked = self._state.tracked(TrackerKind.SCRIPT)
        for script in self._config.scripts:
            if script.name in tracked:
                task = self._loop.create_task(self._script_loop(script), name=f"vrrp_script {script.name}")
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)

    def interface_changed(self, ifname: str, up: bool) -> None:
        changed = self._state.set_interface(ifname, up)
        if changed:
            log.info("track_interface %s %s", ifname, "up" if up else "down")
        if self._started:
            self._report_all(changed)

    def outcome(self, instance_name: str) -> tuple[frozenset[str], int]:
        return self._state.outcome(instance_name)

    async def stop(self) -> None:
        """Cancel the script timers, kill running scripts, stop watching files."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._inotify is not None:
            assert self._loop is not None
            self._loop.remove_reader(self._inotify.fd)
            self._inotify.close()
            self._inotify = None
        if self._spawner is not None:
            self._spawner.shutdown(wait=False)
            self._spawner = None

    # --- extras for the router and tests ---

    def tracked_interfaces(self) -> frozenset[str]:
        """Interfaces whose state matters (beyond the instances' own)."""
        return self._state.tracked(TrackerKind.INTERFACE)

    def script_state(self, name: str) -> ScriptState:
        return self._state.script_state(name)

    # --- reporting ---

    def _report(self, name: str, outcome: Outcome) -> None:
        try:
            self._on_change(name, outcome.fault_reasons, outcome.priority)
        except Exception:  # the router's bug must not stop script timers or file watching
            log.exception("tracking: on_change for %s failed", name)

    def _report_all(self, names: list[str]) -> None:
        for name in names:
            self._report(name, self._state.outcome(name))

    # --- vrrp_script ---

    async def _script_loop(self, script: VrrpScript) -> None:
        loop = self._loop
        assert loop is not None
        interval = script.interval_s
        due = loop.time()
        while True:
            delay = due - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            try:
                success, killing = await self._run_once(script)
            except (asyncio.CancelledError, KeyboardInterrupt, SystemExit):
                raise
            except Exception:  # a bug here must not stop this script's timer for good
                log.exception("vrrp_script %s: unexpected error; counted as failed", script.name)
                success, killing = False, None
            self._script_result(script, success)
            if killing is not None:
                await killing  # the next run waits until this one is gone
            due += interval
            now = loop.time()
            if due <= now:
                missed = math.floor((now - due) / interval) + 1
                log.info("vrrp_script %s: still running when due - skipping %d run(s)", script.name, missed)
                due += missed * interval

    def _script_result(self, script: VrrpScript, success: bool) -> None:
        before = self._state.script_state(script.name)
        changed = self._state.script_result(script.name, success)
        after = self._state.script_state(script.name)
        if after is not before:
            log.info("VRRP_Script(%s) %s", script.name, "succeeded" if after is ScriptState.OK else "failed")
        self._report_all(changed)

    def _note_status(self, script: VrrpScript, status: int | None, text: str) -> None:
        """Log when a script's result changes (keepalived "Script `%s` now returning %d")."""
        if self._last_status.get(script.name, 0) != status:
            self._last_status[script.name] = status
            log.info("vrrp_script %s now %s", script.name, text)

    async def _run_once(self, script: VrrpScript) -> tuple[bool, asyncio.Future[None] | None]:
        """One run: (success, the kill of a timed-out run still under way or None)."""
        loop = self._loop
        assert loop is not None
        argv = script.script.argv
        try:
            identity = self._users.identity(script.script)
            if self._spawner is None:
                self._spawner = ThreadPoolExecutor(max_workers=1, thread_name_prefix="vrrp-script-spawn",
                                                   initializer=script_thread)
            # keepalived does not read what vrrp_scripts print.
            spawning = loop.run_in_executor(self._spawner, functools.partial(
                spawn_script, argv, identity, self._env, stderr=subprocess.DEVNULL))
            try:
                proc = await asyncio.shield(spawning)
            except asyncio.CancelledError:
                spawning.add_done_callback(_kill_abandoned)
                raise
        except (OSError, LookupError) as exc:
            self._start_failed(script, str(exc))
            return False, None
        if self._start_errors.pop(script.name, None) is not None:
            log.info("vrrp_script %s: starts again", script.name)
        # No await between spawning and the try below: a cancellation cannot lose the child.
        pidfd = os.pidfd_open(proc.pid)
        reaped = False
        try:
            if await wait_readable(loop, pidfd, script.timeout_s):
                status = proc.wait()
                reaped = True
                self._note_status(script, status, "returning " + _describe_status(status))
                return status == 0, None
            self._note_status(script, None, f"timed out after {script.timeout_s:g} s; killing its process group")
            killing = loop.create_task(self._kill(proc, pidfd))
            reaped = True  # _kill owns the pidfd now
            return False, killing
        finally:
            if not reaped:  # cancelled (stop()): nothing may outlive us
                signal_script(proc.pid, pidfd, signal.SIGKILL)
                reap_when_exited(loop, proc, pidfd)

    def _start_failed(self, script: VrrpScript, error: str) -> None:
        if self._start_errors.get(script.name) != error:
            self._start_errors[script.name] = error
            log.error("vrrp_script %s (%s) cannot run: %s; counted as failed",
                      script.name, " ".join(script.script.argv), error)

    async def _kill(self, proc: subprocess.Popen[bytes], pidfd: int) -> None:
        """SIGTERM the group, SIGKILL after the grace; reap (vrrp_script_child_thread())."""
        loop = self._loop
        assert loop is not None
        try:
            signal_script(proc.pid, pidfd, signal.SIGTERM)
            await wait_readable(loop, pidfd, self._kill_grace_s)
            # Also when the leader exited: children it left in its group go too.
            signal_script(proc.pid, pidfd, signal.SIGKILL)
            if await wait_readable(loop, pidfd, self._kill_grace_s):
                proc.wait()
                os.close(pidfd)
                return
            log.error("vrrp_script pid %d still alive after SIGKILL; not waiting", proc.pid)
        except asyncio.CancelledError:
            signal_script(proc.pid, pidfd, signal.SIGKILL)
            raise
        finally:
            if proc.returncode is None:
                reap_when_exited(loop, proc, pidfd)

    # --- track_file ---

    def _start_files(self) -> None:
        tracked = self._state.tracked(TrackerKind.FILE)
        for tf in self._config.track_files:
            if tf.name not in tracked:
                continue  # keepalived reads only files something tracks
            path = _resolve_track_file_path(tf.path)
            if path is None:
                log.error("track_file %s: directory of %s does not exist - not tracking it", tf.name, tf.path)
                self._state.set_file(tf.name, None)
                continue
            directory, base = os.path.split(path)
            self._files[tf.name] = _WatchedFile(tf, path, directory, base)
        if not self._files:
            return
        if self._use_inotify:
            try:
                self._inotify = _Inotify()
            except (OSError, AttributeError) as exc:
                log.warning("track_file: inotify unavailable (%s); polling every %g s", exc, self._poll_interval_s)
        if self._inotify is not None:
            for watched in self._files.values():
                try:
                    wd = self._inotify.add_watch(watched.directory)
                except OSError as exc:
                    log.error("track_file %s: cannot watch %s: %s", watched.config.name, watched.directory, exc)
                    continue
                self._watches.setdefault(wd, []).append(watched)
            assert self._loop is not None
            self._loop.add_reader(self._inotify.fd, self._inotify_ready)
        else:
            assert self._loop is not None
            task = self._loop.create_task(self._poll_files(), name="track_file poll")
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        for watched in self._files.values():
            value = _read_track_file(watched.path)
            if value is not None:
                self._state.set_file(watched.config.name, value)

    def _update_file(self, watched: _WatchedFile, value: int | None) -> None:
        """A value read from the file; None (out of range) keeps the previous one."""
        name = watched.config.name
        if value is None or value == self._state.file_value(name):
            return
        log.info("track_file %s now holds %d", name, value)
        self._report_all(self._state.set_file(name, value))

    def _inotify_ready(self) -> None:
        assert self._inotify is not None
        try:
            events = self._inotify.read_events()
        except OSError as exc:
            if exc.errno != errno.EAGAIN:
                log.error("track_file: inotify read failed: %s", exc)
            return
        for wd, mask, name in events:
            if mask & IN_Q_OVERFLOW:  # events were lost: re-read every file
                for watched in self._files.values():
                    self._update_file(watched, _read_track_file(watched.path))
                continue
            if mask & (IN_ISDIR | IN_IGNORED):
                continue
            for watched in self._watches.get(wd, ()):
                if watched.basename != name:
                    continue
                if mask & (IN_DELETE | IN_MOVED_FROM):
                    self._update_file(watched, 0)  # keepalived: a vanished file reads as 0
                else:
                    self._update_file(watched, _read_track_file(watched.path))

    async def _poll_files(self) -> None:
        while True:
            await asyncio.sleep(self._poll_interval_s)
            for watched in self._files.values():
                self._update_file(watched, _read_track_file(watched.path))


def _kill_abandoned(spawning: asyncio.Future[subprocess.Popen[bytes]]) -> None:
    """A script whose start was abandoned by stop(): kill its group and reap it."""
    if spawning.cancelled() or spawning.exception() is not None:
        return
    proc = spawning.result()
    pidfd = os.pidfd_open(proc.pid)
    signal_script(proc.pid, pidfd, signal.SIGKILL)
    reap_when_exited(asyncio.get_running_loop(), proc, pidfd)
