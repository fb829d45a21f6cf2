"""Embedded Rego engine on Microsoft's rego-cpp (`regopy`).

The policy is compiled once into a bundle (`Interpreter.build`) and evaluated with
`query_bundle_entrypoint`: ~0.1 ms per decision, against 1-26 ms for a fresh `query()`
(shared/reference/perf-research.md §2.3). A new bundle replaces the old one only after it
compiled and passed the self-test, so a broken edit never stops the service.
"""

import asyncio
import json
import logging
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import regopy

from sekisho.errors import PolicyLoadError, TemporarilyUnavailableError
from sekisho.models import Decision
from sekisho.policy.decision import InvalidDecisionError, parse_decision
from sekisho.policy.selftest import SELF_TEST_INPUT, check_self_test
from sekisho.policy.source import PolicySource, load_source

log = logging.getLogger(__name__)


def entrypoint_of(query: str) -> str:
    """`data.sekisho.exchange.decision` → `sekisho/exchange/decision`."""
    return "/".join(query.split(".")[1:])


@dataclass(frozen=True, slots=True)
class CompiledPolicy:
    """A built bundle and the interpreter that evaluates it."""

    bundle: Any
    runner: Any
    entrypoint: str

    def evaluate(self, document: dict[str, Any]) -> Any:
        """The raw value of the entrypoint, or None when undefined.

        Raises: regopy.RegoError or ValueError when evaluation fails.
        """
        self.runner.set_input(document)
        text = str(self.runner.query_bundle_entrypoint(self.bundle, self.entrypoint))
        if text == "undefined":
            return None
        # The Output object can crash the process when indexed on `undefined`; parse its JSON text.
        expressions = json.loads(text)["expressions"]
        return expressions[0] if expressions else None


def compile_policy(source: PolicySource, query: str) -> CompiledPolicy:
    """Build a bundle. Raises: PolicyLoadError with the compiler's message."""
    builder = _quiet_interpreter()
    try:
        for name, text in source.modules.items():
            builder.add_module(name, text)
        if source.data:
            builder.add_data(source.data)
        entrypoint = entrypoint_of(query)
        bundle = builder.build(None, [entrypoint])
    except regopy.RegoError as exc:
        raise PolicyLoadError(f"policy does not compile: {exc}") from exc
    return CompiledPolicy(bundle=bundle, runner=_quiet_interpreter(), entrypoint=entrypoint)


def _quiet_interpreter() -> Any:
    # rego-cpp prints errors to stderr besides raising them; the message reaches our log instead.
    # (regopy.set_default_log_level is process-global and aborts the process if called twice.)
    interpreter = regopy.Interpreter()
    interpreter.log_level = regopy.LogLevel.NONE
    return interpreter


def self_test(policy: CompiledPolicy) -> None:
    """Fail closed at load: the sample input must yield a well-typed deny.

    Raises: PolicyLoadError.
    """
    try:
        raw = policy.evaluate(SELF_TEST_INPUT)
    except (regopy.RegoError, ValueError) as exc:
        raise PolicyLoadError(f"policy self-test failed to evaluate: {exc}") from exc
    check_self_test(raw)


class RegoPolicyEngine:
    """PolicyEngine backed by an in-process compiled bundle."""

    def __init__(self, root: Path, query: str) -> None:
        self._root = root
        self._query = query
        self._policy: CompiledPolicy | None = None

    @property
    def ready(self) -> bool:
        return self._policy is not None

    async def start(self) -> None:
        """Compile and self-test the policy folder. Raises: PolicyLoadError."""
        self.load()

    async def close(self) -> None:
        """Nothing to release: the compiled bundle lives in process."""

    def load(self) -> None:
        """Compile the policy directory. Raises: PolicyLoadError."""
        policy = compile_policy(load_source(self._root), self._query)
        self_test(policy)
        self._policy = policy
        log.info("policy_loaded", extra={"path": str(self._root), "query": self._query})

    async def folder_changed(self) -> bool:
        """reload() in a worker thread: regopy releases the GIL while it builds, so exchanges
        keep being answered (with the last good bundle) during a slow compile."""
        return await asyncio.to_thread(self.reload)

    def reload(self) -> bool:
        """Recompile after a change; keep the last good policy when the new one fails."""
        try:
            self.load()
        except PolicyLoadError as exc:
            log.error("policy_reload_failed", extra={"error": str(exc)})
            return False
        return True

    def evaluate_raw(self, document: dict[str, Any]) -> Any:
        """The undecoded policy output (for `sekisho policy eval` and the decision corpus).

        Raises: PolicyLoadError when no policy is loaded; regopy.RegoError on evaluation errors.
        """
        if self._policy is None:
            raise PolicyLoadError("no policy loaded")
        return self._policy.evaluate(document)

    async def decide(self, document: dict[str, Any]) -> Decision:
        if self._policy is None:
            raise TemporarilyUnavailableError(
                "the policy engine is not ready", log_detail="no policy loaded"
            )
        decision_id = str(uuid.uuid4())
        try:
            return parse_decision(self.evaluate_raw(document), decision_id)
        except (InvalidDecisionError, regopy.RegoError, ValueError, PolicyLoadError) as exc:
            log.error(
                "policy_decision_invalid", extra={"decision_id": decision_id, "error": str(exc)}
            )
            return Decision(allow=False, reason="invalid policy decision", decision_id=decision_id)
