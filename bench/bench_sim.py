"""Scale in the simulator: 1000 instances x 3 routers, one hour of virtual time.

    python bench/bench_sim.py            # 1000 instances x 3 routers x 1 h, VRRPv3 1 s
    python bench/bench_sim.py --fast     # 100 instances x 10 min (smoke run)
    python bench/bench_sim.py --modes compiled --instances 2000 --minutes 30

Runs tests/sim's LAN (real state machines, wheels, codec and encoded IPv4 packets)
once per fast-path mode and prints process CPU seconds, events handled (due timers +
received datagrams, summed over routers) and the share of events that stayed in the
fast path:

- compiled: fastvrrp._fastpath over the compiled wheel and codec (production);
- twin:     fastvrrp.proto.fastpath over the compiled wheel and codec;
- off:      no fast path, every timer and datagram enters the Python state machine.

Instance i's master is router i % 3 (priority 200, the others 100/125/150); all start
at t=0, so each router's masters advertise together, one sendmmsg-like batch a second
(as keepalived instances started together stay in phase). A figure, not a test bound.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from fastvrrp.proto.actions import State  # noqa: E402
from sim.lan import NS_PER_S, Lan, Topology  # noqa: E402

ROUTERS = 3


def topology(instances: int) -> Topology:
    prios = [[200 if i % ROUTERS == r else 100 + 25 * ((i + r) % ROUTERS)
              for i in range(instances)] for r in range(ROUTERS)]
    return Topology(prios, version=3, advert_int_cs=100)


def run(mode: str, instances: int, seconds: int) -> dict[str, float]:
    lan = topology(instances).build(Lan(fast_path=mode, record=False))
    t0 = time.process_time()
    lan.start()
    lan.run_until(seconds * NS_PER_S)
    cpu = time.process_time() - t0
    masters = sum(f.state == State.MASTER for r in lan.routers.values() for f in r.fsms)
    if masters != instances:
        raise SystemExit(f"{mode}: {masters} masters for {instances} instances")
    stats = lan.stats()
    c = lan.fast_path_counters()
    events = stats.timer_events + stats.packet_events
    return {"cpu": cpu, "events": events,
            "fast": (c["steady_sends"] + c["steady_rearms"]) / events,
            "python": stats.python_timer_inputs + stats.python_advert_inputs}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--fast", action="store_true", help="100 instances x 10 min")
    ap.add_argument("--instances", type=int)
    ap.add_argument("--minutes", type=float)
    ap.add_argument("--modes", default="compiled,twin,off")
    args = ap.parse_args()
    instances = args.instances or (100 if args.fast else 1000)
    seconds = int((args.minutes or (10 if args.fast else 60)) * 60)
    print(f"{instances} instances x {ROUTERS} routers x {seconds} s virtual, VRRPv3 1 s")
    print(f"{'mode':<10}{'CPU s':>9}{'events':>12}{'in fast path':>14}"
          f"{'Python inputs':>15}{'us/event':>10}")
    for mode in args.modes.split(","):
        r = run(mode, instances, seconds)
        print(f"{mode:<10}{r['cpu']:>9.2f}{r['events']:>12,}{r['fast']:>13.2%}"
              f"{r['python']:>15,}{r['cpu'] / r['events'] * 1e6:>10.3f}", flush=True)


if __name__ == "__main__":
    main()
