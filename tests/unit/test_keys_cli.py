"""`sekisho keys init | list | rotate | promote | retire | revoke | jwks | reseal`: what each prints, what
it refuses and why, and the audit line it leaves."""

import json
import os
import pwd
import re
import time
from pathlib import Path

import pytest
from sekisho.cli import main
from sekisho.clock import SystemClock


def _config(tmp_path: Path, max_age: int = 300) -> str:
    path = tmp_path / "sekisho.toml"
    path.write_text(f'[keys]\ndir = "keys"\n\n[tokens]\njwks_max_age_seconds = {max_age}\n')
    return str(path)


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def _kids(out: str, state: str) -> list[str]:
    return re.findall(rf"^(\S+)\s+ES256\s+{state}\b", out, flags=re.MULTILINE)


def _audit(tmp_path: Path) -> list[dict[str, object]]:
    text = (tmp_path / "keys" / "audit.log").read_text(encoding="utf-8")
    return [json.loads(line) for line in text.splitlines()]


@pytest.fixture
def initialised(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> str:
    config = _config(tmp_path)
    code, out, _ = _run(capsys, "keys", "init", "--config", config)
    assert code == 0 and out.count("created") == 2
    return config


def test_list_shows_kid_alg_state_and_times(
    initialised: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = _run(capsys, "keys", "list", "--config", initialised)
    assert code == 0
    header, active, upcoming = out.splitlines()
    assert header.split() == ["KID", "ALG", "STATE", "CREATED", "ACTIVATED", "RETIRE-AFTER"]
    assert active.split()[1:3] == ["ES256", "active"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", active.split()[4])
    assert upcoming.split()[1:3] == ["ES256", "next"]
    assert upcoming.split()[4:] == ["-", "-"]


def test_promote_too_early_is_refused_with_the_rule_and_the_way_out(
    initialised: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = _run(capsys, "keys", "promote", "--config", initialised)
    assert code == 2 and not out
    assert "promotion needs 600 s (2 x jwks_max_age_seconds)" in err
    assert "--force skips this check" in err


def test_force_needs_a_reason(initialised: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _run(capsys, "keys", "promote", "--force", "--config", initialised)
    assert code == 2
    assert "need --reason" in err


def test_forced_promote_prints_what_changed_and_what_it_skipped(
    initialised: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = _run(
        capsys,
        "keys",
        "promote",
        "--force",
        "--reason",
        "incident 7",
        "--operator",
        "carol",
        "--config",
        initialised,
    )
    assert code == 0
    lines = out.splitlines()
    assert re.match(r"demote\s+\S+\s+ES256\s+active -> retiring\s+\(published until", lines[0])
    assert re.match(r"promote\s+\S+\s+ES256\s+next -> active", lines[1])
    assert lines[2].startswith("  forced: skipped the rule: next key")
    assert re.match(r"create\s+\S+\s+ES256\s+\(new\) -> next", lines[3])
    promote = next(line for line in _audit(tmp_path) if line["action"] == "promote")
    assert (promote["operator"], promote["reason"]) == ("carol", "incident 7")


def test_rotate_says_when_it_can_act(initialised: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(capsys, "keys", "rotate", "--config", initialised)
    assert code == 0
    assert re.match(
        r"waiting: next key \S+ has been published for \d+ s; promotion needs 600 s", out
    )


def test_rotate_promotes_once_the_next_key_is_old_enough(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    config = _config(tmp_path, max_age=1)
    # The CLI's clock stands still from init to the first rotate: on the real one, a stall of
    # 2 s between them (a loaded host) let the first rotate promote already.
    created = time.time()
    monkeypatch.setattr(SystemClock, "now", lambda self: created)
    _run(capsys, "keys", "init", "--config", config)
    code, out, _ = _run(capsys, "keys", "rotate", "--config", config)
    assert out.startswith("waiting: next key")
    later = created + 3  # 2 x 1 s of pre-publication have passed
    monkeypatch.setattr(SystemClock, "now", lambda self: later)
    code, out, _ = _run(capsys, "keys", "rotate", "--config", config)
    assert code == 0
    assert [line.split()[0] for line in out.splitlines()] == ["demote", "promote", "create"]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        pytest.param(["retire", "nope"], "no key with kid 'nope'", id="retire-unknown-kid"),
        pytest.param(
            ["revoke", "nope", "--reason", "x"], "no key with kid 'nope'", id="revoke-unknown"
        ),
        # A missing --reason is argparse's (tests/unit/test_cli_polish.py); a blank one is ours.
        pytest.param(
            ["revoke", "nope", "--reason", " "], "need --reason", id="revoke-blank-reason"
        ),
    ],
)
def test_bad_input_is_refused_naming_the_problem(
    initialised: str, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    code, out, err = _run(capsys, "keys", *argv, "--config", initialised)
    assert code == 2 and not out
    assert message in err


def test_a_kid_starting_with_a_dash_is_accepted_after_double_dash(
    initialised: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # base64url kids start with "-" one time in 64; "--" must carry them past argparse.
    code, out, err = _run(capsys, "keys", "retire", "--config", initialised, "--", "-nope")
    assert code == 2 and not out
    assert "no key with kid '-nope'" in err


def test_retire_of_the_active_key_is_refused(
    initialised: str, capsys: pytest.CaptureFixture[str]
) -> None:
    _, listing, _ = _run(capsys, "keys", "list", "--config", initialised)
    (active,) = _kids(listing, "active")
    code, _, err = _run(capsys, "keys", "retire", "--config", initialised, "--", active)
    assert code == 2
    assert f"kid {active} is the active key" in err


def test_revoke_removes_the_key_from_the_jwks_and_promotes_the_next_key(
    initialised: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, listing, _ = _run(capsys, "keys", "list", "--config", initialised)
    (active,), (upcoming,) = _kids(listing, "active"), _kids(listing, "next")
    code, out, _ = _run(
        capsys, "keys", "revoke", "--reason", "key leaked", "--config", initialised, "--", active
    )
    assert code == 0
    assert [line.split()[:2] for line in out.splitlines()] == [
        ["promote", upcoming],
        ["revoke", active],
        ["create", out.splitlines()[2].split()[1]],
    ]
    _, jwks, _ = _run(capsys, "keys", "jwks", "--config", initialised)
    kids = [k["kid"] for k in json.loads(jwks)["keys"]]
    assert active not in kids
    assert kids[0] == upcoming  # the active key is listed first
    revoke = next(line for line in _audit(tmp_path) if line["action"] == "revoke")
    assert revoke["reason"] == "key leaked"


def test_reseal_leaves_one_audit_line_per_key_file_rewritten(
    initialised: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """As every other command that changes the keystore: rewriting its key files (encrypting
    them, once passphrase_env is set) is audited, with --operator and --reason."""
    _, listing, _ = _run(capsys, "keys", "list", "--config", initialised)
    (active,), (upcoming,) = _kids(listing, "active"), _kids(listing, "next")
    argv = ["--config", initialised, "--operator", "carol", "--reason", "INC-7: encrypt at rest"]
    code, out, _ = _run(capsys, "keys", "reseal", *argv)
    assert (code, out.split()) == (0, ["resealed", active, "resealed", upcoming])
    resealed = [line for line in _audit(tmp_path) if line["action"] == "reseal"]
    assert [(line["kid"], line["from_state"], line["to_state"]) for line in resealed] == [
        (active, "active", "active"),
        (upcoming, "next", "next"),
    ]
    for line in resealed:
        assert (line["operator"], line["source"]) == ("carol", "cli")
        assert (line["reason"], line["forced"]) == ("INC-7: encrypt at rest", [])


def test_init_if_missing_is_a_no_op(initialised: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(capsys, "keys", "init", "--if-missing", "--config", initialised)
    assert code == 0
    assert "already initialised" in out


def test_operator_defaults_to_user(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("USER", "dana")
    _run(capsys, "keys", "init", "--config", _config(tmp_path))
    assert {line["operator"] for line in _audit(tmp_path)} == {"dana"}


def test_init_on_a_fresh_clone_prints_only_the_keys_it_made(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`make run`'s first step: no "unknown" or "not checked" lines for what does not apply."""
    code, out, err = _run(capsys, "keys", "init", "--config", _config(tmp_path))
    assert code == 0 and len(out.splitlines()) == 2 and out.count("created") == 2
    assert err == ""


def test_init_checks_a_configured_service_user_and_polls_no_replica(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "sekisho.toml"
    config.write_text(
        f'[keys]\ndir = "keys"\nservice_user = "{os.geteuid()}"\n'
        'replica_urls = ["http://127.0.0.1:9"]\n'  # none runs before init: not polled
    )
    code, _, err = _run(capsys, "keys", "init", "--config", str(config))
    assert code == 0
    assert err.splitlines() == [
        f"service user {_user_name()} can read and will load every keystore file"
    ]


def test_later_changes_still_say_what_they_could_not_check(
    initialised: str, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["keys", "promote", "--force", "--reason", "drill", "--config", initialised]
    code, _, err = _run(capsys, *argv)
    assert code == 0
    assert "service can read the keystore: unknown (set keys.service_user" in err
    assert "running replicas: not checked (set keys.replica_urls)" in err


def test_a_rotate_that_only_waits_checks_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Walkthrough, session 11: `keys rotate` answering `waiting: …` (nothing written) went on to
    # report the service user and the replicas, and with replica_urls set polled them for a
    # change that was never made. A replica that cannot answer would have made it exit 1.
    config = Path(_config(tmp_path))
    _run(capsys, "keys", "init", "--config", str(config))
    config.write_text(
        config.read_text().replace(
            "[keys]\n", '[keys]\nreplica_urls = ["http://127.0.0.1:9"]\npickup_wait_seconds = 0\n'
        )
    )
    code, out, err = _run(capsys, "keys", "rotate", "--config", str(config))
    assert (code, err) == (0, "")
    assert out.startswith("waiting: next key")


def _user_name() -> str:
    try:
        return pwd.getpwuid(os.geteuid()).pw_name
    except KeyError:
        return f"uid {os.geteuid()}"


@pytest.mark.parametrize(
    "command",
    [
        pytest.param(["list"], id="list"),
        pytest.param(["jwks"], id="jwks"),
        pytest.param(["rotate"], id="rotate"),
        pytest.param(["promote", "--force", "--reason", "drill"], id="promote"),
        pytest.param(["retire", "--force", "--reason", "drill", "--", "SOMEKID"], id="retire"),
        pytest.param(["revoke", "--reason", "leak", "--", "SOMEKID"], id="revoke"),
        pytest.param(["reseal"], id="reseal"),
    ],
)
def test_a_missing_keystore_names_the_config_to_init_with(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], command: list[str]
) -> None:
    """A bare `sekisho keys init` writes var/keys under the current directory, not the folder
    this config reads (the operators guide's "keys created in the wrong folder"). Nothing is
    left behind: a key-changing command made the folder and its .lock (reseal also audit.log)
    before it found no keyring.json, so the next look found a keystore folder with no keys."""
    config = _config(tmp_path)
    name, *rest = command
    code, out, err = _run(capsys, "keys", name, "--config", config, *rest)
    assert code == 2 and not out
    assert f"no keystore at {tmp_path / 'keys'}" in err
    assert f"run `sekisho keys init --config {config}`" in err
    assert not (tmp_path / "keys").exists()


def test_a_missing_keystore_from_sekisho_config_names_it_too(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    config = _config(tmp_path)
    monkeypatch.setenv("SEKISHO_CONFIG", config)
    code, _, err = _run(capsys, "keys", "list")
    assert code == 2 and f"run `sekisho keys init --config {config}`" in err


def test_a_missing_keystore_without_any_config_asks_for_the_config_first(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A runbook line without --config (`sekisho keys revoke --reason … -- KID`) read the
    built-in defaults' ./var/keys: the answer must be the missing config, not `keys init`."""
    monkeypatch.delenv("SEKISHO_CONFIG", raising=False)
    monkeypatch.chdir(tmp_path)
    code, out, err = _run(capsys, "keys", "revoke", "--reason", "leak", "--", "SOMEKID")
    assert code == 2 and not out
    assert f"no keystore at {tmp_path / 'var' / 'keys'}" in err
    assert "no --config given" in err and "pass the service's config with --config FILE" in err
    assert not (tmp_path / "var").exists()  # the defaults' ./var/keys/.lock was left behind
