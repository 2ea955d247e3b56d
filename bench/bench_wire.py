"""Micro-benchmarks of the VRRP codec: compiled vs its Python twin vs scapy.

    python bench/bench_wire.py            # full pyperf run (about 2 minutes)
    python bench/bench_wire.py --fast     # quick smoke run

Prints ns per operation and the ratios, all from the same run; exits 1 if the
compiled decode+validate is not at least 20x faster than the Python twin (the floor
set in issue 2). Ratios matter here, absolute times drift on a shared machine.
"""

from __future__ import annotations

import ipaddress
import sys
import time

import pyperf

import fastvrrp._wire as C
import fastvrrp.proto.packet as PY

SRC = ipaddress.IPv4Address("192.0.2.1").packed
DST = ipaddress.IPv4Address("224.0.0.18").packed
VIPS = b"".join(ipaddress.IPv4Address(f"192.0.2.{100 + i}").packed for i in range(2))
FLOOR = 20.0


def datagram() -> bytes:
    msg = C.encode(3, 51, 100, 100, VIPS, src=SRC, dst=DST)
    total = 20 + len(msg)
    return bytes([0x45, 0xC0, total >> 8, total & 0xFF, 0, 0, 0x40, 0, 255, 112, 0, 0]) + SRC + DST + msg


def table(mod):
    t = mod.ReceiveTable()
    t[51] = mod.Expect(3, addresses=VIPS)
    return t


def timed(fn, *args):
    def run(loops):
        t0 = time.perf_counter()
        for _ in range(loops):
            fn(*args)
        return time.perf_counter() - t0
    return run


def c_level_validate(loops, pkt, tbl):
    # One Python call validates `loops` packets in C: the fast path's per-packet cost.
    t0 = time.perf_counter()
    ok = C.bench_validate_ipv4(pkt, tbl, loops)
    elapsed = time.perf_counter() - t0
    assert ok == loops
    return elapsed


def scapy_cases(pkt):
    from scapy.layers.inet import IP
    from scapy.layers.vrrp import VRRPv3
    from scapy.utils import checksum as scapy_checksum
    vips = [str(ipaddress.IPv4Address(VIPS[i:i + 4])) for i in range(0, len(VIPS), 4)]
    return {
        "encode/scapy": timed(lambda: bytes(IP(src="192.0.2.1", dst="224.0.0.18", ttl=255)
                                            / VRRPv3(vrid=51, priority=100, adv=100, addrlist=vips))),
        "decode/scapy": timed(lambda: IP(pkt)[VRRPv3].priority),
        "checksum/scapy": timed(scapy_checksum, pkt[20:]),
    }


def main() -> int:
    runner = pyperf.Runner()
    pkt = datagram()
    msg = pkt[20:]
    tc, tp = table(C), table(PY)
    enc_c = C.AdvertEncoder(3, 51, 100, 100, VIPS, src=SRC, dst=DST)
    enc_p = PY.AdvertEncoder(3, 51, 100, 100, VIPS, src=SRC, dst=DST)
    cases = {
        "validate/compiled": timed(C.validate_ipv4, pkt, tc),
        "validate/compiled-C-loop": lambda loops: c_level_validate(loops, pkt, tc),
        "validate/python": timed(PY.validate_ipv4, pkt, tp),
        "encode/compiled": timed(lambda: C.encode(3, 51, 100, 100, VIPS, src=SRC, dst=DST)),
        "encode/python": timed(lambda: PY.encode(3, 51, 100, 100, VIPS, src=SRC, dst=DST)),
        "steady-packet/compiled": timed(enc_c.packet),
        "steady-packet/python": timed(enc_p.packet),
        "checksum/compiled": timed(C.inet_checksum, msg),
        "checksum/python": timed(PY.inet_checksum, msg),
        **scapy_cases(pkt),
    }
    benches = {name: runner.bench_time_func(name, fn) for name, fn in cases.items()}
    if runner.args.worker:
        return 0
    results = {name: bench.median() * 1e9 for name, bench in benches.items()}

    print("\nns per operation (median), VRRPv3/IPv4 advert with 2 VIPs:")
    for name, ns in results.items():
        print(f"  {name:28s} {ns:10.1f}")
    ratios = [
        ("validate: python / compiled", "validate/python", "validate/compiled"),
        ("validate: python / compiled C loop", "validate/python", "validate/compiled-C-loop"),
        ("validate: scapy / compiled", "decode/scapy", "validate/compiled"),
        ("encode: python / compiled", "encode/python", "encode/compiled"),
        ("encode: scapy / compiled", "encode/scapy", "encode/compiled"),
        ("checksum: python / compiled", "checksum/python", "checksum/compiled"),
        ("checksum: scapy / compiled", "checksum/scapy", "checksum/compiled"),
    ]
    print("\nratios (same run):")
    for label, slow, fast in ratios:
        print(f"  {label:36s} {results[slow] / results[fast]:8.1f}x")
    speedup = results["validate/python"] / results["validate/compiled"]
    if speedup < FLOOR:
        print(f"FAIL: compiled validate only {speedup:.1f}x the Python twin (floor {FLOOR}x)")
        return 1
    print(f"OK: compiled validate is {speedup:.1f}x the Python twin (floor {FLOOR}x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
