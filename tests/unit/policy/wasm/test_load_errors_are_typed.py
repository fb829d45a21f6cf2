"""A bundle or policy.wasm that cannot load fails with PolicyLoadError, whatever step refuses
it: the poller keeps the last good policy on PolicyLoadError and logs `policy_bundle_rejected`,
and a start with `bundle_file` prints one line; anything else was a `policy_bundle_poll_failed`
with a traceback (counted as a bug) or a start ending in a traceback."""

from typing import Any

import jwt
import pytest
from sekisho.clock import SystemClock
from sekisho.errors import PolicyLoadError
from sekisho.policy.wasm.policy import compile_module
from sekisho.policy.wasm.signing import BundleVerifier, file_digest

from tests.bounds import wasm_limits
from tests.embedded import shared_runtime

SECRET = "a bundle signing secret of 32 bytes"

# The ABI's exports, where `builtins` aborts (opa_abort with a message in the data segment),
# as a module whose metadata is broken would at compile time.
ABORTS_IN_BUILTINS = """(module
  (import "env" "memory" (memory 2))
  (import "env" "opa_abort" (func $abort (param i32)))
  (data (i32.const 512) "bad metadata\\00")
  (func (export "opa_heap_ptr_get") (result i32) i32.const 1024)
  (func (export "opa_malloc") (param i32) (result i32) i32.const 2048)
  (func (export "opa_json_parse") (param i32 i32) (result i32) i32.const 0)
  (func (export "opa_json_dump") (param i32) (result i32) i32.const 0)
  (func (export "opa_value_dump") (param i32) (result i32) i32.const 0)
  (func (export "builtins") (result i32) (call $abort (i32.const 512)) i32.const 0)
  (func (export "entrypoints") (result i32) i32.const 0)
  (func (export "opa_eval") (param i32 i32 i32 i32 i32 i32 i32) (result i32) i32.const 0))"""


def test_an_abort_while_reading_the_modules_metadata_is_a_load_error() -> None:
    wasm = ABORTS_IN_BUILTINS.encode()
    with pytest.raises(PolicyLoadError, match=r"does not load: .*opa_abort: bad metadata"):
        compile_module(shared_runtime(), wasm, "x/y", wasm_limits(), SystemClock())


def signed(entries: list[dict[str, Any]]) -> dict[str, bytes]:
    token = jwt.encode({"files": entries}, SECRET, algorithm="HS256")
    return {"/data.json": b"{}", "/.signatures.json": f'{{"signatures": ["{token}"]}}'.encode()}


@pytest.mark.parametrize(
    "algorithm",
    [
        pytest.param(["SHA-256"], id="a-list"),
        pytest.param({"name": "SHA-256"}, id="an-object"),
        pytest.param(256, id="a-number"),
    ],
)
def test_a_signed_file_entry_whose_algorithm_is_not_a_name_is_refused(algorithm: Any) -> None:
    entry = {"name": "data.json", "hash": "00", "algorithm": algorithm}
    with pytest.raises(PolicyLoadError, match=r"data\.json: unsupported hash algorithm"):
        BundleVerifier(SECRET, "HS256").verify(signed([entry]))
    with pytest.raises(PolicyLoadError, match="unsupported hash algorithm"):
        file_digest("data.json", b"{}", algorithm)
