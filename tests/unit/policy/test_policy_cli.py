"""`sekisho policy eval|test|check` on the shipped folder and on folders built to fail."""

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from sekisho.cli import main
from sekisho.config import load_settings

from tests.bounds import bundle_polling, wasm_limits
from tests.fakes.loops import RecordedFailures
from tests.opa import opa_binary
from tests.unit.policy.inputs import CRM, POLICIES, QUERY, policy_input

HEADER = "package sekisho.exchange\n\nimport rego.v1\n\n"
CASE = POLICIES / "tests" / "cases" / "crm_sales_write_only_is_invalid_scope.json"


def config(tmp_path: Path, folder: Path, opa: Path | str | None = None) -> str:
    binary = str(opa if opa is not None else opa_binary())
    path = tmp_path / "sekisho.toml"
    path.write_text(f'[policy]\npath = "{folder}"\nopa_binary = "{binary}"\n')
    return str(path)


def folder_with(tmp_path: Path, module: str, name: str = "decision.rego") -> Path:
    root = tmp_path / "policies"
    (root / "sekisho" / "exchange").mkdir(parents=True)
    (root / "sekisho" / "exchange" / name).write_text(module)
    return root


def case_input(tmp_path: Path) -> Path:
    ((name, case),) = json.loads(CASE.read_text()).items()
    path = tmp_path / f"{name}.input.json"
    path.write_text(json.dumps(case["input"]))
    return path


# --- eval ---------------------------------------------------------------------------------------


def test_eval_prints_the_decision_and_the_rule_that_produced_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["policy", "eval", "--input", str(case_input(tmp_path))]
    assert main([*argv, "--config", config(tmp_path, POLICIES)]) == 0
    out, err = capsys.readouterr()
    (case,) = json.loads(CASE.read_text()).values()
    assert json.loads(out) == case["expected"]
    rule = err.split("rule: ", 1)[1].split()[0]
    file, row = rule.rsplit(":", 1)
    assert Path(file).name == "decision.rego"
    assert 'invalid_scope"' in Path(file).read_text().splitlines()[int(row) - 1]


def test_eval_with_engine_opa_configured_evaluates_the_folder(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # With manage = true this folder is what Sekisho publishes to OPA.
    path = tmp_path / "opa.toml"
    path.write_text(
        f'[policy]\nengine = "opa"\npath = "{POLICIES}"\nopa_binary = "{opa_binary()}"\n'
    )
    argv = ["policy", "eval", "--input", str(case_input(tmp_path)), "--config", str(path)]
    assert main(argv) == 0
    assert json.loads(capsys.readouterr().out)["error"] == "invalid_scope"


def test_eval_agrees_with_opa_where_regopy_did_not(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # regopy ordered numbers as strings (min({300, 60}) was 300); one compiler now decides both.
    module = HEADER + (
        'default decision := {"allow": false}\n\n'
        'decision := {"allow": false, "max_age": min({300, 60})} if input.now == 1\n'
    )
    root = folder_with(tmp_path, module)
    document = tmp_path / "input.json"
    document.write_text('{"now": 1}')
    argv = ["policy", "eval", "--input", str(document), "--config", config(tmp_path, root)]
    assert main(argv) == 0
    out, err = capsys.readouterr()
    assert json.loads(out)["max_age"] == 60
    assert "engines differ" not in err


def test_eval_without_opa_names_the_setting(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # The embedded engine compiles the folder with opa (a bundle needs none: `policy build`).
    argv = ["policy", "eval", "--input", str(case_input(tmp_path))]
    missing = tmp_path / "nowhere" / "opa"
    assert main([*argv, "--config", config(tmp_path, POLICIES, missing)]) == 2
    assert "config key 'policy.opa_binary'" in capsys.readouterr().err


def test_eval_refuses_an_input_that_is_not_an_object(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    document = tmp_path / "input.json"
    document.write_text("[]")
    argv = ["policy", "eval", "--input", str(document), "--config", config(tmp_path, POLICIES)]
    assert main(argv) == 2
    assert "must be a JSON object" in capsys.readouterr().err


# --- test ---------------------------------------------------------------------------------------


def test_test_runs_opa_tests_coverage_and_the_corpus(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["policy", "test", "--config", config(tmp_path, POLICIES)]) == 0
    out = capsys.readouterr().out
    assert "== opa test" in out and "PASS:" in out
    assert "sekisho/exchange/decision.rego:" in out.split("== coverage:")[1]
    count = len(list((POLICIES / "tests" / "cases").glob("*.json")))
    assert f"== decision corpus, embedded engine: {count}/{count}" in out


def test_test_fails_and_names_a_case_whose_decision_changed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "policies"
    shutil.copytree(POLICIES, root)
    registry = root / "data" / "registry.json"
    registry.write_text(
        registry.read_text().replace('"max_ttl_seconds": 300', '"max_ttl_seconds": 299', 1)
    )
    assert main(["policy", "test", "--config", config(tmp_path, root)]) == 1
    out = capsys.readouterr().out
    corpus = out.split("== decision corpus")[1]
    assert "crm_sales_gets_default_scope" in corpus and '"ttl_seconds": 299' in corpus
    assert "FAIL" in out.split("== decision corpus")[0]  # opa test failed on it too
    # Coverage of a failing run is not measured, and the output says so (it was left out).
    assert "== coverage: not run, opa test failed" in out


# --- check --------------------------------------------------------------------------------------


def test_check_passes_on_the_shipped_folder(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["policy", "check", "--config", config(tmp_path, POLICIES)]) == 0
    out = capsys.readouterr().out
    for step in ("opa fmt --diff: ok", "opa check --strict: ok", f"{EMBEDDED}: ok"):
        assert step in out


EMBEDDED = "embedded engine (opa build -t wasm, host builtins, self-test)"


BARE_EVERY = HEADER + (
    'default decision := {"allow": false}\n\npositive if every x in [1, 2] {\n\tx > 0\n}\n'
)
CIDR = HEADER + (
    'default decision := {"allow": false}\n\n'
    'decision := {"allow": true, "scopes": []} if net.cidr_contains("10.0.0.0/8", input.ip)\n'
)
HTTP_SEND = HEADER + (
    'default decision := {"allow": false}\n\n'
    'decision := {"allow": true, "scopes": []} if {\n'
    '\thttp.send({"method": "GET", "url": input.url}).status_code == 200\n}\n'
)
SELF_TEST_ALLOWED = HEADER + 'decision := {"allow": true, "scopes": []}\n'


@pytest.mark.parametrize(
    "module",
    [pytest.param(BARE_EVERY, id="bare-every"), pytest.param(CIDR, id="cidr-contains")],
)
def test_check_accepts_what_regopy_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], module: str
) -> None:
    root = folder_with(tmp_path, module)
    assert main(["policy", "check", "--config", config(tmp_path, root)]) == 0
    assert f"{EMBEDDED}: ok" in capsys.readouterr().out


UNFORMATTED = HEADER + 'default   decision := {"allow": false}\n'


@pytest.mark.parametrize(
    ("module", "expected"),
    [
        pytest.param(
            HTTP_SEND,
            "builtin(s) the embedded engine does not provide: http.send",
            id="missing-host-builtin",
        ),
        pytest.param(SELF_TEST_ALLOWED, "unregistered audience was allowed", id="self-test"),
        pytest.param(UNFORMATTED, "opa fmt --diff: FAILED", id="unformatted"),
        pytest.param(HEADER + "broken {", "opa check --strict: FAILED", id="does-not-compile"),
    ],
)
def test_check_fails_and_says_why(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], module: str, expected: str
) -> None:
    root = folder_with(tmp_path, module)
    assert main(["policy", "check", "--config", config(tmp_path, root)]) == 1
    assert expected in capsys.readouterr().out


def test_check_runs_regal_when_installed_beside_opa(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "opa").symlink_to(opa_binary())
    regal = bin_dir / "regal"
    regal.write_text('#!/bin/sh\necho "fake regal: $*"\nexit 3\n')
    regal.chmod(0o755)
    if shutil.which("regal"):
        pytest.skip("a real regal on PATH takes precedence over bin/")
    assert main(["policy", "check", "--config", config(tmp_path, POLICIES, bin_dir / "opa")]) == 1
    out = capsys.readouterr().out
    assert "== regal lint: FAILED" in out
    assert f"fake regal: lint {POLICIES}" in out


def test_missing_opa_binary_names_the_setting(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["policy", "test", "--config", config(tmp_path, POLICIES, tmp_path / "none" / "opa")]
    assert main(argv) == 2
    assert "config key 'policy.opa_binary'" in capsys.readouterr().err


def test_opa_is_found_in_bin_of_the_working_directory(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "opa").symlink_to(opa_binary())
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))  # no opa on PATH
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'[policy]\npath = "{POLICIES}"\n')
    assert main(["policy", "eval", "--input", str(case_input(tmp_path)), "--config", str(cfg)]) == 0
    err = capsys.readouterr().err
    assert "rule: " in err and "not shown" not in err


# --- build --------------------------------------------------------------------------------------


def test_build_writes_a_bundle_that_a_replica_loads(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from sekisho.policy.wasm.bundle import read_bundle
    from sekisho.policy.wasm.bundles import BundlePolicyEngine

    output = tmp_path / "out" / "sekisho.tar.gz"
    output.parent.mkdir()
    argv = ["policy", "build", "--output", str(output), "--revision", "git-abc"]
    assert main([*argv, "--config", config(tmp_path, POLICIES)]) == 0
    assert "bundle loads and passes the self-test: ok" in capsys.readouterr().out
    contents = read_bundle(output.read_bytes())
    assert contents.manifest["revision"] == "git-abc"
    assert "/sekisho/exchange/decision.rego" in contents.files
    assert not [name for name in contents.files if name.endswith("_test.rego")]
    assert set(contents.data["sekisho"]) >= {"registry", "denylist", "consents"}
    ((_, case),) = json.loads(CASE.read_text()).items()
    served = BundlePolicyEngine(
        QUERY, wasm_limits(), failures=RecordedFailures(), polling=bundle_polling()
    ).load(output.read_bytes())
    assert served.evaluate(json.dumps(case["input"]).encode()) == case["expected"]


def _ec_signing_key(path: Path) -> Path:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    pem = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    path.write_bytes(pem)
    return path


def test_build_creates_the_output_folder(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # The documented CI step writes dist/sekisho.tar.gz in a fresh checkout, which has no dist/;
    # opa build -o does not create folders ("open …: no such file or directory").
    output = tmp_path / "dist" / "sekisho.tar.gz"
    argv = ["policy", "build", "--output", str(output)]
    assert main([*argv, "--config", config(tmp_path, POLICIES)]) == 0, capsys.readouterr().err
    assert output.is_file()


def test_build_signs_with_a_key_named_relative_to_the_working_folder(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # opa build runs in a staging folder: a relative --signing-key used to name nothing there,
    # and opa then read the path as PEM text ("failed to parse PEM block containing the key").
    from sekisho.policy.wasm.bundle import read_bundle

    _ec_signing_key(tmp_path / "signing.pem")
    cfg = config(tmp_path, POLICIES)
    monkeypatch.chdir(tmp_path)
    argv = ["policy", "build", "--output", "b.tar.gz", "--signing-key", "signing.pem"]
    assert main([*argv, "--signing-alg", "ES256", "--config", cfg]) == 0, capsys.readouterr().err
    assert "/.signatures.json" in read_bundle((tmp_path / "b.tar.gz").read_bytes()).files


def _hmac_secret(path: Path) -> Path:
    path.write_text("a-bundle-signing-secret-of-32-bytes\n")
    return path


@pytest.mark.parametrize(
    ("make_key", "options", "checked_with"),
    [
        pytest.param(_ec_signing_key, [], "the key's public half", id="EC key"),
        pytest.param(
            _hmac_secret,
            ["--signing-alg", "HS256", "--signing-scope", "write"],
            "the HMAC secret",
            id="HMAC secret",
        ),
    ],
)
def test_build_verifies_the_signature_it_made(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    *,
    make_key: Callable[[Path], Path],
    options: list[str],
    checked_with: str,
) -> None:
    # `--signing-key` printed "signed ES256" once opa had written a signature, and the load
    # that followed never checked it: a signature a replica would refuse left CI as "ok".
    # The ok line names what it checked with (it said "public half or HMAC secret" for both).
    from sekisho.errors import PolicyLoadError
    from sekisho.policy.wasm.signing import BundleVerifier

    key = make_key(tmp_path / "signing.key")
    argv = ["policy", "build", "--output", str(tmp_path / "b.tar.gz"), "--signing-key", str(key)]
    argv += [*options, "--config", config(tmp_path, POLICIES)]
    assert main(argv) == 0, capsys.readouterr().err
    said = capsys.readouterr().out
    assert f"== signature verifies with {checked_with}, as a replica checks it: ok" in said

    def refused(self: BundleVerifier, files: dict[str, bytes]) -> None:
        raise PolicyLoadError("bundle signature does not verify: (as a replica would say)")

    monkeypatch.setattr(BundleVerifier, "verify", refused)
    assert main(argv) == 2
    out, err = capsys.readouterr()
    assert "bundle signature does not verify" in err and "ok" not in out


@pytest.mark.parametrize("earlier", [False, True], ids=["no-earlier-bundle", "earlier-bundle"])
def test_build_leaves_no_bundle_at_the_output_when_its_signature_fails_the_check(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    *,
    earlier: bool,
) -> None:
    # The build wrote dist/…tar.gz, then verified it: a refused signature exited 2 with the
    # bundle left on disk, where a deploy script that checks only for the file shipped it.
    from sekisho.errors import PolicyLoadError
    from sekisho.policy.wasm.signing import BundleVerifier

    output = tmp_path / "dist" / "sekisho.tar.gz"
    key = _ec_signing_key(tmp_path / "signing.pem")
    argv = ["policy", "build", "--output", str(output), "--signing-key", str(key)]
    argv += ["--config", config(tmp_path, POLICIES)]
    if earlier:
        assert main(argv) == 0, capsys.readouterr().err
    good = output.read_bytes() if earlier else None

    def refused(self: BundleVerifier, files: dict[str, bytes]) -> None:
        raise PolicyLoadError("bundle signature does not verify: (as a replica would say)")

    monkeypatch.setattr(BundleVerifier, "verify", refused)
    capsys.readouterr()
    assert main(argv) == 2
    assert "bundle signature does not verify" in capsys.readouterr().err
    assert sorted(output.parent.iterdir()) == ([output] if earlier else [])
    if good is not None:
        assert output.read_bytes() == good


def test_build_names_a_missing_signing_key_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "nope.pem"
    argv = ["policy", "build", "--output", str(tmp_path / "b.tar.gz"), "--signing-alg", "ES256"]
    assert main([*argv, "--signing-key", str(missing), "--config", config(tmp_path, POLICIES)]) == 2
    assert f"signing key {missing}: no such file" in capsys.readouterr().err
    assert not (tmp_path / "b.tar.gz").exists()


def test_build_names_a_key_that_cannot_sign_the_algorithm(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # opa answered "jwsbb.Sign: invalid key type *jwk.ecdsaPrivateKey…" for an EC key with RS256.
    key = _ec_signing_key(tmp_path / "signing.pem")
    argv = ["policy", "build", "--output", str(tmp_path / "b.tar.gz"), "--signing-key", str(key)]
    assert main([*argv, "--signing-alg", "RS256", "--config", config(tmp_path, POLICIES)]) == 2
    err = capsys.readouterr().err
    assert f"signing key {key} is an EC secp256r1 key, which cannot sign RS256" in err
    assert "pass --signing-alg ES256" in err


def test_build_refuses_a_binary_hmac_secret_before_opa_signs_with_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # opa signed with `head -c 32 /dev/urandom`, then the check said "bundle verification key
    # …: 'utf-8' codec can't decode …": a setting the build has none of, for a secret every
    # replica refuses.
    from sekisho.policy.wasm import compiler

    def opa_run(*args: object, **kwargs: object) -> None:
        raise AssertionError("opa ran with a secret replicas refuse")

    monkeypatch.setattr(compiler, "run_binary", opa_run)
    key = tmp_path / "bundle-hs256.key"
    key.write_bytes(b"\xff\xfe\x80" + bytes(range(29)))  # fixed: never UTF-8
    argv = ["policy", "build", "--output", str(tmp_path / "b.tar.gz"), "--signing-key", str(key)]
    assert main([*argv, "--signing-alg", "HS256", "--config", config(tmp_path, POLICIES)]) == 2
    err = capsys.readouterr().err
    assert f"signing key {key} is not text: an HMAC secret must be UTF-8 text" in err
    assert "openssl rand -base64 32" in err and "bundle verification key" not in err
    assert not (tmp_path / "b.tar.gz").exists()


def test_build_signs_with_the_algorithm_of_the_key_and_a_default_replica_verifies_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # The CI example makes an EC P-256 key and a replica's config may leave
    # bundle_verification_alg unset: with no --signing-alg the build used to sign RS256 and
    # refuse the key. Now both sides take ES256 from the key.
    from cryptography.hazmat.primitives import serialization
    from sekisho.policy.wasm.bundle import read_bundle
    from sekisho.policy.wasm.signing import BundleVerifier

    key = _ec_signing_key(tmp_path / "signing.pem")
    public = tmp_path / "signing.pub.pem"
    private = serialization.load_pem_private_key(key.read_bytes(), password=None)
    public.write_bytes(
        private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    output = tmp_path / "b.tar.gz"
    argv = ["policy", "build", "--output", str(output), "--signing-key", str(key)]
    assert main([*argv, "--config", config(tmp_path, POLICIES)]) == 0, capsys.readouterr().err
    assert "signed ES256" in capsys.readouterr().out
    verifier = BundleVerifier.from_file(public, load_settings(None).policy.bundle_verification_alg)
    verifier.verify(read_bundle(output.read_bytes()).files)


def test_build_refuses_a_folder_that_fails_the_self_test(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = folder_with(tmp_path, HEADER + 'decision := {"allow": true, "scopes": []}\n')
    argv = ["policy", "build", "--output", str(tmp_path / "b.tar.gz")]
    assert main([*argv, "--config", config(tmp_path, root)]) == 2
    assert "unregistered audience was allowed" in capsys.readouterr().err
    assert sorted(tmp_path.glob("*b.tar.gz*")) == []  # nor a staged copy beside it


# --- impact -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("lines", "skipped"),
    [
        pytest.param(
            [
                '{"time": "2026-12-03 08:30:02,655", "logger": "sekisho.audit", "event": "token_exchanged"}'
            ],
            1,
            id="the-service-log",
        ),
        pytest.param([], 0, id="an-empty-file"),
    ],
)
def test_impact_refuses_files_with_no_decision_to_replay(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], lines: list[str], skipped: int
) -> None:
    # Walkthrough, session 11: var/sekisho.log given as --decisions replayed 0 decisions, printed
    # "changed: 0" and exited 0, so a --max-changes gate passed on nothing.
    log = tmp_path / "sekisho.log"
    log.write_text("".join(line + "\n" for line in lines))
    argv = ["policy", "impact", "--decisions", str(log), "--candidate", str(POLICIES)]
    assert main([*argv, "--max-changes", "0", "--config", config(tmp_path, POLICIES)]) == 2
    err = capsys.readouterr().err
    assert f"no decision of sekisho/exchange/decision in {log} ({skipped} other lines" in err


@pytest.mark.parametrize(
    ("flags", "status"),
    [pytest.param([], 2, id="refused"), pytest.param(["--allow-malformed"], 0, id="allowed")],
)
def test_impact_fails_when_a_decision_was_not_replayed_unless_allowed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], flags: list[str], status: int
) -> None:
    # Session 14: a malformed decision was skipped and counted in the report, but the exit
    # status was 0 and --max-changes passed: a gate over part of the log, silently.
    good = policy_input(CRM, groups=["sales"], scopes=["crm.read"])
    lines = [{"path": "sekisho/exchange/decision", "input": good}]
    lines.append({"path": "sekisho/exchange/decision", "input": good | {"request": "crm"}})
    log = tmp_path / "d.jsonl"
    log.write_text("".join(json.dumps(line) + "\n" for line in lines))
    argv = ["policy", "impact", "--decisions", str(log), "--candidate", str(POLICIES)]
    argv += ["--max-changes", "0", "--config", config(tmp_path, POLICIES), *flags]
    assert main(argv) == status
    out, err = capsys.readouterr()
    assert "== not replayed: 1 malformed decision, skipped (first: " in out  # reported either way
    assert "== changed: 0 (max 0: ok)" in out
    if status:
        assert f"sekisho: 1 malformed decision in {log} not replayed" in err
        assert "--allow-malformed" in err
    else:
        assert err == ""
