"""How long a fetched response is used (RFC 9111 §4.2): its Cache-Control max-age (or a status
list's ttl) less its Age, within bounds. The one freshness rule of the SDK's caches, the JWKS
(jwks.py) and status lists (status.py).
"""

import re

_MAX_AGE = re.compile(r"(?:^|,)\s*max-age\s*=\s*(\d+)", re.IGNORECASE)
_AGE = re.compile(r"\s*([0-9]+)\s*")
# RFC 9111 §1.2.2: a delta-seconds greater than a cache can represent is taken as 2^31.
_MAX_DELTA_SECONDS = 2**31
# The least time a downstream holds a fetched set, whatever its max-age. With `no-store` or
# `max-age=0` (`[tokens] jwks_max_age_seconds = 0`, or a proxy's header) the set expired as the
# clock moved past the fetch: every verification fetched it (a new connection each, before the
# signature check, so one per forged token) and then failed as unavailable (red team session
# 12). A key the publisher drops is refused at most this long after.
MIN_FRESH_SECONDS = 1.0
# The longest time a downstream holds a fetched set or status list, whatever its max-age or ttl:
# the most Sekisho ever sends ([tokens] jwks_max_age_seconds and [status_list] ttl_seconds are
# at most a day). A CDN in front of the JWKS adding a static asset's `max-age=31536000` had
# downstreams keep a key `sekisho keys revoke` removed for a year, and a max-age past a double's
# range (`max-age=` and 309 digits) read as infinity, which took the set for the server's (held
# until refreshed in the background, usable for max_stale_seconds: 0 s), so every verification
# failed as unavailable (red team session 20).
MAX_FRESH_SECONDS = 86_400.0


def max_age_seconds(cache_control: str, default: float) -> float:
    """The `max-age` directive of a Cache-Control value; `no-store`/`no-cache` mean 0."""
    lowered = cache_control.lower()
    if "no-store" in lowered or "no-cache" in lowered:
        return 0.0
    match = _MAX_AGE.search(cache_control)
    # RFC 9111 §1.2.2: a delta-seconds greater than a cache can represent is taken as 2^31.
    return min(float(match.group(1)), _MAX_DELTA_SECONDS) if match else default


def age_seconds(age: str) -> float:
    """The `Age` header (RFC 9111 §5.1): how long an HTTP cache has held the response; 0 when
    absent or not delta-seconds. A response is fresh for its max-age minus its age (§4.2): a
    copy a cache took just before a key revocation (or a status list before a `revoke`) and
    serves near the end of its max-age was otherwise held for a whole max-age more, twice the
    bound the publisher set (red team session 14)."""
    match = _AGE.fullmatch(age)
    if match is None:
        return 0.0
    digits = match.group(1).lstrip("0") or "0"
    # Over ten digits it is over 2^31 (and int() refuses over 4,300): taken as 2^31, not
    # ignored, which made the copy as young as its `iat` (red team session 15b).
    return float(min(int(digits), _MAX_DELTA_SECONDS) if len(digits) <= 10 else _MAX_DELTA_SECONDS)


def fresh_seconds(lifetime: float, age: float) -> float:
    """How long a response just received is used (RFC 9111 §4.2): its `lifetime` (max-age, or a
    status list's ttl) less its `age`, at least MIN_FRESH_SECONDS and at most MAX_FRESH_SECONDS.
    The one rule of the JWKS and status list caches."""
    return min(max(lifetime - age, MIN_FRESH_SECONDS), MAX_FRESH_SECONDS)
