"""`make run`'s key step (the Makefile's run-keys target): one message about the keys, whether
it makes them or finds them made."""

import os
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="no make")


def _keys_step(config: Path) -> str:
    """The step's output as `make run CONFIG=…` prints it (setup is done: a no-op here)."""
    done = subprocess.run(
        ["make", "-s", "--no-print-directory", "-C", str(REPO), "run-keys", f"CONFIG={config}"],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "MAKEFLAGS": ""},
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_make_run_with_another_config_says_once_that_the_keys_are_there(tmp_path: Path) -> None:
    """`make run CONFIG=config/local.toml` (the integrators guide's) printed `==> signing keys
    (made once)` and then `keystore already initialised (…)` at every run."""
    config = tmp_path / "local.toml"
    config.write_text('[keys]\ndir = "keys"\n')
    first = _keys_step(config).splitlines()
    assert first[0] == "==> signing keys (made once)"
    assert [line.split()[:2] for line in first[1:]] == [["created", "active"], ["created", "next"]]
    assert _keys_step(config) == f"keystore already initialised ({tmp_path / 'keys'})\n"
