"""After `sekisho keys` changes the keystore: can the service read it, did the replicas see it?

A change the running service cannot load is not a change (docs/security.md, class "revocation
takes effect or shouts"): a key file the service user cannot read leaves it unable to sign with
the new key. So every mutating command checks the files it committed against `[keys]
service_user` (or says it cannot know): can that user read them, and will the service accept
them — the same rule the service applies at load (signing/filemodes.py: a private key file must
be the service user's alone, unless `allow_loose_key_files`). It then asks each of `[keys]
replica_urls` for its JWKS and /readyz until the change shows or `pickup_wait_seconds` pass.
Either failing makes the command exit 1 — the change itself is committed and audited either way.
"""

import grp
import json
import os
import pwd
import stat
import time
import urllib.error
import urllib.request
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from sekisho.signing.filemodes import loose_key_file
from sekisho.signing.filestore import KEYRING_FILE
from sekisho.signing.keys import KeyRecord

JWKS_PATH = "/.well-known/jwks.json"
_MAX_BODY = 1 << 20


@dataclass(frozen=True)
class ServiceUser:
    """Who the service runs as, for a permission check by mode bits (as the kernel would)."""

    name: str
    uid: int
    gids: frozenset[int]

    @classmethod
    def lookup(cls, user: str) -> "ServiceUser":
        """Raises: ValueError for an unknown user name (a bare uid needs no passwd entry)."""
        if user.isdigit():
            return cls.of_uid(int(user))
        try:
            entry = pwd.getpwnam(user)
        except KeyError as exc:
            raise ValueError(f"config key 'keys.service_user': no such user {user!r}") from exc
        return cls(entry.pw_name, entry.pw_uid, frozenset(os.getgrouplist(user, entry.pw_gid)))

    @classmethod
    def of_uid(cls, uid: int, gid: int | None = None) -> "ServiceUser":
        """The user with this uid; containers often run uids without a passwd entry."""
        try:
            entry = pwd.getpwuid(uid)
        except (KeyError, OverflowError):
            return cls(f"uid {uid}", uid, frozenset({gid} if gid is not None else ()))
        return cls(entry.pw_name, uid, frozenset(os.getgrouplist(entry.pw_name, entry.pw_gid)))

    def can(self, path: Path, need: int) -> bool:
        """True when mode bits grant `need` (4 read, 1 search) to this user."""
        try:
            info = path.stat()
        except OSError:
            return False
        if self.uid == 0:
            return True
        if info.st_uid == self.uid:
            bits = (info.st_mode & stat.S_IRWXU) >> 6
        elif info.st_gid in self.gids or info.st_gid in _group_gids(self.name):
            bits = (info.st_mode & stat.S_IRWXG) >> 3
        else:
            bits = info.st_mode & stat.S_IRWXO
        return bits & need == need


def _group_gids(name: str) -> set[int]:
    return {g.gr_gid for g in grp.getgrall() if name in g.gr_mem}


def unreadable(user: ServiceUser, directory: Path, files: Iterable[Path]) -> list[str]:
    """Problems the service user would hit reading the keystore: one line each."""
    problems = [f"{p} is not searchable" for p in _parents(directory) if not user.can(p, 1)]
    problems += [f"{f} is not readable" for f in files if not user.can(f, 4)]
    return problems


def refused(user: ServiceUser, files: Iterable[Path]) -> list[str]:
    """Why the service, running as this user, would refuse the private key files (and their
    folder) at load: one line each, with the fix."""
    problems: dict[str, None] = {}  # one line for a folder shared by every key file
    for path in files:
        try:
            info = path.stat()
        except OSError:
            continue  # unreadable() reports it
        if path.name != KEYRING_FILE and (problem := loose_key_file(path, info, user.uid)):
            problems[problem] = None
    return list(problems)


def _parents(directory: Path) -> list[Path]:
    absolute = directory.resolve()
    return [absolute, *absolute.parents][::-1]


def readability_lines(
    service_user: str, directory: Path, files: list[Path], *, allow_loose: bool
) -> tuple[bool, list[str]] | None:
    """(ok, report) for the files a change committed; None when the service user is unknown
    (not configured, and the keystore folder is ours)."""
    user = _service_user(service_user, directory)
    if user is None:
        return None
    problems = unreadable(user, directory, files)
    if problems:
        head = f"service user {user.name} CANNOT read what was written; the service will not "
        head += "sign with these keys (fix the owner or mode, e.g. chown to the service user):"
        return False, [head, *(f"  {p}" for p in problems)]
    problems = [] if allow_loose else refused(user, files)
    if problems:
        head = f"service user {user.name} will REFUSE these key files, as at every load (serve "
        head += "does not start; a running service does not sign with them):"
        return False, [head, *(f"  {p}" for p in problems)]
    return True, [f"service user {user.name} can read and will load every keystore file"]


def _service_user(configured: str, directory: Path) -> ServiceUser | None:
    """`keys.service_user`, else the keystore folder's owner when that is not us (the service
    usually owns its folder; the security team's CLI often runs as someone else)."""
    if configured:
        return ServiceUser.lookup(configured)
    try:
        info = directory.stat()
    except OSError:
        return None
    if info.st_uid == os.geteuid():
        return None
    return ServiceUser.of_uid(info.st_uid, info.st_gid)


def expected_kids(records: list[KeyRecord]) -> tuple[set[str], set[str]]:
    """(kids a replica must publish, kids it must no longer publish)."""
    published = {r.kid for r in records if r.published}
    return published, {r.kid for r in records if not r.published}


def pickup_lines(
    urls: list[str], records: list[KeyRecord], wait_seconds: float
) -> tuple[bool, list[str]]:
    """(ok, report): poll each replica until its JWKS matches the records, or time runs out."""
    if not urls:
        return True, ["running replicas: not checked (set keys.replica_urls)"]
    want, gone = expected_kids(records)
    deadline = time.monotonic() + wait_seconds
    lines, ok = [], True
    for url in urls:
        status = _poll(url, want, gone, deadline)
        ok = ok and status == "picked up"
        lines.append(f"replica {url}: {status}")
    return ok, lines


def _poll(url: str, want: set[str], gone: set[str], deadline: float) -> str:
    while True:
        status = _status(url, want, gone)
        if status == "picked up" or time.monotonic() >= deadline:
            return status
        time.sleep(0.25)


def _status(url: str, want: set[str], gone: set[str]) -> str:
    try:
        kids = {str(k.get("kid")) for k in json.loads(_get(url + JWKS_PATH))["keys"]}
        ready = _ready(url)
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        return f"NOT confirmed (cannot read its JWKS: {exc})"
    if kids & gone:
        return f"NOT picked up: still publishes {', '.join(sorted(kids & gone))}"
    if want - kids:
        return f"NOT picked up: does not publish {', '.join(sorted(want - kids))} (cannot load it?)"
    return "picked up" if ready else "NOT ready (/readyz 503): it cannot sign"


def _get(url: str) -> bytes:
    # http(s) only: replica_urls is validated in config/keys.py.
    with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310
        return bytes(response.read(_MAX_BODY))


def _ready(url: str) -> bool:
    try:
        _get(url + "/readyz")
    except urllib.error.HTTPError as exc:
        if exc.code == 503:
            return False
        raise
    return True
