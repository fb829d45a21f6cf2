"""The revocation audit log (`sekisho revoke`) read as docs/security-team.md tells its readers to:
each change's pending line (`"outcome": "pending"`) is followed, next in the log, by its result
line (no `outcome`: the change made, with `marked`) or its `failed` line, the same time, action,
kind, key, operator, reason and repeat. Counting changes counts result lines only."""

import json
from pathlib import Path
from typing import Any

PAIRED = ("time", "action", "kind", "key", "operator", "reason", "repeat")


def audit_lines(path: Path) -> list[dict[str, Any]]:
    """Every line of the log at `path` (none when it does not exist)."""
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def changes_made(lines: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The result lines, each checked to follow its own pending line; every pending line checked
    to be followed by its result or failed line (no command stopped between)."""
    made = []
    for index, line in enumerate(lines):
        if line.get("outcome") == "pending":
            after = lines[index + 1] if index + 1 < len(lines) else {}
            assert after.get("outcome") in (None, "failed"), (line, after)
            assert {f: after.get(f) for f in PAIRED} == {f: line[f] for f in PAIRED}, (line, after)
            assert line["marked"] is None and line["until"] is None, line
        elif "outcome" not in line:
            before = lines[index - 1] if index else {}
            assert before.get("outcome") == "pending", (before, line)
            made.append(line)
    return made
