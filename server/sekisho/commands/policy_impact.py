"""`sekisho policy impact`: replay recorded decisions through the live and a candidate policy
folder and print what would change (docs/policy-authors.md#impact-replay). Needs no running
service: both folders are loaded by the embedded engine, as `sekisho policy test` does."""

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import Any

from sekisho.commands import SubParsers
from sekisho.config import Settings
from sekisho.errors import PolicyLoadError
from sekisho.policy.engine import PolicyRuntime
from sekisho.policy.impact import DecisionFileError, DecisionReader, Impact, replay
from sekisho.policy.wasm.compiler import entrypoint_of


def register(policy_sub: SubParsers, common: argparse.ArgumentParser) -> None:
    impact = policy_sub.add_parser(
        "impact",
        parents=[common],
        help="replay recorded decisions through the live and a candidate policy: what changes",
    )
    impact.add_argument(
        "--decisions",
        required=True,
        action="append",
        type=Path,
        help="decision log file (JSON lines); repeat for rotated files",
    )
    impact.add_argument("--candidate", required=True, type=Path, help="candidate policy folder")
    impact.add_argument(
        "--live", type=Path, help="live policy folder (default: [policy] path of the config)"
    )
    impact.add_argument(
        "--max-changes",
        type=int,
        help="exit 1 when more than this many replayed decisions change",
    )
    impact.add_argument(
        "--allow-malformed",
        action="store_true",
        help="exit by --max-changes alone when decisions whose input cannot be read were "
        "skipped (default: exit 2, as the replay is incomplete)",
    )
    impact.add_argument(
        "--format", choices=("text", "json"), default="text", help="report format (default: text)"
    )


def run(args: argparse.Namespace, settings: Settings) -> int:
    """0, or 1 above --max-changes, or 2 when a decision was malformed (unless
    --allow-malformed). Raises: PolicyLoadError, DecisionFileError (a ValueError; also when no
    line of the files is a decision to replay), OSError."""
    live_dir = args.live or settings.policy.path
    impact = asyncio.run(_replay(settings, args.decisions, live_dir, args.candidate))
    if impact.replayed == 0:
        # A replay of nothing "passes" any --max-changes gate: say so instead (the usual cause is
        # a service log or the audit log given for the decision log).
        raise DecisionFileError(
            f"no decision of {entrypoint_of(settings.policy.query)} in "
            f"{', '.join(str(f) for f in args.decisions)} ({impact.skipped} other lines skipped"
            f"{_malformed_note(impact)}): give the decision log ([decision_log] path, or OPA's "
            "console decision log)"
        )
    exceeded = args.max_changes is not None and impact.changed > args.max_changes
    if args.format == "json":
        document = impact_document(impact) | {"max_changes": args.max_changes}
        print(json.dumps(document | {"exceeded": exceeded}, indent=2, sort_keys=True))
    else:
        print(impact_text(impact, args.max_changes, exceeded))
    if impact.malformed and not args.allow_malformed:
        # A gate over part of the log passes on what it did not read: the report is printed,
        # and the status says the replay is incomplete.
        print(_incomplete(impact, args.decisions), file=sys.stderr)
        return 2
    return 1 if exceeded else 0


def _engine(settings: Settings, folder: Path) -> PolicyRuntime:
    from sekisho.clock import SystemClock
    from sekisho.components import build_policy_engine
    from sekisho.loops import LoopFailures, not_counted

    policy = settings.policy.model_copy(update={"engine": "embedded", "path": folder.resolve()})
    return build_policy_engine(
        settings.model_copy(update={"policy": policy}), SystemClock(), LoopFailures(not_counted)
    )


async def _start(engine: PolicyRuntime, role: str, folder: Path) -> None:
    """Load one side of the replay; its refusal names the side: the self-test's words ("an
    unregistered audience was allowed") did not say whether the live or the candidate folder
    failed (newcomer run, session 19). Raises: PolicyLoadError."""
    try:
        await engine.start()
    except PolicyLoadError as exc:
        raise PolicyLoadError(f"the {role} policy {folder} does not load: {exc}") from exc


async def _replay(settings: Settings, files: list[Path], live_dir: Path, candidate: Path) -> Impact:
    live, proposed = _engine(settings, live_dir), _engine(settings, candidate)
    await _start(live, "live", live_dir)
    try:
        await _start(proposed, "candidate", candidate)
        try:
            records = DecisionReader(files, entrypoint_of(settings.policy.query))
            impact = await replay(records, live, proposed)
            impact.skipped = records.skipped
            impact.malformed, impact.malformed_at = records.malformed, records.malformed_at
            return impact
        finally:
            await proposed.close()
    finally:
        await live.close()


def impact_document(impact: Impact) -> dict[str, Any]:
    """The report as JSON (--format json)."""
    return {
        "replayed": impact.replayed,
        "skipped": impact.skipped,
        "malformed": impact.malformed,
        "malformed_at": impact.malformed_at,
        "reproduced": impact.reproduced,
        "changed": impact.changed,
        "by_kind": impact.by_kind(),
        "by_audience": {
            aud: dict(sorted(k.items())) for aud, k in sorted(impact.by_audience.items())
        },
        "scope_changes": [
            {
                "user": user,
                "audience": audience,
                "gained": sorted(change.gained),
                "lost": sorted(change.lost),
                "decisions": change.decisions,
            }
            for (user, audience), change in sorted(impact.users.items())
        ],
    }


def impact_text(impact: Impact, max_changes: int | None, exceeded: bool) -> str:
    """The report for a person (--format text)."""
    lines = [
        f"== replayed {_decisions(impact.replayed)} ({impact.skipped} other lines skipped); "
        f"the live policy reproduces {impact.reproduced} of the recorded results",
        f"== changed: {impact.changed}" + _limit(max_changes, exceeded),
    ]
    if impact.malformed:
        lines.insert(1, f"== not replayed: {_malformed(impact)}")
    for audience, kinds in sorted(impact.by_audience.items()):
        counts = ", ".join(f"{kind} {count}" for kind, count in sorted(kinds.items()))
        lines.append(f"  {audience or '(no audience)'}: {counts}")
    if impact.users:
        lines.append("== users x downstreams gaining or losing scopes")
    for (user, audience), change in sorted(impact.users.items()):
        scopes = [f"+{s}" for s in sorted(change.gained)] + [f"-{s}" for s in sorted(change.lost)]
        lines.append(f"  {user}  {audience}  {' '.join(scopes)}  ({_decisions(change.decisions)})")
    return "\n".join(lines)


def _malformed(impact: Impact) -> str:
    """'N malformed decisions, skipped (first: file:line: what is wrong; ...)'."""
    first = "; ".join(impact.malformed_at)
    return f"{_decisions(impact.malformed, 'malformed')}, skipped (first: {first})"


def _incomplete(impact: Impact, files: list[Path]) -> str:
    return (
        f"sekisho: {_decisions(impact.malformed, 'malformed')} in "
        f"{', '.join(str(f) for f in files)} "
        "not replayed (the report names the first): no --max-changes gate passes on part of "
        "the log; fix or drop those lines, or pass --allow-malformed to gate on the rest"
    )


def _malformed_note(impact: Impact) -> str:
    return f"; {_malformed(impact)}" if impact.malformed else ""


def _decisions(count: int, kind: str = "") -> str:
    """'1 decision', '2 malformed decisions'."""
    return f"{count} {kind + ' ' if kind else ''}decision" + ("" if count == 1 else "s")


def _limit(max_changes: int | None, exceeded: bool) -> str:
    if max_changes is None:
        return ""
    return f" (max {max_changes}: {'EXCEEDED' if exceeded else 'ok'})"
