"""Shared fixtures. Servers bind 127.0.0.1 on port 0; nothing leaves loopback."""

import gc
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

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

# Hypothesis profiles: `ci` (the default, bounded for `make test`) and `long`
# (HYPOTHESIS_PROFILE=long for a deeper local run). No deadline: the shared CI machine's timing
# is not a property. Loaded here, before any test module: a `@settings(...)` takes its unset
# values from the profile loaded when its module is imported, so from tests/fuzz/conftest.py
# (where this was) test_fair_queue had hypothesis's 200 ms deadline whenever it was collected
# before tests/fuzz.
settings.register_profile(
    "ci",
    max_examples=200,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile(
    "long", max_examples=20_000, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


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
