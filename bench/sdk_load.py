"""Open-loop load through sekisho.client, the SDK real agents use (issue 14, session 4): each
caller is one TokenExchangeClient with the default retry policy and client-side adaptive
throttle, on its own connection, starting calls at a fixed rate whatever the answers, each with
a deadline. Prints one JSON object: per caller, every attempt as [start, latency ms, outcome]
and how late the generator started its calls (is the load really open?).

    python bench/sdk_load.py TARGET SPEC.json

SPEC: {"deadline": 1.0, "messages": [...], "callers": [{"name", "rate", "seconds", "delay"}]}.
A caller with "concurrency": N instead of "rate" is a closed loop: N tasks share its client, each
starting its next call as soon as the last one returns (a refusal included), for "seconds".
"early_refusal": false in SPEC gives every client the call slots of session 13 (slots.py's
`early_refusal=False`: a waiting call fails only at its deadline), for side-by-side runs.
Outcomes: ok; local (rejected by the throttle or the server's retry_after, or no call slot in
time: no RPC); refused (slow_down from the server); UNAVAILABLE, DEADLINE_EXCEEDED, … (grpc
status codes); stuck: no answer STUCK_AFTER seconds past its deadline — a call the SDK failed to
bound (then cancelled, its coroutine stacks printed to stderr; a bench run once hung 300 s on
one).
"""

import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any

import grpc
import uvloop
from sekisho._gen.sekisho.v1 import token_exchange_pb2_grpc as pb_grpc
from sekisho.client import ChannelOptions, ExchangeError, RateLimitedError, TokenExchangeClient
from sekisho.client.slots import CallSlots
from sekisho.client.throttle import AdaptiveThrottle

LOCAL = ("throttled locally", "retry after")
STUCK_AFTER = 10.0
SLOTS = 16  # TokenExchangeClient's default max_in_flight


def _client(target: str, spec: dict[str, Any]) -> TokenExchangeClient:
    client = TokenExchangeClient(target, channel_options=ChannelOptions(insecure=True))
    if "throttle" in spec:  # AdaptiveThrottle keyword arguments, for side-by-side runs
        client.throttle = AdaptiveThrottle(time.monotonic, **spec["throttle"])
    if not spec.get("early_refusal", True):
        client._slots = CallSlots(SLOTS, time.monotonic, early_refusal=False)
    # One connection per caller, as separate agent processes would have (grpc shares one
    # subchannel between channels of a process by default).
    channel = grpc.aio.insecure_channel(target, options=[("grpc.use_local_subchannel_pool", 1)])
    client._channel = channel
    client._stub = pb_grpc.TokenExchangeServiceStub(channel)  # type: ignore[no-untyped-call]
    return client


def _outcome(error: ExchangeError) -> str:
    if "not sent:" in str(error):  # waited for a call slot past any chance of an answer
        return "local"
    if isinstance(error, RateLimitedError):
        return "local" if any(phrase in str(error) for phrase in LOCAL) else "refused"
    return error.code


async def _attempt(
    client: TokenExchangeClient, message: dict[str, Any], deadline: float, out: list[Any]
) -> None:
    started = time.time()
    try:
        await client.exchange(
            message["subject_token"], message["audience"], deadline_seconds=deadline
        )
        outcome = "ok"
    except ExchangeError as error:
        outcome = _outcome(error)
    out.append([started, round((time.time() - started) * 1e3, 3), outcome])


def _report_stuck(
    name: str, stuck: set[asyncio.Task[None]], started: dict[Any, float], attempts: list[Any]
) -> None:
    """Calls still running long past their deadline: each an attempt with outcome "stuck", the
    distinct coroutine stacks they wait in on stderr, then cancelled."""
    stacks: dict[str, int] = {}
    for task in stuck:
        where = " <- ".join(f"{f.f_code.co_name}:{f.f_lineno}" for f in task.get_stack(limit=20))
        stacks[where] = stacks.get(where, 0) + 1
        attempts.append([started.get(task, 0.0), -1.0, "stuck"])
        task.cancel()
    for where, count in stacks.items():
        print(f"{name}: {count} calls stuck in {where}", file=sys.stderr)


async def _closed_loop(
    client: TokenExchangeClient, spec: dict[str, Any], caller: dict[str, Any], out: list[Any]
) -> None:
    """`concurrency` tasks, each sending its next call as soon as the last one returns."""
    messages, end = spec["messages"], time.monotonic() + caller["seconds"]

    async def loop(first: int) -> None:
        n = first
        while time.monotonic() < end:
            await _attempt(client, messages[n % len(messages)], spec["deadline"], out)
            n += caller["concurrency"]

    await asyncio.gather(*(loop(n) for n in range(caller["concurrency"])))


async def _caller(target: str, spec: dict[str, Any], caller: dict[str, Any]) -> dict[str, Any]:
    await asyncio.sleep(caller.get("delay", 0.0))
    client, messages = _client(target, spec), spec["messages"]
    if "concurrency" in caller:
        attempts: list[Any] = []
        begin = time.monotonic()
        await _closed_loop(client, spec, caller, attempts)
        await client.close()
        seconds = round(time.monotonic() - begin, 3)
        return {"name": caller["name"], "attempts": attempts, "rpcs": client.rpc_count,
                "sent_over_s": seconds, "start_lateness_p50_ms": 0.0,
                "start_lateness_p99_ms": 0.0}  # fmt: skip
    attempts = []
    lateness: list[float] = []
    tasks: set[asyncio.Task[None]] = set()
    started: dict[asyncio.Task[None], float] = {}  # the calls still running: when they started
    interval, total = 1.0 / caller["rate"], int(caller["rate"] * caller["seconds"])
    begin = time.monotonic()
    for n in range(total):
        due = begin + n * interval
        if (wait := due - time.monotonic()) > 0:
            await asyncio.sleep(wait)
        lateness.append(time.monotonic() - due)
        task = asyncio.create_task(
            _attempt(client, messages[n % len(messages)], spec["deadline"], attempts)
        )
        tasks.add(task)
        started[task] = time.time()
        task.add_done_callback(tasks.discard)
        task.add_done_callback(started.pop)
    if tasks:
        _, stuck = await asyncio.wait(set(tasks), timeout=spec["deadline"] + STUCK_AFTER)
        _report_stuck(caller["name"], stuck, started, attempts)
    try:
        await asyncio.wait_for(client.close(), STUCK_AFTER)
    except TimeoutError:
        print(f"{caller['name']}: client.close() did not return", file=sys.stderr)
    lateness.sort()
    return {
        "name": caller["name"],
        "attempts": attempts,
        "rpcs": client.rpc_count,
        "sent_over_s": round(time.monotonic() - begin, 3),
        "start_lateness_p50_ms": round(lateness[len(lateness) // 2] * 1e3, 2),
        "start_lateness_p99_ms": round(lateness[int(0.99 * len(lateness))] * 1e3, 2),
    }


async def main(target: str, spec: dict[str, Any]) -> None:
    callers = [_caller(target, spec, caller) for caller in spec["callers"]]
    print(json.dumps(await asyncio.gather(*callers)))


if __name__ == "__main__":
    uvloop.install()
    asyncio.run(main(sys.argv[1], json.loads(Path(sys.argv[2]).read_text())))
