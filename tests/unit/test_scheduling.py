"""The daemon's scheduling (net.scheduling): keepalived's vrrp_priority, vrrp_rt_priority,
vrrp_rlimit_rttime, vrrp_no_swap and vrrp_cpu_affinity on the loop thread, the reset
its scripts get, and the breather that keeps a real-time loop alive under
RLIMIT_RTTIME. Each case runs in a child process: the test process keeps its own
scheduling. Needs root (CAP_SYS_NICE, CAP_IPC_LOCK)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from types import SimpleNamespace

import pytest

from fastvrrp.config import parse_text

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (CAP_SYS_NICE)")

INSTANCE = "vrrp_instance VI {\n  interface eth0\n  virtual_router_id 1\n  virtual_ipaddress {\n    192.0.2.1\n  }\n}\n"


def run_child(code: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", STAT + textwrap.dedent(code)], capture_output=True,
                          text=True, timeout=timeout)


def test_global_defs_keywords_follow_keepalived() -> None:
    config = parse_text("global_defs {\n  vrrp_priority -10\n  vrrp_rt_priority 150\n  vrrp_rlimit_rtime 1\n"
                        "  vrrp_no_swap\n  vrrp_cpu_affinity 0 0\n}\n" + INSTANCE, "t.conf")
    g = config.globals
    assert (g.vrrp_process_priority, g.vrrp_realtime_priority, g.vrrp_rlimit_rttime_us) == (-10, 99, 2)
    assert (g.vrrp_no_swap, g.vrrp_cpu_affinity) == (True, (0,))
    assert [str(w) for w in config.warnings] == [
        "t.conf:3: warning: 'vrrp_rt_priority' 150 is out of range (1-99); using 99",
        "t.conf:4: warning: 'vrrp_rlimit_rtime' is deprecated; use 'vrrp_rlimit_rttime'",
    ]
    d = parse_text(INSTANCE, "t.conf").globals
    assert (d.vrrp_process_priority, d.vrrp_realtime_priority, d.vrrp_rlimit_rttime_us) == (0, 0, 10000)
    assert (d.vrrp_no_swap, d.vrrp_cpu_affinity) == (False, ())


@pytest.mark.parametrize(("line", "message"), [
    ("vrrp_priority -21", "t.conf:2: 'vrrp_priority' -21 is out of range (-20-19)"),
    ("vrrp_rt_priority high", "t.conf:2: 'vrrp_rt_priority' must be an integer, not 'high'"),
    ("vrrp_rlimit_rttime 0", "t.conf:2: 'vrrp_rlimit_rttime' 0 is out of range (1-4294967295)"),
    (f"vrrp_cpu_affinity 0 {os.cpu_count()}",
     f"t.conf:2: 'vrrp_cpu_affinity' CPU {os.cpu_count()} is out of range (0-{os.cpu_count() - 1})"),
])  # fmt: skip
def test_bad_values_name_file_and_line(line: str, message: str) -> None:
    from fastvrrp.config import ConfigError

    with pytest.raises(ConfigError) as err:
        parse_text(f"global_defs {{\n  {line}\n}}\n" + INSTANCE, "t.conf")
    assert any(message in m for m in err.value.messages), err.value.messages


# What a child reads of a thread or process: /proc/<pid>/task/<tid>/stat fields 19
# (nice), 40 (rt_priority), 41 (policy).
STAT = """
import os
def sched_of(path):
    rest = open(path).read().rsplit(")", 1)[1].split()
    return int(rest[19 - 3]), int(rest[40 - 3]), int(rest[41 - 3])
"""


def test_real_time_reaches_the_loop_thread_and_not_the_scripts() -> None:
    out = run_child("""
    import resource, subprocess, threading
    from concurrent.futures import ThreadPoolExecutor
    from fastvrrp.net.scheduling import Scheduling, SchedulingRequest, script_thread
    s = Scheduling()
    s.apply(SchedulingRequest(rt_priority=20, rlimit_rttime_us=40000, no_swap=True, cpus=(0,)))
    me = f"/proc/self/task/{threading.get_native_id()}/stat"
    print("loop", sched_of(me), os.sched_getaffinity(0) == {0}, resource.getrlimit(resource.RLIMIT_RTTIME))
    print("breathe", s.breathe_every_ns)
    locked = [l for l in open("/proc/self/status") if l.startswith("VmLck")][0].split()[1]
    print("locked", int(locked) > 0)
    with ThreadPoolExecutor(1, initializer=script_thread) as ex:
        p = subprocess.Popen(["/bin/sh", "-c", "cat /proc/$$/stat"], stdout=subprocess.PIPE, text=True)
        direct = p.communicate()[0]
        spawned = ex.submit(lambda: subprocess.run(
            ["/bin/sh", "-c", "cat /proc/$$/stat; grep Cpus_allowed_list /proc/$$/status"],
            capture_output=True, text=True).stdout).result()
        tid = ex.submit(threading.get_native_id).result()
        thread_stat = sched_of(f"/proc/self/task/{tid}/stat")
        s.suspend()
        print("suspended", sched_of(me))
        print("thread_suspended", sched_of(f"/proc/self/task/{tid}/stat"))
    def parse(text):
        rest = text.splitlines()[0].rsplit(")", 1)[1].split()
        return int(rest[19 - 3]), int(rest[40 - 3]), int(rest[41 - 3])
    print("thread", thread_stat)
    print("script", parse(spawned), spawned.splitlines()[1].split()[1])
    print("direct", parse(direct))
    s.apply(SchedulingRequest())
    print("back", sched_of(me), os.sched_getaffinity(0) == set(range(os.cpu_count())),
          [l for l in open("/proc/self/status") if l.startswith("VmLck")][0].split()[1])
    """)
    assert out.returncode == 0, out.stderr
    lines = dict(line.split(" ", 1) for line in out.stdout.splitlines())
    nice = os.getpriority(os.PRIO_PROCESS, 0)
    assert lines["loop"] == "(0, 20, 2) True (20000, 40000)"  # SCHED_RR 20, soft = half the limit
    assert lines["breathe"] == str(20000 // 8 * 1000)  # an eighth of the soft limit, ns
    assert lines["locked"] == "True"
    assert lines["thread"] == f"({nice}, 20, 2)"  # a script thread: as the loop thread
    assert lines["script"] == f"({nice}, 0, 0) 0"  # its scripts: SCHED_OTHER; affinity kept
    assert lines["direct"] == f"({nice}, 0, 0)"  # SCHED_RESET_ON_FORK: also from the loop thread
    assert lines["suspended"] == "(0, 0, 0)"
    assert lines["thread_suspended"] == "(0, 0, 0)"  # script threads follow
    assert lines["back"] == "(0, 0, 0) True 0"


def test_a_negative_nice_value_is_the_daemons_not_its_scripts() -> None:
    out = run_child("""
    import subprocess, threading
    from concurrent.futures import ThreadPoolExecutor
    from fastvrrp.net.scheduling import Scheduling, SchedulingRequest, script_thread
    s = Scheduling()
    s.apply(SchedulingRequest(nice=-7))
    print("loop", sched_of(f"/proc/self/task/{threading.get_native_id()}/stat"))
    with ThreadPoolExecutor(1, initializer=script_thread) as ex:
        tid = ex.submit(threading.get_native_id).result()
        print("thread", sched_of(f"/proc/self/task/{tid}/stat"))
        print("script", ex.submit(lambda: subprocess.run(["/bin/sh", "-c", "cat /proc/$$/stat"],
              capture_output=True, text=True).stdout.rsplit(")", 1)[1].split()[19 - 3]).result())
    print("direct", subprocess.run(["/bin/sh", "-c", "cat /proc/$$/stat"], capture_output=True,
          text=True).stdout.rsplit(")", 1)[1].split()[19 - 3])
    """)
    assert out.returncode == 0, out.stderr
    lines = dict(line.split(" ", 1) for line in out.stdout.splitlines())
    assert lines["loop"] == lines["thread"] == "(-7, 0, 0)"
    # SCHED_RESET_ON_FORK resets a negative nice value to 0 (keepalived: to the one it
    # was started with, 0 here too).
    assert lines["script"] == lines["direct"] == "0"


BUSY = """
import os, time
from fastvrrp.net.scheduling import Breather, Scheduling, SchedulingRequest
s = Scheduling()
s.apply(SchedulingRequest(rt_priority=1, rlimit_rttime_us=40000, cpus=(0,)))
assert s.realtime
breather = Breather(s.breathe_every_ns)
end = time.monotonic_ns() + 300_000_000
while (now := time.monotonic_ns()) < end:  # 300 ms of CPU, never blocking
    if {breathe}:
        breather.maybe(now)
s.suspend()  # as the daemon does before it stops: exiting is a long run of Python too
print("alive")
"""


def test_the_breather_keeps_a_busy_real_time_loop_alive() -> None:
    # 300 ms without blocking at SCHED_RR with RLIMIT_RTTIME 40 ms: the kernel signals
    # the process at 20 ms (SIGXCPU, the soft limit, whose default action kills) and
    # would SIGKILL it at 40 ms; a breath every 5 ms (the wake-up from a sleep) resets
    # the count.
    without = run_child(BUSY.format(breathe=False))
    assert without.returncode in (-signal.SIGXCPU, -signal.SIGKILL), (without.returncode, without.stdout)
    with_breather = run_child(BUSY.format(breathe=True))
    assert (with_breather.returncode, with_breather.stdout.strip()) == (0, "alive"), with_breather.stderr


def test_every_pump_point_of_the_router_goes_through_the_breather() -> None:
    from fastvrrp.daemon.router import Router

    r = Router.__new__(Router)
    calls: list[int] = []
    r.breather = SimpleNamespace(maybe=calls.append)
    r.fp = SimpleNamespace(expire=lambda now: [], took_over=lambda idx: False)
    r.io = SimpleNamespace(send_outbox=lambda fp, tx: None)
    r.tx_by_gid, r._vip_queue, r.runtimes = {}, [], []
    assert r._expire_and_send(123) == []
    assert calls == [123]


def test_a_thread_that_sleeps_on_its_own_is_not_made_to_breathe() -> None:
    # The steady state: the loop sleeps in epoll between wake-ups, which resets the
    # kernel's count already; a breath on top would be a wasted wake-up.
    from fastvrrp.net.scheduling import Breather, voluntary_switches

    breather = Breather(1)  # looks at every call
    before = voluntary_switches()
    for _ in range(20):
        time.sleep(0.001)
        breather.maybe(time.monotonic_ns())
    slept = voluntary_switches() - before
    assert 20 <= slept < 25  # its own 20 sleeps, no breaths
    before = voluntary_switches()
    for _ in range(10):
        breather.maybe(time.monotonic_ns())  # never sleeps on its own: breathes each time
    assert voluntary_switches() - before >= 10


def test_a_tiny_rlimit_does_not_switch_breathing_off() -> None:
    # vrrp_rlimit_rttime 2 (keepalived's smallest): the soft limit is 1 us, an eighth
    # of it rounds to 0, which must not mean "never breathe" for a real-time loop.
    out = run_child("""
    from fastvrrp.net.scheduling import Scheduling, SchedulingRequest
    s = Scheduling()
    s.apply(SchedulingRequest(rt_priority=1, rlimit_rttime_us=2))
    every, realtime = s.breathe_every_ns, s.realtime
    s.suspend()
    print(every, realtime)
    """)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["1000", "True"]
