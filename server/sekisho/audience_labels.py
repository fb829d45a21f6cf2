"""The `audience` label of the exchange metrics (docs/security.md, issue 15 item 6): bounded, and
never an audience only an anonymous caller named."""

from collections.abc import Iterable

OTHER_AUDIENCE = "other"
UNKNOWN_AUDIENCE = "unknown"


class AudienceLabels:
    """Names only audiences the service knows (issue 15 item 6): configured ones and those a
    token was granted for. Any other audience is "unknown", so an anonymous probe never becomes a
    label (an unknown audience must look like a denial, and attacker-chosen names must not fill
    the label slots); past `limit` known audiences, further ones count as "other"."""

    def __init__(self, limit: int, known: Iterable[str] = ()) -> None:
        self._limit = limit
        self._known: set[str] = set(sorted(set(known))[:limit])

    def __call__(self, audience: str, *, granted: bool = False) -> str:
        if audience in self._known:
            return audience
        if not granted or not audience:
            return UNKNOWN_AUDIENCE
        if len(self._known) < self._limit:
            self._known.add(audience)
            return audience
        return OTHER_AUDIENCE
