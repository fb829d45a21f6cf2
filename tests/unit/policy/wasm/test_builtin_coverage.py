"""Which builtins the embedded engine must provide: a module calling every builtin of the OPA
binary (`opa capabilities --current`) is compiled by `opa build -t wasm`, and the builtins it
imports from the host are compared with the host table. An OPA upgrade that leaves another
builtin to the host, or a host builtin that OPA no longer needs, fails here; the missing list is
the one docs/policy-authors.md gives ("Not provided (refused at load)")."""

import json
import subprocess
from pathlib import Path

from sekisho.policy.wasm.builtins.catalog import host_builtins
from sekisho.policy.wasm.compiler import compile_folder
from sekisho.policy.wasm.instance import PolicyInstance

from tests.bounds import wasm_limits
from tests.embedded import shared_runtime
from tests.fakes.clock import FakeClock
from tests.opa import opa_binary

NOT_PROVIDED = {
    "strings.render_template",
    *("io.jwt.decode", "io.jwt.decode_verify", "io.jwt.encode_sign", "io.jwt.encode_sign_raw"),
    *(f"io.jwt.verify_{alg}" for alg in ("eddsa", "es256", "es384", "es512", "hs256", "hs384")),
    *(f"io.jwt.verify_{alg}" for alg in ("hs512", "ps256", "ps384", "ps512", "rs256", "rs384")),
    "io.jwt.verify_rs512",
    *("json.patch", "json.marshal_with_options", "json.match_schema", "json.verify_schema"),
    *("net.cidr_contains_matches", "net.cidr_expand", "net.cidr_merge", "net.lookup_ip_addr"),
    *("uri.parse", "uri.is_valid", "uuid.parse", "uuid.rfc4122"),
    *("yaml.marshal", "yaml.unmarshal", "yaml.is_valid"),
    *("crypto.x509.parse_and_verify_certificates", "crypto.x509.parse_certificate_request"),
    *("crypto.x509.parse_and_verify_certificates_with_options", "crypto.x509.parse_keypair"),
    *("crypto.x509.parse_certificates", "crypto.x509.parse_rsa_private_key"),
    "crypto.parse_private_keys",
    *("graphql.is_valid", "graphql.parse", "graphql.parse_and_verify", "graphql.parse_query"),
    *("graphql.parse_schema", "graphql.schema_is_valid", "graph.reachable_paths"),
    *("http.send", "opa.runtime", "rand.intn", "providers.aws.sign_req", "rego.parse_module"),
    *("trace", "internal.print", "internal.test_case"),
}


def every_builtin_module(tmp_path: Path) -> Path:
    """One rule per callable, non-deprecated, non-infix builtin, its operands from input."""
    completed = subprocess.run(
        [str(opa_binary()), "capabilities", "--current"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    lines = ["package probe", ""]
    for i, builtin in enumerate(json.loads(completed.stdout)["builtins"]):
        decl = builtin.get("decl", {})
        if decl.get("type") != "function" or builtin.get("infix") or builtin.get("deprecated"):
            continue
        operands = ", ".join(f"input.a{j}" for j in range(len(decl.get("args", []))))
        lines.append(f"r{i} if {{ {builtin['name']}({operands}) }}")
    root = tmp_path / "probe"
    root.mkdir()
    (root / "probe.rego").write_text("\n".join(lines) + "\n")
    return root


def test_the_host_table_is_what_opas_wasm_target_leaves_to_the_host(tmp_path: Path) -> None:
    wasm = compile_folder(opa_binary(), every_builtin_module(tmp_path), "probe", 300.0)
    runtime = shared_runtime()
    module = runtime.compile(wasm)
    needed, _ = PolicyInstance(runtime.engine, module, wasm_limits().max_pages).metadata()
    provided = set(host_builtins(FakeClock()))
    assert provided - set(needed) == set()  # every host builtin is one OPA leaves to the host
    assert set(needed) - provided == NOT_PROVIDED
    assert len(provided) >= 44
