"""`sekisho audit show ID|--last`: an exchange's audit record, found in Sekisho's JSON log.

Every refusal carries `request_id` (and `decision_id` once policy ran) in its ErrorInfo metadata
and HTTP body; the audit line of that exchange (`token_exchanged` / `token_rejected`, sekisho.audit)
holds the outcome, reason, detail, caller, audience and scopes as logged. This prints it.
"""

import argparse
import json
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, TextIO

from sekisho.config import Settings

AUDIT_EVENTS = frozenset({"token_exchanged", "token_rejected"})


def register(
    sub: "argparse._SubParsersAction[argparse.ArgumentParser]", common: argparse.ArgumentParser
) -> None:
    audit = sub.add_parser("audit", parents=[common], help="read the exchange audit trail")
    audit_sub = audit.add_subparsers(dest="audit_command", required=True)
    show = audit_sub.add_parser(
        "show", parents=[common], help="print the audit record of one exchange"
    )
    which = show.add_mutually_exclusive_group(required=True)
    which.add_argument(
        "id", nargs="?", default="", help="a decision_id or request_id from an error or response"
    )
    which.add_argument("--last", action="store_true", help="the most recent exchange instead")
    show.add_argument(
        "--log",
        default="-",
        help="Sekisho's JSON log (`make run` writes var/sekisho.log); - = stdin (default)",
    )


def run(args: argparse.Namespace, settings: Settings) -> int:
    if args.log == "-" and sys.stdin.isatty():
        # `sekisho audit show ID` typed without --log used to wait, silently, for a log typed at
        # the terminal (newcomer run, session 18): nobody types a JSON log, so say what to pass.
        print(
            "sekisho: audit show reads Sekisho's JSON log: pass --log FILE (`make run` writes "
            "var/sekisho.log) or pipe the log in",
            file=sys.stderr,
        )
        return 2
    with _open(args.log) as stream:
        records = list(audit_records(stream))
    if args.last:
        found = records[-1:]
    else:
        found = [r for r in records if args.id in (r.get("decision_id"), r.get("request_id"))]
    if not found:
        target = "any exchange" if args.last else args.id
        source = "stdin" if args.log == "-" else args.log
        print(f"sekisho: no audit record for {target} in {source}", file=sys.stderr)
        return 1
    for record in found:
        print(json.dumps(record, indent=2, sort_keys=True))
    return 0


def audit_records(lines: Iterable[str]) -> Iterator[dict[str, Any]]:
    """The audit events among JSON log lines; other lines (text, other events) are skipped."""
    for line in lines:
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict) and record.get("event", record.get("msg")) in AUDIT_EVENTS:
            yield record


def _open(path: str) -> TextIO:
    if path == "-":
        return sys.stdin
    return Path(path).open(encoding="utf-8", errors="replace")
