"""rego-cpp leaks heap on every evaluation when grpc's native module was loaded before it.

Found by `make soak`: `sekisho serve` grew ~300 KB per embedded decision with a 1,000-entry
registry. The CLI imports regopy before anything imports grpc; these tests run the evaluation in
a fresh interpreter, so the import order is exactly the one under test.
"""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.unit.policy.inputs import CRM, POLICIES, QUERY

SCRIPT = """
import sys
{first}
import asyncio, json, pathlib
from sekisho.policy.rego import RegoPolicyEngine

def rss_mib():
    return int(pathlib.Path("/proc/self/statm").read_text().split()[1]) * 4096 / 2**20

engine = RegoPolicyEngine(pathlib.Path(sys.argv[1]), {query!r})
engine.load()
document = json.loads(sys.argv[2])

async def decide(times):
    for _ in range(times):
        await engine.decide(document)

asyncio.run(decide(20))
before = rss_mib()
asyncio.run(decide(300))
print(rss_mib() - before)
"""


def growth_mib(root: Path, first: str) -> float:
    from tests.unit.policy.inputs import policy_input

    document = json.dumps(policy_input(CRM, groups=["sales"], tenant="acme"))
    code = SCRIPT.format(first=first, query=QUERY)
    done = subprocess.run(
        [sys.executable, "-c", code, str(root), document],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    return float(done.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def big_policy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("policy") / "policies"
    shutil.copytree(POLICIES, root)
    path = root / "data" / "registry.json"
    registry = json.loads(path.read_text())
    downstreams = registry["sekisho"]["registry"]["downstreams"]
    for n in range(300):
        downstreams[f"https://svc{n}-as.example.com"] = {
            "resources": [f"https://svc{n}.example.com/mcp"],
            "scopes": {f"svc{n}.read": {}},
            "group_grants": {f"team-{n % 40}": [f"svc{n}.read"]},
        }
    path.write_text(json.dumps(registry))
    return root


def test_the_cli_loads_rego_cpp_before_grpc_and_evaluation_does_not_leak(big_policy: Path) -> None:
    assert growth_mib(big_policy, "import sekisho.cli\nimport grpc") < 3


def test_the_leak_is_real_when_grpc_loads_first(big_policy: Path) -> None:
    # The canary: proves the measurement above can see the leak. If rego-cpp fixes it, this
    # fails, and the import-order workaround in sekisho/cli.py can go.
    assert growth_mib(big_policy, "import grpc\nimport sekisho.cli") > 5
