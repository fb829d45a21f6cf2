"""Where a polite caller's time goes beside an abusive one (issue 14 (c)): bench/overload.py's
scenario (c), one abusive caller at 5x R beside ten polite ones at 0.05x R, against a server
that records each gated call's stages (bench/polite_timeline_server.py). Calls are told apart by
connection: the abusive caller's one connection carries almost all of them.

Prints, for the polite calls and for the abusive caller's served ones, percentiles of:
  start→read    the gate's entry to the request message received (one batch through grpc core)
  read→granted  waiting for an admission slot (the fair queue) and the loop turn after the grant
  granted→end   the exchange itself, with every loop turn it waits behind
  total         the gate's entry to the answer
and the polite callers' own end-to-end latency (ghz), whose excess over `total` is the time
before the call's task ran: grpc core, the acceptors, the event loop.

    PATH=$PWD/bin:$PATH .venv/bin/python bench/polite_timeline.py [--rate 1000] [--extra TOML]
"""

import argparse
import json
import os
import sys
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import stack
from overload import _server, abusive_and_polite
from stack import REPO, Idp, exchange_messages, policy_folder, workload

HOOK = str(REPO / "bench" / "polite_timeline_server.py")
STAGES = {"start→read": (1, 2), "read→granted": (2, 3), "granted→end": (3, 4), "total": (1, 4)}


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 2) if ordered else 0.0


def stages(records: list[list[Any]]) -> dict[str, dict[str, float]]:
    """p50/p90/p99 in ms of each stage, over served calls (every stamp set)."""
    served = [r for r in records if r[5] == "ok" and r[3]]
    out = {}
    for name, (a, b) in STAGES.items():
        values = [(r[b] - r[a]) * 1e3 for r in served]
        out[name] = {"n": len(values), **{f"p{q}": _pct(values, q / 100) for q in (50, 90, 99)}}
    return out


def _extend_overload(lines: str) -> None:
    """Append `lines` to the [overload] table the bench's config writes (a second [overload]
    table would be a TOML error)."""
    original = stack.write_config

    def write_config(*args: Any, **kwargs: Any) -> Path:
        config: Path = original(*args, **kwargs)
        text = config.read_text().replace("[overload]\n", f"[overload]\n{lines}\n", 1)
        config.write_text(text)
        return config

    stack.write_config = write_config  # type: ignore[assignment]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=1000.0)
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--extra", default="", help="TOML appended to the config (\\n: newline)")
    parser.add_argument("--overload", default="", help="lines for [overload] (\\n: newline)")
    parser.add_argument("--source", default="", help="checkout whose server/ the server runs")
    default_out = Path(tempfile.gettempdir()) / "polite_timeline.json"
    parser.add_argument("--out", type=Path, default=default_out)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="sekisho-polite-") as tmp:
        root = Path(tmp)
        idp, load = Idp(), workload()
        messages = exchange_messages(idp, load)
        policy_folder(root, load)
        os.environ["BENCH_SRV"] = HOOK
        os.environ["TIMELINE_OUT"] = str(root / "timeline.json")
        if args.overload:
            _extend_overload(args.overload.replace("\\n", "\n"))
        server = _server(
            root,
            idp,
            "probe",
            overload=True,
            source=args.source,
            extra="\n" + args.extra.replace("\\n", "\n"),
        )
        try:
            result = abusive_and_polite(server, messages, args.rate, args.seconds)
        finally:
            server.stop()
        dumped = json.loads((root / "timeline.json").read_text())
        records, turns = dumped["calls"], dumped["turns"]
        idp.close()
    by_peer = Counter(r[0] for r in records)
    abusive_peer = by_peer.most_common(1)[0][0]
    # The unloaded polite run came first: its calls are the ones before the abusive caller's first.
    first_abusive = min(r[1] for r in records if r[0] == abusive_peer)
    polite = [r for r in records if r[0] != abusive_peer and r[1] >= first_abusive]
    alone = [r for r in records if r[0] != abusive_peer and r[1] < first_abusive]
    abusive = [r for r in records if r[0] == abusive_peer]
    # The loop's lag while the abusive caller ran (a 1 ms tick's lateness) and what ended per tick.
    last_abusive = max(r[4] for r in records if r[0] == abusive_peer)
    loaded = [t for t in turns if first_abusive <= t[0] <= last_abusive]
    report = {
        "rate": args.rate,
        "extra": args.extra,
        "client_polite_ok_p50_p99_ms": [
            result["polite"]["ok_p50_ms"],
            result["polite"]["ok_p99_ms"],
        ],
        "client_unloaded_p50_p99_ms": [
            result["polite_unloaded"]["ok_p50_ms"],
            result["polite_unloaded"]["ok_p99_ms"],
        ],
        "polite_success": result["polite_success"],
        "server_polite": stages(polite),
        "server_unloaded": stages(alone),
        "server_abusive": stages(abusive),
        "abusive_calls_in_python": {
            "served": sum(r[5] == "ok" for r in abusive),
            "refused": sum(r[5] != "ok" for r in abusive),
        },
        "abusive_client": result["abusive"]["by_status"],
        "loop_under_abuse": {
            "ticks": len(loaded),
            "lag_ms_p50_p90_p99_max": [
                *(_pct([t[1] * 1e3 for t in loaded], q) for q in (0.5, 0.9, 0.99)),
                round(max((t[1] * 1e3 for t in loaded), default=0.0), 2),
            ],
            "exchanges_ended_per_tick_p50_p90_p99_max": [
                *(_pct([t[2] for t in loaded], q) for q in (0.5, 0.9, 0.99)),
                max((t[2] for t in loaded), default=0),
            ],
            "limit_p50_p90": [_pct([t[3] for t in loaded], q) for q in (0.5, 0.9)],
            "in_flight_p50_p90": [_pct([t[4] for t in loaded], q) for q in (0.5, 0.9)],
        },
    }
    args.out.write_text(json.dumps(report, indent=1))
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
