"""CachingPolicyEngine (sekisho.policy.cache): what is cached, for how long, and when it is not."""

import asyncio
import hashlib
import json
import shutil
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from sekisho.constants import TOKEN_TYPE_ACCESS_TOKEN
from sekisho.models import Decision, VerifiedToken
from sekisho.policy.cache import CachingPolicyEngine
from sekisho.policy.keying import InputKeys

from tests.embedded import wasm_engine
from tests.fakes.clock import FakeClock
from tests.unit.policy.inputs import CRM, DOCS, NOW, POLICIES, QUERY, policy_input


class FakeEngine:
    """Answers with `decision` (a fresh decision id per evaluation) and counts evaluations."""

    def __init__(self, decision: Decision) -> None:
        self.decision = decision
        self.calls = 0
        self.reloads = 0
        self.gate: asyncio.Event | None = None

    @property
    def ready(self) -> bool:
        return True

    async def decide(self, document: dict[str, Any]) -> Decision:
        self.calls += 1
        if self.gate is not None:
            await self.gate.wait()
        return replace(self.decision, decision_id=f"d{self.calls}")

    async def start(self) -> None:
        """Nothing to load."""

    async def folder_changed(self) -> bool:
        self.reloads += 1
        return True

    async def close(self) -> None:
        """Nothing to release."""


GRANT = Decision(allow=True, scopes=("crm.read",), cache_ttl_seconds=60)


def cached(
    decision: Decision = GRANT, entries: int = 100
) -> tuple[CachingPolicyEngine, FakeEngine]:
    engine = FakeEngine(decision)
    return CachingPolicyEngine(engine, FakeClock(NOW), max_entries=entries), engine


def clock_of(cache: CachingPolicyEngine) -> FakeClock:
    clock = cache._clock
    assert isinstance(clock, FakeClock)
    return clock


async def test_an_identical_input_reuses_the_decision() -> None:
    cache, engine = cached()
    first = await cache.decide(policy_input(CRM, groups=["sales"]))
    second = await cache.decide(policy_input(CRM, groups=["sales"]))
    assert second == first  # the decision id names the evaluation that made it
    assert engine.calls == 1
    assert (cache.hits, cache.misses, len(cache)) == (1, 1, 1)


ACTOR = VerifiedToken(
    issuer="https://idp.example.com",
    subject="bot",
    token_type=TOKEN_TYPE_ACCESS_TOKEN,
    expires_at=0,
)


@pytest.mark.parametrize(
    "changed",
    [
        pytest.param({"audience": DOCS}, id="audience"),
        pytest.param({"scopes": ["crm.write"]}, id="scopes"),
        pytest.param({"resources": ["https://crm.example.com/mcp"]}, id="resources"),
        pytest.param({"caller_id": "other-agent"}, id="caller"),
        pytest.param({"authenticated_by": "mtls"}, id="caller-authentication"),
        pytest.param({"groups": ["sales-admin"]}, id="groups"),
        pytest.param({"tenant": "globex"}, id="tenant"),
        pytest.param({"claims": {"jti": "another-token"}}, id="subject-claims"),
        pytest.param({"actor": ACTOR}, id="actor"),
        pytest.param({"context": {"tool": "delete"}}, id="context"),
    ],
)
async def test_any_difference_in_the_input_is_a_different_entry(changed: dict[str, Any]) -> None:
    cache, engine = cached()
    base: dict[str, Any] = {"audience": CRM, "groups": ["sales"], "claims": {"jti": "t1"}}
    await cache.decide(policy_input(**base))
    await cache.decide(policy_input(**(base | changed)))
    assert engine.calls == 2


async def test_the_subject_token_type_is_part_of_the_key() -> None:
    cache, engine = cached()
    document = policy_input(CRM, groups=["sales"])
    other = json.loads(json.dumps(document))
    other["request"]["subject_token_type"] = TOKEN_TYPE_ACCESS_TOKEN
    await cache.decide(document)
    await cache.decide(other)
    assert engine.calls == 2


def test_now_is_not_part_of_the_key() -> None:
    keys = InputKeys(10)
    document = policy_input(CRM)
    assert keys.of(policy_input(CRM, now=NOW + 30)).digest == keys.of(document).digest
    plain = dict(document)  # any other document: the canonical encoding
    assert keys.of(plain | {"now": NOW + 30}).digest == keys.of(plain).digest


async def test_a_decision_expires_after_its_cache_ttl() -> None:
    cache, engine = cached()
    document = policy_input(CRM, groups=["sales"])
    await cache.decide(document)
    clock_of(cache).advance(59)
    await cache.decide(document | {"now": NOW + 59})
    assert engine.calls == 1
    clock_of(cache).advance(1)
    await cache.decide(document | {"now": NOW + 60})
    assert engine.calls == 2


async def test_a_decision_without_cache_ttl_is_never_cached() -> None:
    cache, engine = cached(replace(GRANT, cache_ttl_seconds=0))
    for _ in range(2):
        await cache.decide(policy_input(CRM, groups=["sales"]))
    assert engine.calls == 2
    assert len(cache) == 0


@pytest.mark.parametrize(
    ("ttl", "evaluations"), [(0, 2), (30, 1)], ids=["deny-without-ttl", "deny-ttl"]
)
async def test_denials_are_cached_only_when_the_policy_says_so(ttl: int, evaluations: int) -> None:
    deny = Decision(allow=False, error="access_denied", cache_ttl_seconds=ttl)
    cache, engine = cached(deny)
    for _ in range(2):
        assert not (await cache.decide(policy_input(CRM))).allow
    assert engine.calls == evaluations


async def test_a_reload_flushes_the_cache() -> None:
    cache, engine = cached()
    document = policy_input(CRM, groups=["sales"])
    await cache.decide(document)
    assert await cache.folder_changed() is True
    await cache.decide(document)
    assert (engine.reloads, engine.calls) == (1, 2)


async def test_a_decision_computed_across_a_reload_is_not_stored() -> None:
    cache, engine = cached()
    engine.gate = asyncio.Event()
    document = policy_input(CRM, groups=["sales"])
    pending = asyncio.create_task(cache.decide(document))
    await asyncio.sleep(0)
    await cache.folder_changed()  # the policy changed while the old one was still answering
    engine.gate.set()
    await pending
    assert len(cache) == 0


async def test_the_cache_is_bounded_least_recently_used_first() -> None:
    cache, engine = cached(entries=2)
    a, b, c = (policy_input(CRM, groups=[g]) for g in ("a", "b", "c"))
    for document in (a, b, a, c):
        await cache.decide(document)
    assert len(cache) == 2
    await cache.decide(a)
    assert engine.calls == 3
    await cache.decide(b)
    assert engine.calls == 4


async def test_zero_entries_disables_the_cache() -> None:
    cache, engine = cached(entries=0)
    for _ in range(2):
        await cache.decide(policy_input(CRM, groups=["sales"]))
    assert engine.calls == 2


async def test_an_edited_registry_is_decided_afresh_with_the_embedded_engine(
    tmp_path: Path,
) -> None:
    root = tmp_path / "policies"
    shutil.copytree(POLICIES, root)
    registry_path = root / "data" / "registry.json"
    registry = json.loads(registry_path.read_text())
    registry["sekisho"]["registry"]["decision_cache_seconds"] = 60
    registry_path.write_text(json.dumps(registry))
    cache = CachingPolicyEngine(wasm_engine(root, QUERY), FakeClock(NOW), max_entries=10)
    await cache.start()
    document = policy_input(CRM, groups=["sales"], tenant="acme")
    assert (await cache.decide(document)).allow
    assert len(cache) == 1
    downstreams = registry["sekisho"]["registry"]["downstreams"]
    downstreams[CRM]["group_grants"] = {}
    registry_path.write_text(json.dumps(registry))
    assert await cache.folder_changed() is True
    assert not (await cache.decide(document)).allow


class EncodedInputEngine(FakeEngine):
    """A FakeEngine that, like the embedded engine, also takes the input as JSON bytes."""

    def __init__(self, decision: Decision) -> None:
        super().__init__(decision)
        self.encoded: list[bytes] = []

    async def decide_encoded(self, encoded: bytes) -> Decision:
        self.encoded.append(encoded)
        return await self.decide(json.loads(encoded))


@pytest.mark.parametrize("built", [True, False], ids=["input-document", "plain-dict"])
async def test_the_engine_reads_the_bytes_the_key_is_a_digest_of(built: bool) -> None:
    engine = EncodedInputEngine(GRANT)
    cache = CachingPolicyEngine(engine, FakeClock(NOW), max_entries=10)
    document = policy_input(CRM, groups=["sales"], tenant="acme")
    if not built:
        document = dict(document)
    await cache.decide(document)
    await cache.decide(document)
    [encoded] = engine.encoded  # once, on the miss
    assert json.loads(encoded) == document
    now_member = f',"now":{NOW}}}'.encode()
    assert encoded.endswith(now_member)
    preimage = encoded[: -len(now_member)] + b"}"
    assert hashlib.sha256(preimage).digest() == InputKeys(10).of(document).digest
    assert json.loads(preimage) == {k: v for k, v in document.items() if k != "now"}


@pytest.mark.parametrize(
    ("document", "expected"),
    [
        ({"now": 5}, b'{"now":5}'),
        ({"b": [1], "now": 1.5, "a": True}, b'{"a":true,"b":[1],"now":1.5}'),
        ({"a": "é"}, '{"a":"é"}'.encode()),
        ({"now": None}, b'{"now":null}'),
        ({}, b"{}"),
    ],
    ids=["only-now", "float-now", "no-now", "null-now", "empty"],
)
def test_an_encoded_input_is_the_whole_document(document: dict[str, Any], expected: bytes) -> None:
    assert InputKeys(10).of(document).encoded() == expected


async def test_the_embedded_engine_decides_the_encoded_input_as_the_document() -> None:
    engine = wasm_engine(POLICIES, QUERY)
    await engine.start()
    keys = InputKeys(10)
    try:
        for groups in (["sales"], ["nobody"]):
            document = policy_input(CRM, groups=groups, tenant="acme")
            by_bytes = await engine.decide_encoded(keys.of(document).encoded())
            by_document = await engine.decide(document)
            assert replace(by_bytes, decision_id="") == replace(by_document, decision_id="")
    finally:
        await engine.close()


async def test_a_reload_also_forgets_the_remembered_token_encodings() -> None:
    cache, _engine = cached()
    await cache.decide(policy_input(CRM, groups=["sales"], actor=ACTOR))
    assert len(cache._keys) == 2  # the subject's and the actor's
    await cache.folder_changed()
    assert len(cache._keys) == 0
