"""Choose, per accelerated module, the compiled extension or its pure-Python twin.

The choice is never silent: every fallback is logged once and recorded, and
`fastvrrp --version` / `fastvrrp run` print `status()`. Setting FASTVRRP_PURE=1
forces the twins (used by tests that compare the two).
"""

from __future__ import annotations

import importlib
import logging
import os
from types import ModuleType

log = logging.getLogger("fastvrrp")

_status: dict[str, str] = {}


def force_pure() -> bool:
    return os.environ.get("FASTVRRP_PURE", "") not in ("", "0")


def load(ext_name: str, twin_name: str) -> ModuleType:
    """Import fastvrrp.<ext_name>, or the twin module if it is not built."""
    if force_pure():
        _status[ext_name] = "pure Python (FASTVRRP_PURE is set)"
    else:
        try:
            module = importlib.import_module(f"fastvrrp.{ext_name}")
        except ImportError as exc:
            _status[ext_name] = f"pure Python FALLBACK (extension not built: {exc})"
            log.warning("fastvrrp.%s is not compiled; using the slow pure-Python %s",
                        ext_name, twin_name)
        else:
            _status[ext_name] = "compiled"
            return module
    return importlib.import_module(twin_name)


def status() -> dict[str, str]:
    """Implementation in use for every accelerated module loaded so far, and the rest."""
    for name, twin in ACCELERATED.items():
        if name not in _status:
            load(name, twin)
    return dict(_status)


def all_compiled() -> bool:
    return all(v == "compiled" for v in status().values())


# Every Cython module and its pure-Python twin.
ACCELERATED: dict[str, str] = {
    "_wire": "fastvrrp.proto.packet",
    "_wheel": "fastvrrp.proto.wheel",
    "_fastpath": "fastvrrp.proto.fastpath",
    "_fastio": "fastvrrp.net.io",
}
