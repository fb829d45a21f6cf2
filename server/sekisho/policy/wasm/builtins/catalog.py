"""Every host builtin the embedded engine provides, by name."""

from sekisho.policy.wasm.builtins import strings
from sekisho.policy.wasm.builtins.registry import HostBuiltin


def host_builtins() -> dict[str, HostBuiltin]:
    """name → implementation."""
    return {builtin.name: builtin for builtin in strings.BUILTINS}
