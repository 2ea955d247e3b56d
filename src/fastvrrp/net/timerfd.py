"""A CLOCK_MONOTONIC timerfd: the daemon's single timer, armed for the wheel's next
deadline and watched by the event loop (add_reader). uvloop's own timers round to
1 ms on a cached clock; a timerfd wakes within microseconds of an absolute deadline.

Python 3.11 has no os.timerfd_* (added in 3.13), so this calls libc through ctypes;
it runs only when the next deadline changes, never per packet.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os

CLOCK_MONOTONIC = 1
TFD_NONBLOCK = os.O_NONBLOCK
TFD_CLOEXEC = os.O_CLOEXEC
TFD_TIMER_ABSTIME = 1


class _Timespec(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]


class _Itimerspec(ctypes.Structure):
    _fields_ = [("it_interval", _Timespec), ("it_value", _Timespec)]


_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
_libc.timerfd_create.argtypes = [ctypes.c_int, ctypes.c_int]
_libc.timerfd_settime.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.POINTER(_Itimerspec),
                                  ctypes.c_void_p]


class TimerFd:
    """One absolute-deadline timer on CLOCK_MONOTONIC (time.monotonic_ns's clock)."""

    def __init__(self) -> None:
        fd = _libc.timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC)
        if fd < 0:
            err = ctypes.get_errno()
            raise OSError(err, os.strerror(err))
        self._fd = fd
        self._spec = _Itimerspec()
        self.armed_for: int | None = None

    def fileno(self) -> int:
        return self._fd

    def arm(self, deadline_ns: int | None) -> None:
        """Fire at `deadline_ns` (monotonic), or never when None. A deadline in the
        past fires at once."""
        if deadline_ns == self.armed_for:
            return
        spec = self._spec
        if deadline_ns is None:
            spec.it_value.tv_sec = 0
            spec.it_value.tv_nsec = 0
        else:
            # 0/0 would disarm: a due deadline becomes the earliest valid instant.
            deadline_ns = max(deadline_ns, 1)
            spec.it_value.tv_sec, spec.it_value.tv_nsec = divmod(deadline_ns, 1_000_000_000)
        if _libc.timerfd_settime(self._fd, TFD_TIMER_ABSTIME, ctypes.byref(spec), None) < 0:
            err = ctypes.get_errno()
            raise OSError(err, os.strerror(err))
        self.armed_for = deadline_ns

    def consume(self) -> int:
        """Read the expiry count (0 when it had not fired); call from the reader."""
        try:
            data = os.read(self._fd, 8)
        except BlockingIOError:
            return 0
        self.armed_for = None
        return int.from_bytes(data, "little")

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
