"""Shared fixtures. Servers bind 127.0.0.1 on port 0; nothing leaves loopback."""

from pathlib import Path

import pytest

from tests.harness import Harness, build_harness


@pytest.fixture
def harness(tmp_path: Path) -> Harness:
    return build_harness(tmp_path / "keys")
