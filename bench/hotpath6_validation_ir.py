"""Instructions (callgrind Ir, deterministic) of request building for the checkout on PYTHONPATH:
`params_of` + `build_request` over 1,000 bench-shaped ExchangeTokenRequests (a ~800-character
subject token, one audience, defaults elsewhere), then `params_of` alone:

    PYTHONPATH=CHECKOUT/server valgrind --tool=callgrind --toggle-collect=functools_reduce \\
        --dump-after=functools_reduce .venv/bin/python bench/hotpath6_validation_ir.py
(dump 1: params_of + build_request, dump 2: params_of; Ir per call = dump total / 1,000)
"""

import functools

from sekisho._gen.sekisho.v1 import token_exchange_pb2 as pb
from sekisho.config import Settings
from sekisho.models import Caller
from sekisho.protection import request_limits
from sekisho.rpc import servicer
from sekisho.validation import build_request

TOKEN = "eyJhbGciOiJSUzI1NiIsImtpZCI6ImsxIiwidHlwIjoiSldUIn0." + "a" * 420 + "." + "b" * 342


def main() -> None:
    limits = request_limits(Settings())
    messages = [
        pb.ExchangeTokenRequest(subject_token=TOKEN, audience=f"https://as-{n:04d}.example.com")
        for n in range(1000)
    ]
    caller = Caller()
    for message in messages:  # warm up
        build_request(servicer.params_of(message, limits), caller, limits)
    functools.reduce(
        lambda _a, _b: [
            build_request(servicer.params_of(m, limits), caller, limits) for m in messages
        ],
        [0, 1],
    )
    functools.reduce(lambda _a, _b: [servicer.params_of(m, limits) for m in messages], [0, 1])
    print("dump 1: params_of + build_request, dump 2: params_of (1,000 calls each)")


if __name__ == "__main__":
    main()
