"""Config -> plain JSON-able data (for `fastvrrp check --json` and status tools)."""

from __future__ import annotations

import dataclasses
import enum
from ipaddress import IPv4Address, IPv4Interface, IPv4Network, IPv6Address, IPv6Interface, IPv6Network
from typing import Any

from fastvrrp.config.diagnostics import Diagnostic, Location
from fastvrrp.config.model import Config

_ADDRESS_TYPES = (IPv4Address, IPv6Address, IPv4Interface, IPv6Interface, IPv4Network, IPv6Network)
MASKED = "********"


def to_jsonable(value: Any) -> Any:
    if isinstance(value, Location):
        return str(value)
    if isinstance(value, Diagnostic):
        return str(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        out: dict[str, Any] = {}
        for f in dataclasses.fields(value):
            item = getattr(value, f.name)
            # Keep the password out of dumps that end up in bug reports.
            out[f.name] = (MASKED if item else "") if f.name == "auth_pass" else to_jsonable(item)
        return out
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, _ADDRESS_TYPES):
        return str(value)
    if isinstance(value, bytes):
        return value.decode("latin-1")
    if isinstance(value, (tuple, list)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, (frozenset, set)):
        return sorted(to_jsonable(v) for v in value)
    return value


def config_to_dict(config: Config) -> dict[str, Any]:
    data = to_jsonable(config)
    assert isinstance(data, dict)
    return data
