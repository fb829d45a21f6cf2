"""The load generator: ghz (Go, built into ./bin by `make bench`), given a protoset built from
the same generated descriptors the server uses (Sekisho's API and grpc.health.v1).

Closed loop (`--concurrency` callers, as fast as they can) measures saturation throughput;
`--rps` paces requests for the latency-vs-offered-load curve. ghz measures each call from send to
response on the client, so its latencies include the loopback round trip (an upper bound on the
server-side time). Percentiles are computed from ghz's per-request details, so p99.9 is exact.
"""

import json
import subprocess
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from google.protobuf import descriptor_pb2
from google.protobuf.descriptor import FileDescriptor
from grpc_health.v1 import health_pb2
from sekisho._gen.sekisho.v1 import token_exchange_pb2
from stack import REPO, Server

GHZ = REPO / "bin" / "ghz"
EXCHANGE = "sekisho.v1.TokenExchangeService.ExchangeToken"
ECHO = "grpc.health.v1.Health.Check"


@dataclass
class Run:
    """One ghz run against one server, with the server's CPU and memory over the run."""

    name: str
    requests: int
    errors: int
    seconds: float
    throughput: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    p999_ms: float
    cpu_us_per_request: float
    rss_mib: list[float]
    offered_rps: float = 0.0
    error_kinds: dict[str, int] | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def write_protoset(path: Path) -> Path:
    """A FileDescriptorSet with both services and every file they import."""
    files = descriptor_pb2.FileDescriptorSet()
    seen: set[str] = set()

    def add(descriptor: FileDescriptor) -> None:
        if descriptor.name in seen:
            return
        seen.add(descriptor.name)
        for dependency in descriptor.dependencies:
            add(dependency)
        proto = descriptor_pb2.FileDescriptorProto()
        descriptor.CopyToProto(proto)
        files.file.append(proto)

    add(token_exchange_pb2.DESCRIPTOR)
    add(health_pb2.DESCRIPTOR)
    path.write_bytes(files.SerializeToString())
    return path


def _percentile(ordered: list[float], q: float) -> float:
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def run_ghz(
    name: str,
    server: Server,
    call: str,
    messages: list[dict[str, Any]],
    *,
    seconds: float = 0,
    total: int = 0,
    concurrency: int = 32,
    connections: int = 4,
    rps: float = 0,
    cpus: str = "",
) -> Run:
    """One ghz run of `total` requests (or for `seconds`: calls cut at the deadline then count as
    errors, so measured runs use `total`); CPU per request is the server's CPU time over the run
    divided by the requests."""
    with tempfile.TemporaryDirectory(prefix="sekisho-ghz-") as tmp:
        data = Path(tmp) / "data.json"
        data.write_text(json.dumps(messages))
        out = Path(tmp) / "report.json"
        command = [
            str(GHZ),
            "--insecure",
            "--protoset",
            str(write_protoset(Path(tmp) / "api.protoset")),
            "--call",
            call,
            "--data-file",
            str(data),
            "--concurrency",
            str(concurrency),
            "--connections",
            str(connections),
            "--timeout",
            "10s",
            "--format",
            "json",
            "--output",
            str(out),
            "--disable-template-functions",
            "--disable-template-data",
        ]
        command += ["--total", str(total)] if total else ["--duration", f"{seconds}s"]
        if rps:
            command += ["--rps", str(int(rps)), "--async"]
        command.append(server.grpc_target)
        if cpus:
            command = ["taskset", "-c", cpus, *command]
        cpu_before = server.cpu_seconds()
        started = time.perf_counter()
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
        elapsed = time.perf_counter() - started
        cpu = server.cpu_seconds() - cpu_before
        report = json.loads(out.read_text())
    return _summarise(name, report, cpu=cpu, elapsed=elapsed, server=server, rps=rps)


def _summarise(
    name: str, report: dict[str, Any], *, cpu: float, elapsed: float, server: Server, rps: float
) -> Run:
    details = report.get("details") or []
    ok = sorted(d["latency"] / 1e6 for d in details if not d.get("error"))
    errors: dict[str, int] = {}
    for detail in details:
        if detail.get("error"):
            kind = str(detail.get("status") or detail["error"])[:80]
            errors[kind] = errors.get(kind, 0) + 1
    total = len(details)
    seconds = report.get("total", 0) / 1e9 or elapsed
    return Run(
        name=name,
        requests=total,
        errors=sum(errors.values()),
        seconds=round(seconds, 2),
        throughput=round(len(ok) / seconds, 1) if seconds else 0.0,
        p50_ms=round(_percentile(ok, 0.50), 3),
        p90_ms=round(_percentile(ok, 0.90), 3),
        p99_ms=round(_percentile(ok, 0.99), 3),
        p999_ms=round(_percentile(ok, 0.999), 3),
        cpu_us_per_request=round(cpu / total * 1e6, 1) if total else 0.0,
        rss_mib=[round(rss / 2**20, 1) for rss in server.rss_bytes()],
        offered_rps=rps,
        error_kinds=errors or None,
    )
