"""A request that makes a host builtin fail closed (a trap: deny) must cost that request only.

Each trap unwinds the module without restoring its shadow-stack pointer; before session 10 the
instance went back to the pool as it was, and after 4,094 trapped evaluations every evaluation
on it faulted (`memory fault at wasm address 0x100000008`): a caller who can reach a failing
builtin (here `urlquery.decode_object` of a key that is not UTF-8, a documented deny) turned
every later decision into a deny until the policy reloaded."""

import json
from pathlib import Path

import pytest
from sekisho.policy.wasm.instance import WasmEvaluationError

from tests.unit.policy.wasm.differential import module_folder, wasm_policy

BODY = "results := urlquery.decode_object(input.q)\n"
TRAPS = 4_200  # the old pool broke after 4,094 (pool_size 1)


def test_repeated_builtin_traps_do_not_poison_the_instance_pool(tmp_path: Path) -> None:
    policy = wasm_policy(module_folder(tmp_path, BODY))
    trapping = json.dumps({"q": "%ff=1"}).encode()
    ordinary = json.dumps({"q": "a=1"}).encode()
    for _ in range(TRAPS):
        with pytest.raises(WasmEvaluationError, match="not UTF-8"):
            policy.evaluate(trapping)
    assert policy.evaluate(ordinary) == {"a": ["1"]}
