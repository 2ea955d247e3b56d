"""A notify storm: N transitions at once (one per instance), through scripts and the FIFO.

    python bench/bench_notify.py [--fast] [--events N] [--loop uvloop|asyncio]

For each concurrency bound (8, 32, 128) it prints
- submit: the time to hand all N events to `NotifyRunner.submit` (the state machine's
  cost; it must stay tiny: no fork happens there),
- done: the time until every script (`/bin/true`, one per instance) has exited,
- lag: the worst lateness of a 1 ms loop ticker during the storm, i.e. how long an
  advert or a timer could have been held up by the notify work sharing the loop.
Then the same N events through the notify FIFO only (no fork), with a reader on the
loop: the time to write them all and the time until the reader has them all.

keepalived forks each notify script inline (DESIGN.md: ~1 ms each), so N instances
changing state hold its scheduler for about N ms.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time

from fastvrrp.config.model import Script
from fastvrrp.daemon.fifo import NotifyFifo
from fastvrrp.daemon.notify import NotifyEvent, NotifyKind, NotifyRunner, NotifyState

TRUE = Script(("/bin/true",))


def storm(n: int) -> list[NotifyEvent]:
    return [NotifyEvent(NotifyKind.INSTANCE, f"VI_{k}", NotifyState.MASTER, 100, TRUE) for k in range(n)]


class LagProbe:
    """Sleeps 1 ms at a time and records the worst overshoot."""

    def __init__(self) -> None:
        self.worst = 0.0
        self._task: asyncio.Task[None] | None = None

    async def _tick(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            before = loop.time()
            await asyncio.sleep(0.001)
            self.worst = max(self.worst, loop.time() - before - 0.001)

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._tick())

    async def stop(self) -> None:
        assert self._task is not None
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)


async def scripts_once(events: list[NotifyEvent], concurrency: int) -> tuple[float, float, float]:
    runner = NotifyRunner(max_concurrency=concurrency)
    probe = LagProbe()
    probe.start()
    await asyncio.sleep(0.01)
    t0 = time.perf_counter()
    for ev in events:
        runner.submit((ev.kind, ev.name), ev)
    t1 = time.perf_counter()
    left = await runner.drain(120)
    t2 = time.perf_counter()
    await probe.stop()
    stats = runner.stats()
    if left or stats.scripts_failed or stats.transitions_done != len(events):
        raise SystemExit(f"storm incomplete: {len(left)} left, {stats}")
    return t1 - t0, t2 - t0, probe.worst


async def fifo_once(events: list[NotifyEvent]) -> tuple[float, float]:
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "notify.fifo")
        fifo = NotifyFifo(path)
        reader = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
        expected = sum(len(f'{e.kind} "{e.name}" {e.state} {e.priority}\n') for e in events)
        loop = asyncio.get_running_loop()
        got = 0
        all_read: asyncio.Future[float] = loop.create_future()

        def on_readable() -> None:
            nonlocal got
            try:
                while True:
                    data = os.read(reader, 65536)
                    if not data:
                        break
                    got += len(data)
            except BlockingIOError:
                pass
            if got >= expected and not all_read.done():
                all_read.set_result(time.perf_counter())

        loop.add_reader(reader, on_readable)
        t0 = time.perf_counter()
        for ev in events:
            fifo.write_event(ev)
        t1 = time.perf_counter()
        t2 = await asyncio.wait_for(all_read, 30)
        loop.remove_reader(reader)
        os.close(reader)
        await fifo.close()
        return t1 - t0, t2 - t0


async def main_async(n: int, repeat: int, concurrencies: list[int]) -> None:
    events = storm(n)
    print(f"notify storm: {n} transitions, one /bin/true each, {repeat} run(s): best times, worst lag")
    for c in concurrencies:
        runs = [await scripts_once(events, c) for _ in range(repeat)]
        submit = min(r[0] for r in runs)
        done = min(r[1] for r in runs)
        lag = max(r[2] for r in runs)  # the worst stall seen in any run, not the best
        print(f"  concurrency {c:4d}: submit {submit * 1e3:7.2f} ms ({submit / n * 1e6:5.2f} us/event)"
              f"   done {done * 1e3:8.1f} ms ({n / done:6.0f} scripts/s)   worst loop lag {lag * 1e3:6.2f} ms")
    runs = [await fifo_once(events) for _ in range(repeat)]
    write, received = min(runs, key=lambda r: r[1])
    print(f"  FIFO only (no fork): write {write * 1e3:7.2f} ms ({write / n * 1e6:5.2f} us/line)"
          f"   reader has all {received * 1e3:7.2f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--fast", action="store_true", help="one run of 200 events (a smoke test)")
    parser.add_argument("--events", type=int, default=None)
    parser.add_argument("--repeat", type=int, default=None)
    parser.add_argument("--loop", choices=("uvloop", "asyncio"), default="uvloop")
    args = parser.parse_args()
    n = args.events or (200 if args.fast else 1000)
    repeat = args.repeat or (1 if args.fast else 3)
    if args.loop == "uvloop":
        import uvloop

        uvloop.run(main_async(n, repeat, [8, 32, 128]))
    else:
        asyncio.run(main_async(n, repeat, [8, 32, 128]))


if __name__ == "__main__":
    main()
