"""The daemon's CPU scheduling and memory locking, as keepalived's global_defs set them for
its VRRP process, and what its scripts start with.

keepalived (lib/process.c set_process_priorities(), restore_priority(); vrrp_daemon.c):
`vrrp_rt_priority` makes the process SCHED_RR with SCHED_RESET_ON_FORK and sets
RLIMIT_RTTIME to `vrrp_rlimit_rttime` (hard; half of it soft, whose SIGXCPU it logs);
otherwise `vrrp_priority` is its nice value; `vrrp_no_swap` is mlockall();
`vrrp_cpu_affinity` pins it. A script's child resets the policy, the nice value and the
memory lock before exec (core/notify.c reset_process_priorities()); affinity stays.

Linux keeps the nice value, the policy and the affinity per thread. They are set on the
thread that runs the event loop (it sends the adverts and installs the VIPs), and
copied to the threads that start scripts (`script_thread()`: a script thread holds
the GIL in Popen, and must not be preempted there by its own scripts while a
real-time loop thread waits for it). SCHED_RESET_ON_FORK is set on all of them, so
scripts start as SCHED_OTHER and a negative nice value is reset to 0, also from the
loop thread itself (the FIFO script). Not reset for scripts: RLIMIT_RTTIME, a
per-process limit that binds only real-time threads.

A real-time thread that runs RLIMIT_RTTIME without blocking is killed by the kernel,
and a mass takeover is a long run of Python: while real-time, `Breather` makes the loop
thread sleep for 20 us now and then when it has not slept on its own (the router calls
it between slices, and C's sends do the same), and `suspend()` drops real time for
start-up, reload and shutdown work.
"""

from __future__ import annotations

import ctypes
import logging
import os
import resource
import threading
import time
from dataclasses import dataclass

from fastvrrp.config.model import RT_RLIMIT_DEFAULT_US, Globals

__all__ = ["BREATH_S", "Breather", "Scheduling", "SchedulingRequest", "breathe", "script_thread",
           "voluntary_switches"]

log = logging.getLogger("fastvrrp.scheduling")

_MCL_CURRENT, _MCL_FUTURE, _MCL_ONFAULT = 1, 2, 4
# Long enough that the thread usually really sleeps (a timer that fires before the
# thread has scheduled out is no sleep, and the kernel's count goes on: 1 and 10 us
# were not enough here); only in long runs (Breather).
BREATH_S = 20e-6
_BREATH_TRIES = 4  # doubling the sleep each time


def breathe() -> None:
    """Sleep until the thread has really left the CPU once (its voluntary context
    switches moved): BREATH_S, doubled up to _BREATH_TRIES times. An interrupt between
    arming the timer and scheduling out can make a short sleep no sleep at all."""
    before = resource.getrusage(resource.RUSAGE_THREAD).ru_nvcsw
    pause = BREATH_S
    for _ in range(_BREATH_TRIES):
        time.sleep(pause)
        if resource.getrusage(resource.RUSAGE_THREAD).ru_nvcsw != before:
            return
        pause *= 2


@dataclass(frozen=True, slots=True)
class SchedulingRequest:
    """What global_defs asks for; zeros and empties leave the process as started."""

    nice: int = 0  # vrrp_priority
    rt_priority: int = 0  # vrrp_rt_priority
    rlimit_rttime_us: int = RT_RLIMIT_DEFAULT_US  # vrrp_rlimit_rttime
    no_swap: bool = False  # vrrp_no_swap
    cpus: tuple[int, ...] = ()  # vrrp_cpu_affinity

    @classmethod
    def of(cls, g: Globals) -> SchedulingRequest:
        return cls(g.vrrp_process_priority, g.vrrp_realtime_priority, g.vrrp_rlimit_rttime_us,
                   g.vrrp_no_swap, g.vrrp_cpu_affinity)


@dataclass(frozen=True, slots=True)
class _Original:
    nice: int
    cpus: frozenset[int]


_original: _Original | None = None  # the loop thread's, from before the first apply()
# What script threads copy from the loop thread: (policy, priority, nice, cpus), or
# None while the process is as it was started.
_loop_thread: tuple[int, int, int, frozenset[int]] | None = None
_script_threads: set[int] = set()  # native thread ids


def script_thread() -> None:
    """Run first in a thread that starts scripts (its executor's initializer).

    It takes the loop thread's policy, priority, nice value and affinity, and keeps
    them when they change (Scheduling.apply): a script thread holds the GIL in Popen,
    and if the scripts it started could preempt it there, a real-time loop thread
    would wait for them. With SCHED_RESET_ON_FORK its scripts still start as
    SCHED_OTHER, a negative nice value reset to 0 (keepalived's children reset to
    the nice value the daemon was started with: the same unless that was not 0).
    """
    tid = threading.get_native_id()
    _script_threads.add(tid)
    _copy_loop_thread(tid)


def _copy_loop_thread(tid: int) -> None:
    if _loop_thread is None:
        return
    policy, priority, nice, cpus = _loop_thread
    if not os.path.exists(f"/proc/self/task/{tid}"):
        _script_threads.discard(tid)  # ended: its id may be another process's by now
        return
    try:
        os.sched_setscheduler(tid, policy | os.SCHED_RESET_ON_FORK, os.sched_param(priority))
        os.setpriority(os.PRIO_PROCESS, tid, nice)
        os.sched_setaffinity(tid, cpus)
    except ProcessLookupError:
        _script_threads.discard(tid)  # the thread has ended
    except OSError as exc:
        log.warning("cannot set a script thread's scheduling: %s", exc)


class Scheduling:
    """Applies a SchedulingRequest to the calling thread (the loop thread), again on
    reload with the new one; `suspend()` leaves real time until the next apply()."""

    def __init__(self) -> None:
        global _original
        if _original is None:
            _original = _Original(os.getpriority(os.PRIO_PROCESS, 0), frozenset(os.sched_getaffinity(0)))
        self._locked = False
        self.request = SchedulingRequest()
        self.breathe_every_ns = 0  # for the Breather and the sends: 0 unless real-time

    @property
    def realtime(self) -> bool:
        return os.sched_getscheduler(0) & ~os.SCHED_RESET_ON_FORK == os.SCHED_RR

    def apply(self, request: SchedulingRequest) -> None:
        """Set what `request` asks for; what it no longer asks for goes back to how the
        process was started. Failures are logged (keepalived's messages) and skipped."""
        self.request = request
        orig = _original
        assert orig is not None  # set by __init__
        if request.rt_priority:
            self._set_rttime(request.rlimit_rttime_us)
            self._set_policy(os.SCHED_RR, request.rt_priority)
            # A long run sleeps at least every quarter of the soft limit in force
            # (Breather: twice every_ns).
            soft = resource.getrlimit(resource.RLIMIT_RTTIME)[0]
            # (At least 1 us: a tiny vrrp_rlimit_rttime must not switch breathing off.)
            every_us = max(soft // 8, 1) if soft != resource.RLIM_INFINITY else 0
            self.breathe_every_ns = every_us * 1000 if self.realtime else 0
            nice = orig.nice
        else:
            # RLIMIT_RTTIME stays: it binds only real-time threads, and raising it
            # back needs CAP_SYS_RESOURCE.
            self.breathe_every_ns = 0
            self._set_policy(os.SCHED_OTHER, 0)
            nice = request.nice or orig.nice
        if os.getpriority(os.PRIO_PROCESS, 0) != nice:
            try:
                os.setpriority(os.PRIO_PROCESS, 0, nice)
            except OSError as exc:
                log.warning("Unable to set process priority to %d - %s", nice, exc.strerror)
        self._set_no_swap(request.no_swap)
        cpus = set(request.cpus) if request.cpus else set(orig.cpus)
        if cpus != os.sched_getaffinity(0):
            try:
                os.sched_setaffinity(0, cpus)
            except OSError as exc:
                log.warning("Unable to set cpu affinity to %s - %s", sorted(cpus), exc.strerror)
        self._publish()

    def suspend(self) -> None:
        """Leave real time (start-up, reload and shutdown are long runs of Python); the
        nice value, memory lock and affinity stay. apply() brings it back."""
        self.breathe_every_ns = 0
        self._set_policy(os.SCHED_OTHER, 0)
        self._publish()

    def _publish(self) -> None:
        """Script threads follow the loop thread (script_thread)."""
        global _loop_thread
        if not self._changed() and _loop_thread is None:
            return
        _loop_thread = (os.sched_getscheduler(0) & ~os.SCHED_RESET_ON_FORK, os.sched_getparam(0).sched_priority,
                        os.getpriority(os.PRIO_PROCESS, 0), frozenset(os.sched_getaffinity(0)))
        for tid in list(_script_threads):
            _copy_loop_thread(tid)

    def describe(self) -> str:
        policy = "SCHED_RR %d" % os.sched_getparam(0).sched_priority if self.realtime else "SCHED_OTHER"
        return (f"{policy}, nice {os.getpriority(os.PRIO_PROCESS, 0)}, "
                f"cpus {','.join(map(str, sorted(os.sched_getaffinity(0))))}"
                f"{', memory locked' if self._locked else ''}")

    def _set_policy(self, policy: int, priority: int) -> None:
        current = os.sched_getscheduler(0)
        wanted = policy | os.SCHED_RESET_ON_FORK
        if policy == os.SCHED_OTHER and current & ~os.SCHED_RESET_ON_FORK == os.SCHED_OTHER \
                and not self._changed():
            return  # nothing asked for: leave the process exactly as started
        if current == wanted and os.sched_getparam(0).sched_priority == priority:
            return
        try:
            os.sched_setscheduler(0, wanted, os.sched_param(priority))
        except OSError as exc:
            if policy == os.SCHED_RR:
                log.warning("cannot raise priority to SCHED_RR %d - %s", priority, exc.strerror)
            else:
                log.warning("cannot reset realtime scheduling - %s", exc.strerror)

    def _changed(self) -> bool:
        r = self.request
        return bool(r.nice or r.rt_priority or r.cpus or r.no_swap)

    def _set_rttime(self, limit_us: int) -> None:
        wanted = (limit_us // 2, limit_us)
        if resource.getrlimit(resource.RLIMIT_RTTIME) == wanted:
            return
        try:
            resource.setrlimit(resource.RLIMIT_RTTIME, wanted)
        except (OSError, ValueError) as exc:
            log.warning("cannot set realtime rlimit - %s", exc)

    def _set_no_swap(self, lock: bool) -> None:
        if lock == self._locked:
            return
        libc = ctypes.CDLL(None, use_errno=True)
        if lock:
            if libc.mlockall(_MCL_CURRENT | _MCL_FUTURE | _MCL_ONFAULT) != 0:
                log.warning("Unable to lock process in memory - %s", os.strerror(ctypes.get_errno()))
                return
        else:
            libc.munlockall()
        self._locked = lock


def voluntary_switches() -> int:
    """The calling thread's voluntary context switches: it slept (epoll, a breath)."""
    return resource.getrusage(resource.RUSAGE_THREAD).ru_nvcsw


class Breather:
    """A real-time thread that never blocks is killed at RLIMIT_RTTIME. Every `every_ns`
    `maybe()` looks whether the thread has slept since it last looked (the loop's epoll
    does, between wake-ups), and only if not sleeps (breathe(): a wake-up resets the
    kernel's count). So a long run sleeps at least every 2 x every_ns, and the steady
    state never. `every_ns` 0: never (not real-time). Use from one thread."""

    __slots__ = ("every_ns", "_last", "_switches")

    def __init__(self, every_ns: int) -> None:
        self.every_ns = every_ns
        self._last = time.monotonic_ns()
        self._switches = voluntary_switches()

    def maybe(self, now: int) -> None:
        if self.every_ns and now - self._last >= self.every_ns:
            switches = voluntary_switches()
            if switches == self._switches:
                breathe()
                switches = voluntary_switches()
            self._switches = switches
            self._last = time.monotonic_ns()
