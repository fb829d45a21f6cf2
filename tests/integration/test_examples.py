"""Each example under examples/ runs with its one documented command and shows what it claims."""

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]


def _run(module: str, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def test_internal_agent_one_login_two_servers_scopes_by_group() -> None:
    lines = set(_run("examples.internal_agent").splitlines())
    assert lines == {
        "alice  notes    scopes=notes.read",
        "alice  tickets  scopes=tickets.read tickets.write",
        "bob    notes    scopes=notes.read notes.write",
        "bob    tickets  scopes=tickets.read",
    }


def test_multitenant_mcp_server_scopes_data_to_the_token_tenant() -> None:
    out = _run("examples.multitenant_mcp")
    assert (
        "alice  tenant=acme    notes=['acme: Q3 pipeline review', 'acme: onboarding checklist']"
        in out
    )
    assert "gina   tenant=globex  notes=['globex: reactor maintenance window']" in out


def test_gateway_exchanges_once_per_user_and_reports_hit_ratio() -> None:
    out = _run("examples.gateway_cache", "--requests", "60").splitlines()
    assert out == [
        "requests=60 exchanges=3 distinct_tokens=3",
        "cache hits=57 misses=3 hit_ratio=0.950",
    ]
