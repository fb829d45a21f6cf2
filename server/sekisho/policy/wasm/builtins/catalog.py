"""Every host builtin the embedded engine provides, by name."""

from sekisho.clock import Clock
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


def host_builtins(clock: Clock) -> dict[str, HostBuiltin]:
    """name → implementation; `clock` is time.now_ns's. Each call builds its own state (the
    regex pattern cache)."""
    every = (
        *strings.BUILTINS,
        *encoding.BUILTINS,
        *objects.BUILTINS,
        *versions.BUILTINS,
        *units.BUILTINS,
        *network.BUILTINS,
        *numbers.BUILTINS,
        *RegexBuiltins().builtins(),
        *time_builtins(clock),
    )
    return {builtin.name: builtin for builtin in every}
