"""Replaying the decision corpus through the embedded engine (`sekisho policy test`, pytest)."""

from dataclasses import dataclass
from typing import Any

import regopy

from sekisho.policy.corpus import DecisionCase, case_source, data_key
from sekisho.policy.rego import CompiledPolicy, compile_policy
from sekisho.policy.source import PolicySource


@dataclass(frozen=True, slots=True)
class CaseResult:
    """What an engine decided for a case."""

    case: DecisionCase
    actual: Any

    @property
    def matches(self) -> bool:
        return bool(self.actual == self.case.expected)


def replay_embedded(
    cases: list[DecisionCase], source: PolicySource, query: str
) -> list[CaseResult]:
    """Each case's decision from regopy; cases sharing a data patch share one compiled bundle.

    Raises: PolicyLoadError when the policy (with a case's data) does not compile.
    """
    compiled: dict[str, CompiledPolicy] = {}
    results = []
    for case in cases:
        key = data_key(case)
        if key not in compiled:
            compiled[key] = compile_policy(case_source(source, case), query)
        try:
            actual = compiled[key].evaluate(case.input)
        except (regopy.RegoError, ValueError) as exc:
            actual = {"evaluation error": str(exc)}
        results.append(CaseResult(case=case, actual=actual))
    return results
