"""Shadow evaluation never changes an issued token — whatever the shadow policy decides, and
also when it errors, is not loaded, or hangs past its timeout — and each difference it finds is
reported by kind (shadow_diff log event and counters)."""

import asyncio
import json
import logging
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jwt
import pytest
from sekisho.audit import AuditLog
from sekisho.components import build_policy_engine
from sekisho.config import Settings
from sekisho.errors import InvalidScopeError, TemporarilyUnavailableError
from sekisho.exchange import TokenExchanger
from sekisho.metrics import Metrics
from sekisho.minting.minter import TokenMinter
from sekisho.models import Decision
from sekisho.observability import build_observability
from sekisho.policy.engine import PolicyEngine
from sekisho.policy.shadow import ShadowCounters, ShadowEvaluator
from sekisho.policy.tap import ObservedPolicyEngine
from sekisho.service_core import start_policy

from tests.bounds import request_limits, shadow_bounds
from tests.fakes.clock import FakeClock
from tests.fakes.loops import RecordedFailures
from tests.harness import CRM_AUDIENCE, POLICIES, SEKISHO_ISSUER, Harness

Registry = dict[str, Any]


class RaisingEngine:
    """A shadow engine with a bug."""

    ready = True

    async def decide(self, document: dict[str, Any]) -> Decision:
        raise RuntimeError("shadow policy bug")


class HangingEngine:
    """A shadow engine that never answers (an OPA server gone quiet)."""

    ready = True

    async def decide(self, document: dict[str, Any]) -> Decision:
        await asyncio.Event().wait()
        raise AssertionError("unreachable")


def _crm(registry: Registry) -> Registry:
    downstream: Registry = registry["sekisho"]["registry"]["downstreams"][CRM_AUDIENCE]
    return downstream


def _grant_write(registry: Registry) -> None:
    _crm(registry)["group_grants"]["sales"] = ["crm.read", "crm.write"]


def _shorter_ttl(registry: Registry) -> None:
    _crm(registry)["max_ttl_seconds"] = 60


def _no_claims(registry: Registry) -> None:
    _crm(registry)["propagate_claims"] = []


def _step_up(registry: Registry) -> None:
    _crm(registry)["scopes"]["crm.read"]["risk"] = "critical"


def _unregister(registry: Registry) -> None:
    del registry["sekisho"]["registry"]["downstreams"][CRM_AUDIENCE]


async def _policy_variant(tmp_path: Path, edit: Callable[[Registry], None]) -> PolicyEngine:
    folder = tmp_path / "shadow-policies"
    shutil.copytree(POLICIES, folder)
    registry_file = folder / "data" / "registry.json"
    registry = json.loads(registry_file.read_text())
    edit(registry)
    registry_file.write_text(json.dumps(registry))
    engine = build_policy_engine(
        Settings(policy={"path": str(folder)}), FakeClock(), RecordedFailures()
    )
    await engine.start()
    return engine


def _pipeline(harness: Harness, shadow: ShadowEvaluator | None) -> TokenExchanger:
    policy: PolicyEngine = harness.policy
    if shadow is not None:
        policy = ObservedPolicyEngine(harness.policy, harness.clock, [shadow])
    minter = TokenMinter(
        harness.keyring, harness.clock, issuer=SEKISHO_ISSUER, max_lifetime_seconds=300
    )
    return TokenExchanger(
        harness.verifier, policy, minter, harness.clock, AuditLog(), limits=request_limits()
    )


async def _issued(exchanger: TokenExchanger, harness: Harness, scopes: list[str]) -> dict[str, Any]:
    token = harness.idp_a.token(harness.clock.now())
    result = await exchanger.exchange(harness.request(token, scopes=scopes))
    claims = jwt.decode(result.minted.token, options={"verify_signature": False})
    del claims["jti"]  # random per token; everything else must be identical
    return {"claims": claims, "expires_in": result.expires_in, "scopes": result.minted.scopes}


SCOPES = ["crm.read", "crm.write"]
VARIANTS = [
    pytest.param(_grant_write, ("scopes",), id="grants more scopes"),
    pytest.param(_shorter_ttl, ("ttl",), id="shorter lifetime"),
    pytest.param(_no_claims, ("claims",), id="propagates no claims"),
    pytest.param(_step_up, ("allow", "step_up"), id="demands step-up"),
    pytest.param(_unregister, ("allow",), id="denies the audience"),
]


@pytest.mark.parametrize(("edit", "kinds"), VARIANTS)
async def test_a_differing_shadow_changes_no_token_and_reports_the_kind(
    harness: Harness,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    edit: Callable[[Registry], None],
    kinds: tuple[str, ...],
) -> None:
    without = await _issued(_pipeline(harness, None), harness, SCOPES)
    shadow = ShadowEvaluator(await _policy_variant(tmp_path, edit), shadow_bounds(cpu_share=1.0))
    shadow.start()
    with caplog.at_level(logging.INFO, logger="sekisho.shadow"):
        assert await _issued(_pipeline(harness, shadow), harness, SCOPES) == without
        await shadow.drained()
    await shadow.close()
    assert shadow.counters.outcomes == {"different": 1}
    assert shadow.counters.kinds == dict.fromkeys(kinds, 1)
    (record,) = [r for r in caplog.records if r.getMessage() == "shadow_diff"]
    assert record.kinds == list(kinds) and record.audience == CRM_AUDIENCE
    assert "alice" not in json.dumps(record.__dict__, default=str)  # sub_hash, never the user


async def test_a_difference_is_counted_under_the_audience_the_shadow_grants(
    harness: Harness, tmp_path: Path
) -> None:
    # Live denies crm.write to sales, the candidate grants it, and no live token was granted for
    # the audience since start (a new downstream, or a grant nobody had): the metric must name
    # the audience. Before, it counted it as "unknown", the label of a refused probe.
    metrics = Metrics(max_audiences=50)
    counters = ShadowCounters(on_difference=metrics.shadow_differed)
    engine = await _policy_variant(tmp_path, _grant_write)
    shadow = ShadowEvaluator(engine, shadow_bounds(cpu_share=1.0), counters)
    shadow.start()
    token = harness.idp_a.token(harness.clock.now())
    with pytest.raises(InvalidScopeError):
        await _pipeline(harness, shadow).exchange(harness.request(token, scopes=["crm.write"]))
    await shadow.drained()
    await shadow.close()
    assert counters.kinds == {"allow": 1}
    exposition = metrics.render()[0].decode()
    expected = f'sekisho_shadow_differences_total{{audience="{CRM_AUDIENCE}",kind="allow"}} 1.0'
    assert expected in exposition


async def test_an_identical_shadow_reports_no_difference(harness: Harness, tmp_path: Path) -> None:
    shadow = ShadowEvaluator(await _policy_variant(tmp_path, lambda r: None), shadow_bounds())
    shadow.start()
    await _issued(_pipeline(harness, shadow), harness, SCOPES)
    await shadow.drained()
    await shadow.close()
    assert shadow.counters.outcomes == {"same": 1} and not shadow.counters.kinds


async def _not_loaded(tmp_path: Path) -> PolicyEngine:
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "bad.rego").write_text("package sekisho.exchange\ndecision := {")
    return build_policy_engine(
        Settings(policy={"path": str(tmp_path / "broken")}), FakeClock(), RecordedFailures()
    )


@pytest.mark.parametrize(
    "make_engine",
    [
        pytest.param(lambda tmp_path: RaisingEngine(), id="shadow raises"),
        pytest.param(lambda tmp_path: HangingEngine(), id="shadow times out"),
        pytest.param(_not_loaded, id="shadow policy not loaded"),
    ],
)
async def test_a_failing_shadow_changes_no_token_and_counts_an_error(
    harness: Harness, tmp_path: Path, make_engine: Callable[[Path], Any]
) -> None:
    engine = make_engine(tmp_path)
    engine = await engine if asyncio.iscoroutine(engine) else engine
    without = await _issued(_pipeline(harness, None), harness, SCOPES)
    shadow = ShadowEvaluator(engine, shadow_bounds(timeout_seconds=0.05))
    shadow.start()
    with_shadow = [await _issued(_pipeline(harness, shadow), harness, SCOPES) for _ in range(2)]
    await asyncio.wait_for(shadow.drained(), 30)  # a give-up
    await shadow.close()
    assert with_shadow == [without, without]
    assert shadow.counters.kinds == {"error": 2}


async def test_a_full_queue_drops_shadow_work_not_exchanges(harness: Harness) -> None:
    shadow = ShadowEvaluator(HangingEngine(), shadow_bounds(queue_size=1, timeout_seconds=5))
    shadow.start()  # the first decision occupies the evaluator, the second fills the queue
    exchanger = _pipeline(harness, shadow)
    results = [await _issued(exchanger, harness, SCOPES) for _ in range(4)]
    await shadow.close()
    assert len(results) == 4
    assert shadow.counters.outcomes.get("dropped", 0) >= 2


async def test_live_engine_errors_are_not_shadowed(harness: Harness) -> None:
    class Unavailable:
        ready = False

        async def decide(self, document: dict[str, Any]) -> Decision:
            raise TemporarilyUnavailableError("down", log_detail="test")

    shadow = ShadowEvaluator(RaisingEngine(), shadow_bounds())
    observed = ObservedPolicyEngine(Unavailable(), harness.clock, [shadow])
    with pytest.raises(TemporarilyUnavailableError):
        await observed.decide({})
    assert shadow.counters.outcomes == {}


async def test_the_shadow_policys_loads_are_logged_under_their_own_names(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The service's start (start_policy) with a shadow naming the live folder itself (or that
    folder under another query): its `policy_loaded` line was the live policy's, field for
    field."""
    shadow = {"path": str(POLICIES)}
    settings = Settings(policy={"path": str(POLICIES), "watch": False, "shadow": shadow})
    observability = build_observability(Settings(metrics={"enabled": False}))
    with caplog.at_level(logging.INFO, logger="sekisho.policy"):
        policy, observers = await start_policy(settings, FakeClock(), observability)
    await observers.close()
    await policy.close()
    loads = [
        (r.getMessage(), r.__dict__.get("path"), r.__dict__.get("entrypoint"))
        for r in caplog.records
        if r.getMessage().endswith("policy_loaded")
    ]
    assert loads == [
        ("policy_loaded", str(POLICIES), "sekisho/exchange/decision"),
        ("shadow_policy_loaded", str(POLICIES), "sekisho/exchange/decision"),
    ]
