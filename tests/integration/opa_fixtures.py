"""Helpers shared by the OPA engine tests: engines, policy folders, and a misbehaving OPA."""

import shutil
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from aiohttp import web
from sekisho.policy.opa.api import OpaApi
from sekisho.policy.opa.engine import OpaPolicyEngine
from sekisho.policy.selftest import self_test_input

from tests.fakes.loops import RecordedFailures
from tests.harness import POLICIES

QUERY = "data.sekisho.exchange.decision"
HEADER = "package sekisho.exchange\n\nimport rego.v1\n\n"
# Each OPA call's timeout, a hang guard: a publish is one PUT per module, each recompiling every
# module in OPA, and at load ~10 one PUT took 1.3 s (OPA's own log), so at 0.5 s the publish
# failed as "OPA unavailable" and a test expecting a compile error or a ready engine failed.
# Tests of the timeout itself pass their own (test_slow_opa_is_unavailable_within_the_timeout).
CALL_TIMEOUT_SECONDS = 5.0


def opa_engine(
    url: str,
    root: Path,
    *,
    manage: bool = True,
    timeout: float = CALL_TIMEOUT_SECONDS,
    interval: float = 0.2,
    token: str = "",
) -> OpaPolicyEngine:
    return OpaPolicyEngine(
        OpaApi(url, timeout, token=token),
        root,
        QUERY,
        manage=manage,
        timeout_seconds=timeout,
        check_interval_seconds=interval,
        failures=RecordedFailures(),
    )


def shipped_copy(tmp_path: Path) -> Path:
    """A writable copy of the shipped policies/ folder."""
    root = tmp_path / "policies"
    shutil.copytree(POLICIES, root)
    return root


def write_module(root: Path, text: str, name: str = "decision.rego") -> Path:
    folder = root / "sekisho" / "exchange"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(text, encoding="utf-8")
    return root


Handler = Callable[[dict[str, Any]], Awaitable[web.StreamResponse]]


async def clean_deny(_: dict[str, Any]) -> web.StreamResponse:
    """The self-test's expected answer: a well-typed deny."""
    return web.json_response({"result": {"allow": False}})


@asynccontextmanager
async def fake_opa(misbehave: Handler, self_test: Handler = clean_deny) -> AsyncIterator[str]:
    """An HTTP server speaking just enough of OPA's data API: it answers the self-test with
    `self_test(input)` (a well-typed deny unless told) and every other query with
    `misbehave(input)`. Yields its base URL."""

    async def query(request: web.Request) -> web.StreamResponse:
        document = (await request.json()).get("input")
        if document == self_test_input():
            return await self_test(document)
        return await misbehave(document)

    app = web.Application()
    app.router.add_post("/v1/data/sekisho/exchange/decision", query)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()
