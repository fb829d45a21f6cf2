"""`sekisho revoke token | subject | caller | audience | lift | list`: what each prints and
changes in the store, what it refuses, and the audit line it leaves."""

import time
from pathlib import Path

import pytest
from sekisho.cli import main
from sekisho.identifiers import random_jti
from sekisho.status.filestore import FileStatusStore
from sekisho.status.models import IssuedToken, subject_key

from tests.revocation_log import audit_lines, changes_made

IDP = "https://idp.example.com"


def _config(tmp_path: Path, enabled: bool = True) -> str:
    path = tmp_path / "sekisho.toml"
    path.write_text(
        f'[status_list]\nenabled = {str(enabled).lower()}\npath = "st/status.db"\n'
        f'[[trust.issuers]]\nissuer = "{IDP}"\njwks_uri = "{IDP}/jwks"\n'
        f'issuer_aliases = ["{IDP}/"]\naudiences = ["agent-app"]\n'
    )
    return str(path)


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def _audit(tmp_path: Path) -> list[dict[str, object]]:
    """The changes made, each result line checked to follow its pending line."""
    return changes_made(audit_lines(tmp_path / "st" / "revocations.log"))


def _seed(tmp_path: Path) -> FileStatusStore:
    store = FileStatusStore(tmp_path / "st" / "status.db")
    now = int(time.time())
    lease = store.lease(
        now, list_size=1000, lease_size=10, use_until=now + 60, valid_until=now + 400
    )
    store.record(
        now,
        [
            IssuedToken(
                "jti-a",
                subject_key(IDP, "alice"),
                "agent-1",
                "https://crm",
                lease.list_id,
                0,
                now + 300,
            ),
            IssuedToken(
                "jti-b",
                subject_key(IDP, "bob"),
                "agent-2",
                "https://crm",
                lease.list_id,
                1,
                now + 300,
            ),
        ],
    )
    return store


def test_revoke_subject_marks_lists_and_audits(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = _config(tmp_path)
    store = _seed(tmp_path)
    code, out, _ = _run(
        capsys,
        "revoke",
        "subject",
        "--issuer",
        IDP,
        "--sub",
        "alice",
        "--reason",
        "laptop stolen",
        "--operator",
        "sec-oncall",
        "--config",
        config,
    )
    assert code == 0
    assert "1 live token(s) marked INVALID" in out and f"--issuer {IDP} --sub alice" in out
    assert store.snapshot(1).invalid == {0}  # type: ignore[union-attr]
    code, out, _ = _run(capsys, "revoke", "list", "--config", config)
    assert code == 0 and "subject" in out and "laptop stolen" in out and "no end: lift" in out
    (line,) = _audit(tmp_path)
    assert line["action"] == "revoke" and line["kind"] == "subject" and line["marked"] == 1
    assert line["operator"] == "sec-oncall" and line["reason"] == "laptop stolen"
    assert line["key"] == subject_key(IDP, "alice")
    assert (tmp_path / "st" / "revocations.log").stat().st_mode & 0o777 == 0o600


@pytest.mark.parametrize(
    ("argv", "kind", "marked_index"),
    [
        pytest.param(["token", "jti-b"], "token", 1, id="token"),
        pytest.param(["caller", "agent-2"], "caller", 1, id="caller"),
        pytest.param(["audience", "https://crm"], "audience", None, id="audience"),
    ],
)
def test_revoke_each_kind(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    argv: list[str],
    kind: str,
    marked_index: int | None,
) -> None:
    config = _config(tmp_path)
    store = _seed(tmp_path)
    code, _, _ = _run(capsys, "revoke", *argv, "--reason", "r", "--config", config)
    assert code == 0
    expected = {0, 1} if marked_index is None else {marked_index}
    assert store.snapshot(1).invalid == expected  # type: ignore[union-attr]
    (revocation,) = store.revocations(int(time.time()))
    assert revocation.kind == kind
    assert (revocation.until > 0) == (kind == "token")  # a token's ends with the token


@pytest.mark.parametrize(
    ("argv", "marked"),
    [
        pytest.param(["subject", "--issuer", IDP, "--sub", "alice"], {0, 2}, id="subject"),
        pytest.param(["audience", "https://crm.example.com/mcp"], {3}, id="audience"),
    ],
)
def test_one_command_marks_the_user_and_the_downstream_under_every_name(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], marked: set[int]
) -> None:
    # `revoke subject` also where the user was the actor (act.sub), `revoke audience` also
    # where the downstream was a granted resource (an access token's `aud`): no second command.
    config = _config(tmp_path)
    store = _seed(tmp_path)
    exp = int(time.time()) + 300
    store.record(
        int(time.time()),
        [
            IssuedToken("jti-c", subject_key(IDP, "carol"), "alice", "https://crm", 1, 2, exp,
                        actor=subject_key(IDP, "alice")),
            IssuedToken("jti-d", subject_key(IDP, "dave"), "agent-1", "https://crm-as", 1, 3, exp,
                        resources=("https://crm.example.com/mcp",)),
        ],
    )  # fmt: skip
    code, out, _ = _run(capsys, "revoke", *argv, "--reason", "INC-9", "--config", config)
    assert code == 0 and f"{len(marked)} live token(s) marked INVALID" in out
    assert store.snapshot(1).invalid == marked  # type: ignore[union-attr]
    (line,) = _audit(tmp_path)
    assert line["marked"] == len(marked)


def test_lift_ends_the_revocation_and_audits(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = _config(tmp_path)
    _seed(tmp_path)
    _run(capsys, "revoke", "caller", "agent-1", "--reason", "hijacked", "--config", config)
    code, out, _ = _run(
        capsys, "revoke", "lift", "caller", "agent-1", "--reason", "rebuilt", "--config", config
    )
    assert code == 0 and "lifted" in out
    code, out, _ = _run(
        capsys, "revoke", "lift", "caller", "agent-1", "--reason", "again", "--config", config
    )
    assert code == 1 and "no caller revocation" in out
    assert [line["action"] for line in _audit(tmp_path)] == ["revoke", "lift"]
    assert len(audit_lines(tmp_path / "st" / "revocations.log")) == 4  # none for the last lift


@pytest.mark.parametrize(
    "argv",
    [
        ["list"],
        ["caller", "agent-1", "--reason", "INC-4"],
        ["lift", "caller", "agent-1", "--reason", "ok"],
    ],
    ids=["list", "revoke", "lift"],
)
def test_a_file_store_that_is_not_there_is_refused_and_not_made(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    # Newcomer run, session 20: opened anyway, a --config naming another path made an empty
    # store there: `revoke list` said nothing was revoked (exit 0), and a revocation went where
    # no service reads it while the command said it was in force.
    config = _config(tmp_path)
    code, out, err = _run(capsys, "revoke", *argv, "--config", config)
    assert code == 2, out + err
    assert "status_list.path" in err and str(tmp_path / "st" / "status.db") in err
    assert "nothing was changed" in err and "Traceback" not in err
    assert not (tmp_path / "st").exists()


def test_a_store_folder_that_is_a_file_is_said_with_the_setting(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = _config(tmp_path)
    (tmp_path / "st").write_text("")  # path = "st/status.db": its folder is a file
    code, _, err = _run(capsys, "revoke", "list", "--config", config)
    assert code == 2
    assert "status_list.path" in err and str(tmp_path / "st" / "status.db") in err
    assert "Traceback" not in err


def test_a_reason_is_required(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["revoke", "caller", "agent-1", "--config", _config(tmp_path)])


def test_revoke_needs_status_lists_enabled(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = _run(capsys, "revoke", "list", "--config", _config(tmp_path, enabled=False))
    assert code == 2 and "[status_list] enabled" in err


def test_suspend_then_reinstate_round_trip_with_audit(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = _config(tmp_path)
    store = _seed(tmp_path)
    subject = ["subject", "--issuer", IDP, "--sub", "alice"]
    code, out, _ = _run(
        capsys, "revoke", "suspend", *subject, "--reason", "INC-7 investigating",
        "--operator", "sec-oncall", "--config", config,
    )  # fmt: skip
    assert code == 0 and "1 live token(s) marked SUSPENDED" in out
    snapshot = store.snapshot(1)
    assert snapshot is not None and snapshot.suspended == {0} and snapshot.invalid == frozenset()
    code, out, _ = _run(capsys, "revoke", "list", "--config", config)
    assert code == 0 and "suspended" in out and "INC-7 investigating" in out
    assert "no end: reinstate" in out
    code, out, _ = _run(
        capsys, "revoke", "reinstate", *subject, "--reason", "INC-7 false alarm",
        "--operator", "sec-oncall", "--config", config,
    )  # fmt: skip
    assert code == 0 and "1 live token(s) VALID again" in out
    assert store.snapshot(1).suspended == frozenset()  # type: ignore[union-attr]
    code, out, _ = _run(
        capsys, "revoke", "reinstate", *subject, "--reason", "again", "--config", config
    )
    assert code == 1 and "no subject suspension" in out
    suspend, reinstate = _audit(tmp_path)
    assert suspend["action"] == "suspend" and suspend["marked"] == 1
    assert suspend["reason"] == "INC-7 investigating" and suspend["operator"] == "sec-oncall"
    assert reinstate["action"] == "reinstate" and reinstate["marked"] == 1
    assert reinstate["key"] == subject_key(IDP, "alice")


def test_reinstate_leaves_a_revoked_token_invalid(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = _config(tmp_path)
    store = _seed(tmp_path)
    _run(capsys, "revoke", "suspend", "caller", "agent-1", "--reason", "look", "--config", config)
    _run(capsys, "revoke", "token", "jti-a", "--reason", "confirmed", "--config", config)
    code, out, _ = _run(
        capsys, "revoke", "reinstate", "caller", "agent-1", "--reason", "done", "--config", config
    )
    assert code == 0 and "0 live token(s) VALID again" in out
    assert store.snapshot(1).invalid == {0}  # type: ignore[union-attr]


def test_suspending_a_revoked_token_counts_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Walkthrough, session 11: suspending a caller whose only token was revoked printed
    # "1 live token(s) marked SUSPENDED" (and audited marked 1) for a token that stays INVALID.
    config = _config(tmp_path)
    store = _seed(tmp_path)
    _run(capsys, "revoke", "token", "jti-a", "--reason", "confirmed", "--config", config)
    code, out, _ = _run(
        capsys, "revoke", "suspend", "caller", "agent-1", "--reason", "look", "--config", config
    )
    assert code == 0 and "0 live token(s) marked SUSPENDED" in out
    assert "no live token changed status" in out
    assert store.snapshot(1).invalid == {0}  # type: ignore[union-attr]
    revoke, suspend = _audit(tmp_path)
    assert revoke["marked"] == 1 and suspend["action"] == "suspend" and suspend["marked"] == 0


@pytest.mark.parametrize(
    ("ending", "other"),
    [
        pytest.param(
            "reinstate",
            "revocation of the same value is in force (sekisho revoke lift",
            id="reinstate",
        ),
        pytest.param(
            "lift", "suspension of the same value is in force (sekisho revoke reinstate", id="lift"
        ),
    ],
)
def test_ending_one_cut_off_says_the_other_still_refuses(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], ending: str, other: str
) -> None:
    # Walkthrough, session 11: reinstating a suspended caller that had also been revoked printed
    # "new exchanges served again within ~1 s" while the revocation kept refusing them.
    config = _config(tmp_path)
    _seed(tmp_path)
    for verb in (["suspend"], []):
        argv = ["revoke", *verb, "caller", "agent-1", "--reason", "INC-9", "--config", config]
        assert _run(capsys, *argv)[0] == 0
    code, out, _ = _run(
        capsys, "revoke", ending, "caller", "agent-1", "--reason", "half", "--config", config
    )
    assert code == 0
    assert f"new exchanges stay refused: a caller {other}" in out
    assert "served again" not in out and "accept them again" not in out


def test_suspend_is_refused_on_one_bit_lists(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "sekisho.toml"
    config.write_text('[status_list]\nenabled = true\npath = "st/status.db"\nbits = 1\n')
    store = _seed(tmp_path)
    code, _, err = _run(
        capsys, "revoke", "suspend", "caller", "agent-1", "--reason", "x", "--config", str(config)
    )
    assert code == 2 and "status_list.bits" in err
    assert store.suspensions(int(time.time())) == []


@pytest.mark.parametrize(
    "argv",
    [
        pytest.param(["caller", ""], id="caller"),
        pytest.param(["token", "  "], id="token"),
        pytest.param(["audience", ""], id="audience"),
        pytest.param(["subject", "--issuer", IDP, "--sub", ""], id="sub"),
        pytest.param(["subject", "--issuer", "", "--sub", "alice", "--force"], id="issuer"),
        pytest.param(["suspend", "caller", ""], id="suspend-caller"),
    ],
)
def test_an_empty_value_is_refused_and_nothing_changes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    # Anonymous callers' tokens are recorded with caller "": revoking "" marked every one of
    # them INVALID (final), and every token minted after it was born revoked.
    config = _config(tmp_path)
    store = _seed(tmp_path)
    store.record(
        int(time.time()),
        [IssuedToken("jti-c", subject_key(IDP, "carol"), "", "https://crm", 1, 2, 2**31)],
    )
    code, out, err = _run(capsys, "revoke", *argv, "--reason", "r", "--config", config)
    assert code == 2 and "empty" in err and "marked" not in out
    assert store.snapshot(1).invalid == frozenset()  # type: ignore[union-attr]
    assert store.revocations(int(time.time())) == []


def test_an_issuer_the_config_does_not_trust_is_refused_unless_forced(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = _config(tmp_path)
    store = _seed(tmp_path)
    argv = ["revoke", "subject", "--sub", "alice", "--reason", "r", "--config", config]
    code, out, err = _run(capsys, *argv, "--issuer", "https://idp.example.org")
    assert code == 2 and "not an issuer this configuration trusts" in err and IDP in err
    assert store.revocations(int(time.time())) == []
    code, out, _ = _run(capsys, *argv, "--issuer", "https://idp.example.org", "--force")
    assert code == 0 and "0 live token(s)" in out and "no live token changed status" in out


def test_an_alias_of_a_trusted_issuer_revokes_under_the_configured_issuer(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Exchanges are keyed by trust.issuers' `issuer`; the trailing-slash alias must reach them.
    config = _config(tmp_path)
    store = _seed(tmp_path)
    code, out, _ = _run(
        capsys, "revoke", "subject", "--issuer", f"{IDP}/", "--sub", "alice", "--reason", "r",
        "--config", config,
    )  # fmt: skip
    assert code == 0 and "1 live token(s) marked INVALID" in out
    (revocation,) = store.revocations(int(time.time()))
    assert revocation.key == subject_key(IDP, "alice")


def test_list_does_not_call_a_revocation_in_force_lifted(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Walkthrough, session 11: UNTIL read "lifted" for a revocation still in force.
    config = _config(tmp_path)
    _seed(tmp_path)
    _run(capsys, "revoke", "caller", "agent-1", "--reason", "INC-3", "--config", config)
    _run(capsys, "revoke", "token", "jti-b", "--reason", "INC-3", "--config", config)
    code, out, _ = _run(capsys, "revoke", "list", "--config", config)
    header, *rows = out.splitlines()
    assert code == 0 and "UNTIL" in header and len(rows) == 2
    assert "lifted" not in out
    by_kind = {row.split()[1]: row for row in rows}
    assert "no end: lift" in by_kind["caller"]
    assert "no end" not in by_kind["token"]  # a minted token's revocation ends with it


def test_revoking_a_minted_tokens_jti_says_what_it_does(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Walkthrough, session 11: `revoke token <minted jti>` printed "new exchanges refused on
    # every worker", but no exchange presents a minted token's jti: its user's go on.
    config = _config(tmp_path)
    _seed(tmp_path)
    code, out, _ = _run(
        capsys, "revoke", "token", "jti-a", "--reason", "leaked", "--config", config
    )
    assert code == 0 and "1 live token(s) marked INVALID" in out
    assert "new exchanges refused" not in out
    assert "it names one minted token, not its user or workload" in out
    assert "the gateway's cache drops it on every worker within ~1 s" in out
    assert "downstreams refuse it within ~61.5 s (list ttl + 1.5 s)" in out
    # An inbound IdP token's jti (not a token Sekisho minted): exchanges presenting it are refused.
    code, out, _ = _run(
        capsys, "revoke", "token", "idp-jti", "--reason", "leaked", "--config", config
    )
    assert code == 0 and "not a jti Sekisho mints" in out
    assert "exchanges presenting that token are refused on every worker within ~1 s" in out


@pytest.mark.parametrize(
    "jti",
    [
        pytest.param("5b0c8a3e-7d1f-4c2a-9e6b-1a2b3c4d5e6f", id="keycloak-or-cognito-uuid"),
        pytest.param("ID.4eAWJOCMB3SX8XewDfVR", id="okta"),
        pytest.param("3q2-7wE4QbG0aSxW9hX1yB", id="22-characters-not-canonical"),
    ],
)
def test_revoking_a_jti_sekisho_never_mints_says_it_is_an_inbound_tokens(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], jti: str
) -> None:
    # Carried item (session 13): the command said "if Sekisho minted it, it has expired" of any
    # jti it found no live token for, an inbound IdP token's included; Sekisho mints one form
    # only, so a jti without it is said to be an inbound token's and nothing else.
    config = _config(tmp_path)
    _seed(tmp_path)
    code, out, _ = _run(capsys, "revoke", "token", jti, "--reason", "seen", "--config", config)
    assert code == 0
    assert "not a jti Sekisho mints (those are 22 base64url characters)" in out
    assert "in force as an inbound IdP token's jti: exchanges presenting that token" in out
    assert f"until `sekisho revoke lift token {jti}`" in out
    assert "expired" not in out and "live token(s) marked" not in out


@pytest.mark.parametrize(("action", "ended_by"), [("revoke", "lift"), ("suspend", "reinstate")])
def test_revoking_an_expired_minted_tokens_jti_says_it_has_expired(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], action: str, ended_by: str
) -> None:
    # Session 12 walkthrough: a minted token that had expired got the unknown-jti wording ("0
    # live token(s) marked INVALID", "no live token changed status … check the value is
    # spelled as the tokens carry it", "downstreams refuse marked tokens"), which says neither
    # that it expired nor that nothing is left to do.
    config = _config(tmp_path)
    store = FileStatusStore(tmp_path / "st" / "status.db")
    now = int(time.time())
    lease = store.lease(
        now - 400, list_size=1000, lease_size=10, use_until=now + 60, valid_until=now + 400
    )
    jti = random_jti()  # the form every minted token's jti has
    expired = IssuedToken(
        jti, subject_key(IDP, "alice"), "agent-1", "https://crm", lease.list_id, 0, now - 100
    )
    store.record(now - 400, [expired])
    verb = [action] if action == "suspend" else []
    code, out, _ = _run(
        capsys, "revoke", *verb, "token", "--reason", "seen", "--config", config, "--", jti
    )
    assert code == 0
    assert "it has the form of Sekisho's jtis, so Sekisho most likely minted it and it has " in out
    assert "expired: every verifier refuses it already" in out
    assert f"`sekisho revoke {ended_by} token {jti}` removes this entry" in out
    assert "kept in force in case an IdP issued a token with this jti" in out
    assert "live token(s) marked" not in out and "downstreams refuse" not in out
    assert "check the value is spelled" not in out and "not a jti Sekisho mints" not in out


@pytest.mark.parametrize("verb", [[], ["suspend"]], ids=["revoke", "suspend"])
def test_a_second_revocation_of_one_value_keeps_the_first_and_is_audited_as_a_repeat(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], verb: list[str]
) -> None:
    """Two operators revoking one workload (an incident seen twice): the second replaced the
    first, so `revoke list` gave the later time, operator and reason, and when and why it was
    first cut off was only in the log. The first stands; the second is audited, as a repeat."""
    config = _config(tmp_path)
    _seed(tmp_path)
    by = ["revoke", *verb, "caller", "agent-1", "--config", config, "--operator"]
    assert _run(capsys, *by, "alice", "--reason", "INC-1 odd calls")[0] == 0

    code, out, _ = _run(capsys, *by, "bob", "--reason", "INC-2 odd calls again")

    assert code == 0
    assert "already in force" in out and "by alice (INC-1 odd calls) stands" in out, out
    _, listed, _ = _run(capsys, "revoke", "list", "--config", config)
    assert "INC-1 odd calls" in listed and "INC-2" not in listed and "bob" not in listed
    audited = [(line["operator"], line["reason"], line["repeat"]) for line in _audit(tmp_path)]
    assert audited == [("alice", "INC-1 odd calls", False), ("bob", "INC-2 odd calls again", True)]
