"""Sequential ExchangeToken latency against a running Sekisho (informational, not a test).

Usage: .venv/bin/python bench/exchange_latency.py --target 127.0.0.1:50051 --token "$TOKEN" \
           --audience https://crm-as.example.com [--calls 2000]
Reports p50/p90/p99 of ExchangeToken and of GetJwks (a near-empty RPC on the same stack).
"""

import argparse
import statistics
import time

import grpc
from sekisho._gen.sekisho.v1 import token_exchange_pb2 as pb
from sekisho._gen.sekisho.v1 import token_exchange_pb2_grpc as pb_grpc


def _percentiles(samples: list[float]) -> str:
    ordered = sorted(samples)
    pick = lambda q: ordered[min(len(ordered) - 1, int(q * len(ordered)))]  # noqa: E731
    return (
        f"p50={statistics.median(ordered) * 1e3:.3f} ms  p90={pick(0.90) * 1e3:.3f} ms  "
        f"p99={pick(0.99) * 1e3:.3f} ms  (n={len(ordered)})"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--target", default="127.0.0.1:50051")
    parser.add_argument("--token", required=True)
    parser.add_argument("--audience", required=True)
    parser.add_argument("--scope", action="append", default=[])
    parser.add_argument("--calls", type=int, default=2000)
    args = parser.parse_args()
    with grpc.insecure_channel(args.target) as channel:
        stub = pb_grpc.TokenExchangeServiceStub(channel)
        request = pb.ExchangeTokenRequest(
            subject_token=args.token, audience=args.audience, scope=args.scope
        )
        for _ in range(100):  # warm up the channel and caches
            stub.ExchangeToken(request, timeout=5)
        exchange, jwks = [], []
        for _ in range(args.calls):
            start = time.perf_counter()
            stub.ExchangeToken(request, timeout=5)
            exchange.append(time.perf_counter() - start)
            start = time.perf_counter()
            stub.GetJwks(pb.GetJwksRequest(), timeout=5)
            jwks.append(time.perf_counter() - start)
    print(f"ExchangeToken  {_percentiles(exchange)}")
    print(f"GetJwks        {_percentiles(jwks)}")


if __name__ == "__main__":
    main()
