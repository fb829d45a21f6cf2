"""CPU of reading one ext_authz Check whose raw header map repeats one name (red team session
20): `gateway_request` (rpc/ext_authz.py) against one pass that only reads the same entries, in
one process, medians of `--rounds`. Joined entry by entry the cost grew as n^2 (32,000 entries
of `a: b`, 256 KiB within grpc_max_message_bytes: 40-85 ms); joined once it is a small multiple
of the reading pass. `PYTHONPATH=<other tree>/server` runs another version (A/B).

    .venv/bin/python bench/ext_authz_raw_headers.py [--entries 32000 200000] [--rounds 5]
"""

import argparse
import statistics
import time
from collections.abc import Callable

from envoy.config.core.v3 import base_pb2
from envoy.service.auth.v3 import external_auth_pb2 as ext_authz_pb
from sekisho.rpc.ext_authz import gateway_request


def _check(entries: int) -> ext_authz_pb.CheckRequest:
    one = base_pb2.HeaderValue(key="a", raw_value=b"b").SerializeToString()
    request = ext_authz_pb.CheckRequest()
    http = request.attributes.request.http
    http.host, http.path, http.method = "mcp.example.com", "/mcp", "POST"
    http.header_map.MergeFromString(b"\n%c%s" % (len(one), one) * entries)
    return request


def _median_seconds(work: Callable[[], object], rounds: int) -> float:
    times = []
    for _ in range(rounds):
        started = time.process_time()
        work()
        times.append(time.process_time() - started)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, nargs="+", default=[32_000, 200_000])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    print("entries   reading ms   gateway_request ms   ratio")
    for entries in args.entries:
        reading, joining = _measured(_check(entries), args.rounds)
        print(
            f"{entries:>7}   {reading * 1000:>10.1f}   {joining * 1000:>18.1f}"
            f"   {joining / reading:>5.1f}"
        )


def _measured(request: ext_authz_pb.CheckRequest, rounds: int) -> tuple[float, float]:
    """Median CPU seconds of reading the entries once, and of gateway_request."""
    headers = request.attributes.request.http.header_map.headers

    def read_once() -> None:
        for entry in headers:
            _ = (entry.key.lower(), entry.value or entry.raw_value.decode("utf-8"))

    reading = _median_seconds(read_once, rounds)
    return reading, _median_seconds(lambda: gateway_request(request), rounds)


if __name__ == "__main__":
    main()
