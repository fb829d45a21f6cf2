"""Markdown and PNG for bench/results/exchange_throughput.*."""

from pathlib import Path
from typing import Any

TARGETS = {"warm": 0.6, "miss": 0.35}
LABELS = {
    "echo": "(a) echo: grpc.health.v1.Health/Check",
    "warm": "(b) ExchangeToken, caches warm",
    "warm_no_metrics": "(b') as (b), metrics off",
    "warm_quiet": "(b'') as (b), metrics off, logging WARNING (no audit lines)",
    "miss": "(c) ExchangeToken, caches off (every request a miss)",
    "opa": "(d) as (c), policy engine OPA",
}


def plot_curve(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    curve = result["curve"]
    offered = [r["offered_rps"] for r in curve]
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for key, label in (("p50_ms", "p50"), ("p99_ms", "p99"), ("p999_ms", "p99.9")):
        ax.plot(offered, [r[key] for r in curve], marker="o", label=label)
    ax.set_xlabel("offered load (ExchangeToken/s, every request a cache miss)")
    ax.set_ylabel("latency (ms, client-side, loopback)")
    ax.set_yscale("log")
    ax.grid(True, which="both", alpha=0.3)
    machine = result["machine"]
    ax.set_title(
        f"Sekisho ExchangeToken latency vs load: workers={result['workers']}, "
        f"{machine['cpus']} CPUs",
        fontsize=10,
    )
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _row(key: str, run: dict[str, Any], ready: dict[str, float]) -> str:
    rss = "/".join(f"{m:.0f}" for m in run["rss_mib"])
    start = ready.get(key)
    return (
        f"| {LABELS[key]} | {run['throughput']:,.0f} | {run['p50_ms']:.2f} | {run['p90_ms']:.2f} "
        f"| {run['p99_ms']:.2f} | {run['p999_ms']:.2f} | {run['cpu_us_per_request']:,.0f} "
        f"| {rss} | {'' if start is None else f'{start:.2f}'} | {run['errors']} |"
    )


def _observability_cost(result: dict[str, Any]) -> list[str]:
    """The cost of metrics and of metrics + logging: medians of alternating rounds."""
    cost = result.get("observability_cost")
    if cost is None:  # results written before the rounds existed
        return [
            f"Cost in (b) of metrics alone: {result['metrics_cost_percent']} % of throughput; of "
            f"metrics + INFO logging (one audit line per exchange): "
            f"{result['metrics_logging_cost_percent']} % (target ≤ 5 %)."
        ]

    def rounds(part: dict[str, Any]) -> str:
        return ", ".join(
            f"{share:+.1f} % ({us:+,} µs)"
            for share, us in zip(part["throughput_percent"], part["cpu_us"], strict=True)
        )

    metrics, both = cost["metrics"], cost["metrics_and_logging"]
    return [
        f"Cost in (b) of metrics alone: {metrics['median_throughput_percent']} % of throughput "
        f"({metrics['median_cpu_us']:+,} CPU µs/req); of metrics + INFO logging (one audit line "
        f"per exchange): {both['median_throughput_percent']} % ({both['median_cpu_us']:+,} µs) "
        "(target ≤ 5 %). Medians of "
        f"{cost['rounds']} rounds of {cost['calls_per_burst']:,}-call bursts to (b), (b') and "
        "(b'') running side by side, in a rotating order; (b') and (b'') above are their median "
        "bursts, (b) is the run after (a) on its own server. Per round, metrics: "
        f"{rounds(metrics)}; metrics + logging: {rounds(both)}. One run per scenario differs "
        "from the next by more than the cost it measures (metrics_session8.md).",
    ]


def markdown(result: dict[str, Any]) -> str:
    runs = result["runs"]
    ready = {**result["start_to_ready_seconds"], "echo": result["start_to_ready_seconds"]["warm"]}
    lines = [
        "# ExchangeToken throughput (`make bench`)",
        "",
        f"Workers: **{result['workers']}**; server pinned to CPU {result['pinning']['server']}, "
        f"ghz to CPU {result['pinning']['load']}. {result['seconds_per_run']:.0f} s per "
        f"measured run after a warm-up; total {result['total_seconds']:.0f} s. Profiles, "
        "changes and what bounds each target: [hot_path.md](hot_path.md).",
        "",
        "| scenario | req/s | p50 ms | p90 ms | p99 ms | p99.9 ms | server CPU µs/req | RSS MiB "
        "per worker | start→ready s | errors |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        *(_row(key, runs[key], ready) for key in LABELS if key in runs),
        "",
        "Ratios to (a) echo throughput:",
        "",
        "| ratio | measured | target |",
        "|---|---:|---:|",
    ]
    for key, value in result["ratios_to_echo"].items():
        target = TARGETS.get(key)
        lines.append(
            f"| ({'b' if key == 'warm' else 'c' if key == 'miss' else 'd'})/(a) | {value:.3f} | "
            f"{'≥ ' + str(target) if target else '—'} |"
        )
    lines += ["", *_observability_cost(result), ""]
    lines += [
        "## Latency vs offered load, every request a miss (c)",
        "",
        "`ghz --async --rps R` (open loop) at fractions of (c)'s maximum; plot: "
        "[exchange_throughput.png](exchange_throughput.png).",
        "",
        "| offered/s | achieved/s | p50 ms | p90 ms | p99 ms | p99.9 ms | CPU µs/req | errors |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    lines += [
        f"| {r['offered_rps']:,.0f} | {r['throughput']:,.0f} | {r['p50_ms']:.2f} | "
        f"{r['p90_ms']:.2f} | {r['p99_ms']:.2f} | {r['p999_ms']:.2f} | "
        f"{r['cpu_us_per_request']:,.0f} | {r['errors']} |"
        for r in result["curve"]
    ]
    half = result["at_half_of_miss_max"]
    if half:
        lines += [
            "",
            f"At 50 % of (c)'s maximum ({half['offered_rps']:,.0f}/s): p50 {half['p50_ms']:.2f} ms "
            f"(target ≤ 1 ms), p99 {half['p99_ms']:.2f} ms (target ≤ 3 ms), client-side over "
            "loopback (an upper bound on server-side time).",
        ]
    machine = result["machine"]
    lines += [
        "",
        "## Machine",
        "",
        *(f"- {name}: {value}" for name, value in machine.items()),
        "",
        "## Method",
        "",
        "- Inputs: RS256 IdP tokens (RSA-2048) for 1,000 users with 3 groups each; each user asks "
        "for 3 downstreams of a generated 1,000-entry registry that grant one of its groups "
        "(3,000 distinct requests, ghz round-robin over them). ES256 signing, file keystore. "
        "Every request is a grant (a token is minted).",
        "- (b) warm: `[cache]` defaults; the registry sets `decision_cache_seconds = 60`, so after "
        "the warm-up every request hits both caches and only mints.",
        "- (c) miss: both caches disabled in config (`subject_max_entries = 0`, "
        "`decision_max_entries = 0`): each request verifies its RS256 signature, evaluates the "
        "policy and signs. The JWKS and signing keys stay loaded (they never are per-request).",
        '- (d) like (c) with `[policy] engine = "opa"` against `opa run --server` on loopback '
        "(started by the bench, decision logs off, pinned with the server).",
        "- CPU per request: utime + stime of the server's processes (/proc) over the run divided "
        "by requests. RSS: /proc/<pid>/statm of each serving process at the end of the run.",
        "- Start→ready: from exec of `sekisho serve` to the first 200 from `/readyz`.",
        "- Load generator: ghz (given a protoset of the server's own descriptors), 4 "
        "connections, 32 concurrent callers (closed loop) for saturation: the latencies in the "
        "first table include queueing behind 32 callers; the curve gives latency at a given "
        "load. Client-side times over loopback are an upper bound on server-side time.",
        "- (d): OPA's own CPU is not in the server's CPU per request (OPA shares the server's "
        "CPU).",
    ]
    return "\n".join(lines) + "\n"
