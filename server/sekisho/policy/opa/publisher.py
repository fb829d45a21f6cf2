"""Keeping OPA's copy of the policy folder in step with it (`[policy] manage = true`).

Modules become OPA policies with ids `sekisho/<path in the folder>`; the data document goes in
as one JSON Patch on the root of `data`, so the data side switches in a single OPA transaction.
OPA compiles every policy write against the modules it already holds, so a module that uses
something a sibling module only defines in its new version is retried after the others.
Callers hold the engine's PublishGate while publishing: no decision sees a half-written policy.
"""

import logging
from typing import Any

from sekisho.policy.opa.api import OpaApi, OpaPolicy, OpaRejectedError, pointer
from sekisho.policy.source import PolicySource

log = logging.getLogger(__name__)

POLICY_ID_PREFIX = "sekisho/"


def policy_id(module_name: str) -> str:
    """The OPA policy id of a module (its path relative to the policy folder)."""
    return POLICY_ID_PREFIX + module_name


def policy_roots(source: PolicySource, entrypoint: str) -> frozenset[str]:
    """Top-level names of `data` the policy owns: the query's first segment and data keys."""
    return frozenset({entrypoint.split("/", 1)[0], *source.data})


def is_foreign(policy: OpaPolicy, wanted: dict[str, str], roots: frozenset[str]) -> bool:
    """A module Sekisho did not publish that lives under the policy's roots or id prefix."""
    if policy.id in wanted:
        return False
    return policy.id.startswith(POLICY_ID_PREFIX) or policy.package[:1] in {(r,) for r in roots}


class OpaPublisher:
    """Writes a PolicySource to OPA and removes what an earlier source had and this one lacks."""

    def __init__(self, api: OpaApi, entrypoint: str) -> None:
        self._api = api
        self._entrypoint = entrypoint
        self._data_keys: set[str] = set()

    async def publish(self, source: PolicySource) -> None:
        """Make OPA hold exactly `source`'s modules and data: modules under the policy's roots
        that Sekisho did not publish (an earlier folder's, or foreign ones) are deleted.

        Raises: OpaRejectedError (OPA may hold a mix of old and new: publish the last good
        source again), OpaUnavailableError.
        """
        wanted = {policy_id(name): text for name, text in source.modules.items()}
        roots = policy_roots(source, self._entrypoint)
        stale = [p.id for p in await self._api.policies() if is_foreign(p, wanted, roots)]
        for foreign in stale:
            if not foreign.startswith(POLICY_ID_PREFIX):
                log.error("opa_foreign_policy_removed", extra={"policy_id": foreign})
        await self._apply(dict.fromkeys(stale, None) | wanted)
        await self._replace_data(source.data)

    async def _apply(self, changes: dict[str, str | None]) -> None:
        """Write (text) or delete (None) each policy id. OPA compiles each change against the
        modules it holds, so a change can fail only because of the order (a module using what
        a sibling defines only in its new version, two versions of one rule in different files):
        retry what failed while each pass makes progress.
        """
        pending = changes
        while pending:
            failed: dict[str, str | None] = {}
            errors: list[str] = []
            for pid, text in pending.items():
                try:
                    await self._write(pid, text)
                except OpaRejectedError as exc:
                    failed[pid] = text
                    errors.append(str(exc))
            if len(failed) == len(pending):  # no progress: the errors are real
                raise OpaRejectedError(_explain("; ".join(errors)))
            pending = failed

    async def _write(self, pid: str, text: str | None) -> None:
        if text is None:
            await self._api.delete_policy(pid)
            log.info("opa_policy_removed", extra={"policy_id": pid})
        else:
            await self._api.put_policy(pid, text)

    async def _replace_data(self, data: dict[str, Any]) -> None:
        operations = [
            {"op": "add", "path": "/" + pointer(key), "value": value} for key, value in data.items()
        ]
        if operations:
            await self._api.patch_data(operations)
        for stale in sorted(self._data_keys - set(data)):
            await self._api.remove_data(stale)
        self._data_keys = set(data)


def _explain(errors: str) -> str:
    # "var x is unsafe" for a rule another module of the package defines: OPA's REST API
    # compiles each module against those it already holds, so mutually referring modules
    # cannot arrive one at a time (https://www.openpolicyagent.org/docs/rest-api#create-or-update-a-policy).
    if "rego_unsafe_var_error" in errors:
        return (
            f"{errors} (if these names are rules of a sibling module: modules that refer to "
            "each other in a cycle cannot be published one by one; break the cycle)"
        )
    return errors
