"""The host builtin table: name → implementation, and how a module's needs are checked.

A builtin raises BuiltinError where OPA's own implementation returns an error; OPA (without
strict builtin errors) then treats the call as undefined, and so does the instance. Anything
else a builtin raises traps the evaluation, which the engine answers with a deny.
"""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


class BuiltinError(Exception):
    """The operands are outside what the builtin accepts (OPA: a builtin error → undefined)."""


class UnsupportedBuiltinError(Exception):
    """The module needs builtins this host does not implement."""

    def __init__(self, names: list[str]) -> None:
        super().__init__(
            f"the policy uses builtin(s) the embedded engine does not provide: {', '.join(names)}"
        )
        self.names = names


@dataclass(frozen=True, slots=True)
class HostBuiltin:
    """One host builtin. Operands arrive as JSON values; with `rego_text`, as Rego values
    (regotext.parse of the module's `opa_value_dump`: sets, non-string keys and number texts kept);
    with `per_evaluation`, the first result is reused for the rest of the evaluation (OPA reads
    time.now_ns once per query)."""

    name: str
    call: Callable[..., Any]
    rego_text: bool = False
    per_evaluation: bool = False


def bind(needed: dict[str, int], available: dict[str, HostBuiltin]) -> dict[int, HostBuiltin]:
    """Map the module's builtin ids to implementations. Raises: UnsupportedBuiltinError."""
    missing = sorted(name for name in needed if name not in available)
    if missing:
        raise UnsupportedBuiltinError(missing)
    return {builtin_id: available[name] for name, builtin_id in needed.items()}
