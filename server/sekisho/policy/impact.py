"""Impact replay (`sekisho policy impact`): recorded decision inputs through the live and a
candidate policy, and what would change (docs/policy-authors.md#impact-replay).

Each decision log record's input is evaluated by both engines; their decisions are compared
with the same rules as shadow evaluation (difference.py). The live engine's decision is also
checked against the recorded result, defaults filled in (OPA's own decision log records the
policy's raw output): `reproduced` counts exact matches, so a log written by another policy
(or one whose policy reads a field the log hashes) is noticed, not trusted.
Users are named as recorded: subject.email, else subject.sub (hashes when the log hashes them;
the sub first when only the email is hashed).

A record whose input has the wrong shape where the replay reads it (`subject` or `request` not
an object, `request.scopes` not a list of strings, `request.audience` not a string) is skipped
and counted as malformed, its file and line kept for the first MALFORMED_SHOWN: before, one such
line ended the run with an AttributeError (red team session 13).

Memory does not grow with the log: the files are read line by line, and what is kept is the
counts, the users whose scopes change, and the decisions of the last MEMO_ENTRIES distinct
inputs, so an input logged again (a cached decision) is evaluated once while it is among them.
Before, every distinct input was kept for the whole run, and the input holds `now`, so almost
every record was distinct (~2 KB a record: 118 MB of RSS for 10,000 records, 178 MB for 40,000;
now 106 and 107 MB; red team session 13).
"""

import hashlib
import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sekisho.errors import ServiceError
from sekisho.lru import LruMap
from sekisho.models import Decision
from sekisho.policy.decision import InvalidDecisionError, parse_decision
from sekisho.policy.difference import decision_document, differences, effective_scopes
from sekisho.policy.engine import PolicyEngine
from sekisho.policy.redaction import is_pseudonym

MEMO_ENTRIES = 4096  # a SHA-256 digest and two decisions each
MALFORMED_SHOWN = 5


class DecisionFileError(ValueError):
    """A decision log file cannot be read; the message names it."""


@dataclass(frozen=True, slots=True)
class Recorded:
    """One decision log record: its input and, when the engine answered, its result."""

    input: dict[str, Any]
    result: dict[str, Any] | None


# A line Go's standard `log` package writes: OPA's runtime prints some (`2026/12/03 04:39:12
# http: superfluous response.WriteHeader call …`) as plain text on stderr, so a console decision
# log collected with stderr (`kubectl logs`, `2>&1`) has them between its JSON lines.
_GO_LOG_LINE = re.compile(r"\d{4}/\d\d/\d\d \d\d:\d\d:\d\d ")


class DecisionReader:
    """The records of decision log files, file by file, that carry an input object for the
    decision `path` (the query's entrypoint). Other JSON lines are skipped and counted: OPA's
    console decision log interleaves server messages and decisions of other paths; so are
    the plain-text lines of Go's log package that OPA's stderr adds. Anything else that is not
    JSON is an error (a truncated or corrupt file must not be replayed in part silently). A
    decision whose input the replay cannot read is skipped and counted in `malformed`, the first
    MALFORMED_SHOWN named in `malformed_at` ("file:line: what is wrong")."""

    def __init__(self, paths: Iterable[Path], path: str) -> None:
        self._paths = list(paths)
        self._path = path
        self.skipped = 0
        self.malformed = 0
        self.malformed_at: list[str] = []

    def __iter__(self) -> Iterator[Recorded]:
        """Raises: DecisionFileError on an unreadable file or a line that is not JSON."""
        for path in self._paths:
            try:
                with path.open(encoding="utf-8") as lines:
                    for number, line in enumerate(lines, 1):
                        if line.strip():
                            yield from self._record(line, f"{path}:{number}")
            except OSError as exc:
                raise DecisionFileError(f"{path}: cannot read: {exc.strerror}") from exc

    def _record(self, line: str, where: str) -> Iterator[Recorded]:
        try:
            event = json.loads(line)
        except ValueError as exc:
            if _GO_LOG_LINE.match(line):
                self.skipped += 1
                return
            raise DecisionFileError(f"{where}: not a JSON line: {exc}") from exc
        if not isinstance(event, dict):
            raise DecisionFileError(f"{where}: not a JSON object")
        document, result = event.get("input"), event.get("result")
        if not isinstance(document, dict) or event.get("path", self._path) != self._path:
            self.skipped += 1
            return
        problem = malformed_input(document)
        if problem:
            self.malformed += 1
            if len(self.malformed_at) < MALFORMED_SHOWN:
                self.malformed_at.append(f"{where}: {problem}")
            return
        yield Recorded(document, result if isinstance(result, dict) else None)


def malformed_input(document: dict[str, Any]) -> str:
    """What is wrong with a recorded input where the replay reads it (docs/architecture.md §5),
    or "" when nothing is. An absent or null part reads as empty, as the replay always read it."""
    subject, request = document.get("subject"), document.get("request")
    if subject is not None and not isinstance(subject, dict):
        return "input.subject is not an object"
    if request is None:
        return ""
    if not isinstance(request, dict):
        return "input.request is not an object"
    scopes = request.get("scopes")
    if scopes is not None and (
        not isinstance(scopes, list) or not all(isinstance(s, str) for s in scopes)
    ):
        return "input.request.scopes is not a list of strings"
    if not isinstance(request.get("audience", ""), str):
        return "input.request.audience is not a string"
    return ""


@dataclass
class UserChange:
    """What one user would gain and lose on one downstream."""

    gained: set[str] = field(default_factory=set)
    lost: set[str] = field(default_factory=set)
    decisions: int = 0


@dataclass
class Impact:
    """Counts over every replayed record."""

    replayed: int = 0
    skipped: int = 0
    malformed: int = 0
    malformed_at: list[str] = field(default_factory=list)
    reproduced: int = 0
    changed: int = 0
    by_audience: dict[str, dict[str, int]] = field(default_factory=dict)
    users: dict[tuple[str, str], UserChange] = field(default_factory=dict)

    def by_kind(self) -> dict[str, int]:
        totals: dict[str, int] = {}
        for kinds in self.by_audience.values():
            for kind, count in kinds.items():
                totals[kind] = totals.get(kind, 0) + count
        return dict(sorted(totals.items()))

    def count(self, record: Recorded, live: Decision, candidate: Decision | None) -> None:
        self.replayed += 1
        if record.result is not None and _reproduces(decision_document(live), record.result):
            self.reproduced += 1
        request = record.input.get("request") or {}
        requested = request.get("scopes") or []
        kinds = differences(live, candidate, requested)
        if not kinds:
            return
        self.changed += 1
        audience = str(request.get("audience", ""))
        per_kind = self.by_audience.setdefault(audience, {})
        for kind in kinds:
            per_kind[kind] = per_kind.get(kind, 0) + 1
        before = effective_scopes(live, requested)
        after = frozenset() if candidate is None else effective_scopes(candidate, requested)
        if before != after:
            change = self.users.setdefault((user_of(record.input), audience), UserChange())
            change.gained |= after - before
            change.lost |= before - after
            change.decisions += 1


def _reproduces(live: dict[str, Any], recorded: dict[str, Any]) -> bool:
    """Sekisho records results with every default filled in; OPA's own decision log records
    the policy's raw output, which is compared after parsing."""
    if live == recorded:
        return True
    try:
        return live == decision_document(parse_decision(recorded))
    except InvalidDecisionError:
        return False


def user_of(document: dict[str, Any]) -> str:
    """The user as recorded: subject.email, else subject.sub. When the log hashed the email but
    not the sub (the default `hash_fields`), the sub leads, so the report says who it is."""
    subject = document.get("subject") or {}
    email, sub = str(subject.get("email") or ""), str(subject.get("sub") or "")
    if email and sub and is_pseudonym(email) and not is_pseudonym(sub):
        return f"{sub} ({email})"
    return email or sub


async def replay(
    records: Iterable[Recorded], live: PolicyEngine, candidate: PolicyEngine
) -> Impact:
    """Evaluate every record through both engines and count; an input among the last
    MEMO_ENTRIES distinct ones is not evaluated again."""
    impact = Impact()
    decided: LruMap[bytes, tuple[Decision, Decision | None]] = LruMap(MEMO_ENTRIES)
    for record in records:
        text = json.dumps(record.input, sort_keys=True, separators=(",", ":"))
        key = hashlib.sha256(text.encode()).digest()
        pair = decided.get(key)
        if pair is None:
            pair = (await live.decide(record.input), await _decide(candidate, record.input))
            decided.put(key, pair)
        impact.count(record, *pair)
    return impact


async def _decide(engine: PolicyEngine, document: dict[str, Any]) -> Decision | None:
    try:
        return await engine.decide(document)
    except ServiceError:  # the candidate unable to decide an input is a change of kind `error`
        return None
