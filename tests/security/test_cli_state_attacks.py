"""Red team session 16 (state): a key or revocation change is made audited or not at all, and a
reload never installs key states older than one already installed.

The real CLI as a subprocess, real files. On Linux, argv is bytes: a byte that is not UTF-8
(a reason pasted from a Latin-1 terminal, a $USER from a broken locale) reaches Python as a lone
surrogate, which SQLite and the audit logs' UTF-8 cannot hold. `sekisho keys revoke` committed
the revocation (and minted a replacement `next` key), then failed writing the audit line: exit 2
with "'utf-8' codec can't encode character '\\udcff' in position 228", no audit line, no printed
change. `sekisho revoke lift` ended a revocation the same way, its lift never audited. An audit
log the command's user cannot write did the same.
"""

import asyncio
import contextlib
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from sekisho.cli import main
from sekisho.decision_observers import build_decision_log
from sekisho.errors import ConfigError
from sekisho.identifiers import random_jti
from sekisho.signing.filestore import FileKeyStore
from sekisho.signing.keyring import Keyring, KeySet
from sekisho.status.filestore import FileStatusStore
from sekisho.status.models import IssuedToken, Revocation

from tests.integration.conftest import stack_settings
from tests.revocation_log import audit_lines, changes_made

SEKISHO = [sys.executable, "-m", "sekisho"]
IDP = "https://idp.example.com"
NOT_UTF8 = b"\xff"


def _run(tmp_path: Path, *argv: str | bytes, user: bytes = b"") -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "USER": "alice"} if not user else {**os.environ}
    env_bytes = {k.encode(): v.encode() for k, v in env.items()}
    if user:
        env_bytes[b"USER"] = user
    return subprocess.run(
        [*SEKISHO, *argv],
        cwd=tmp_path,
        env=env_bytes,  # type: ignore[arg-type]  # bytes keep a non-UTF-8 $USER as it is
        capture_output=True,
        text=True,
        errors="replace",
        check=False,
        timeout=60,
    )


def _keys_config(tmp_path: Path) -> str:
    (tmp_path / "k.toml").write_text('[keys]\ndir = "keys"\n')
    return "k.toml"


def _states(tmp_path: Path) -> dict[str, str]:
    keyring = json.loads((tmp_path / "keys" / "keyring.json").read_text())
    return {key["kid"]: key["state"] for key in keyring["keys"]}


def _audit_lines(path: Path) -> list[dict[str, object]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


@pytest.mark.parametrize(
    ("option", "extra", "user"),
    [
        ("--reason", ["--reason", b"compromised " + NOT_UTF8], b""),
        ("--operator", ["--reason", "compromised", "--operator", b"b" + NOT_UTF8 + b"b"], b""),
        ("$USER", ["--reason", "compromised"], b"o" + NOT_UTF8),
    ],
    ids=["reason", "operator", "user-env"],
)
def test_keys_revoke_with_text_the_audit_log_cannot_hold_changes_nothing(
    tmp_path: Path, option: str, extra: list[str | bytes], user: bytes
) -> None:
    config = _keys_config(tmp_path)
    assert _run(tmp_path, "keys", "init", "--config", config).returncode == 0
    before = _states(tmp_path)
    upcoming = next(kid for kid, state in before.items() if state == "next")
    audit = tmp_path / "keys" / "audit.log"
    lines = _audit_lines(audit)

    done = _run(tmp_path, "keys", "revoke", "--config", config, *extra, "--", upcoming, user=user)

    assert done.returncode == 2, done.stdout + done.stderr
    assert option in done.stderr and "UTF-8" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr
    assert _states(tmp_path) == before  # not revoked, no replacement key made
    assert _audit_lines(audit) == lines


def _status_config(tmp_path: Path) -> str:
    """The config, and its store as the service makes it when it starts (sekisho revoke
    refuses a file store that is not there)."""
    (tmp_path / "s.toml").write_text(
        f'[status_list]\nenabled = true\npath = "st/status.db"\n'
        f'[[trust.issuers]]\nissuer = "{IDP}"\njwks_uri = "{IDP}/jwks"\naudiences = ["app"]\n'
    )
    made = FileStatusStore(tmp_path / "st" / "status.db")
    made.lift("caller", "nobody")
    made.close()
    return "s.toml"


@pytest.mark.parametrize(
    ("action", "option", "extra"),
    [
        ("lift", "--reason", ["--reason", b"false alarm " + NOT_UTF8]),
        ("lift", "--operator", ["--reason", "false alarm", "--operator", NOT_UTF8]),
        ("revoke", "CALLER", ["--reason", "incident"]),
    ],
    ids=["lift-reason", "lift-operator", "revoke-value"],
)
def test_revoke_commands_with_text_the_audit_log_cannot_hold_change_nothing(
    tmp_path: Path, action: str, option: str, extra: list[str | bytes]
) -> None:
    config = _status_config(tmp_path)
    revoked = _run(tmp_path, "revoke", "caller", "--config", config, "agent-x", "--reason", "x")
    assert revoked.returncode == 0, revoked.stderr
    audit = tmp_path / "st" / "revocations.log"
    lines = _audit_lines(audit)
    value: str | bytes = b"agent-" + NOT_UTF8 if action == "revoke" else "agent-x"
    verb = ["revoke", "lift"] if action == "lift" else ["revoke"]

    done = _run(tmp_path, *verb, "caller", "--config", config, *extra, "--", value)

    assert done.returncode == 2, done.stdout + done.stderr
    assert option in done.stderr and "UTF-8" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr
    assert _audit_lines(audit) == lines
    listed = _run(tmp_path, "revoke", "list", "--config", config).stdout.splitlines()[1:]
    assert len(listed) == 1, listed  # the revocation is still in force, nothing else is
    assert listed[0].split()[:2] == ["revoked", "caller"] and "agent-x" in listed[0]


def test_keys_revoke_with_an_audit_log_it_cannot_write_changes_nothing(tmp_path: Path) -> None:
    """The key audit log another user owns (security-team.md: the CLI may run as another uid),
    or a folder in its place: the revocation and a replacement key were committed, then the CLI
    said only "[Errno 21] Is a directory", the change unaudited. Now it opens the log first."""
    config = _keys_config(tmp_path)
    assert _run(tmp_path, "keys", "init", "--config", config).returncode == 0
    before = _states(tmp_path)
    upcoming = next(kid for kid, state in before.items() if state == "next")
    (tmp_path / "taken").mkdir()
    (tmp_path / "k.toml").write_text('[keys]\ndir = "keys"\naudit_log = "taken"\n')

    done = _run(tmp_path, "keys", "revoke", "--config", config, "--reason", "x", "--", upcoming)

    assert done.returncode == 2, done.stdout + done.stderr
    assert "keys.audit_log" in done.stderr and "nothing was changed" in done.stderr, done.stderr
    assert _states(tmp_path) == before


def test_a_key_change_refused_for_its_audit_log_leaves_no_key_behind(tmp_path: Path) -> None:
    """Red team session 17, of the audit log opened before a change: the lifecycle made the
    replacement `next` key (a private key file; with backend kms a KMS key) before the log was
    opened, so each refused `keys revoke` said "nothing was changed" and left one more
    unlisted private key in the keystore folder (and automatic rotation, retrying each check
    with such a log, one more KMS key per check). The log is now opened before a key is made."""
    config = _keys_config(tmp_path)
    assert _run(tmp_path, "keys", "init", "--config", config).returncode == 0
    before = _states(tmp_path)
    upcoming = next(kid for kid, state in before.items() if state == "next")
    files = sorted(p.name for p in (tmp_path / "keys").iterdir())
    (tmp_path / "taken").mkdir()
    (tmp_path / "k.toml").write_text('[keys]\ndir = "keys"\naudit_log = "taken"\n')

    for _ in range(2):
        done = _run(tmp_path, "keys", "revoke", "--config", config, "--reason", "x", "--", upcoming)
        assert done.returncode == 2 and "nothing was changed" in done.stderr, done.stderr

    assert _states(tmp_path) == before
    assert sorted(p.name for p in (tmp_path / "keys").iterdir()) == files


def test_a_key_audit_log_naming_the_keyring_is_refused_before_any_key(tmp_path: Path) -> None:
    """Red team session 17: `[keys] audit_log = "keys/keyring.json"` (any file the keystore
    writes) was accepted; `keys init` committed the keyring, then appended its audit lines to
    it: keyring.json was no longer JSON, nothing could sign, and the command had printed
    "created". The setting is refused, naming it, before a key is made."""
    (tmp_path / "k.toml").write_text('[keys]\ndir = "keys"\naudit_log = "keys/keyring.json"\n')

    done = _run(tmp_path, "keys", "init", "--config", "k.toml")

    assert done.returncode == 2, done.stdout + done.stderr
    assert "keys.audit_log" in done.stderr and "Traceback" not in done.stderr, done.stderr
    keys = tmp_path / "keys"
    assert not keys.exists() or not [p for p in keys.iterdir() if p.name != ".lock"]


def test_a_revocation_audit_log_naming_the_keyring_is_refused_before_any_change(
    tmp_path: Path,
) -> None:
    """Red team session 18, the session 17 class through another writer: `[status_list]
    audit_log = "keys/keyring.json"` was accepted, and `sekisho revoke` appended its line to
    the keyring: keyring.json was no longer JSON (`keys list`: unreadable or not JSON), so
    nothing could sign. Refused, naming the key, before the revocation is made."""
    config = _status_config(tmp_path)
    with (tmp_path / config).open("a") as text:
        text.write('[keys]\ndir = "keys"\n')
    text = (tmp_path / config).read_text()
    (tmp_path / config).write_text(
        text.replace("[status_list]\n", '[status_list]\naudit_log = "keys/keyring.json"\n')
    )
    assert _run(tmp_path, "keys", "init", "--config", config).returncode == 0

    done = _run(tmp_path, "revoke", "caller", "--config", config, "agent-x", "--reason", "x")

    assert done.returncode == 2, done.stdout + done.stderr
    assert "status_list.audit_log" in done.stderr and "Traceback" not in done.stderr
    listed = _run(tmp_path, "keys", "list", "--config", config)
    assert listed.returncode == 0, listed.stderr
    assert "agent-x" not in _run(tmp_path, "revoke", "list", "--config", config).stdout


def test_revoke_lift_with_an_audit_log_it_cannot_write_changes_nothing(tmp_path: Path) -> None:
    config = _status_config(tmp_path)
    revoked = _run(tmp_path, "revoke", "caller", "--config", config, "agent-x", "--reason", "x")
    assert revoked.returncode == 0, revoked.stderr
    (tmp_path / "taken").mkdir()
    text = (tmp_path / config).read_text()
    (tmp_path / config).write_text(
        text.replace('path = "st/status.db"\n', 'path = "st/status.db"\naudit_log = "taken"\n')
    )

    done = _run(
        tmp_path, "revoke", "lift", "caller", "--config", config, "--reason", "x", "agent-x"
    )

    assert done.returncode == 2, done.stdout + done.stderr
    assert "status_list.audit_log" in done.stderr, done.stderr
    assert "nothing was changed" in done.stderr, done.stderr
    listed = _run(tmp_path, "revoke", "list", "--config", config).stdout.splitlines()[1:]
    assert len(listed) == 1 and "agent-x" in listed[0], listed


def test_a_revocation_change_is_audited_before_it_is_printed(tmp_path: Path) -> None:
    """Red team session 17: `sekisho revoke` printed the change, then appended its audit line.
    With stdout a pipe its reader had left (`sekisho revoke lift … | head -0`, a dropped log
    shipper) and Python unbuffered (PYTHONUNBUFFERED=1, common in container images), the print
    raised BrokenPipeError after the store changed: the revocation was lifted, exit 1, no audit
    line and not a word on stderr. The line is now appended first."""
    config = _status_config(tmp_path)
    revoked = _run(tmp_path, "revoke", "caller", "--config", config, "agent-x", "--reason", "x")
    assert revoked.returncode == 0, revoked.stderr
    audit = tmp_path / "st" / "revocations.log"
    reader, writer = os.pipe()
    os.close(reader)  # whoever reads stdout is gone
    try:
        subprocess.run(
            [*SEKISHO, "revoke", "lift", "caller", "--config", config, "--reason", "y", "agent-x"],
            cwd=tmp_path,
            env={**os.environ, "USER": "alice", "PYTHONUNBUFFERED": "1"},
            stdout=writer,
            stderr=subprocess.DEVNULL,
            check=False,
            timeout=60,
        )
    finally:
        os.close(writer)

    listed = _run(tmp_path, "revoke", "list", "--config", config).stdout.splitlines()[1:]
    lifts = [line for line in changes_made(audit_lines(audit)) if line["action"] == "lift"]
    assert listed == []  # lifted: the store changed before anything was printed
    assert len(lifts) == 1, lifts  # and audited (before: no line)


LIFT_AGENT_X = ("revoke", "lift", "caller", "agent-x", "--reason", "y")


def _run_with_a_full_log(tmp_path: Path, log: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    """The CLI with the file size limit (`ulimit -f`) set to `log`'s size once padded, so the
    log, not the store's own files (smaller), reaches it: an append fails after the log was
    opened, as on a full disk or past a quota. Set in the child, without preexec_fn (threads)."""
    with log.open("a") as padding:
        padding.write('{"pad": 1}\n' * 30_000)
    limit = log.stat().st_size
    under_limit = f"import resource; resource.setrlimit(resource.RLIMIT_FSIZE, ({limit}, {limit}))"
    return _run_after(tmp_path, under_limit, *argv)


def _run_after(tmp_path: Path, prelude: str, *argv: str) -> subprocess.CompletedProcess[str]:
    """The CLI in a child Python that runs `prelude` first (a limit, a patch), as `alice`."""
    return subprocess.run(
        [
            sys.executable,
            "-c",
            f"{prelude}; import runpy, sys; sys.argv[0] = 'sekisho'; "
            "runpy.run_module('sekisho', run_name='__main__')",
            *argv,
        ],
        cwd=tmp_path,
        env={**os.environ, "USER": "alice"},
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )


def _seed_status(tmp_path: Path, config: str) -> str:
    """A live token of agent-y's (which a revoke or suspend would mark), a revocation of
    agent-x and a suspension of agent-s in force; the token's jti (random base64url: passed
    after "--", as it may start with "-")."""
    for verb in (["revoke"], ["revoke", "suspend"]):
        name = "agent-x" if verb == ["revoke"] else "agent-s"
        done = _run(tmp_path, *verb, "caller", "--config", config, "--reason", "x", name)
        assert done.returncode == 0, done.stderr
    store = FileStatusStore(tmp_path / "st" / "status.db")
    try:
        now, jti = int(time.time()), random_jti()
        lease = store.lease(
            now, list_size=100, lease_size=10, use_until=now + 60, valid_until=now + 400
        )
        store.record(now, [IssuedToken(jti, "u", "agent-y", "aud", lease.list_id, 0, now + 300)])
    finally:
        store.close()
    return jti


def _store_state(tmp_path: Path) -> tuple[object, ...]:
    store = FileStatusStore(tmp_path / "st" / "status.db")
    try:
        now = int(time.time())
        return (store.in_force(now), [store.snapshot(i) for i in store.live_lists(now)])
    finally:
        store.close()


@pytest.mark.parametrize(
    "change",
    [
        ("revoke", "token", "JTI"),
        ("revoke", "suspend", "caller", "agent-y"),
        ("revoke", "lift", "caller", "agent-x"),
        ("revoke", "reinstate", "caller", "agent-s"),
    ],
    ids=["revoke-token", "suspend", "lift", "reinstate"],
)
def test_a_revocation_change_whose_audit_line_fails_is_not_made(
    tmp_path: Path, change: tuple[str, ...]
) -> None:
    """A write that fails after the log was opened (disk full, quota; here the file size limit,
    `ulimit -f`): red team session 17 found `revoke lift` lifted, then its line failed, so the
    change went unaudited (session 18 made the CLI say so, a residual risk until session 20).
    The line is now written before the change (`"outcome": "pending"`): when it cannot be,
    nothing is changed (the entries in force, the marks) and the CLI says so, exit 2 as keys."""
    config = _status_config(tmp_path)
    jti = _seed_status(tmp_path, config)
    audit = tmp_path / "st" / "revocations.log"
    lines = audit_lines(audit)
    before = _store_state(tmp_path)
    *verb, value = change
    value = jti if value == "JTI" else value  # after "--": a jti may start with "-"
    argv = [*verb, "--config", config, "--reason", "y", "--", value]

    done = _run_with_a_full_log(tmp_path, audit, *argv)

    assert done.returncode == 2, done.stdout + done.stderr
    assert "nothing was changed" in done.stderr, done.stderr
    assert "status_list.audit_log" in done.stderr and str(audit) in done.stderr, done.stderr
    assert "Traceback" not in done.stderr
    assert _store_state(tmp_path) == before  # nothing put in force or ended, nothing marked
    assert [line for line in audit_lines(audit) if "pad" not in line] == lines


def _run_crashing_after_the_change(
    tmp_path: Path, method: str, *argv: str
) -> subprocess.CompletedProcess[str]:
    """The CLI, killed (os._exit, no cleanup) right after the store made the change: as a crash,
    an OOM kill or a power cut between the change and its result line."""
    crashing = (
        "import os; from sekisho.status.filestore import FileStatusStore as S; "
        f"real = S.{method}; S.{method} = lambda self, *a: (real(self, *a), os._exit(9))"
    )
    return _run_after(tmp_path, crashing, *argv)


@pytest.mark.parametrize(
    ("method", "change"),
    [
        ("revoke", ("revoke", "caller", "agent-y")),
        ("lift", ("revoke", "lift", "caller", "agent-x")),
    ],
    ids=["revoke", "lift"],
)
def test_a_revocation_change_cut_off_before_its_result_line_is_audited_as_pending(
    tmp_path: Path, method: str, change: tuple[str, ...]
) -> None:
    """A crash between the store change and its line left the change made and unaudited. The
    pending line is in the log before the change: what a crash leaves is a pending line (read:
    the command stopped; `revoke list` says whether it was made), never a change without one."""
    config = _status_config(tmp_path)
    _seed_status(tmp_path, config)
    audit = tmp_path / "st" / "revocations.log"
    lines = audit_lines(audit)

    done = _run_crashing_after_the_change(
        tmp_path, method, *change, "--config", config, "--reason", "y"
    )

    assert done.returncode == 9, done.stdout + done.stderr
    in_force = _store_state(tmp_path)[0]
    revoked = {(r.kind, r.key) for r in in_force.revocations}  # type: ignore[attr-defined]
    assert (("caller", change[-1]) in revoked) == (method == "revoke")  # made
    (pending,) = audit_lines(audit)[len(lines) :]  # and audited, as pending
    assert pending["outcome"] == "pending", pending
    assert (pending["action"], pending["key"]) == (method, change[-1])


def test_a_key_change_whose_audit_line_fails_is_not_made(tmp_path: Path) -> None:
    """The key audit log's lines are written before the change (write-ahead): when the append
    fails after the log was opened (here the file size limit, `ulimit -f`, as disk full or a
    quota), `keys revoke` changes nothing and says so. Before, the key was revoked and the
    CLI could only say its line was missing (red team session 17's residual risk)."""
    config = _keys_config(tmp_path)
    assert _run(tmp_path, "keys", "init", "--config", config).returncode == 0
    before = _states(tmp_path)
    upcoming = next(kid for kid, state in before.items() if state == "next")
    audit = tmp_path / "keys" / "audit.log"

    done = _run_with_a_full_log(
        tmp_path, audit, "keys", "revoke", "--reason", "x", "--config", config, "--", upcoming
    )  # after "--": a kid is random base64url and may start with "-" (CI of caa5f7e)

    assert done.returncode != 0, done.stdout + done.stderr
    assert "nothing was changed" in done.stderr and "keys.audit_log" in done.stderr, done.stderr
    assert _states(tmp_path) == before  # not revoked: the line could not be written first


def _until_done_or_waiting_on(process: "subprocess.Popen[str]", path: Path) -> None:
    """Wait until `process` has exited, or has held `path` open for 0.3 s on end: the audit log,
    which a command opens to lock it and holds while it waits for another's lock (a command
    that does not wait opens it for microseconds at a time)."""
    deadline, since = time.monotonic() + 60, None
    while process.poll() is None:
        if not _holds(process.pid, path):
            since = None
        elif since is None:
            since = time.monotonic()
        elif time.monotonic() - since >= 0.3:
            return
        assert time.monotonic() < deadline, "the second command neither ended nor waited"
        time.sleep(0.02)


def _holds(pid: int, path: Path) -> bool:
    with contextlib.suppress(OSError):  # a descriptor closed, or the process gone, meanwhile
        real = os.path.realpath(path)
        return any(os.readlink(fd) == real for fd in Path(f"/proc/{pid}/fd").iterdir())
    return False


def test_two_revocation_changes_at_once_are_audited_in_the_order_the_store_made_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Red team session 17, left then: `revoke caller agent-x` and `revoke lift caller agent-x`
    run at once by two operators. Each appended its line after its own store change with no lock
    around both: the lift ran between the revoke's change and its line, so the log read `lift`
    then `revoke` (of one second), the caller revoked, while the store had it lifted. The change
    and the line are now one step under the log's lock: the lift waits for the revoke's line."""
    config = str(tmp_path / _status_config(tmp_path))
    audit = tmp_path / "st" / "revocations.log"
    real_revoke = FileStatusStore.revoke
    lifts: list[subprocess.Popen[str]] = []

    def revoke_then_a_lift_runs(self: FileStatusStore, now: int, revocation: Revocation) -> int:
        marked = real_revoke(self, now, revocation)
        lift = subprocess.Popen(  # the other operator, after the store change, before the line
            [*SEKISHO, *LIFT_AGENT_X, "--config", config],
            cwd=tmp_path,
            env={**os.environ, "USER": "bob"},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        lifts.append(lift)
        _until_done_or_waiting_on(lift, audit)
        return marked

    monkeypatch.setattr(FileStatusStore, "revoke", revoke_then_a_lift_runs)
    revoke = ["revoke", "caller", "agent-x", "--reason", "x", "--operator", "alice"]
    assert main([*revoke, "--config", config]) == 0
    _, err = lifts[0].communicate(timeout=60)

    assert lifts[0].returncode == 0, err
    store = FileStatusStore(tmp_path / "st" / "status.db")
    try:
        assert store.revocations(int(time.time())) == []  # revoked, then lifted
    finally:
        store.close()
    lines = [(line["action"], line.get("outcome")) for line in audit_lines(audit)]
    assert lines == [("revoke", "pending"), ("revoke", None), ("lift", "pending"), ("lift", None)]


class _SlowFirstRead(FileKeyStore):
    """A keystore whose next load() reads, then takes its time to return (a KMS Decrypt of a
    kms-wrapped key, a passphrase KDF, an NFS server), as a reload in flight does."""

    def __init__(self, directory: Path) -> None:
        super().__init__(directory)
        self.read = threading.Event()
        self.release = threading.Event()
        self.armed = False

    def load(self) -> KeySet:
        keys = super().load()
        if self.armed:
            self.armed = False
            self.read.set()
            self.release.wait(10)
        return keys


async def test_a_reload_that_read_before_a_key_revocation_does_not_undo_it(
    tmp_path: Path,
) -> None:
    """Keyring.refresh runs from the folder watch, the keyring.json poll, the failed-reload
    retry, automatic rotation and SIGHUP, each in a thread, unserialised: the last to *finish*
    won, not the last to read. A reload that read the keystore just before `sekisho keys
    revoke` (the retry of a degraded keyring, say) and finished after the reload that saw the
    revocation put the revoked key back, published and signing; the poll had seen the new
    keyring.json already and no event was left to come."""
    config = _keys_config(tmp_path)
    assert _run(tmp_path, "keys", "init", "--config", config).returncode == 0
    compromised = next(kid for kid, state in _states(tmp_path).items() if state == "active")
    store = _SlowFirstRead(tmp_path / "keys")
    keyring = Keyring(store)
    keyring.load()
    store.armed = True
    before = asyncio.create_task(keyring.refresh())  # reads the keys as they were...
    assert await asyncio.to_thread(store.read.wait, 10)
    revoked = await asyncio.to_thread(
        _run, tmp_path, "keys", "revoke", "--config", config, "--reason", "x", "--", compromised
    )
    assert revoked.returncode == 0, revoked.stderr
    after = asyncio.create_task(keyring.refresh())  # ...this one reads the revocation
    await asyncio.sleep(0.3)
    store.release.set()  # ...and the first finishes last
    await asyncio.gather(before, after)

    assert not keyring.publishes(compromised)
    assert keyring.signing_key()[0].kid != compromised


def test_a_decision_log_naming_the_keyring_is_refused(tmp_path: Path) -> None:
    """Red team session 18, the same class through the decision log: `[decision_log] path =
    "keys/keyring.json"` would append a record per decision to the keyring (unreadable, nothing
    signs). Refused at start, naming the key, before anything is written."""
    keys = tmp_path / "keys"
    FileKeyStore(keys).init("ES256", 1_800_000_000)
    keyring = keys / "keyring.json"
    before = keyring.read_bytes()
    settings = stack_settings(
        "http://127.0.0.1:1",
        keys,
        decision_log={"enabled": True, "path": str(keyring), "hash_fields": []},
    )
    with pytest.raises(ConfigError, match=r"decision_log\.path"):
        build_decision_log(settings, None, several_workers=False)
    assert keyring.read_bytes() == before
