"""CLI polish (issue 18 item 6): every option and subcommand explains itself, required flags are
required, and `policy eval` refuses a document that is not a policy input, saying why."""

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from sekisho.cli import build_parser, main
from sekisho.policy.schema import input_problems

from tests.opa import opa_binary

REPO = Path(__file__).resolve().parents[2]
CONFIG = REPO / "config" / "example.toml"


def _parsers(
    parser: argparse.ArgumentParser, path: str = "sekisho"
) -> Iterator[tuple[str, argparse.ArgumentParser, argparse.Action]]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helped = {choice.dest for choice in action._choices_actions}
            for name, sub in action.choices.items():
                assert name in helped, f"{path} {name}: subcommand without help"
                yield from _parsers(sub, f"{path} {name}")
        else:
            yield path, parser, action


def test_every_option_has_help() -> None:
    missing = [
        f"{path} {'/'.join(action.option_strings) or action.dest}"
        for path, _, action in _parsers(build_parser())
        if not isinstance(action, argparse._HelpAction) and not (action.help or "").strip()
    ]
    assert not missing, f"options without help text: {missing}"


def test_help_names_no_internal_package() -> None:
    # `sekisho --help` ended "each lives in commands/": the source tree's layout, which tells an
    # operator nothing (the description was the module's docstring).
    parsers = {id(parser): (path, parser) for path, parser, _ in _parsers(build_parser())}
    leaked = [
        path
        for path, parser in parsers.values()
        if any(word in parser.format_help() for word in ("commands/", "sekisho/", ".py"))
    ]
    assert not leaked, f"--help naming the source tree: {leaked}"
    assert "`sekisho COMMAND --help`" in build_parser().format_help()


def test_keys_revoke_requires_a_reason(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        main(["keys", "revoke", "SOMEKID", "--config", str(CONFIG)])
    assert caught.value.code == 2
    assert "--reason" in capsys.readouterr().err
    revoke = build_parser().parse_args(["keys", "revoke", "K", "--reason", "leak"])
    assert revoke.reason == "leak"


@pytest.mark.parametrize(
    ("document", "expected"),
    [
        pytest.param({"foo": 1}, "'foo' was unexpected", id="unknown-field"),
        pytest.param(
            json.loads((REPO / "docs/examples/exchange-input.json").read_text()) | {"now": "soon"},
            "input.now: 'soon' is not of type 'integer'",
            id="wrong-type",
        ),
    ],
)
def test_policy_eval_names_what_is_wrong(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], document: object, expected: str
) -> None:
    path = tmp_path / "input.json"
    path.write_text(json.dumps(document))
    assert main(["policy", "eval", "--config", str(CONFIG), "--input", str(path)]) == 2
    err = capsys.readouterr().err
    assert "is not a policy input document" in err and expected in err


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        pytest.param(b"{bad", "the input is not JSON: Expecting property name", id="not-json"),
        pytest.param(b"\xff{}", "the input is not UTF-8 JSON", id="not-utf8"),
        pytest.param(None, "cannot read the input: No such file or directory", id="missing"),
    ],
)
def test_policy_eval_names_the_input_file_it_cannot_read(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: bytes | None, expected: str
) -> None:
    path = tmp_path / "input.json"
    if content is not None:
        path.write_bytes(content)
    assert main(["policy", "eval", "--config", str(CONFIG), "--input", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"sekisho: {path}: ") and expected in err, err


def test_policy_eval_of_a_whole_corpus_case_says_how_to_take_its_input(
    capsys: pytest.CaptureFixture[str],
) -> None:
    case = REPO / "policies/tests/cases/github_admin_without_mfa_steps_up.json"
    assert main(["policy", "eval", "--config", str(CONFIG), "--input", str(case)]) == 2
    err = capsys.readouterr().err
    assert "is not a policy input document" in err
    assert f"`jq '.github_admin_without_mfa_steps_up.input' {case} > input.json`" in err


def test_policy_test_of_a_folder_that_does_not_compile_is_a_failed_test(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Exit 1 as for any failure (docs/policy-authors.md), the corpus step saying it did not run:
    it was exit 2 and opa test's parse errors printed a second time, as a command error."""
    root = tmp_path / "policies"
    shutil.copytree(REPO / "policies", root)
    with (root / "sekisho" / "exchange" / "scopes.rego").open("a") as module:
        module.write("\nbroken rule here\n")
    config = tmp_path / "sekisho.toml"
    config.write_text(f'[policy]\npath = "{root}"\nopa_binary = "{opa_binary()}"\n')
    assert main(["policy", "test", "--config", str(config)]) == 1
    out, err = capsys.readouterr()
    assert "== decision corpus, embedded engine: not run, the folder does not load" in out
    assert "scopes.rego:" in out.split("== decision corpus")[1]
    assert err == ""


def test_policy_impact_names_the_side_whose_policy_does_not_load(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    candidate = tmp_path / "candidate"
    (candidate / "sekisho" / "exchange").mkdir(parents=True)
    (candidate / "sekisho" / "exchange" / "decision.rego").write_text(
        'package sekisho.exchange\n\nimport rego.v1\n\ndecision := {"allow": true, "scopes": []}\n'
    )
    config = tmp_path / "sekisho.toml"
    live = REPO / "policies"
    config.write_text(f'[policy]\npath = "{live}"\nopa_binary = "{opa_binary()}"\n')
    log = tmp_path / "decisions.jsonl"
    log.write_text("")
    argv = ["policy", "impact", "--config", str(config), "--decisions", str(log)]
    assert main([*argv, "--candidate", str(candidate)]) == 2
    err = capsys.readouterr().err
    assert f"sekisho: the candidate policy {candidate} does not load: " in err
    assert "an unregistered audience was allowed" in err


def test_a_corpus_case_file_is_not_an_input() -> None:
    case = next((REPO / "policies" / "tests" / "cases").rglob("*.json"))
    problems = input_problems(json.loads(case.read_text()), REPO / "policies")
    assert problems, f"{case.name} passed as a policy input"


def test_the_documented_example_input_is_valid() -> None:
    document = json.loads((REPO / "docs/examples/exchange-input.json").read_text())
    assert input_problems(document, REPO / "policies") == []


def test_a_folder_without_a_schema_is_not_checked(tmp_path: Path) -> None:
    assert input_problems({"foo": 1}, tmp_path) == []


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--cacert", "ca.pem", "--cert", "c.pem"], "--cert and --key go together"),
        (["--cert", "c.pem", "--key", "k.pem"], "need --cacert"),
        (["--cacert", "/no/such/ca.pem"], "--cacert /no/such/ca.pem"),
    ],
)
def test_exchange_tls_options_are_checked_before_any_call(
    capsys: pytest.CaptureFixture[str], extra: list[str], message: str
) -> None:
    argv = ["exchange", "--target", "127.0.0.1:1", "--subject-token", "t", "--audience", "a"]
    assert main(argv + extra) == 2
    assert message in capsys.readouterr().err


KID = "-hFtV582s_P5fp3bXV1SC0eSr_kXp2Ldb1PH6iEReTI"  # a real kid from a `make run` keystore


@pytest.mark.parametrize(
    ("argv", "command"),
    [
        pytest.param(["keys", "retire", KID], "keys retire", id="keys-retire"),
        pytest.param(["keys", "revoke", "--reason", "x", KID], "keys revoke", id="keys-revoke"),
        pytest.param(
            ["revoke", "token", "-q2Bv0Yk8o3wZx1Lr6T9aSg", "--reason", "x"],
            "revoke token",
            id="revoke-token",
        ),
        pytest.param(
            ["revoke", "lift", "token", "--reason", "x", "-q2Bv0Yk8o3wZx1Lr6T9aSg"],
            "revoke lift token",
            id="revoke-lift-token",
        ),
    ],
)
def test_a_kid_or_jti_read_as_an_option_gets_the_way_out(
    capsys: pytest.CaptureFixture[str], argv: list[str], command: str
) -> None:
    # Walkthrough, session 11: `keys retire -hFtV…` answered only "argument -h/--help: ignored
    # explicit argument 'FtV…'", `revoke token -q2B…` "the following arguments are required".
    with pytest.raises(SystemExit) as caught:
        main([*argv, "--config", str(CONFIG)])
    assert caught.value.code == 2
    value = next(word for word in argv if word.startswith("-") and len(word) > 16)
    hint = capsys.readouterr().err.splitlines()[-1]
    assert hint.startswith(f"sekisho: {value!r} was read as an option")
    assert hint.endswith(f"`sekisho {command} [options] -- {value}`")


@pytest.mark.parametrize(
    "argv",
    [
        pytest.param(["keys", "init", "--if-absent"], id="a-mistyped-option"),
        pytest.param(["keys", "retire", "--", KID, "extra"], id="after-double-dash"),
        pytest.param(["keys", "retire"], id="no-value-at-all"),
    ],
)
def test_other_refusals_get_no_such_hint(
    capsys: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    with pytest.raises(SystemExit) as caught:
        main([*argv, "--config", str(CONFIG)])
    assert caught.value.code == 2
    assert "was read as an option" not in capsys.readouterr().err


def test_a_reader_that_left_is_not_reported_as_an_error(tmp_path: Path) -> None:
    # Walkthrough, session 11: `sekisho policy build … | head -1` ended with "sekisho: [Errno 32]
    # Broken pipe" and exit 2, as if the build had failed.
    config = tmp_path / "sekisho.toml"
    config.write_text('[keys]\ndir = "keys"\n')
    assert main(["keys", "init", "--config", str(config)]) == 0
    read, write = os.pipe()
    os.close(read)  # the reader is gone before the command writes a line
    try:
        done = subprocess.run(
            [sys.executable, "-m", "sekisho", "keys", "list", "--config", str(config)],
            stdout=write,
            stderr=subprocess.PIPE,
            text=True,
            check=False,
        )
    finally:
        os.close(write)
    assert (done.returncode, done.stderr) == (1, "")


def test_a_dev_idp_on_a_port_in_use_says_why_and_prints_no_banner(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Session 14 walkthrough: a second `make run` printed "DEV ONLY identity provider … " and
    # then "[Errno 98] error while attempting to bind on address".
    with socket.create_server(("127.0.0.1", 0)) as taken:
        listen = f"127.0.0.1:{taken.getsockname()[1]}"
        status = main(["dev-idp", "serve", "--listen", listen, "--dir", str(tmp_path)])
    err = capsys.readouterr().err
    assert status == 2
    assert f"dev-idp: cannot listen on {listen}" in err and "another `make run`" in err
    assert "DEV ONLY" not in err
