"""Shared fixtures. Servers bind 127.0.0.1 on port 0; nothing leaves loopback."""

import gc
import os
from collections.abc import Iterator
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

# The metrics admin listener defaults to 127.0.0.1:9464; every service a test starts (in process
# or as a subprocess, which inherits this) binds a free port instead. A test that needs a known
# port sets [metrics] listen itself.
os.environ.setdefault("SEKISHO_METRICS__LISTEN", "127.0.0.1:0")


@pytest.fixture
def harness(tmp_path: Path) -> Harness:
    return build_harness(tmp_path / "keys")


@pytest.fixture(autouse=True)
def _start_up_heap_unfrozen() -> Iterator[None]:
    """start_service ends with gc.freeze() (service.py); in a test process that starts many
    services, each test's leftovers go back to the collector afterwards instead of staying
    frozen (and unfinalised) for the rest of the run."""
    yield
    gc.unfreeze()
