"""What OPA holds, compared with what Sekisho published (`[policy] manage = true`).

OPA's REST API lets any client that gets through its authentication write modules and data.
A module another process put under the policy's packages (or a changed copy of one of ours, or
edited data) can grant scopes Sekisho's policy folder never granted, and a republish of only
`sekisho/` ids would leave it in place. So every supervisor check lists OPA's modules and reads
the published data back; any difference makes the engine not ready and republish, which deletes
foreign modules under the policy's roots and replaces the data (docs/security.md, issue 19).
Reading the data back whole (a 1,000-downstream registry is 400 KB, and reading a key's document
evaluates every rule under it: about 1 s of OPA's CPU) is too dear for every check of a busy
OPA, so a check compares modules and a digest OPA computes of the published documents, and the
whole comparison (which also finds foreign names beside them: inert unless a module reads them,
and modules are compared every check) runs when the digest moves and every few checks.
Enable OPA's token authentication too: this check finds tampering, it does not prevent it.
"""

import json
from typing import Any

from sekisho.policy.opa.api import OpaApi, OpaEvaluationError, OpaPolicy, pointer
from sekisho.policy.opa.publisher import is_foreign, policy_id
from sekisho.policy.source import PolicySource


def module_drift(held: list[OpaPolicy], source: PolicySource, roots: frozenset[str]) -> list[str]:
    """The differences between the modules OPA holds (`held`) and `source`'s."""
    wanted = {policy_id(name): text for name, text in source.modules.items()}
    problems = [
        f"foreign module {p.id!r} (package {'.'.join(p.package)})"
        for p in held
        if is_foreign(p, wanted, roots)
    ]
    problems += [f"module {p.id} was changed" for p in held if wanted.get(p.id, p.raw) != p.raw]
    problems += [f"module {pid} is missing" for pid in sorted(wanted.keys() - {p.id for p in held})]
    return problems


def our_packages(held: list[OpaPolicy], source: PolicySource) -> set[tuple[str, ...]]:
    """The packages of the modules Sekisho published (their rules are not foreign data)."""
    wanted = {policy_id(name) for name in source.modules}
    return {p.package for p in held if p.id in wanted}


async def data_drift(
    api: OpaApi, source: PolicySource, packages: set[tuple[str, ...]]
) -> list[str]:
    """The differences between OPA's data under `source`'s keys and `source`'s data, foreign
    names included (reads every published document whole, and evaluates each key's document
    with its rules: costly with a large registry, so not on every check).

    Raises: OpaUnavailableError.
    """
    problems = []
    for key, value in source.data.items():
        problems += await _data_drift(api, key, value, packages)
    return problems


def digest_query(source: PolicySource) -> str:
    """An ad-hoc query whose one binding `d` is a digest OPA computes of every published data
    document as it holds it (64 hex characters come back, not the documents). It changes when
    any of them is edited; foreign names beside them are data_drift()'s to find."""
    refs = []
    for key, value in sorted(source.data.items()):
        base = f"data[{json.dumps(key)}]"
        names = sorted(value) if isinstance(value, dict) else []
        refs += [f"{base}[{json.dumps(name)}]" for name in names] or [base]
    return f"d := crypto.sha256(json.marshal([{', '.join(refs)}]))"


async def data_digest(api: OpaApi, source: PolicySource) -> str:
    """OPA's digest of the published data documents ("" when one is missing).

    Raises: OpaUnavailableError.
    """
    try:
        bindings = await api.ad_hoc(digest_query(source))
    except OpaEvaluationError:
        return ""
    first = bindings[0] if bindings and isinstance(bindings[0], dict) else {}
    digest = first.get("d")
    return digest if isinstance(digest, str) else ""


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
