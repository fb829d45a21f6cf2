"""The compiled-policy cache (`[policy] compile_cache_dir`): a restart with nothing changed skips
`opa build`; any change of folder, opa binary or entrypoint rebuilds; an entry that is corrupted,
foreign or writable by others is ignored and rebuilt, never used."""

import dataclasses
import hashlib
import logging
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from sekisho.config import PolicyConfig
from sekisho.errors import ConfigError
from sekisho.policy.wasm.compile_cache import (
    KEPT_ENTRIES,
    CompileCache,
    cache_key,
    read_entry,
    write_entry,
)
from sekisho.policy.wasm.engine import WasmPolicyEngine
from sekisho.policy_components import folder_engine

from tests.bounds import compile_timeout, wasm_limits
from tests.fakes.clock import FakeClock
from tests.opa import opa_binary
from tests.unit.policy.inputs import CRM, POLICIES, QUERY, policy_input

ENTRYPOINT = "sekisho/exchange/decision"


class CountingCompiler:
    """Stands in for `opa build` in the key and entry tests: bytes derived from what it was given
    (the cache never looks inside them), and a count of the builds."""

    def __init__(self) -> None:
        self.builds = 0

    def __call__(self, opa: Path, root: Path, entrypoint: str, _timeout: float) -> bytes:
        self.builds += 1
        return b"\0asm" + hashlib.sha256(f"{opa}{root}{entrypoint}{self.builds}".encode()).digest()


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    root = tmp_path / "policies"
    shutil.copytree(POLICIES, root)
    return root


@pytest.fixture
def opa(tmp_path: Path) -> Path:
    path = tmp_path / "bin" / "opa"
    path.parent.mkdir()
    path.write_text("#!/bin/sh\n")
    path.chmod(0o755)
    return path


def _cache(tmp_path: Path) -> tuple[CompileCache, CountingCompiler, Path]:
    compiler = CountingCompiler()
    directory = tmp_path / "var" / "policy-cache"
    return CompileCache(directory, compiler), compiler, directory


def _entry(directory: Path) -> Path:
    (entry,) = directory.glob("*.wasm")
    return entry


def test_an_unchanged_restart_reuses_the_compiled_policy(
    tmp_path: Path, folder: Path, opa: Path, caplog: pytest.LogCaptureFixture
) -> None:
    cache, compiler, directory = _cache(tmp_path)
    first = cache(opa, folder, ENTRYPOINT, 60.0)
    with caplog.at_level(logging.INFO, logger="sekisho.policy.wasm.compile_cache"):
        again = CompileCache(directory, compiler)(opa, folder, ENTRYPOINT, 60.0)
    assert (again, compiler.builds) == (first, 1)
    assert "policy_compile_cached" in caplog.messages
    assert directory.stat().st_mode & 0o777 == 0o700
    assert _entry(directory).stat().st_mode & 0o777 == 0o600


def _edit_module(folder: Path, opa: Path) -> tuple[Path, Path, str]:
    scopes = folder / "sekisho" / "exchange" / "scopes.rego"
    scopes.write_text(scopes.read_text() + "\n_edited := 1\n")
    return folder, opa, ENTRYPOINT


def _edit_data(folder: Path, opa: Path) -> tuple[Path, Path, str]:
    registry = folder / "data" / "registry.json"
    registry.write_text(registry.read_text().replace("crm.read", "crm.look", 1))
    return folder, opa, ENTRYPOINT


def _edit_schema(folder: Path, opa: Path) -> tuple[Path, Path, str]:
    schema = folder / "schemas" / "input.json"
    schema.write_text(schema.read_text() + " ")
    return folder, opa, ENTRYPOINT


def _add_module(folder: Path, opa: Path) -> tuple[Path, Path, str]:
    (folder / "sekisho" / "extra.rego").write_text("package sekisho.extra\n\nx := 1\n")
    return folder, opa, ENTRYPOINT


def _rename_module(folder: Path, opa: Path) -> tuple[Path, Path, str]:
    scopes = folder / "sekisho" / "exchange" / "scopes.rego"
    scopes.rename(scopes.with_name("scopes2.rego"))  # same bytes, another file name
    return folder, opa, ENTRYPOINT


def _replace_opa(folder: Path, opa: Path) -> tuple[Path, Path, str]:
    opa.write_text("#!/bin/sh\n# another build\n")  # `go install` of another version
    return folder, opa, ENTRYPOINT


def _touch_opa(folder: Path, opa: Path) -> tuple[Path, Path, str]:
    stat = opa.stat()  # same bytes written again: mtime back, ctime moves on
    time.sleep(0.02)  # file times move in clock ticks (a few ms): let the tick pass
    opa.write_text(opa.read_text())
    os.utime(opa, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    return folder, opa, ENTRYPOINT


def _other_opa(folder: Path, opa: Path) -> tuple[Path, Path, str]:
    other = opa.with_name("opa-1.0")
    shutil.copy(opa, other)
    return folder, other, ENTRYPOINT


def _other_entrypoint(folder: Path, opa: Path) -> tuple[Path, Path, str]:
    return folder, opa, "sekisho/exchange/other"


def _other_folder(folder: Path, opa: Path) -> tuple[Path, Path, str]:
    copy = folder.with_name("policies-copy")
    shutil.copytree(folder, copy)
    return copy, opa, ENTRYPOINT


CHANGES: dict[str, Callable[[Path, Path], tuple[Path, Path, str]]] = {
    "module-edited": _edit_module,
    "data-edited": _edit_data,
    "schema-edited": _edit_schema,
    "module-added": _add_module,
    "module-renamed": _rename_module,
    "opa-replaced": _replace_opa,
    "opa-rewritten-same-bytes": _touch_opa,
    "opa-elsewhere": _other_opa,
    "entrypoint": _other_entrypoint,
    "folder-elsewhere": _other_folder,
}


@pytest.mark.parametrize("change", CHANGES.values(), ids=CHANGES.keys())
def test_any_change_of_the_inputs_rebuilds(
    tmp_path: Path,
    folder: Path,
    opa: Path,
    change: Callable[[Path, Path], tuple[Path, Path, str]],
) -> None:
    cache, compiler, _ = _cache(tmp_path)
    before = cache(opa, folder, ENTRYPOINT, 60.0)
    root, binary, entrypoint = change(folder, opa)
    after = cache(binary, root, entrypoint, 60.0)
    assert compiler.builds == 2
    assert after != before
    assert cache(binary, root, entrypoint, 60.0) == after  # and the new build is kept
    assert compiler.builds == 2


def _truncate(entry: Path, _other: Path) -> None:
    entry.write_bytes(entry.read_bytes()[:-7])


def _flip_a_byte(entry: Path, _other: Path) -> None:
    blob = bytearray(entry.read_bytes())
    blob[-1] ^= 0x01
    entry.write_bytes(bytes(blob))


def _foreign(entry: Path, other: Path) -> None:
    shutil.copy(other, entry)  # a valid entry, for another key, under this key's name


def _not_an_entry(entry: Path, _other: Path) -> None:
    entry.write_bytes(b"\0asm\x01\0\0\0")  # a bare policy.wasm dropped in


def _group_writable(entry: Path, _other: Path) -> None:
    entry.chmod(0o620)


def _world_writable_folder(entry: Path, _other: Path) -> None:
    entry.parent.chmod(0o777)


TAMPERING: dict[str, Callable[[Path, Path], None]] = {
    "truncated": _truncate,
    "byte-flipped": _flip_a_byte,
    "foreign-entry": _foreign,
    "not-an-entry": _not_an_entry,
    "group-writable-entry": _group_writable,
    "world-writable-folder": _world_writable_folder,
}


@pytest.mark.parametrize("tamper", TAMPERING.values(), ids=TAMPERING.keys())
def test_a_damaged_or_untrusted_entry_is_ignored_and_rebuilt(
    tmp_path: Path,
    folder: Path,
    opa: Path,
    tamper: Callable[[Path, Path], None],
    caplog: pytest.LogCaptureFixture,
) -> None:
    cache, compiler, directory = _cache(tmp_path)
    cache(opa, folder, "sekisho/exchange/other", 60.0)
    other = _entry(directory)
    other = other.rename(other.with_name("other.keep"))
    good = cache(opa, folder, ENTRYPOINT, 60.0)
    entry = _entry(directory)
    tamper(entry, other)
    with caplog.at_level(logging.WARNING, logger="sekisho.policy.wasm.compile_cache"):
        rebuilt = cache(opa, folder, ENTRYPOINT, 60.0)
    assert compiler.builds == 3, "the damaged entry was used"
    assert rebuilt != good  # the counting compiler's third build, not the stored bytes
    assert "policy_cache_ignored" in caplog.messages


def test_an_entry_is_read_only_for_its_own_key(tmp_path: Path, folder: Path, opa: Path) -> None:
    key = cache_key(opa, folder, ENTRYPOINT)
    entry = tmp_path / "cache" / f"{key}.wasm"
    write_entry(entry, key, b"\0asm-policy")
    assert read_entry(entry, key) == b"\0asm-policy"
    assert read_entry(entry, "0" * 64) is None
    assert read_entry(entry.with_name("missing.wasm"), key) is None


def test_an_unwritable_cache_still_compiles(
    tmp_path: Path, folder: Path, opa: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    compiler = CountingCompiler()
    cache = CompileCache(blocker / "cache", compiler)
    with caplog.at_level(logging.WARNING, logger="sekisho.policy.wasm.compile_cache"):
        assert cache(opa, folder, ENTRYPOINT, 60.0).startswith(b"\0asm")
        assert cache(opa, folder, ENTRYPOINT, 60.0).startswith(b"\0asm")
    assert compiler.builds == 2
    assert "policy_cache_unwritable" in caplog.messages


def test_old_entries_are_pruned(tmp_path: Path, folder: Path, opa: Path) -> None:
    cache, _, directory = _cache(tmp_path)
    (directory / "notes.txt").parent.mkdir(parents=True)
    (directory / "notes.txt").write_text("not ours")
    for n in range(KEPT_ENTRIES + 3):
        cache(opa, folder, f"sekisho/exchange/e{n}", 60.0)
    assert len(list(directory.glob("*.wasm"))) == KEPT_ENTRIES
    assert (directory / "notes.txt").exists()


def _failing_compiler(*_args: object) -> bytes:
    raise AssertionError("opa build ran although the cache held this policy")


async def test_the_service_engine_starts_from_the_cache_and_decides_the_same(
    tmp_path: Path, folder: Path
) -> None:
    directory = tmp_path / "cache"
    settings = PolicyConfig(path=folder, opa_binary=str(opa_binary()), compile_cache_dir=directory)
    first = folder_engine(
        settings, tmp_path, FakeClock()
    )  # as `sekisho serve` builds it: real opa build
    await first.start()
    assert len(list(directory.glob("*.wasm"))) == 1
    cache = CompileCache(directory, _failing_compiler)
    restarted = WasmPolicyEngine(
        folder,
        QUERY,
        opa_binary(),
        wasm_limits(),
        compile_timeout=compile_timeout(),
        compiler=cache,
    )
    await restarted.start()
    allowed = policy_input(CRM, groups=["sales"], tenant="acme")
    assert (await restarted.decide(allowed)).allow
    ours, theirs = await restarted.decide(allowed), await first.decide(allowed)
    assert dataclasses.replace(ours, decision_id="") == dataclasses.replace(theirs, decision_id="")
    assert not (await restarted.decide(policy_input(CRM, groups=["x"], tenant="acme"))).allow
    await first.close()
    await restarted.close()


@pytest.mark.parametrize("inside", ["policies/.cache", "policies"], ids=["subfolder", "itself"])
def test_a_cache_inside_the_policy_folder_is_refused(tmp_path: Path, inside: str) -> None:
    # Every entry written there would change the folder: a new key and, for the watcher, an
    # edit to reload, forever.
    folder = tmp_path / "policies"
    folder.mkdir()
    settings = PolicyConfig(
        path=folder, opa_binary=str(opa_binary()), compile_cache_dir=tmp_path / inside
    )
    with pytest.raises(ConfigError, match="compile_cache_dir"):
        folder_engine(settings, tmp_path, FakeClock())
