"""Cost of Token Status Lists (issue 16), one bounded run:

  (1) ExchangeToken throughput with [status_list] off vs on (same stack, caches warm, ghz);
  (2) list size per 100,000 live tokens at 1,000 tokens/s x 300 s lifetimes (300,000 live
      tokens): the signed Status List Token, `lst`, and the shared store's bytes per live token
      (SQLite file; Redis used_memory when redis-server is installed), at 0 / 0.1 % / 1 % revoked;
  (3) time from `sekisho revoke subject` returning to the first refused exchange (workers = 2),
      and to the bit showing in the served list (a verifier then sees it within the list ttl).

    .venv/bin/python bench/status_list.py [--seconds 8]
Results: bench/results/status_list.{md,json}.
"""

import argparse
import asyncio
import base64
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
import zlib
from pathlib import Path
from typing import Any

import machine
from loadgen import EXCHANGE, run_ghz
from stack import SEKISHO, Idp, Settings, exchange_messages, policy_folder, start_server, workload
from stack import write_config as stack_config

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from sekisho.status.bitlist import INVALID, SUSPENDED, StatusList, pack
from sekisho.status.filestore import FileStatusStore
from sekisho.status.models import IssuedToken
from sekisho.status.redisstore import RedisStatusStore
from sekisho.status.store import StatusStore

from tests.redis_server import start_redis

RESULTS = Path(__file__).resolve().parent / "results"
RATE, LIFETIME, LIST_SIZE = 1_000, 300, 100_000
LIVE = RATE * LIFETIME
STATUS_SECTION = """
[status_list]
enabled = true
path = "status/status.db"
ttl_seconds = 5
poll_seconds = 0.5
"""


def _config(root: Path, idp: Idp, settings: Settings, status: bool) -> Path:
    path = stack_config(root, idp, settings)
    if status:
        path.write_text(path.read_text() + STATUS_SECTION)
    return path


def throughput(root: Path, seconds: float) -> dict[str, Any]:
    idp, load = Idp(), workload()
    messages = exchange_messages(idp, load)
    policy_folder(root, load)
    results = {}
    for key, status in (("off", False), ("on", True)):
        server = start_server(root, _config(root, idp, Settings(), status))
        try:
            run_ghz(f"{key} fill", server, EXCHANGE, messages, total=len(messages))
            probe = run_ghz(f"{key} probe", server, EXCHANGE, messages, seconds=2)
            total = max(200, int(probe.throughput * seconds))
            run = run_ghz(key, server, EXCHANGE, messages, total=total)
        finally:
            server.stop()
        results[key] = run.as_dict()
        print(f"status lists {key:>3}: {run.throughput:8.1f}/s  p50 {run.p50_ms:.2f} ms")
    idp.close()
    results["ratio_on_off"] = round(results["on"]["throughput"] / results["off"]["throughput"], 3)
    return results


def _records(list_ids: list[int], now: int) -> list[IssuedToken]:
    tokens = []
    for n in range(LIVE):
        list_id, idx = list_ids[n // LIST_SIZE], n % LIST_SIZE
        subject = f"https://idp.example.com\x1fuser{n % 10_000}"
        tokens.append(
            IssuedToken(
                f"jti-{n:08d}",
                subject,
                f"agent-{n % 50}",
                f"https://as{n % 100}.example.com",
                list_id,
                idx,
                now + LIFETIME - (LIVE - n) // RATE,
            )
        )
    return tokens


def _fill(store: StatusStore, now: int) -> list[int]:
    ids = []
    for _ in range(LIVE // LIST_SIZE):
        lease = store.lease(
            now,
            list_size=LIST_SIZE,
            lease_size=LIST_SIZE,
            use_until=now + 60,
            valid_until=now + 400,
        )
        ids.append(lease.list_id)
    tokens = _records(ids, now)
    for start in range(0, LIVE, 2_000):
        store.record(now, tokens[start : start + 2_000])
    return ids


def _signed_list(claim: dict[str, object]) -> str:
    """A Status List Token as Sekisho serves it (ES256, the same claims)."""
    import jwt
    from cryptography.hazmat.primitives.asymmetric import ec

    uri = "https://sekisho.example.com/statuslists/1234"
    claims = {
        "iss": "https://sekisho.example.com",
        "sub": uri,
        "iat": 1_800_000_000,
        "exp": 1_800_000_600,
        "ttl": 60,
        "status_list": {**claim, "aggregation_uri": uri},
    }
    key = ec.generate_private_key(ec.SECP256R1())
    return jwt.encode(
        claims, key, algorithm="ES256", headers={"typ": "statuslist+jwt", "kid": "x" * 43}
    )


def list_bytes_by_bits() -> dict[str, Any]:
    """Signed list size per 100,000 tokens at bits = 1 and 2 (2 = room for SUSPENDED, the
    default since suspension), the same marked fractions; at 2 bits also half of them SUSPENDED."""
    out: dict[str, Any] = {}
    for bits, suspended_share in ((1, 0.0), (2, 0.0), (2, 0.5)):
        rng = random.Random(16)  # noqa: S311 - the same indexes for every row
        for fraction in (0.0, 0.001, 0.01):
            marked = rng.sample(range(LIST_SIZE), int(LIST_SIZE * fraction))
            cut = int(len(marked) * suspended_share)
            statuses = [(i, SUSPENDED) for i in marked[:cut]] + [(i, INVALID) for i in marked[cut:]]
            claim = StatusList(bits, pack(LIST_SIZE, bits, statuses)).to_claim()
            row = f"bits={bits} suspended={suspended_share:.0%} marked={fraction:.1%}"
            out[row] = {
                "lst_bytes": len(str(claim["lst"])),
                "status_list_token_bytes": len(_signed_list(claim)),
            }
            print(row, out[row])
    return out


def list_sizes(root: Path) -> dict[str, Any]:
    rng = random.Random(16)  # noqa: S311 - reproducible data
    sizes: dict[str, Any] = {"live_tokens": LIVE, "list_size": LIST_SIZE, "lists": {}}
    for fraction in (0.0, 0.001, 0.01):
        revoked = rng.sample(range(LIST_SIZE), int(LIST_SIZE * fraction))
        claim = StatusList(1, pack(LIST_SIZE, 1, [(i, INVALID) for i in revoked])).to_claim()
        lst = len(str(claim["lst"]))
        token_bytes = len(_signed_list(claim))
        sizes["lists"][f"{fraction:.1%}"] = {
            "lst_bytes": lst,
            "status_list_token_bytes": token_bytes,
            "wire_bits_per_live_token": round(token_bytes * 8 / LIST_SIZE, 4),
        }
        print(f"{fraction:.1%} revoked: list token {token_bytes} B per 100,000 tokens")
    now = int(time.time())
    started = time.perf_counter()
    store = FileStatusStore(root / "sizes" / "status.db")
    _fill(store, now)
    store.close()
    db = sum(p.stat().st_size for p in (root / "sizes").iterdir())
    sizes["file_store"] = {
        "bytes": db,
        "bytes_per_live_token": round(db / LIVE, 1),
        "fill_seconds": round(time.perf_counter() - started, 1),
    }
    print(f"file store: {db / LIVE:.0f} B per live token")
    if shutil.which("redis-server"):
        server = start_redis()
        try:
            client = RedisStatusStore.from_url(server.url)
            before = int(client._client.info("memory")["used_memory"])
            started = time.perf_counter()
            _fill(client, now)
            used = int(client._client.info("memory")["used_memory"]) - before
            sizes["redis_store"] = {
                "bytes": used,
                "bytes_per_live_token": round(used / LIVE, 1),
                "fill_seconds": round(time.perf_counter() - started, 1),
            }
            print(f"redis store: {used / LIVE:.0f} B per live token")
            client.close()
        finally:
            server.stop()
    return sizes


def record_cost(root: Path, tokens: int = 20_000) -> dict[str, float]:
    """Per-token CPU of the worker side in isolation: index reservation + record buffering on the
    event loop, and the batched SQLite write the flush thread does."""
    from sekisho.clock import SystemClock
    from sekisho.status.issuer import AllocationPolicy, StatusListIssuer

    async def run() -> dict[str, float]:
        store = FileStatusStore(root / "cost" / "status.db")
        policy = AllocationPolicy(LIST_SIZE, 1_000, 60, 330)
        issuer = StatusListIssuer(store, SystemClock(), base_uri="https://x/sl", policy=policy)
        exp = int(time.time()) + LIFETIME
        started = time.perf_counter()
        for n in range(tokens):
            ref = await issuer.reserve()
            subject = f"https://idp.example.com\x1fuser{n % 1000}"
            issuer.issued(
                IssuedToken(
                    f"jti-{n:022d}",
                    subject,
                    "agent",
                    "https://as.example",
                    ref.list_id,
                    ref.idx,
                    exp,
                )
            )
        reserved = time.perf_counter()
        await issuer.flush()
        flushed = time.perf_counter()
        store.close()
        return {
            "reserve_and_buffer_us": round(1e6 * (reserved - started) / tokens, 1),
            "sqlite_write_us": round(1e6 * (flushed - reserved) / tokens, 1),
        }

    cost = asyncio.run(run())
    print(f"per token: {cost}")
    return cost


def _served_bit(url: str, idx: int) -> int:
    with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 - loopback
        body = json.loads(base64.urlsafe_b64decode(response.read().split(b".")[1] + b"=="))
    lst = body["status_list"]["lst"]
    bits = zlib.decompress(base64.urlsafe_b64decode(lst + "=" * (-len(lst) % 4)))
    return bits[idx // 8] >> (idx % 8) & 1


def revoke_to_refusal(root: Path) -> dict[str, Any]:
    import grpc
    from sekisho._gen.sekisho.v1 import token_exchange_pb2 as pb
    from sekisho._gen.sekisho.v1 import token_exchange_pb2_grpc as pb_grpc

    idp, load = Idp(), workload()
    policy_folder(root, load)
    config = _config(root, idp, Settings(workers=2), status=True)
    server = start_server(root, config)
    sub, groups, audiences = load.users[0]
    token = idp.token(sub, groups, int(time.time()), 0)
    request = pb.ExchangeTokenRequest(subject_token=token, audience=audiences[0])

    async def exchange() -> str | None:
        async with grpc.aio.insecure_channel(server.grpc_target) as channel:
            try:
                reply = await pb_grpc.TokenExchangeServiceStub(channel).ExchangeToken(request)
            except grpc.aio.AioRpcError as error:
                refusals.append(f"{error.code().name}: {error.details()}")
                return None
            return str(reply.access_token)

    refusals: list[str] = []
    try:
        minted = asyncio.run(exchange())
        assert minted is not None, f"the first exchange was refused: {refusals}"
        claims = json.loads(base64.urlsafe_b64decode(minted.split(".")[1] + "=="))
        reference = claims["status"]["status_list"]
        url = reference["uri"]  # the bench issuer is the server's own HTTP address
        time.sleep(0.5)
        command = [
            str(SEKISHO),
            "revoke",
            "subject",
            "--issuer",
            idp.issuer,
            "--sub",
            sub,
            "--reason",
            "bench",
            "--config",
            str(config),
        ]
        started = time.perf_counter()
        subprocess.run(command, check=True, cwd=root, capture_output=True)
        returned = time.perf_counter()
        refused = listed = None
        while (refused is None or listed is None) and time.perf_counter() - returned < 10:
            if refused is None and asyncio.run(exchange()) is None:
                refused = time.perf_counter() - returned
            if listed is None and _served_bit(url, reference["idx"]) == 1:
                listed = time.perf_counter() - returned
            time.sleep(0.02)
    finally:
        server.stop()
        idp.close()
    result = {
        "cli_seconds": round(returned - started, 3),
        "refused_after_seconds": round(refused or -1, 3),
        "served_list_marked_after_seconds": round(listed or -1, 3),
        "ttl_seconds": 5,
    }
    print(
        f"revoke -> refusal {result['refused_after_seconds']} s, "
        f"-> served list {result['served_list_marked_after_seconds']} s"
    )
    return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument(
        "--bits-only",
        action="store_true",
        help="only the list size at bits = 1 vs 2 (no servers; prints JSON)",
    )
    args = parser.parse_args()
    if args.bits_only:
        print(json.dumps(list_bytes_by_bits(), indent=2))
        return
    # The embedded engine compiles policy with `opa` (PATH or ./bin of the serving folder).
    os.environ["PATH"] = f"{Path(__file__).resolve().parents[1] / 'bin'}:{os.environ['PATH']}"
    with tempfile.TemporaryDirectory(prefix="sekisho-status-bench-") as tmp:
        root = Path(tmp)
        for part in ("t", "r"):
            (root / part).mkdir()
        results = {
            "machine": machine.describe(),
            "throughput": throughput(root / "t", args.seconds),
        }
        results["record_cost"] = record_cost(root)
        results["sizes"] = list_sizes(root)
        results["revoke"] = revoke_to_refusal(root / "r")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "status_list.json").write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps({k: v for k, v in results.items() if k != "machine"}, indent=2))


if __name__ == "__main__":
    main()
