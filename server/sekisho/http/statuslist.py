"""The Status List endpoints (draft-ietf-oauth-status-list §8, §9).

- `GET {issuer path}/statuslists/{id}`: the Status List Token, `application/statuslist+jwt`, with
  `Cache-Control: max-age` = its `ttl`, so HTTP caches and verifiers agree on freshness.
- `GET {issuer path}/statuslists`: the aggregation document `{"status_lists": [uri, …]}`, the
  `status_list_aggregation_endpoint` of the RFC 8414 metadata.

Both are anonymous. While the store cannot be read (or no key can sign) they answer 503, and
`status_list_unavailable` is one WARNING line per interval counting the requests since the last
(log_throttle.py), not one per request: a flood of cheap GETs during an outage wrote one line
each, ~29 us of the event loop and 250 bytes (red team session 12).
"""

import logging
from collections.abc import Mapping

from aiohttp import web

from sekisho.clock import Clock
from sekisho.constants import MEDIA_TYPE_STATUS_LIST
from sekisho.errors import TemporarilyUnavailableError
from sekisho.log_throttle import SUMMARY_INTERVAL, LogThrottle
from sekisho.status.listtoken import StatusListTokens, StatusReadsSaturatedError
from sekisho.status.store import StatusStoreError

log = logging.getLogger(__name__)

STATUS_LISTS_PATH = "/statuslists"
_ACCEPTABLE = frozenset({MEDIA_TYPE_STATUS_LIST, "application/*", "*/*"})
# Media ranges of an Accept header read at most (_accepts); a browser sends fewer than 10.
MAX_MEDIA_RANGES = 16


def _accepts(header: str) -> bool:
    """Whether `header` (Accept) admits the Status List Token. A header of more than
    MAX_MEDIA_RANGES ranges is disregarded, as RFC 9110 §12.5.1 allows: reading all of them cost
    ~0.4 ms of the event loop for 8 KB of `a,` (4,000 ranges), an unauthenticated request ~6
    times as dear as the answer (red team session 14)."""
    ranges = header.split(",", MAX_MEDIA_RANGES)
    if not header.strip() or len(ranges) > MAX_MEDIA_RANGES:
        return True
    return any(item.split(";")[0].strip().lower() in _ACCEPTABLE for item in ranges)


# A refusal is never stored by an HTTP cache in front of the list URL. List ids are sequential:
# a 404 for the next one, asked for before it is leased and kept by a cache (404 is heuristically
# cacheable, RFC 9111 §4.2.2), left every token minted into that list uncheckable downstream for
# as long as the cache held it (red team session 15).
_NO_STORE: Mapping[str, str] = {"Cache-Control": "no-store"}


def _unavailable() -> web.Response:
    return web.Response(
        status=503,
        text="status list temporarily unavailable",
        headers={"Retry-After": "1", **_NO_STORE},
    )


class StatusListEndpoint:
    """aiohttp handlers over StatusListTokens."""

    def __init__(
        self, tokens: StatusListTokens, clock: Clock, interval: float = SUMMARY_INTERVAL
    ) -> None:
        self._tokens = tokens
        self._unavailable = LogThrottle(clock, interval)

    def add_routes(self, app: web.Application, issuer_path: str) -> None:
        app.router.add_get(issuer_path + STATUS_LISTS_PATH, self.aggregation)
        app.router.add_get(issuer_path + STATUS_LISTS_PATH + "/{list_id:[0-9]{1,18}}", self.list)

    async def list(self, request: web.Request) -> web.Response:
        if not _accepts(request.headers.get("Accept", "")):
            return web.Response(
                status=406, text=f"this resource is {MEDIA_TYPE_STATUS_LIST}", headers=_NO_STORE
            )
        try:
            token = await self._tokens.token(int(request.match_info["list_id"]))
        except StatusReadsSaturatedError:
            return _unavailable()
        except (StatusStoreError, TemporarilyUnavailableError) as exc:
            return self._store_unavailable(exc)
        if token is None:
            return web.Response(status=404, text="no such status list", headers=_NO_STORE)
        return web.Response(
            body=token.encode("ascii"),
            headers={
                "Content-Type": MEDIA_TYPE_STATUS_LIST,
                "Cache-Control": f"public, max-age={self._tokens.ttl_seconds}",
            },
        )

    async def aggregation(self, _: web.Request) -> web.Response:
        try:
            uris = await self._tokens.live_uris()
        except StatusReadsSaturatedError:
            return _unavailable()
        except StatusStoreError as exc:
            return self._store_unavailable(exc)
        return web.json_response(
            {"status_lists": uris},
            headers={"Cache-Control": f"public, max-age={self._tokens.ttl_seconds}"},
        )

    def _store_unavailable(self, problem: Exception) -> web.Response:
        if (unavailable := self._unavailable.count()) is not None:
            log.warning(
                "status_list_unavailable",
                extra={
                    "unavailable": unavailable,  # requests since the last line (first: this one)
                    "interval": self._unavailable.interval,
                    "last": str(problem),
                },
            )
        return _unavailable()
