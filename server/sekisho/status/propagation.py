"""How soon a revocation, suspension or reinstatement reaches each party, from `[status_list]`:
the one place the CLI's promises and docs/security-team.md ("How long until every downstream
refuses") take their numbers from (tests/unit/status/test_propagation.py holds the docs to it)."""

from sekisho.status.listtoken import LIST_REBUILD_SECONDS

# One store round trip and the scheduling around it, added to each interval below.
MARGIN_SECONDS = 0.5


def exchanges_within(poll_seconds: float) -> float:
    """New exchanges refused (or served again) on every worker: its next poll of the store
    (`[status_list] poll_seconds`), then a margin."""
    return poll_seconds + MARGIN_SECONDS


def served_list_within() -> float:
    """A marked token reads so in the served Status List Token: the reuse of a signed list."""
    return LIST_REBUILD_SECONDS + MARGIN_SECONDS


def downstreams_within(ttl_seconds: float) -> float:
    """A downstream verifying with `sekisho.verify` StatusListClient refuses (or accepts again)
    a marked token: the copy of the list it may hold (`[status_list] ttl_seconds`), then the
    served list."""
    return ttl_seconds + served_list_within()
