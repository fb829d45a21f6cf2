"""What the repository tracks: nothing of one machine's setup.

Session 13: a worktree's `.venv` link to the shared venv (`/work/main/.venv`) was committed; merged
into the main checkout it replaced that checkout's real venv with a link to itself, and a fresh
clone would have pointed its venv at another machine's path. `make setup` creates `.venv` and
`bin/` on each machine; neither, nor any link out of the tree, belongs in git.
"""

import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
MACHINE_LOCAL = (".venv", "bin", "var")  # made by `make setup` / the tests on each machine


def _tracked() -> list[tuple[str, str]]:
    """(mode, path) of every tracked file; skips when this is not a git checkout."""
    if shutil.which("git") is None or not (REPO / ".git").exists():
        pytest.skip("not a git checkout")
    out = subprocess.run(
        ["git", "ls-files", "-s", "-z"], cwd=REPO, check=True, capture_output=True, text=True
    ).stdout
    entries = []
    for record in filter(None, out.split("\0")):
        meta, path = record.split("\t", 1)
        entries.append((meta.split()[0], path))
    return entries


def test_no_machine_local_path_is_tracked() -> None:
    tracked = [path for _, path in _tracked() if path.split("/", 1)[0] in MACHINE_LOCAL]
    assert tracked == [], f"machine-local paths tracked (git rm --cached them): {tracked}"


def test_no_tracked_symlink_leaves_the_tree() -> None:
    leaving = []
    for mode, path in _tracked():
        if mode != "120000":
            continue
        target = (REPO / path).parent / Path((REPO / path).readlink())
        if not target.resolve().is_relative_to(REPO.resolve()):
            leaving.append(path)
    assert leaving == [], f"tracked symlinks pointing outside the repository: {leaving}"
