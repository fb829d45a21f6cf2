"""Replaying the decision corpus through the embedded engine (`sekisho policy test`, pytest)."""

from dataclasses import dataclass
from typing import Any

from sekisho.policy.corpus import DecisionCase, case_source, data_key
from sekisho.policy.source import PolicySource
from sekisho.policy.wasm.instance import WasmEvaluationError
from sekisho.policy.wasm.policy import LoadedPolicy, encode_json


@dataclass(frozen=True, slots=True)
class CaseResult:
    """What an engine decided for a case."""

    case: DecisionCase
    actual: Any

    @property
    def matches(self) -> bool:
        return bool(self.actual == self.case.expected)


def replay_embedded(
    cases: list[DecisionCase], source: PolicySource, policy: LoadedPolicy
) -> list[CaseResult]:
    """Each case's decision from the loaded Wasm policy; cases sharing a data patch share one
    data load (the module is compiled once).

    Raises: PolicyLoadError when a case's data does not load.
    """
    with_data: dict[str, LoadedPolicy] = {}
    results = []
    for case in cases:
        key = data_key(case)
        if key not in with_data:
            with_data[key] = policy.with_data(encode_json(case_source(source, case).data))
        try:
            actual = with_data[key].evaluate(encode_json(case.input))
        except WasmEvaluationError as exc:
            actual = {"evaluation error": str(exc)}
        results.append(CaseResult(case=case, actual=actual))
    return results
