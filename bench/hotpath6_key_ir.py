"""Instructions (callgrind Ir, deterministic) of the decision cache on a hit and on a miss, for
the checkout on PYTHONPATH: `--calls` documents shaped like the exchange bench's (bench/stack.py:
the IdP token's claims, 3 groups, one audience per request, no actor, empty context), each built
by build_input from a VerifiedToken that stays the same object across requests (as the subject
cache hands it out). The engine behind the cache is a stand-in that answers at once, so the Ir
are the cache's own: key (and on a miss the encoded input). Run once per checkout:

    PYTHONPATH=CHECKOUT/server valgrind --tool=callgrind --toggle-collect=functools_reduce \\
        --dump-after=functools_reduce .venv/bin/python bench/hotpath6_key_ir.py [--calls 2000]
(dump 1: hits, dump 2: misses; Ir per call = dump total / calls)
"""

import argparse
import functools
from typing import Any

from sekisho.constants import TOKEN_TYPE_ID_JAG, TOKEN_TYPE_ID_TOKEN
from sekisho.models import Caller, Decision, ExchangeRequest, VerifiedToken
from sekisho.policy.cache import CachingPolicyEngine
from sekisho.policy.input import build_input

NOW = 1_800_000_000
ISSUER = "http://127.0.0.1:41234"


class StillClock:
    """Time stands still: no entry expires however slowly valgrind runs."""

    def now(self) -> float:
        return float(NOW)


class AnsweringEngine:
    """Grants at once; `encoded` engines (the embedded one) are given bytes."""

    def __init__(self, ttl: int) -> None:
        self._decision = Decision(allow=True, scopes=("files.read",), cache_ttl_seconds=ttl)

    @property
    def ready(self) -> bool:
        return True

    async def decide(self, document: dict[str, Any]) -> Decision:
        return self._decision

    async def decide_encoded(self, encoded: bytes) -> Decision:
        return self._decision

    async def start(self) -> None:
        """Nothing to load."""

    async def folder_changed(self) -> bool:
        return True

    async def close(self) -> None:
        """Nothing to release."""


def _subject(n: int) -> VerifiedToken:
    sub = f"user{n}"
    groups = ("engineering", "sales", "support")
    claims = {
        "iss": ISSUER,
        "sub": sub,
        "aud": "agent-app",
        "iat": NOW,
        "exp": NOW + 3600,
        "auth_time": NOW,
        "email": f"{sub}@example.com",
        "groups": list(groups),
        "jti": f"{sub}-0",
    }
    return VerifiedToken(
        issuer=ISSUER,
        subject=sub,
        token_type=TOKEN_TYPE_ID_TOKEN,
        expires_at=NOW + 3600,
        email=f"{sub}@example.com",
        groups=groups,
        auth_time=NOW,
        claims=claims,
    )


def _requests(calls: int) -> list[tuple[ExchangeRequest, VerifiedToken]]:
    subjects = [_subject(n) for n in range(calls // 3 + 1)]
    return [
        (
            ExchangeRequest(
                subject_token="unused",  # noqa: S106 - not a secret
                subject_token_type=TOKEN_TYPE_ID_TOKEN,
                requested_token_type=TOKEN_TYPE_ID_JAG,
                audience=f"https://as-{n % 997:04d}.example.com",
                caller=Caller(),
            ),
            subjects[n // 3],
        )
        for n in range(calls)
    ]


def _run_sync(coro: Any) -> Any:
    try:
        coro.send(None)
    except StopIteration as stop:
        return stop.value
    raise RuntimeError("suspended")


def main(calls: int) -> None:
    pairs = _requests(calls)
    for name, ttl in (("hits", 60), ("misses", 0)):
        cache = CachingPolicyEngine(AnsweringEngine(ttl), StillClock(), max_entries=10 * calls)
        documents = [build_input(r, s, None, NOW) for r, s in pairs]
        for document in documents:  # fill (hits) / warm up (misses)
            _run_sync(cache.decide(document))
        documents = [build_input(r, s, None, NOW + 1) for r, s in pairs]  # new per request
        functools.reduce(
            lambda _a, _b, c=cache, d=documents: [_run_sync(c.decide(x)) for x in d], [0, 1]
        )
        print(f"dump {name}: {calls} decisions (hits {cache.hits}, misses {cache.misses})")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=2000)
    main(parser.parse_args().calls)
