"""How soon a change reaches each party is one fact (status/propagation.py): the bounds
docs/security-team.md states for the default settings are the ones `sekisho revoke` prints."""

from pathlib import Path

from sekisho.config import StatusListConfig
from sekisho.status.propagation import downstreams_within, exchanges_within, served_list_within

DOC = Path(__file__).resolve().parents[3] / "docs" / "security-team.md"


def test_the_runbook_states_the_bounds_the_cli_prints() -> None:
    # Session 11: the CLI printed "~62 s (list ttl + 2 s)" where the runbook said 61.5 s.
    text = DOC.read_text(encoding="utf-8")
    defaults = StatusListConfig()
    served, downstreams = served_list_within(), downstreams_within(defaults.ttl_seconds)
    assert f"| ≤ ~{exchanges_within(defaults.poll_seconds):g} s | `poll_seconds`" in text
    assert f"| the served Status List Token | ≤ ~{served:g} s |" in text
    assert (
        f"≤ `ttl_seconds` + ~{served:g} s ({downstreams:g} s with the defaults, as `sekisho "
        f'revoke` prints: "within ~{downstreams:g} s (list ttl + {served:g} s)")'
    ) in text
