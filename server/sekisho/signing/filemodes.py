"""Private signing key files must be the service's alone, as ssh demands of an identity file.

A key file readable by group or others, or owned by another user, may have been read (the key is
then someone else's too) or planted; a keystore folder that another user owns or that group or
others may write lets them swap keyring.json and the key files together. Such a file is refused
at load, naming it and the fix, unless `[keys] allow_loose_key_files = true` says the operator
shares them on purpose (docs/security.md, docs/operators.md "[keys]"). The wording matches the
policy compile cache's refusal of loose entries (policy/wasm/compile_cache.py).
"""

import os
import stat
from pathlib import Path

from sekisho.errors import KeyStoreError

_ALLOW = "keys.allow_loose_key_files = true"


class LooseKeyFileError(KeyStoreError):
    """A private key file (or its folder) that another user could read or replace."""


def read_private_key(path: Path, *, allow_loose: bool) -> bytes:
    """The file's bytes, checked on the opened file (no swap between check and read).

    Raises: OSError (cannot read), LooseKeyFileError.
    """
    with open(path, "rb") as handle:
        if not allow_loose:
            _refuse_loose(path, os.fstat(handle.fileno()))
        return handle.read()


def _refuse_loose(path: Path, info: os.stat_result) -> None:
    problem = loose_key_file(path, info, os.geteuid())
    if problem:
        raise LooseKeyFileError(problem)


def loose_key_file(path: Path, info: os.stat_result, uid: int) -> str | None:
    """Why a service running as `uid` refuses the private key file at `path` (`info`: its stat)
    or its folder, naming the fix; None when it accepts them. `sekisho keys` asks this for the
    configured service user (commands/keys_check.py), so the two never disagree."""
    if info.st_uid != uid:
        return (
            f"{path} is owned by uid {info.st_uid}, not the service's (uid {uid}): a private key "
            f"must be the service user's alone (chown it to uid {uid} and chmod 600 {path}, or "
            f"set {_ALLOW})"
        )
    if info.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        return (
            f"{path} is readable or writable by group or others "
            f"(mode {stat.S_IMODE(info.st_mode):04o}): chmod 600 {path}, or set {_ALLOW}"
        )
    return _loose_folder(path.parent, uid)


def _loose_folder(folder: Path, uid: int) -> str | None:
    info = folder.stat()
    if info.st_uid != uid:
        return (
            f"{folder} is owned by uid {info.st_uid}, not the service's (uid {uid}): "
            f"another user could replace the keys in it (chown it, or set {_ALLOW})"
        )
    if info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        return (
            f"{folder} is writable by group or others: another user could replace the keys "
            f"in it (chmod 700 {folder}, or set {_ALLOW})"
        )
    return None
