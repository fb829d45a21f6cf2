"""Red team, session 4: the compiled-policy cache (`[policy] compile_cache_dir`) must never serve a
policy.wasm that `opa build` would not produce from the folder as it is now.

- `opa build` follows a symlinked folder of modules (a shared library linked in, a git-sync or
  ConfigMap layout); an edit there must be a new key, else a restart serves the old policy.
- an edit while `opa build` runs (a deploy writing the folder as the service starts) must not
  file the new policy under the old folder's key, else rolling back to the old folder serves
  the policy that was rolled back.
"""

from pathlib import Path

import pytest
from sekisho.policy.wasm.compile_cache import CompileCache, cache_key
from sekisho.policy.wasm.compiler import compile_folder

from tests.opa import opa_binary

pytestmark = pytest.mark.security

ENTRYPOINT = "sekisho/exchange/decision"
MAIN = 'package sekisho.exchange\n\nimport data.lib\n\ndecision := {"allow": lib.allow}\n'


def _library(tmp_path: Path, allow: bool) -> tuple[Path, Path]:
    """A policy folder whose `lib` module lives in a symlinked folder; (folder, lib.rego)."""
    shared = tmp_path / "shared"
    shared.mkdir()
    lib = shared / "lib.rego"
    lib.write_text(f"package lib\n\nallow := {str(allow).lower()}\n")
    root = tmp_path / "policies"
    root.mkdir()
    (root / "main.rego").write_text(MAIN)
    (root / "lib").symlink_to(shared, target_is_directory=True)
    return root, lib


def test_an_edit_in_a_symlinked_module_folder_is_a_new_key(tmp_path: Path) -> None:
    opa = opa_binary()
    root, lib = _library(tmp_path, allow=True)
    before = cache_key(opa, root, ENTRYPOINT)
    lib.write_text("package lib\n\nallow := false\n")  # the grant revoked
    assert cache_key(opa, root, ENTRYPOINT) != before


def test_a_restart_after_a_revocation_in_a_linked_folder_compiles_again(tmp_path: Path) -> None:
    opa = opa_binary()
    root, lib = _library(tmp_path, allow=True)
    cache = CompileCache(tmp_path / "cache")
    granting = cache(opa, root, ENTRYPOINT, 60.0)
    lib.write_text("package lib\n\nallow := false\n")
    served = CompileCache(tmp_path / "cache")(opa, root, ENTRYPOINT, 60.0)
    assert served != granting
    assert served == compile_folder(opa, root, ENTRYPOINT, 60.0)


def test_a_symlink_loop_in_the_folder_does_not_hang_the_key(tmp_path: Path) -> None:
    opa = opa_binary()
    root, _ = _library(tmp_path, allow=True)
    (root / "loop").symlink_to(root, target_is_directory=True)
    assert len(cache_key(opa, root, ENTRYPOINT)) == 64


class EditingCompiler:
    """`opa build` while a deploy rewrites the folder: the first build sees the new module."""

    def __init__(self, module: Path, new_text: str) -> None:
        self.module, self.new_text, self.builds = module, new_text, 0

    def __call__(self, opa: Path, root: Path, entrypoint: str, _timeout: float) -> bytes:
        self.builds += 1
        if self.builds == 1:
            self.module.write_text(self.new_text)
        return b"\0asm" + self.module.read_bytes()


def test_an_edit_during_the_build_is_not_filed_under_the_old_key(tmp_path: Path) -> None:
    opa = opa_binary()
    root = tmp_path / "policies"
    root.mkdir()
    module = root / "main.rego"
    old = MAIN.replace("lib.allow", "false")
    module.write_text(old)
    compiler = EditingCompiler(module, MAIN.replace("lib.allow", "true"))
    CompileCache(tmp_path / "cache", compiler)(opa, root, ENTRYPOINT, 60.0)
    module.write_text(old)  # rolled back
    served = CompileCache(tmp_path / "cache", compiler)(opa, root, ENTRYPOINT, 60.0)
    assert served == b"\0asm" + old.encode()
    assert compiler.builds == 2
