"""net.cidr_is_valid (topdown/cidr.go): Go's net.ParseCIDR accepts the text. That is an address
as netip.ParseAddr reads it (IPv4 dotted quad without leading zeros; IPv6 with `::`, up to four
hex digits a group and an optional trailing dotted quad), no zone, then `/` and a decimal
prefix (leading zeros allowed) no longer than the address. Anything else, or a non-string, is
false."""

import ipaddress
from typing import Any

from sekisho.policy.wasm.builtins.registry import HostBuiltin


def cidr_is_valid(value: Any) -> bool:
    if not isinstance(value, str) or "/" not in value:
        return False
    address, prefix = value.split("/", 1)
    if not (prefix.isascii() and prefix.isdigit()) or "%" in address:
        return False
    try:
        parsed = (
            ipaddress.IPv6Address(address) if ":" in address else ipaddress.IPv4Address(address)
        )
    except ValueError:
        return False
    return int(prefix) <= parsed.max_prefixlen


BUILTINS = (HostBuiltin("net.cidr_is_valid", cidr_is_valid),)
