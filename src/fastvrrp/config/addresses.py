"""Address-list entries: VIPs (keepalived vrrp_ipaddress.c), routes, rules, unicast peers."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Interface, IPv6Interface, ip_address, ip_interface, ip_network

from fastvrrp.config.diagnostics import did_you_mean
from fastvrrp.config.model import IPNetwork, UnicastPeer, VirtualAddress, VirtualRoute, VirtualRule
from fastvrrp.config.parser import Statement
from fastvrrp.config.values import Reader

# Named scopes of /etc/iproute2/rt_scopes; a number 0-255 is accepted too.
SCOPES = ("global", "universe", "site", "link", "host", "nowhere")
_ADDRESS_FLAGS = ("home", "-nodad", "mngtmpaddr", "noprefixroute", "autojoin")
_VIP_OPTIONS_WITH_VALUE = ("dev", "scope", "broadcast", "brd", "label", "peer", "preferred_lft")
_VIP_FLAG_OPTIONS = _ADDRESS_FLAGS + ("no_track", "use_vmac")


def parse_vip(reader: Reader, item: Statement, what: str) -> VirtualAddress | None:
    """One line of virtual_ipaddress / virtual_ipaddress_excluded."""
    diag = reader.diag
    words = item.words
    if item.block is not None:
        diag.error(item.location, f"{what} entries do not take a {{ }} block")
        return None
    text = words[0]
    address = _interface(text)
    if address is None:
        diag.error(item.location, f"{what}: '{text}' is not an IP address[/prefix]")
        return None
    is_v6 = isinstance(address, IPv6Interface)
    broadcast: IPv4Address | None = None
    brd_mode = ""
    device = scope = label = None
    peer = None
    no_track = use_vmac = False
    flags: set[str] = set()
    preferred_lft: int | None = None
    i = 1
    ok = True
    while i < len(words):
        option = words[i]
        if option in _VIP_OPTIONS_WITH_VALUE:
            if i + 1 >= len(words):
                diag.error(item.location, f"{what} {text}: '{option}' needs a value")
                return None
            value = words[i + 1]
            i += 2
            if option == "dev":
                device = value
            elif option == "scope":
                if value not in SCOPES and not (value.isdigit() and int(value) <= 255):
                    diag.error(item.location, f"{what} {text}: unknown scope '{value}'")
                    ok = False
                scope = value
            elif option in ("broadcast", "brd"):
                if is_v6:
                    diag.error(item.location, f"{what} {text}: an IPv6 address has no broadcast")
                    ok = False
                elif value in ("+", "-"):
                    brd_mode = value
                else:
                    try:
                        broadcast = IPv4Address(value)
                    except ValueError:
                        diag.error(item.location, f"{what} {text}: invalid broadcast '{value}'")
                        ok = False
            elif option == "label":
                if len(value) >= 16:
                    diag.error(item.location, f"{what} {text}: label '{value}' is longer than 15 characters")
                    ok = False
                label = value
            elif option == "peer":
                try:
                    peer = ip_address(value)
                except ValueError:
                    diag.error(item.location, f"{what} {text}: invalid peer '{value}'")
                    ok = False
            else:  # preferred_lft
                if value == "forever":
                    preferred_lft = 0xFFFFFFFF
                elif value.isdigit() and int(value) <= 0xFFFFFFFF:
                    preferred_lft = int(value)
                else:
                    diag.error(item.location, f"{what} {text}: invalid preferred_lft '{value}'")
                    ok = False
            continue
        if option in _VIP_FLAG_OPTIONS:
            if option == "no_track":
                no_track = True
            elif option == "use_vmac":
                use_vmac = True
            else:
                flags.add(option)
            i += 1
            continue
        known = _VIP_OPTIONS_WITH_VALUE + _VIP_FLAG_OPTIONS
        diag.error(item.location, f"{what} {text}: unknown option '{option}'{did_you_mean(option, known)}")
        return None
    if is_v6 and (scope is not None or label is not None):
        diag.error(item.location, f"{what} {text}: IPv6 addresses take no scope or label")
        ok = False
    if brd_mode and isinstance(address, IPv4Interface):
        # `brd +` / `brd -`: all-ones / all-zeros host part, as `ip addr` does.
        if address.network.prefixlen <= 30:
            net = address.network
            broadcast = net.broadcast_address if brd_mode == "+" else net.network_address
        else:
            diag.error(item.location, f"{what} {text}: prefix /{address.network.prefixlen} is too long for a broadcast")
            ok = False
    if not ok:
        return None
    return VirtualAddress(
        address=address,
        broadcast=broadcast,
        device=device,
        scope=scope,
        label=label,
        peer=peer,
        no_track=no_track,
        use_vmac=use_vmac,
        flags=frozenset(flags),
        preferred_lft=preferred_lft,
        location=item.location,
    )


def _interface(text: str) -> IPv4Interface | IPv6Interface | None:
    try:
        return ip_interface(text)
    except ValueError:
        return None


def _network(text: str) -> IPNetwork | None:
    try:
        return ip_network(text, strict=False)
    except ValueError:
        return None


_ROUTE_TYPES = ("unicast", "blackhole", "unreachable", "prohibit", "throw", "local", "broadcast", "multicast", "nat", "anycast")
_ROUTE_WITH_VALUE = (
    "via", "gw", "dev", "oif", "src", "table", "metric", "preference", "priority", "scope",
    "protocol", "proto", "tos", "dsfield", "mtu", "advmss", "rtt", "rttvar", "reordering",
    "window", "cwnd", "initcwnd", "initrwnd", "ssthresh", "realms", "rto_min", "hoplimit",
    "features", "quickack", "congctl", "pref", "fastopen_no_cookie", "expires", "ttl-propagate",
    "encap", "nexthop", "weight",
)  # fmt: skip
_ROUTE_FLAGS = ("onlink", "no_track", "lock", "inet", "inet6")


def parse_route(reader: Reader, item: Statement) -> VirtualRoute | None:
    """One virtual_routes line: `ip route` syntax (keepalived vrrp_iproute.c alloc_route())."""
    diag = reader.diag
    words = item.words
    destination: IPNetwork | None = None
    have_destination = False
    route_type = None
    gateway = source = None
    device = table = None
    no_track = False
    i = 0
    while i < len(words):
        word = words[i]
        if word == "or":
            break  # multipath next hops: kept in `words` for the route installer
        if word in _ROUTE_WITH_VALUE:
            if i + 1 >= len(words):
                diag.error(item.location, f"virtual_routes: '{word}' needs a value")
                return None
            value = words[i + 1]
            if word in ("via", "gw", "src"):
                try:
                    addr = ip_address(value)
                except ValueError:
                    diag.error(item.location, f"virtual_routes: '{value}' is not an IP address")
                    return None
                if word == "src":
                    source = addr
                else:
                    gateway = addr
            elif word in ("dev", "oif"):
                device = value
            elif word == "table":
                table = value
            i += 2
            continue
        if word in _ROUTE_FLAGS:
            no_track = no_track or word == "no_track"
            i += 1
            continue
        if word in _ROUTE_TYPES and route_type is None and not have_destination:
            route_type = word
            i += 1
            continue
        if not have_destination:
            if word in ("default", "any", "all"):
                have_destination = True
            else:
                destination = _network(word)
                if destination is None:
                    diag.error(item.location, f"virtual_routes: '{word}' is not a destination network")
                    return None
                have_destination = True
            i += 1
            continue
        diag.error(item.location, f"virtual_routes: unknown option '{word}'")
        return None
    if not have_destination:
        diag.error(item.location, "virtual_routes: no destination given")
        return None
    return VirtualRoute(
        words=tuple(words),
        destination=destination,
        route_type=route_type,
        gateway=gateway,
        device=device,
        source=source,
        table=table,
        no_track=no_track,
        location=item.location,
    )


_RULE_WITH_VALUE = (
    "from", "to", "table", "lookup", "iif", "oif", "fwmark", "tos", "dsfield", "priority",
    "preference", "pref", "order", "goto", "suppress_prefixlength", "suppress_ifgroup",
    "realms", "uidrange", "sport", "dport", "ipproto", "protocol", "tun_id",
)  # fmt: skip
_RULE_FLAGS = ("not", "no_track", "l3mdev", "inet", "inet6", "blackhole", "prohibit", "unreachable", "nop")


def parse_rule(reader: Reader, item: Statement) -> VirtualRule | None:
    """One virtual_rules line: `ip rule` syntax (keepalived vrrp_iprule.c alloc_rule())."""
    diag = reader.diag
    words = item.words
    from_network = to_network = None
    table = None
    no_track = False
    i = 0
    while i < len(words):
        word = words[i]
        if word in _RULE_WITH_VALUE:
            if i + 1 >= len(words):
                diag.error(item.location, f"virtual_rules: '{word}' needs a value")
                return None
            value = words[i + 1]
            if word in ("from", "to"):
                network = None if value == "all" else _network(value)
                if network is None and value != "all":
                    diag.error(item.location, f"virtual_rules: invalid address '{value}'")
                    return None
                if word == "from":
                    from_network = network
                else:
                    to_network = network
            elif word in ("table", "lookup"):
                table = value
            i += 2
            continue
        if word in _RULE_FLAGS:
            no_track = no_track or word == "no_track"
            i += 1
            continue
        diag.error(item.location, f"virtual_rules: unknown option '{word}'")
        return None
    if (
        from_network is not None
        and to_network is not None
        and from_network.version != to_network.version
    ):
        diag.error(item.location, "virtual_rules: 'from' and 'to' are of different address families")
        return None
    return VirtualRule(
        words=tuple(words),
        from_network=from_network,
        to_network=to_network,
        table=table,
        no_track=no_track,
        location=item.location,
    )


def parse_unicast_peer(reader: Reader, item: Statement) -> tuple[UnicastPeer, bool] | None:
    """`ADDRESS [min_ttl N] [max_ttl N]`; returns the peer and whether a TTL bound was set."""
    diag = reader.diag
    words = item.words
    try:
        address = ip_address(words[0])
    except ValueError:
        diag.error(item.location, f"unicast_peer: '{words[0]}' is not an IP address")
        return None
    min_ttl, max_ttl = 0, 255
    bounded = False
    i = 1
    while i < len(words):
        option = words[i]
        if option not in ("min_ttl", "max_ttl"):
            diag.error(item.location, f"unicast_peer {words[0]}: unknown option '{option}'")
            return None
        if i + 1 >= len(words) or not words[i + 1].isdigit() or int(words[i + 1]) > 255:
            diag.error(item.location, f"unicast_peer {words[0]}: '{option}' needs a value 0-255")
            return None
        if option == "min_ttl":
            min_ttl = int(words[i + 1])
        else:
            max_ttl = int(words[i + 1])
        bounded = True
        i += 2
    if min_ttl > max_ttl:
        diag.warning(item.location, f"unicast_peer {words[0]}: min_ttl {min_ttl} > max_ttl {max_ttl}, every advert will be dropped")
    return UnicastPeer(address, min_ttl, max_ttl), bounded
