"""Readiness of OpaPolicyEngine: an OPA busy answering decisions stays ready; a dead OPA, a wrong
policy or drifted data makes it not ready, and every exchange is refused UNAVAILABLE /
temporarily_unavailable (docs/architecture.md, error table) meanwhile.

Checks are driven one at a time with engine.check(): the supervisor's interval is an hour, so
it only runs when a failed decision wakes it (noted where that can happen).
"""

import asyncio
import json
import re
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from sekisho.errors import TemporarilyUnavailableError
from sekisho.policy.opa.api import OpaApi
from sekisho.policy.opa.engine import (
    MISSED_CHECKS_BEFORE_NOT_READY,
    WHOLE_DATA_COMPARISON_EVERY,
    OpaPolicyEngine,
)
from sekisho.policy.opa.integrity import data_digest
from sekisho.policy.source import load_source

from tests.integration.opa_fixtures import clean_deny, fake_opa, opa_engine, shipped_copy
from tests.integration.test_opa_engine import DECISION_ID, sales_user
from tests.opa import OpaServer

pytestmark = pytest.mark.integration

HOUR = 3600.0
ALLOW_ALL = '{"allow": true, "scopes": ["crm.read"]}'


@pytest.fixture
def opa(tmp_path: Path) -> Iterator[OpaServer]:
    server = OpaServer(tmp_path / "opa.log").start()
    yield server
    server.stop()


@pytest.fixture
async def managed(opa: OpaServer, tmp_path: Path) -> AsyncIterator[OpaPolicyEngine]:
    engine = opa_engine(opa.url, shipped_copy(tmp_path), interval=HOUR)
    await engine.start()
    assert engine.ready
    yield engine
    await engine.close()


async def _refused_unavailable(engine: OpaPolicyEngine) -> None:
    with pytest.raises(TemporarilyUnavailableError) as refused:
        await engine.decide(sales_user())
    assert (refused.value.grpc_code, refused.value.oauth_error) == (
        "UNAVAILABLE",
        "temporarily_unavailable",
    )


async def test_a_check_answered_slower_than_a_decision_may_take_keeps_the_engine_ready() -> None:
    # The bench's saturated OPA (exchange_throughput (d)): the check's answer comes after a
    # decision's budget has run out. Here both are held until a decision has timed out.
    answer = asyncio.Event()
    answer.set()

    async def held(_: dict[str, Any]) -> web.StreamResponse:
        await answer.wait()
        return await clean_deny(_)

    async with fake_opa(held, self_test=held) as url:
        engine = opa_engine(url, Path("unused"), manage=False, timeout=0.1, interval=HOUR)
        try:
            await engine.start()
            assert engine.ready
            answer.clear()
            check = asyncio.create_task(engine.check())
            await _refused_unavailable(engine)  # 0.1 s passed: the decision's budget is spent
            answer.set()
            assert await check
            assert engine.ready
        finally:
            await engine.close()


async def test_checks_opa_does_not_answer_make_it_not_ready_only_in_a_row() -> None:
    down = asyncio.Event()

    async def self_test(_: dict[str, Any]) -> web.StreamResponse:
        if down.is_set():
            return web.Response(status=503, text="overloaded")
        return await clean_deny(_)

    async with fake_opa(clean_deny, self_test=self_test) as url:
        engine = opa_engine(url, Path("unused"), manage=False, interval=HOUR)
        try:
            await engine.start()
            for _ in range(2):  # a miss, then an answer: the count starts again
                down.set()
                for _ in range(MISSED_CHECKS_BEFORE_NOT_READY - 1):
                    assert not await engine.check()
                    assert engine.ready
                down.clear()
                assert await engine.check()
            down.set()
            for _ in range(MISSED_CHECKS_BEFORE_NOT_READY):
                assert not await engine.check()
            assert not engine.ready
            await _refused_unavailable(engine)
            down.clear()
            assert await engine.check()
            assert engine.ready
        finally:
            await engine.close()


async def test_a_killed_opa_refuses_every_exchange_and_is_not_ready_after_the_missed_checks(
    managed: OpaPolicyEngine, opa: OpaServer
) -> None:
    opa.kill()
    for _ in range(MISSED_CHECKS_BEFORE_NOT_READY - 1):
        assert not await managed.check()
        assert managed.ready
    await _refused_unavailable(managed)  # still ready: the decision itself fails closed
    # (that refusal may have woken the supervisor: one more miss, the outcome is the same)
    assert not await managed.check()
    assert not managed.ready
    await _refused_unavailable(managed)


def _allow_all(opa: OpaServer) -> None:
    raw = opa.request("GET", f"/v1/policies/{DECISION_ID}")
    assert isinstance(raw, dict)
    text = str(raw["result"]["raw"])
    lines = [
        f"default decision := {ALLOW_ALL}" if line.startswith("default decision :=") else line
        for line in text.splitlines()
    ]
    opa.request("PUT", f"/v1/policies/{DECISION_ID}", "\n".join(lines).encode())


def _edit_data(opa: OpaServer) -> None:
    path = "/sekisho/registry/downstreams/https:~1~1crm-as.example.com/group_grants/sales"
    patch = [{"op": "replace", "path": path, "value": ["crm.read", "crm.write"]}]
    opa.request("PATCH", "/v1/data", json.dumps(patch).encode())


def _foreign_data(opa: OpaServer) -> None:
    opa.request("PUT", "/v1/data/sekisho/backdoor", b'{"on": true}')


@pytest.mark.parametrize(
    ("tamper", "checks"),
    [
        pytest.param(_allow_all, 1, id="policy-allows-the-self-test"),
        pytest.param(_edit_data, 1, id="edited-data"),  # OPA's digest of the data moved
        # Inert until a module reads it (modules are compared every check): found by the whole
        # comparison, within WHOLE_DATA_COMPARISON_EVERY checks.
        pytest.param(_foreign_data, WHOLE_DATA_COMPARISON_EVERY, id="foreign-data"),
    ],
)
async def test_a_wrong_policy_or_drifted_data_is_not_ready_at_once(
    managed: OpaPolicyEngine, opa: OpaServer, tamper: Any, checks: int
) -> None:
    assert await managed.check()  # the data was compared whole once: the digest is known
    tamper(opa)
    for _ in range(checks):
        if not await managed.check():
            break
    else:
        pytest.fail(f"{checks} checks passed")
    # No await between: the republish the check asked for cannot have run yet.
    assert not managed.ready
    await _refused_unavailable(managed)


async def test_opas_digest_of_the_published_data_moves_when_it_is_edited(
    managed: OpaPolicyEngine, opa: OpaServer, tmp_path: Path
) -> None:
    source = load_source(tmp_path / "policies")
    api = OpaApi(opa.url, 5.0)
    await api.open()
    try:
        before = await data_digest(api, source)
        assert re.fullmatch(r"[0-9a-f]{64}", before)
        _foreign_data(opa)  # beside the published documents: not in the digest
        assert await data_digest(api, source) == before
        _edit_data(opa)
        assert await data_digest(api, source) not in ("", before)
    finally:
        await api.close()
