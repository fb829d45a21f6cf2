"""Shared fixtures. Servers bind 127.0.0.1 on port 0; nothing leaves loopback."""

from pathlib import Path

import pytest

from tests.harness import Harness, build_harness

# A plugin: fails the run if any token or private key appears in a log (tests/log_scan.py).
from tests.log_scan import (  # noqa: F401
    pytest_configure,
    pytest_runtest_makereport,
    pytest_runtest_setup,
    pytest_sessionfinish,
    pytest_terminal_summary,
)


@pytest.fixture
def harness(tmp_path: Path) -> Harness:
    return build_harness(tmp_path / "keys")
