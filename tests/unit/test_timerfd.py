"""The timerfd, compiled (fastvrrp._fastio.TimerFd) and its ctypes twin
(fastvrrp.net.timerfd.TimerFd): the same behaviour through the same API."""

from __future__ import annotations

import importlib
import select
import time

import pytest

IMPLS = ["fastvrrp._fastio", "fastvrrp.net.io"]


@pytest.fixture(params=IMPLS, ids=["compiled", "twin"])
def timerfd(request):
    tfd = importlib.import_module(request.param).TimerFd()
    yield tfd
    tfd.close()


def readable(tfd, timeout: float) -> bool:
    return bool(select.select([tfd.fileno()], [], [], timeout)[0])


def test_it_fires_at_an_absolute_monotonic_deadline_then_is_unarmed(timerfd) -> None:
    assert timerfd.armed_for is None and timerfd.consume() == 0
    deadline = time.monotonic_ns() + 30_000_000
    timerfd.arm(deadline)
    assert timerfd.armed_for == deadline
    assert not readable(timerfd, 0.005)
    assert readable(timerfd, 1.0)
    assert time.monotonic_ns() >= deadline
    assert timerfd.consume() == 1
    assert timerfd.armed_for is None


def test_a_past_deadline_fires_at_once_and_none_disarms(timerfd) -> None:
    timerfd.arm(0)  # 0 would disarm a timerfd: it is taken as the earliest instant
    assert readable(timerfd, 1.0) and timerfd.consume() == 1
    timerfd.arm(time.monotonic_ns() + 20_000_000)
    timerfd.arm(None)
    assert timerfd.armed_for is None
    assert not readable(timerfd, 0.05)
