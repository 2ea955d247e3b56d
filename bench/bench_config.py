"""Time `fastvrrp.config.load` on a generated 1000-instance keepalived.conf.

Wall time and process CPU time are both printed: on a shared machine the CPU figure is
the steadier one.

    python bench/bench_config.py [--instances N] [--repeat R]

The config spreads instances over interfaces (VRIDs are unique per interface), gives each
two VIPs, tracks a shared script and puts pairs in sync groups, so every section and the
cross-instance checks are exercised.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

from fastvrrp.config import load

VRIDS_PER_INTERFACE = 250


def generate(instances: int) -> str:
    out = [
        "global_defs {\n    router_id bench\n    vrrp_version 3\n}\n",
        'vrrp_script chk {\n    script "/bin/true"\n    interval 2\n    weight -10\n}\n',
    ]
    for n in range(instances):
        iface = f"eth{n // VRIDS_PER_INTERFACE}"
        vrid = n % VRIDS_PER_INTERFACE + 1
        a, b = divmod(n, 250)
        unicast = (
            f"    unicast_src_ip 198.51.{a}.1\n    unicast_peer {{\n        198.51.{a}.2\n    }}\n"
            if n % 4 == 0
            else ""
        )
        out.append(
            f"vrrp_instance VI_{n} {{\n"
            f"    state BACKUP\n"
            f"    interface {iface}\n"
            f"    virtual_router_id {vrid}\n"
            f"    priority {100 + n % 50}\n"
            f"    advert_int 0.1\n"
            f"{unicast}"
            f"    virtual_ipaddress {{\n"
            f"        10.{a}.{b}.1/24 dev {iface}\n"
            f"        10.{a}.{b}.2/24 dev {iface} label {iface}:v{vrid}\n"
            f"    }}\n"
            f"    track_script {{\n        chk\n    }}\n"
            f'    notify_master "/etc/keepalived/notify.sh master VI_{n}"\n'
            f"}}\n"
        )
    return "".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--instances", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "keepalived.conf")
        with open(path, "w") as f:
            f.write(generate(args.instances))
        with open(path) as f:
            line_count = sum(1 for _ in f)
        timings = []
        cpu_timings = []
        for _ in range(args.repeat):
            start, cpu_start = time.perf_counter(), time.process_time()
            config = load(path, config_id="bench")
            timings.append(time.perf_counter() - start)
            cpu_timings.append(time.process_time() - cpu_start)
    assert len(config.instances) == args.instances
    print(
        f"load: {args.instances} instances, {line_count} lines: "
        f"median {statistics.median(timings) * 1000:.1f} ms, best {min(timings) * 1000:.1f} ms "
        f"over {args.repeat} runs; CPU median {statistics.median(cpu_timings) * 1000:.1f} ms "
        f"({len(config.warnings)} warnings)"
    )


if __name__ == "__main__":
    main()
