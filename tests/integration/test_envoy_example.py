"""examples/envoy/run.py --smoke: the one-command example starts everything and behaves."""

import subprocess
import sys
from pathlib import Path

import pytest

from tests.loopback import free_port  # not the example's bind(0) (434e3be)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

RUN = Path(__file__).resolve().parents[2] / "examples" / "envoy" / "run.py"


def test_example_runs_with_one_command() -> None:
    result = subprocess.run(
        [sys.executable, str(RUN), "--smoke", "--port", str(free_port())],
        capture_output=True,
        text=True,
        timeout=50,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert "alice POST /crm/mcp   -> 200 (expected 200); upstream saw a Sekisho token" in lines
    assert "alice POST /docs/mcp  -> 200 (expected 200); upstream saw a Sekisho token" in lines
    assert "bob   POST /crm/mcp   -> 403 (expected 403)" in lines
