"""The two codec implementations, for tests that must hold for both.

The compiled module is required: a missing build fails the tests instead of
quietly testing only the slow twin.
"""

import importlib

import fastvrrp.proto.packet as twin


def compiled():
    try:
        return importlib.import_module("fastvrrp._wire")
    except ImportError as exc:  # pragma: no cover - a broken build must be loud
        raise AssertionError(f"fastvrrp._wire is not built ({exc}); run pip install -e .") from exc


IMPLS = {"python": lambda: twin, "compiled": compiled}


def ipv4_datagram(message: bytes, src: bytes, dst: bytes, ttl: int = 255, proto: int = 112) -> bytes:
    """An IPv4 header (no options) in front of `message`, as a raw socket delivers it."""
    total = 20 + len(message)
    header = bytearray([0x45, 0xC0, total >> 8, total & 0xFF, 0, 0, 0x40, 0, ttl, proto, 0, 0])
    header += src + dst
    return bytes(header) + message
