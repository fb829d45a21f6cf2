"""Isolated per-call costs (µs, min of 9 repeats) of the pieces hot path part 2 touched: inbound
RS256 verification (uncached) and its JWS parse and signature check, build_request with an empty
context, and the gRPC interceptor's per-call handler lookup. Run from the repository root (or a
base worktree with PYTHONPATH=BASE/server:BASE): .venv/bin/python bench/hotpath2_isolated.py"""

import asyncio
import contextvars
import sys
import tempfile
import time
import timeit
from pathlib import Path

sys.path.insert(0, ".")
import grpc
from sekisho.jose import parse_compact
from sekisho.models import Caller
from sekisho.rpc.interceptors import ErrorMappingInterceptor
from sekisho.validation import ExchangeParams, build_request

from tests.bounds import request_limits
from tests.harness import build_harness


def best(f, number=5000):
    return min(timeit.repeat(f, number=number, repeat=9)) / number * 1e6


async def abest(f, number=3000):
    out = []
    for _ in range(9):
        t = time.perf_counter()
        for _ in range(number):
            await f()
        out.append(time.perf_counter() - t)
    return min(out) / number * 1e6


async def main():
    with tempfile.TemporaryDirectory() as keys:
        h = build_harness(Path(keys))
        token = h.idp_a.token(h.clock.now())
        req = h.request(token)
        tt = req.subject_token_type
        v = h.verifier
        jws = parse_compact(token)
        iss = v._issuer_of(jws.claims)
        key = await v._key_for(iss, jws.header)
        r = {
            "verify_rs256_uncached": await abest(lambda: v.verify(token, tt), 1000),
            "parse_compact": best(lambda: parse_compact(token)),
            "signature_rs256": best(lambda: v._check_signature(jws, key), 2000),
        }
        p = ExchangeParams(
            subject_token=token,
            subject_token_type=tt,
            audience="https://crm-as.example.com",
            scopes=("crm.read",),
        )
        limits, caller = request_limits(), Caller()
        r["build_request"] = best(lambda: build_request(p, caller, limits))

        async def beh(q, c):
            return q

        handler = grpc.unary_unary_rpc_method_handler(beh)

        class D:
            method = "/sekisho.v1.TokenExchangeService/ExchangeToken"

        async def cont(d):
            return handler

        icpt = ErrorMappingInterceptor(contextvars.ContextVar("r"))
        r["intercept_service"] = await abest(lambda: icpt.intercept_service(cont, D()))
        print("ISO " + " ".join(f"{k}={v:.2f}" for k, v in r.items()))


asyncio.run(main())
