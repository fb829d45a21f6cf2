"""The policy.wasm of a policy folder kept on disk (`[policy] compile_cache_dir`), so a restart with
an unchanged folder, opa binary and entrypoint does not run `opa build` again
(docs/policy-authors.md, "The embedded engine").

An entry is found by a key: a SHA-256 over every file of the folder (path and content; linked
folders followed, as `opa build` follows them), the opa binary's identity (resolved path, size,
inode, mtime and ctime: `go install` or a copy over it changes them, and ctime cannot be set back
by a user), the entrypoint, the `opa build` arguments and this file's format. Any edit (module,
data, schema, test), another opa or another entrypoint is a new key, so a stale entry is never
read; a build during which the folder changed is not stored (its policy.wasm may be the new
folder's, under the old folder's key).

An entry is never trusted blindly: it is used only when its header names the same key and the
SHA-256 of its bytes matches the one recorded beside them, and when neither the file nor the
folder can be written by anyone but the service's user. Otherwise (truncated, corrupted, foreign,
tampered-with permissions) it is ignored with a log line and rebuilt. The cache folder deserves
the protection of the policy folder: whoever can write both can change the policy anyway.
"""

import hashlib
import logging
import os
import re
import stat
import tempfile
from pathlib import Path

from sekisho.policy.wasm.compiler import build_args, compile_folder
from sekisho.policy.wasm.engine import Compiler

log = logging.getLogger(__name__)

MAGIC = b"sekisho-policy-wasm 1"
KEPT_ENTRIES = 8  # an editing session leaves one entry per compiled version; older ones go


def cache_key(opa: Path, root: Path, entrypoint: str) -> str:
    """What decides whether a cached policy.wasm is the one `opa build` would produce now."""
    digest = hashlib.sha256(MAGIC + b"\n")
    identity = os.stat(opa)
    facts = [
        str(opa.resolve()),
        f"{identity.st_size}:{identity.st_ino}:{identity.st_mtime_ns}:{identity.st_ctime_ns}",
        str(root.resolve()),
        entrypoint,
        *build_args(Path("ROOT"), entrypoint, Path("OUT")),
    ]
    for fact in facts:
        digest.update(f"{len(fact)}:{fact}".encode())
    for path in _files(root):
        name = path.relative_to(root).as_posix()
        digest.update(f"{len(name)}:{name}".encode() + hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def _files(root: Path) -> list[Path]:
    """Every file under `root` as `opa build` reads the folder: symlinked folders followed (a
    linked library is compiled in, so it is hashed too), except a link back to a folder it is
    in (a loop, which opa refuses, must not hang the key)."""
    files: list[Path] = []
    above = {str(root): frozenset({os.path.realpath(root)})}  # each folder's own and parents'
    for folder, subfolders, names in os.walk(root, followlinks=True):
        chain = above.pop(folder)
        files += (Path(folder, name) for name in names if Path(folder, name).is_file())
        subfolders[:] = [s for s in subfolders if os.path.realpath(Path(folder, s)) not in chain]
        for sub in subfolders:
            above[os.path.join(folder, sub)] = chain | {os.path.realpath(Path(folder, sub))}
    return sorted(files)


def _key_or_none(opa: Path, root: Path, entrypoint: str) -> str | None:
    try:
        return cache_key(opa, root, entrypoint)
    except OSError:
        return None


class CompileCache:
    """A Compiler (engine.py) that reuses the policy.wasm built earlier for the same key."""

    def __init__(self, directory: Path, compiler: Compiler = compile_folder) -> None:
        self._directory = directory
        self._compiler = compiler

    def __call__(self, opa: Path, root: Path, entrypoint: str, timeout_seconds: float) -> bytes:
        """policy.wasm from the cache, else from `compiler` (then stored).

        Raises: PolicyLoadError from the compiler.
        """
        try:
            key = cache_key(opa, root, entrypoint)
        except OSError as exc:  # a file vanished while hashing: compile, cache nothing
            log.warning("policy_cache_skipped", extra={"error": str(exc)})
            return self._compiler(opa, root, entrypoint, timeout_seconds)
        entry = self._directory / f"{key}.wasm"
        wasm = read_entry(entry, key)
        if wasm is not None:
            log.info("policy_compile_cached", extra={"entry": entry.name})
            return wasm
        wasm = self._compiler(opa, root, entrypoint, timeout_seconds)
        if _key_or_none(opa, root, entrypoint) == key:  # else edited during the build: not filed
            self._store(entry, key, wasm)
        return wasm

    def _store(self, entry: Path, key: str, wasm: bytes) -> None:
        try:
            write_entry(entry, key, wasm)
            prune(self._directory, KEPT_ENTRIES)
        except OSError as exc:  # a read-only disk costs a compile per start, nothing else
            log.warning("policy_cache_unwritable", extra={"path": str(entry), "error": str(exc)})


def read_entry(entry: Path, key: str) -> bytes | None:
    """The cached policy.wasm when the entry is intact, ours and for `key`; else None (logged
    unless there is no entry)."""
    try:
        wasm, problem = _load(entry, key)
    except FileNotFoundError:
        return None
    except OSError as exc:
        wasm, problem = b"", f"unreadable: {exc}"
    if problem is None:
        return wasm
    log.warning("policy_cache_ignored", extra={"entry": entry.name, "reason": problem})
    return None


def _load(entry: Path, key: str) -> tuple[bytes, str | None]:
    """Raises: OSError."""
    problem = _unsafe_location(entry)
    return (b"", problem) if problem is not None else _parse(entry.read_bytes(), key)


def _parse(blob: bytes, key: str) -> tuple[bytes, str | None]:
    parts = blob.split(b"\n", 3)
    if len(parts) != 4 or parts[0] != MAGIC:
        return b"", "not a Sekisho policy cache entry"
    if parts[1] != key.encode():
        return b"", "made for another policy folder, opa binary or entrypoint"
    if parts[2] != hashlib.sha256(parts[3]).hexdigest().encode():
        return b"", "content does not match its digest (truncated or corrupted)"
    return parts[3], None


def _unsafe_location(entry: Path) -> str | None:
    """Why the entry may have been written by someone else, if it may."""
    for path in (entry.parent, entry):
        info = path.stat()
        if info.st_uid != os.geteuid():
            return f"{path} is owned by uid {info.st_uid}, not the service's"
        if info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
            return f"{path} is writable by group or others"
    return None


def write_entry(entry: Path, key: str, wasm: bytes) -> None:
    """Store atomically (a reader sees the old entry or the whole new one). Raises: OSError."""
    entry.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    digest = hashlib.sha256(wasm).hexdigest()
    blob = b"\n".join((MAGIC, key.encode(), digest.encode(), wasm))
    descriptor, scratch = tempfile.mkstemp(dir=entry.parent, prefix=".tmp-")  # mode 0600
    try:
        with os.fdopen(descriptor, "wb") as output:
            output.write(blob)
        os.replace(scratch, entry)
    except BaseException:
        Path(scratch).unlink(missing_ok=True)
        raise


def prune(directory: Path, keep: int) -> None:
    """Delete all but the `keep` newest entries (only files named like an entry)."""
    entries = [p for p in directory.glob("*.wasm") if re.fullmatch(r"[0-9a-f]{64}", p.stem)]
    entries.sort(key=lambda p: p.stat().st_mtime_ns, reverse=True)
    for stale in entries[keep:]:
        stale.unlink(missing_ok=True)
