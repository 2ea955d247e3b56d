"""The one-screen text summary printed by `fastvrrp check`."""

from __future__ import annotations

from fastvrrp.config.model import Config, Instance

MAX_INSTANCE_LINES = 20


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def _instance_line(inst: Instance) -> str:
    transport = (
        f"unicast {inst.source_ip or '-'} -> {', '.join(str(p.address) for p in inst.unicast_peers)}"
        if inst.is_unicast
        else f"multicast {inst.mcast_dst_ip}"
    )
    parts = [
        f"{inst.name}",
        f"{inst.interface or '-'}",
        f"vrid {inst.vrid}",
        f"IPv{inst.family.value} v{inst.version}",
        f"{inst.state.value} prio {inst.priority}",
        f"advert {inst.advert_int_s:g}s",
        transport,
        _plural(len(inst.vips), "VIP"),
    ]
    if inst.sync_group:
        parts.append(f"group {inst.sync_group}")
    return "  " + "  ".join(parts)


def summarize(config: Config, source: str) -> str:
    vip_count = sum(len(i.vips) + len(i.excluded_vips) for i in config.instances)
    lines = [
        f"{source}: OK: {_plural(len(config.instances), 'instance')}, {_plural(vip_count, 'VIP')}, "
        f"{_plural(len(config.scripts), 'script')}, {_plural(len(config.sync_groups), 'sync group')}, "
        f"{_plural(len(config.warnings), 'warning')}"
    ]
    if config.instances:
        lines.append("instances:")
        lines.extend(_instance_line(i) for i in config.instances[:MAX_INSTANCE_LINES])
        if len(config.instances) > MAX_INSTANCE_LINES:
            lines.append(f"  ... and {len(config.instances) - MAX_INSTANCE_LINES} more")
    if config.scripts:
        lines.append("scripts:")
        for s in config.scripts:
            lines.append(f"  {s.name}: {' '.join(s.script.argv)}  every {s.interval_s:g}s, weight {s.weight}")
    if config.sync_groups:
        lines.append("sync groups:")
        for g in config.sync_groups:
            lines.append(f"  {g.name}: {', '.join(g.instances)}")
    if config.warnings:
        lines.append("warnings:")
        lines.extend(f"  {w}" for w in config.warnings)
    return "\n".join(lines)
