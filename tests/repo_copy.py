"""A copy of the repository for tests that run `make` as a user would (the README walkthrough,
`make run`'s signals): the tracked files with their mtimes (so make finds setup done), with .venv
and bin/ shared with this checkout."""

import shutil
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def copy_repository(target: Path) -> None:
    files = subprocess.run(
        ["git", "ls-files", "-z"], cwd=REPO, check=True, capture_output=True
    ).stdout.split(b"\0")
    for name in filter(None, files):
        source = REPO / name.decode()
        if source.is_file():
            (target / name.decode()).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name.decode())  # keeps mtimes: setup stays done
    for shared in (".venv", "bin"):
        (target / shared).symlink_to(REPO / shared)
