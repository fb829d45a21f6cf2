"""OpaPolicyEngine against a real OPA server (and, for faults a real OPA cannot be made to
produce, a fake one): publishing, readiness, decision ids, and failing closed."""

import asyncio
import contextlib
import json
import logging
import re
import subprocess
import time
import urllib.request
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from sekisho.errors import PolicyLoadError, TemporarilyUnavailableError
from sekisho.policy.cache import CachingPolicyEngine
from sekisho.policy.opa.engine import OpaPolicyEngine
from sekisho.policy.selftest import self_test_input

from tests.fakes.clock import FakeClock
from tests.integration.opa_fixtures import HEADER, fake_opa, opa_engine, shipped_copy, write_module
from tests.opa import OpaServer, opa_binary
from tests.unit.policy.inputs import CRM, policy_input

pytestmark = pytest.mark.integration

UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
DECISION_ID = "sekisho/sekisho/exchange/decision.rego"


def sales_user() -> dict[str, Any]:
    return policy_input(CRM, groups=["sales"], tenant="acme")


@pytest.fixture
def opa(tmp_path: Path) -> Iterator[OpaServer]:
    server = OpaServer(tmp_path / "opa.log", decision_logs=True).start()
    yield server
    server.stop()


@pytest.fixture
async def managed(opa: OpaServer, tmp_path: Path) -> AsyncIterator[tuple[OpaPolicyEngine, Path]]:
    root = shipped_copy(tmp_path)
    engine = opa_engine(opa.url, root)
    await engine.start()
    yield engine, root
    await engine.close()


# Only stops a test whose defence is gone; never a bound the test asserts.
GIVE_UP_SECONDS = 30.0


async def eventually(condition: Any, seconds: float = GIVE_UP_SECONDS) -> bool:
    """Whether `condition` holds within `seconds` (a hang guard: OPA starting, publishing or
    logging on a loaded host takes seconds; 5 s was too short at load ~10)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if await condition() if asyncio.iscoroutinefunction(condition) else condition():
            return True
        await asyncio.sleep(0.05)
    return False


def logged(caplog: pytest.LogCaptureFixture, event: str) -> list[str]:
    """The `error` field of every `event` log record."""
    return [str(r.__dict__.get("error")) for r in caplog.records if r.getMessage() == event]


def opa_check(root: Path) -> str:
    """`opa check` errors for the folder ("" when it compiles)."""
    completed = subprocess.run(
        [str(opa_binary()), "check", str(root)], capture_output=True, text=True, check=False
    )
    return "" if completed.returncode == 0 else completed.stdout + completed.stderr


def module_text(opa: OpaServer, policy_id: str) -> str:
    with urllib.request.urlopen(f"{opa.url}/v1/policies/{policy_id}", timeout=30) as response:
        return str(json.load(response)["result"]["raw"])


# --- manage = true ------------------------------------------------------------------------------


async def test_manage_publishes_every_module_and_the_data(
    managed: tuple[OpaPolicyEngine, Path], opa: OpaServer
) -> None:
    engine, root = managed
    assert engine.ready
    modules = sorted(p.relative_to(root).as_posix() for p in (root / "sekisho").rglob("*.rego"))
    published = [m for m in modules if not m.endswith("_test.rego")]
    assert sorted(opa.policy_ids()) == [f"sekisho/{m}" for m in published]
    assert CRM in opa.data("sekisho/registry/downstreams")  # type: ignore[operator]
    decision = await engine.decide(sales_user())
    assert decision.allow and decision.scopes == ("crm.read",)


async def test_decision_id_is_opas_when_decision_logging_is_on(
    managed: tuple[OpaPolicyEngine, Path], opa: OpaServer
) -> None:
    engine, _ = managed
    decision = await engine.decide(sales_user())
    assert UUID.match(decision.decision_id)
    assert await eventually(lambda: decision.decision_id in opa.decision_ids_logged())


async def test_decision_id_is_local_without_decision_logging(tmp_path: Path) -> None:
    server = OpaServer(tmp_path / "opa.log", decision_logs=False).start()
    engine = opa_engine(server.url, shipped_copy(tmp_path))
    try:
        await engine.start()
        first = await engine.decide(sales_user())
        second = await engine.decide(sales_user())
        assert UUID.match(first.decision_id) and first.decision_id != second.decision_id
        assert server.decision_ids_logged() == set()
    finally:
        await engine.close()
        server.stop()


async def test_opa_unreachable_at_start_then_ready_once_it_answers(tmp_path: Path) -> None:
    server = OpaServer(tmp_path / "opa.log")  # not started yet: nothing listens on its port
    engine = opa_engine(server.url, shipped_copy(tmp_path))
    try:
        await engine.start()
        assert not engine.ready
        with pytest.raises(TemporarilyUnavailableError):
            await engine.decide(sales_user())
        server.start()
        assert await eventually(lambda: engine.ready)
        assert (await engine.decide(sales_user())).allow
    finally:
        await engine.close()
        server.stop()


async def test_killing_opa_makes_decisions_unavailable_never_allowed(
    managed: tuple[OpaPolicyEngine, Path], opa: OpaServer
) -> None:
    engine, _ = managed
    assert (await engine.decide(sales_user())).allow
    opa.kill()
    for _ in range(5):
        with pytest.raises(TemporarilyUnavailableError):
            await engine.decide(sales_user())
    assert await eventually(lambda: not engine.ready)


async def test_restarted_empty_opa_gets_the_policy_published_again(
    managed: tuple[OpaPolicyEngine, Path], opa: OpaServer
) -> None:
    engine, _ = managed
    opa.stop()
    opa.start()  # same port, no policies
    assert await eventually(lambda: DECISION_ID in opa.policy_ids())
    assert await eventually(lambda: engine.ready)
    assert (await engine.decide(sales_user())).allow


async def test_restarted_opa_gets_the_last_good_policy_when_the_folder_is_broken(
    managed: tuple[OpaPolicyEngine, Path], opa: OpaServer
) -> None:
    engine, root = managed
    (root / "data" / "registry.json").write_text("{half-written")
    opa.stop()
    opa.start()  # empty again, while the folder does not load
    assert await eventually(lambda: DECISION_ID in opa.policy_ids())
    assert await eventually(lambda: engine.ready)
    assert (await engine.decide(sales_user())).allow


async def test_policy_opa_rejects_at_start_refuses_to_start(opa: OpaServer, tmp_path: Path) -> None:
    root = write_module(shipped_copy(tmp_path), "package sekisho.exchange\nbroken {")
    engine = opa_engine(opa.url, root)
    with pytest.raises(PolicyLoadError, match="rego_parse_error"):
        await engine.start()
    assert not engine.ready


async def test_modules_referring_to_each_other_name_the_cycle(
    opa: OpaServer, tmp_path: Path
) -> None:
    # No rule depends on itself (both engines load this folder), but each module uses a rule
    # only the other defines, so neither compiles alone.
    first = HEADER + 'default decision := {"allow": false}\n\nlimit := 10\n\ntwice := double + 1\n'
    root = write_module(tmp_path / "cyclic", first)
    write_module(root, HEADER + "double := limit * 2\n", "other.rego")
    assert opa_check(root) == "", "valid Rego when loaded together"
    engine = opa_engine(opa.url, root)
    with pytest.raises(PolicyLoadError, match="break the cycle"):
        await engine.start()


async def test_rejected_edit_keeps_the_last_good_policy_and_logs_the_compile_error(
    managed: tuple[OpaPolicyEngine, Path], opa: OpaServer, caplog: pytest.LogCaptureFixture
) -> None:
    engine, root = managed
    before = module_text(opa, DECISION_ID)
    write_module(root, "package sekisho.exchange\nbroken {")
    with caplog.at_level(logging.ERROR):
        assert await engine.refresh() is False
    failures = logged(caplog, "policy_reload_failed")
    assert failures and "rego_parse_error" in failures[-1]
    named = [
        r.__dict__.get("path") for r in caplog.records if r.getMessage() == "policy_reload_failed"
    ]
    assert named[-1] == str(root)  # which folder (a shadow's: shadow_policy_reload_failed)
    assert module_text(opa, DECISION_ID) == before
    assert engine.ready and (await engine.decide(sales_user())).allow


async def test_a_data_edit_opa_would_read_otherwise_is_refused_never_published(
    managed: tuple[OpaPolicyEngine, Path], opa: OpaServer
) -> None:
    # A lone surrogate escape is valid JSON: OPA stored U+FFFD, so its data never matched what
    # was published and the engine flapped not ready, logging opa_policy_tampered (session 11).
    engine, root = managed
    (root / "data" / "notes.json").write_text('{"sekisho_note": "a\\ud800b"}')
    assert await engine.refresh() is False
    assert opa.data("sekisho_note") is None
    assert engine.ready and (await engine.decide(sales_user())).allow


async def test_partly_rejected_edit_is_rolled_back_whole(
    managed: tuple[OpaPolicyEngine, Path], opa: OpaServer
) -> None:
    engine, root = managed
    decision_rego = root / "sekisho" / "exchange" / "decision.rego"
    decision_rego.write_text(
        decision_rego.read_text().replace("granted by group membership", "granted (edited)")
    )
    write_module(root, HEADER + "oops := ", name="zz_broken.rego")
    assert await engine.refresh() is False
    assert (await engine.decide(sales_user())).reason == "granted by group membership"
    assert "sekisho/sekisho/exchange/zz_broken.rego" not in opa.policy_ids()


async def test_edit_that_fails_the_self_test_is_rolled_back(
    managed: tuple[OpaPolicyEngine, Path], caplog: pytest.LogCaptureFixture
) -> None:
    engine, root = managed
    allow_all = HEADER + 'decision := {"allow": true, "scopes": ["crm.read"]}\n'
    for module in (root / "sekisho" / "exchange").glob("*.rego"):
        module.unlink()
    write_module(root, allow_all)
    with caplog.at_level(logging.ERROR):
        assert await engine.refresh() is False
    assert "an unregistered audience was allowed" in logged(caplog, "policy_reload_failed")[-1]
    nobody = policy_input(CRM, groups=["marketing"], tenant="acme")
    assert not (await engine.decide(nobody)).allow


async def test_module_using_what_a_new_sibling_defines_is_published(
    managed: tuple[OpaPolicyEngine, Path],
) -> None:
    engine, root = managed
    # decision.rego is written before zz_reason.rego: OPA first rejects it (undefined function).
    decision_rego = root / "sekisho" / "exchange" / "decision.rego"
    decision_rego.write_text(
        decision_rego.read_text().replace(
            '"reason": "granted by group membership"', '"reason": zz_reason("groups")'
        )
    )
    write_module(
        root, HEADER + 'zz_reason(how) := sprintf("granted by %s", [how])\n', "zz_reason.rego"
    )
    assert await engine.refresh() is True
    assert (await engine.decide(sales_user())).reason == "granted by groups"


async def test_removed_modules_and_data_leave_opa(
    managed: tuple[OpaPolicyEngine, Path], opa: OpaServer
) -> None:
    engine, root = managed
    write_module(root, HEADER + "extra := 1\n", "extra.rego")
    (root / "data" / "extra.json").write_text('{"extra_doc": {"k": 1}}')
    assert await engine.refresh() is True
    assert opa.data("extra_doc") == {"k": 1}
    assert "sekisho/sekisho/exchange/extra.rego" in opa.policy_ids()
    (root / "sekisho" / "exchange" / "extra.rego").unlink()
    (root / "data" / "extra.json").unlink()
    (root / "data" / "denylist.json").unlink()
    assert await engine.refresh() is True
    assert opa.data("extra_doc") is None
    assert opa.data("sekisho/denylist") is None
    assert "sekisho/sekisho/exchange/extra.rego" not in opa.policy_ids()


async def test_reload_publishes_in_the_background(
    managed: tuple[OpaPolicyEngine, Path],
) -> None:
    engine, root = managed
    marketing = policy_input(CRM, groups=["marketing"], tenant="acme")
    registry_path = root / "data" / "registry.json"
    registry = json.loads(registry_path.read_text())
    registry["sekisho"]["registry"]["downstreams"][CRM]["group_grants"]["marketing"] = ["crm.read"]
    registry_path.write_text(json.dumps(registry))
    engine.reload()

    async def granted() -> bool:
        return (await engine.decide(marketing)).allow

    assert await eventually(granted)


async def test_the_folder_is_compared_with_what_was_published(
    managed: tuple[OpaPolicyEngine, Path],
) -> None:
    """The policy watch's catch-up at start (engine.reload_if_changed) asks whether the folder
    holds another policy than the one published: unchanged, OPA is sent nothing again (a
    reload at every start published the folder at every start, session 17); an edit made
    since is a change, and so is a folder that no longer loads."""
    engine, root = managed
    assert not await engine.changed_since_load()
    (root / "README.md").write_text("notes\n")  # a file OPA is never sent
    assert not await engine.changed_since_load()
    registry_path = root / "data" / "registry.json"
    registry = json.loads(registry_path.read_text())
    registry["sekisho"]["registry"]["downstreams"][CRM]["group_grants"] = {}
    registry_path.write_text(json.dumps(registry))
    assert await engine.changed_since_load()
    registry_path.write_text("{")
    assert await engine.changed_since_load()


async def test_a_policy_the_supervisor_publishes_flushes_the_decision_cache(
    managed: tuple[OpaPolicyEngine, Path],
) -> None:
    # `folder_changed` only wakes the supervisor, so the decision cache's flush around it comes
    # before OPA holds the edit: a decision taken in between is cached under the old policy for
    # the registry's 60 s. Only the flush when the publish lands (publish -> on_policy_activated)
    # removes it. test_revocation_reaches_caches[opa] passes without that flush unless one of
    # its requests happens to land in the window; here one always does (the publish waits for
    # it at the publish gate).
    engine, root = managed
    cache = CachingPolicyEngine(engine, FakeClock(), max_entries=16)
    alice = sales_user()
    denylist = {"sekisho": {"denylist": {"users": {"alice": {"reason": "stolen"}}, "callers": {}}}}
    (root / "data" / "denylist.json").write_text(json.dumps(denylist))
    await cache.folder_changed()  # the folder watcher's call: flush, then wake the supervisor
    stale = await cache.decide(alice)  # taken before the publish, which waits for it
    assert stale.allow and stale.cache_ttl_seconds > 0 and len(cache) == 1

    async def published() -> bool:
        return not (await engine.decide(alice)).allow  # OPA itself, not the cache

    assert await eventually(published, GIVE_UP_SECONDS)
    assert len(cache) == 0
    assert not (await cache.decide(alice)).allow


# --- manage = false -----------------------------------------------------------------------------


async def test_manage_false_only_queries_opas_own_policy(tmp_path: Path) -> None:
    root = shipped_copy(tmp_path)
    server = OpaServer(tmp_path / "opa.log", load=(root / "sekisho", root / "data")).start()
    elsewhere = tmp_path / "not-read"  # Sekisho never reads a folder in this mode
    engine = opa_engine(server.url, elsewhere, manage=False)
    try:
        await engine.start()
        assert engine.ready
        assert (await engine.decide(sales_user())).allow
        assert not any(pid.startswith("sekisho/") for pid in server.policy_ids())
    finally:
        await engine.close()
        server.stop()


async def test_manage_false_without_a_loaded_policy_is_never_ready(
    opa: OpaServer, tmp_path: Path
) -> None:
    engine = opa_engine(opa.url, tmp_path, manage=False)
    try:
        await engine.start()
        await asyncio.sleep(0.5)  # a few supervisor rounds
        assert not engine.ready
        with pytest.raises(TemporarilyUnavailableError):
            await engine.decide(sales_user())
        assert opa.policy_ids() == []
    finally:
        await engine.close()


# A grant cached for 600 s unless the user is deny-listed in the bundle's data.
DENYLISTED = (
    HEADER
    + """default decision := {"allow": false}

decision := {"allow": true, "scopes": [], "cache_ttl_seconds": 600} if {
	input.request.audience == "https://crm-as.example.com"
	not input.subject.sub in data.deny.users
}
"""
)


def write_bundle(root: Path, revision: str, denied: list[str]) -> None:
    (root / "deny").mkdir(parents=True, exist_ok=True)
    (root / "deny" / "data.json").write_text(json.dumps({"users": denied}))
    manifest = {"revision": revision, "roots": ["sekisho", "deny"]}
    (root / ".manifest").write_text(json.dumps(manifest))


async def test_manage_false_a_new_bundle_in_opa_flushes_the_caches(tmp_path: Path) -> None:
    """With manage = false OPA activates bundles Sekisho never sees. A deny-list entry in a new
    bundle must reach the decision cache (and the gateway's token cache, which flushes with it)
    within a check interval, not after the cached grant's cache_ttl_seconds (600 s here) or, at
    the gateway, the cached token's expiry (red team session 15)."""
    root = write_module(tmp_path / "bundle", DENYLISTED)
    write_bundle(root, "r1", [])
    server = OpaServer(tmp_path / "opa.log", bundle=root).start()
    cache = CachingPolicyEngine(
        opa_engine(server.url, Path("unused"), manage=False), FakeClock(), max_entries=100
    )
    flushed: list[int] = []
    cache.on_flush(lambda: flushed.append(1))
    alice = policy_input(CRM)  # sub alice
    try:
        await cache.start()
        assert (await cache.decide(alice)).allow
        assert len(cache) == 1  # cached for 600 s
        flushed.clear()
        write_bundle(root, "r2", ["alice"])

        async def opa_denies() -> bool:
            answer = await cache.engine.evaluate(alice)  # type: ignore[attr-defined]
            return answer.result.get("allow") is False

        assert await eventually(opa_denies, GIVE_UP_SECONDS)  # OPA took the new bundle
        # The cache's clock never moves: without the flush the grant would stay for good.
        assert await eventually(lambda: len(cache) == 0), "cached grant outlived the bundle"
        assert flushed
        assert not (await cache.decide(alice)).allow
    finally:
        await cache.close()
        server.stop()


@pytest.mark.parametrize("revision", ["", "r1"], ids=["no-revision", "revision"])
async def test_manage_false_an_unversioned_bundle_is_logged_as_unfollowable(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, revision: str
) -> None:
    """Red team session 15b: OPA records a bundle by its manifest revision and download ETag
    only; a bundle with neither (a folder without a `.manifest` revision under `--watch`, a
    bundle server sending no ETag) reads the same whatever it holds, so a deny-list entry it
    gains never flushed the caches (a grant cached for 600 s outlived it). Sekisho cannot tell
    such a bundle changed; it says so, once, rather than appear to follow it."""
    root = write_module(tmp_path / "bundle", DENYLISTED)
    write_bundle(root, revision, [])
    server = OpaServer(tmp_path / "opa.log", bundle=root).start()
    engine = opa_engine(server.url, Path("unused"), manage=False)
    try:
        with caplog.at_level(logging.WARNING):
            await engine.start()
            assert await engine.check()
            assert await engine.check()
        warned = [r for r in caplog.records if r.getMessage() == "opa_bundle_unversioned"]
        assert len(warned) == (0 if revision else 1)
    finally:
        await engine.close()
        server.stop()


# Each `now` selects one way a decision goes wrong; the self-test input (now 0) gets a clean deny.
TRAPS = (
    HEADER
    + """default decision := {"allow": false}

decision := {"allow": true} if input.now == 2

decision := {"allow": false, "error": []} if input.now == 3

decision := "deny" if input.now == 4

decision := {"allow": "yes", "scopes": []} if input.now == 5

decision := {"allow": true, "scopes": ["a"], "ttl_seconds": -1} if input.now == 6

verdict := {"allow": false} if input.now == 7

verdict := {"allow": true, "scopes": ["a"]} if input.now == 7

decision := verdict if input.now == 7
"""
)

UNDEFINED = HEADER + 'decision := {"allow": false} if input.now == 0\n'


@pytest.mark.parametrize(
    ("module", "now"),
    [
        pytest.param(TRAPS, 2, id="allow-without-scopes"),
        pytest.param(TRAPS, 3, id="error-of-wrong-type"),
        pytest.param(TRAPS, 4, id="not-an-object"),
        pytest.param(TRAPS, 5, id="allow-not-boolean"),
        pytest.param(TRAPS, 6, id="negative-ttl"),
        pytest.param(TRAPS, 7, id="eval-conflict-http-500"),
        pytest.param(UNDEFINED, 1, id="undefined"),
    ],
)
async def test_bad_decisions_from_opa_are_denials(tmp_path: Path, module: str, now: int) -> None:
    root = write_module(tmp_path / "traps", module)
    server = OpaServer(tmp_path / "opa.log", load=(root,)).start()
    engine = opa_engine(server.url, root, manage=False)
    try:
        await engine.start()
        assert engine.ready
        document = dict(self_test_input(), now=now)
        decision = await engine.decide(document)
        assert not decision.allow
        assert decision.reason == "invalid policy decision"
    finally:
        await engine.close()
        server.stop()


# --- faults a real OPA does not produce on demand -----------------------------------------------


async def test_slow_opa_is_unavailable_within_the_timeout() -> None:
    """The engine gives up on its own timeout (0.3 s) while OPA is still working on the query:
    event order, not elapsed time. Without the timeout it waits for OPA's answer, an allow."""
    release, answered = asyncio.Event(), asyncio.Event()

    async def slow(_: dict[str, Any]) -> web.StreamResponse:
        with contextlib.suppress(TimeoutError):  # held until the test has its answer
            await asyncio.wait_for(release.wait(), GIVE_UP_SECONDS)
        answered.set()
        return web.json_response({"result": {"allow": True, "scopes": ["crm.read"]}})

    async with fake_opa(slow) as url:
        engine = opa_engine(url, Path("unused"), manage=False, timeout=0.3, interval=60)
        try:
            await engine.start()
            assert engine.ready
            with pytest.raises(TemporarilyUnavailableError):
                await engine.decide(sales_user())
            assert not answered.is_set()  # refused before OPA answered, not after
        finally:
            release.set()
            await engine.close()


def _reply(status: int, body: str, content_type: str = "application/json") -> Any:
    async def handler(_: dict[str, Any]) -> web.StreamResponse:
        return web.Response(status=status, text=body, content_type=content_type)

    return handler


@pytest.mark.parametrize(
    "handler",
    [
        pytest.param(_reply(503, "overloaded", "text/plain"), id="503"),
        pytest.param(_reply(404, '{"code": "not_found"}'), id="404"),
        pytest.param(_reply(200, "<html>proxy login</html>", "text/html"), id="html-200"),
        pytest.param(_reply(200, '["allow"]'), id="json-array"),
        pytest.param(_reply(200, "{not json"), id="broken-json"),
    ],
)
async def test_answers_that_are_not_opas_api_are_unavailable(handler: Any) -> None:
    async with fake_opa(handler) as url:
        engine = opa_engine(url, Path("unused"), manage=False, interval=60)
        try:
            await engine.start()
            with pytest.raises(TemporarilyUnavailableError):
                await engine.decide(sales_user())
        finally:
            await engine.close()


@pytest.mark.parametrize(
    "handler",
    [
        pytest.param(_reply(500, '{"code": "internal_error"}'), id="eval-error-500"),
        pytest.param(_reply(200, "{}"), id="undefined"),
        pytest.param(_reply(200, '{"result": {"allow": true}}'), id="allow-without-scopes"),
        pytest.param(_reply(200, '{"result": {"allow": 1, "scopes": []}}'), id="allow-int"),
        pytest.param(_reply(200, '{"result": null}'), id="null"),
    ],
)
async def test_ill_typed_or_undefined_answers_are_denials(handler: Any) -> None:
    async with fake_opa(handler) as url:
        engine = opa_engine(url, Path("unused"), manage=False, interval=60)
        try:
            await engine.start()
            decision = await engine.decide(sales_user())
            assert not decision.allow and decision.reason == "invalid policy decision"
        finally:
            await engine.close()
