"""What OPA holds, compared with what Sekisho published (`[policy] manage = true`).

OPA's REST API lets any client that gets through its authentication write modules and data.
A module another process put under the policy's packages (or a changed copy of one of ours, or
edited data) can grant scopes Sekisho's policy folder never granted, and a republish of only
`sekisho/` ids would leave it in place. So every supervisor check lists OPA's modules and reads
the published data back; any difference makes the engine not ready and republish, which deletes
foreign modules under the policy's roots and replaces the data (docs/security.md, issue 19).
Enable OPA's token authentication too: this check finds tampering, it does not prevent it.
"""

from typing import Any

from sekisho.policy.opa.api import OpaApi, OpaEvaluationError, pointer
from sekisho.policy.opa.publisher import is_foreign, policy_id
from sekisho.policy.source import PolicySource


async def drift(api: OpaApi, source: PolicySource, roots: frozenset[str]) -> list[str]:
    """Every difference between OPA and `source`, one line each ([] when they agree).

    Raises: OpaUnavailableError.
    """
    wanted = {policy_id(name): text for name, text in source.modules.items()}
    held = await api.policies()
    problems = [
        f"foreign module {p.id!r} (package {'.'.join(p.package)})"
        for p in held
        if is_foreign(p, wanted, roots)
    ]
    problems += [f"module {p.id} was changed" for p in held if wanted.get(p.id, p.raw) != p.raw]
    problems += [f"module {pid} is missing" for pid in sorted(wanted.keys() - {p.id for p in held})]
    ours = {p.package for p in held if p.id in wanted}
    for key, value in source.data.items():
        problems += await _data_drift(api, key, value, ours)
    return problems


async def _data_drift(
    api: OpaApi, key: str, value: Any, packages: set[tuple[str, ...]]
) -> list[str]:
    if not isinstance(value, dict):
        held = await api.data(pointer(key))
        return [] if held == value else [f"data.{key} differs from the published data"]
    problems = []
    for name, published in value.items():
        if await api.data(f"{pointer(key)}/{pointer(name)}") != published:
            problems.append(f"data.{key}.{name} differs from the published data")
    rule_names = {p[1] for p in packages if len(p) > 1 and p[0] == key}
    try:
        document = await api.data(pointer(key))
    except OpaEvaluationError:  # rules that need input: the per-name comparison above stands
        return problems
    if isinstance(document, dict):
        extra = sorted(set(document) - set(value) - rule_names)
        problems += [f"foreign data.{key}.{name}" for name in extra]
    return problems
