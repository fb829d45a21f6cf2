"""Every host builtin the embedded engine provides, by name."""

import time
from collections.abc import Callable

from sekisho.policy.wasm.builtins import (
    encoding,
    network,
    numbers,
    objects,
    strings,
    units,
    versions,
)
from sekisho.policy.wasm.builtins.regex import RegexBuiltins
from sekisho.policy.wasm.builtins.registry import HostBuiltin
from sekisho.policy.wasm.builtins.times import time_builtins


def host_builtins(now_ns: Callable[[], int] = time.time_ns) -> dict[str, HostBuiltin]:
    """name → implementation. Each call builds its own state (the regex pattern cache)."""
    every = (
        *strings.BUILTINS,
        *encoding.BUILTINS,
        *objects.BUILTINS,
        *versions.BUILTINS,
        *units.BUILTINS,
        *network.BUILTINS,
        *numbers.BUILTINS,
        *RegexBuiltins().builtins(),
        *time_builtins(now_ns),
    )
    return {builtin.name: builtin for builtin in every}
