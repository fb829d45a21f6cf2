"""Decision records end to end: a running Sekisho with the decision log and a shadow policy;
the log holds no raw email when hashing is configured; `sekisho policy impact` (a separate
process, no service) replays it — the live policy reproduces every recorded decision exactly,
a candidate's changes are counted and named, and --max-changes sets the exit status."""

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import aiohttp
import grpc
import pytest
from sekisho._gen.sekisho.v1 import token_exchange_pb2 as pb
from sekisho._gen.sekisho.v1 import token_exchange_pb2_grpc as pb_grpc
from sekisho.config import load_settings
from sekisho.devidp import DevIdentityProvider
from sekisho.policy.redaction import build_hasher
from sekisho.policy.wasm.compiler import build_bundle
from sekisho.service import start_service
from sekisho.signing.filestore import FileKeyStore

from tests.harness import POLICIES
from tests.integration.conftest import LiveStack, stack_settings
from tests.integration.test_opa_service import keys, opa, opa_settings  # noqa: F401 (fixtures)
from tests.opa import OpaServer, opa_binary

CRM_AS = "https://crm-as.example.com"
DOCS_AS = "https://docs-as.example.com"
EMAILS = ("alice@example.com", "bob@example.com")


def _candidate(tmp_path: Path) -> Path:
    """The shipped policy, except that the sales group also gets crm.write."""
    folder = tmp_path / "candidate"
    shutil.copytree(POLICIES, folder)
    registry_file = folder / "data" / "registry.json"
    registry = json.loads(registry_file.read_text())
    registry["sekisho"]["registry"]["downstreams"][CRM_AS]["group_grants"]["sales"] = [
        "crm.read",
        "crm.write",
    ]
    registry_file.write_text(json.dumps(registry))
    return folder


async def _exchange_a_week(stack: LiveStack) -> int:
    """Grants, a narrowed grant, a denial and a step-up, some repeated (cache hits)."""
    requests = [
        ("alice", ["sales"], CRM_AS, ["crm.read", "crm.write"]),
        ("alice", ["sales"], CRM_AS, ["crm.read", "crm.write"]),
        ("bob", ["sales-admin"], CRM_AS, ["crm.read", "crm.write"]),
        ("alice", ["sales"], DOCS_AS, []),
        ("bob", ["engineering"], "https://unknown-as.example.com", []),
        ("alice", ["platform-admins"], "https://github-mcp-as.example.com", ["repo.admin"]),
    ]
    outcomes = []
    for user, groups, audience, scopes in requests:
        token = stack.user_token(sub=user, email=f"{user}@example.com", groups=groups)
        request = pb.ExchangeTokenRequest(subject_token=token, audience=audience, scope=scopes)
        try:
            await stack.stub.ExchangeToken(request)
            outcomes.append(grpc.StatusCode.OK)
        except grpc.aio.AioRpcError as error:
            outcomes.append(error.code())
    assert outcomes == [grpc.StatusCode.OK] * 4 + [
        grpc.StatusCode.PERMISSION_DENIED,
        grpc.StatusCode.FAILED_PRECONDITION,
    ]
    return len(requests)


@pytest.fixture
async def decisions(tmp_path: Path, dev_idp: DevIdentityProvider) -> tuple[Path, str]:
    """Run the service with the log and a shadow, exchange, stop; the log file and /metrics."""
    keys_dir = tmp_path / "keys"
    FileKeyStore(keys_dir).init("ES256", 1_800_000_000)
    key_file = tmp_path / "decision-log.key"
    key_file.write_text("a-test-key-of-more-than-16-bytes\n")
    log_file = tmp_path / "var" / "decisions.jsonl"
    settings = stack_settings(
        dev_idp.issuer,
        keys_dir,
        decision_log={"enabled": True, "path": str(log_file), "hash_key_file": str(key_file)},
        policy={"shadow": {"path": str(_candidate(tmp_path)), "cpu_share": 1.0}},
    )
    service = await start_service(settings)
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{service.grpc.port}")
    stack = LiveStack(
        service, dev_idp, pb_grpc.TokenExchangeServiceStub(channel), channel, settings
    )
    count = await _exchange_a_week(stack)
    assert service.observers is not None and service.observers.shadow is not None
    await service.observers.shadow.drained()
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"http://127.0.0.1:{service.metrics_port}/metrics") as response,
    ):
        metrics = await response.text()
    await channel.close()
    await service.stop(0.5)
    assert len(log_file.read_text().splitlines()) == count
    return log_file, metrics


def _impact(*args: str) -> tuple[int, Any]:
    completed = subprocess.run(
        [sys.executable, "-m", "sekisho", "policy", "impact", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert completed.returncode in (0, 1), completed.stderr
    output = completed.stdout
    return completed.returncode, json.loads(output) if "--format" in args else output


async def test_records_are_opa_shaped_and_hold_no_raw_email(decisions: tuple[Path, str]) -> None:
    log_file, _ = decisions
    text = log_file.read_text()
    assert not any(email in text for email in EMAILS)
    events = [json.loads(line) for line in text.splitlines()]
    for event in events:
        assert {"decision_id", "path", "input", "timestamp", "labels", "metrics"} <= set(event)
        assert event["path"] == "sekisho/exchange/decision"
        assert event["input"]["subject"]["email"].startswith("hmac:")
        assert event["masked"] == ["/input/subject/email"]
    granted = [e for e in events if e["result"]["allow"]]
    assert granted and all(
        e["result"]["claims"].get("email", "hmac:").startswith("hmac:") for e in granted
    )


async def test_the_shadow_difference_is_counted_by_audience_and_kind(
    decisions: tuple[Path, str],
) -> None:
    _, metrics = decisions
    line = f'sekisho_shadow_differences_total{{audience="{CRM_AS}",kind="scopes"}} 2.0'
    assert line in metrics  # alice's two CRM requests: the candidate adds crm.write
    assert 'sekisho_decision_log_records_total{outcome="written"}' in metrics


async def test_replay_with_the_live_policy_reproduces_every_decision(
    decisions: tuple[Path, str],
) -> None:
    log_file, _ = decisions
    status, report = _impact(
        "--decisions",
        str(log_file),
        "--candidate",
        str(POLICIES),
        "--live",
        str(POLICIES),
        "--max-changes",
        "0",
        "--format",
        "json",
    )
    assert status == 0
    assert report["replayed"] == report["reproduced"] == 6
    assert report["changed"] == 0 and report["scope_changes"] == []


async def test_replay_names_who_gains_what_and_gates_on_max_changes(
    decisions: tuple[Path, str], tmp_path: Path
) -> None:
    log_file, _ = decisions
    candidate = _candidate(tmp_path / "replay")
    args = ["--decisions", str(log_file), "--candidate", str(candidate), "--live", str(POLICIES)]
    status, report = _impact(*args, "--max-changes", "1", "--format", "json")
    assert status == 1 and report["exceeded"]
    assert report["changed"] == 2 and report["by_audience"] == {CRM_AS: {"scopes": 2}}
    (change,) = report["scope_changes"]
    # the email is hashed, the sub is not (the default hash_fields): the report leads with it
    assert change["user"].startswith("alice (hmac:") and change["audience"] == CRM_AS
    # Who that is (docs/policy-authors.md#who-is-hmac): with the key, the service's config
    # hashes a suspected address to the same value; without it, the records' sub names her.
    config = tmp_path / "sekisho.toml"
    config.write_text('[decision_log]\nenabled = true\nhash_key_file = "decision-log.key"\n')
    pseudonym = build_hasher(load_settings(config).decision_log)("alice@example.com")
    assert change["user"] == f"alice ({pseudonym})"
    inputs = [json.loads(line)["input"] for line in log_file.read_text().splitlines()]
    assert {i["subject"]["sub"] for i in inputs if i["subject"]["email"] == pseudonym} == {"alice"}
    assert (change["gained"], change["lost"], change["decisions"]) == (["crm.write"], [], 2)
    status, text = _impact(*args, "--max-changes", "2")
    assert status == 0
    assert f"{CRM_AS}: scopes 2" in text and "+crm.write" in text


async def test_a_broken_shadow_policy_is_an_error_difference_not_an_outage(
    tmp_path: Path, dev_idp: DevIdentityProvider
) -> None:
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "decision.rego").write_text("package sekisho.exchange\n\ndecision := {\n")
    keys_dir = tmp_path / "keys"
    FileKeyStore(keys_dir).init("ES256", 1_800_000_000)
    settings = stack_settings(
        dev_idp.issuer, keys_dir, policy={"shadow": {"path": str(broken), "cpu_share": 1.0}}
    )
    service = await start_service(settings)  # the live policy is fine: the service starts
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{service.grpc.port}")
    try:
        stack = LiveStack(
            service, dev_idp, pb_grpc.TokenExchangeServiceStub(channel), channel, settings
        )
        request = pb.ExchangeTokenRequest(subject_token=stack.user_token(), audience=CRM_AS)
        response = await stack.stub.ExchangeToken(request)
        assert list(response.scope) == ["crm.read"]
        assert service.observers is not None and service.observers.shadow is not None
        await service.observers.shadow.drained()
        assert service.observers.shadow.counters.kinds == {"error": 1}
    finally:
        await channel.close()
        await service.stop(0.5)


async def test_with_the_opa_engine_both_logs_replay_through_the_embedded_engine(
    tmp_path: Path,
    dev_idp: DevIdentityProvider,
    opa: OpaServer,  # noqa: F811 (the imported fixture)
    keys: Path,  # noqa: F811 (the imported fixture)
) -> None:
    """Live decisions by an OPA server (which writes its own decision log too), the shadow in
    process: Sekisho's log and OPA's console log both replay, reproduced exactly."""
    opa.start()
    log_file = tmp_path / "decisions.jsonl"
    candidate = _candidate(tmp_path)
    base = stack_settings(
        dev_idp.issuer,
        keys,
        decision_log={
            "enabled": True,
            "path": str(log_file),
            "hash_method": "salted",
            "hash_salt": "a-salt-for-this-test",
        },
        policy={"shadow": {"path": str(candidate), "cpu_share": 1.0}},
    )
    settings = opa_settings(base, opa.url)
    service = await start_service(settings)
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{service.grpc.port}")
    try:
        stack = LiveStack(
            service, dev_idp, pb_grpc.TokenExchangeServiceStub(channel), channel, settings
        )
        count = await _exchange_a_week(stack)
        assert service.observers is not None and service.observers.shadow is not None
        await service.observers.shadow.drained()
        assert service.observers.shadow.counters.kinds == {"scopes": 2}
    finally:
        await channel.close()
        await service.stop(0.5)
    args = ["--candidate", str(candidate), "--live", str(POLICIES), "--format", "json"]
    _, ours = _impact("--decisions", str(log_file), *args)
    assert ours["replayed"] == ours["reproduced"] == count and ours["skipped"] == 0
    assert ours["changed"] == 2
    _, theirs = _impact("--decisions", str(opa.log_path), *args)
    assert theirs["replayed"] == theirs["reproduced"] >= count  # with OPA's self-test queries
    assert theirs["changed"] == 2 and theirs["skipped"] > 0
    (change,) = theirs["scope_changes"]
    assert change["user"] == "alice@example.com"  # OPA's own log is not redacted


def _bundle(folder: Path, output: Path) -> Path:
    build_bundle(opa_binary(), folder, "sekisho/exchange/decision", output, revision=output.stem)
    return output


@pytest.mark.parametrize("shadow_from", ["bundle_file", "path"])
async def test_live_and_shadow_each_come_from_their_own_folder_or_bundle(
    tmp_path: Path, dev_idp: DevIdentityProvider, shadow_from: str
) -> None:
    """A bundle shadow beside a live folder, and a folder shadow beside a live bundle (which
    the shadow must not inherit): each candidate's extra scope is seen as a difference."""
    keys_dir = tmp_path / "keys"
    FileKeyStore(keys_dir).init("ES256", 1_800_000_000)
    candidate = _candidate(tmp_path)
    if shadow_from == "bundle_file":
        live: dict[str, Any] = {}
        shadow = {"bundle_file": str(_bundle(candidate, tmp_path / "candidate.tar.gz"))}
    else:
        live = {"bundle_file": str(_bundle(POLICIES, tmp_path / "live.tar.gz"))}
        shadow = {"path": str(candidate)}
    settings = stack_settings(
        dev_idp.issuer, keys_dir, policy={**live, "shadow": {**shadow, "cpu_share": 1.0}}
    )
    service = await start_service(settings)
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{service.grpc.port}")
    try:
        stub = pb_grpc.TokenExchangeServiceStub(channel)
        stack = LiveStack(service, dev_idp, stub, channel, settings)
        request = pb.ExchangeTokenRequest(
            subject_token=stack.user_token(), audience=CRM_AS, scope=["crm.read", "crm.write"]
        )
        assert list((await stub.ExchangeToken(request)).scope) == ["crm.read"]
        assert service.observers is not None and service.observers.shadow is not None
        await service.observers.shadow.drained()
        assert service.observers.shadow.counters.kinds == {"scopes": 1}
    finally:
        await channel.close()
        await service.stop(0.5)
