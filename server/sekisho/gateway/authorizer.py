"""Per-request authorization for a gateway (Envoy ext_authz): take the user's token from a header,
pick the downstream from the route table, run the one exchange pipeline, and say which headers the
gateway must set — or which HTTP error it must answer with. Transport-neutral: rpc/ext_authz.py
turns these verdicts into CheckResponse messages.

Error answers follow RFC 6750 §3 (WWW-Authenticate: Bearer error="invalid_token" |
"insufficient_scope", scope=) plus the policy's consent URL and RFC 9470 step-up parameters.

Deadlines (red team session 20, finding 1): a Check's exchange runs under that Check's deadline,
as ExchangeToken's does (admission refuses at once what cannot finish in time, and the pipeline
stops before policy and signing once it has passed), so a Check Envoy has given up on never holds
an admission slot. Concurrent Checks of one key share one exchange, which runs under the deadline
of the Check that started it; a Check that joined it with a later deadline (or none) and finds it
refused for overload (429, 503: the earlier deadline ran out, or admission saw it could not be
met) runs one exchange of its own, under its own deadline, rather than fail early.
"""

import asyncio
import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass, field

from sekisho.constants import TOKEN_TYPE_ACCESS_TOKEN
from sekisho.errors import InvalidClientError, ServiceError
from sekisho.exchange import TokenExchanger
from sekisho.gateway.cache import GatewayTokenCache, cache_key
from sekisho.gateway.routes import Route, RouteTable
from sekisho.identity.role import InboundVerifier
from sekisho.models import Caller
from sekisho.singleflight import SingleFlight
from sekisho.validation import GATEWAY_CONTEXT_MEMBER, ExchangeParams

log = logging.getLogger(__name__)

AUTHORIZATION = "authorization"
_RETRYABLE_STATUSES = frozenset({429, 503})  # answered with Retry-After


@dataclass(frozen=True, slots=True)
class GatewayRequest:
    """What the gateway tells us about one HTTP request (header names lower case)."""

    authority: str
    path: str
    method: str
    headers: Mapping[str, str]
    caller: Caller = field(default_factory=Caller)
    # The route Envoy chose, from its per-route ext_authz context_extensions; None = not sent.
    route_name: str | None = None
    # Seconds left before the Check's gRPC deadline (None = Envoy sent none), and the overload
    # fairness key for a caller without an id (the gateway's connection).
    time_budget: float | None = None
    flow: str = ""


@dataclass(frozen=True, slots=True)
class Allowed:
    """Forward the request with these headers set (overwriting) and these removed."""

    headers_to_set: Mapping[str, str]
    headers_to_remove: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Denied:
    """Answer the client directly; the upstream is never reached."""

    status: int
    headers: Mapping[str, str]
    body: str


Verdict = Allowed | Denied


@dataclass(frozen=True, slots=True)
class TokenHeader:
    """Where the user's token arrives: `name: <scheme> <token>` (scheme "" = bare token)."""

    name: str = AUTHORIZATION
    scheme: str = "Bearer"

    def extract(self, headers: Mapping[str, str]) -> str:
        value = headers.get(self.name, "").strip()
        if not self.scheme:
            return value
        scheme, _, token = value.partition(" ")
        # RFC 9110 §11.1: the auth scheme is case-insensitive.
        return token.strip() if scheme.lower() == self.scheme.lower() else ""


class GatewayAuthorizer:
    """Turns one gateway request into a verdict; never allows on an error."""

    def __init__(
        self,
        exchanger: TokenExchanger,
        routes: RouteTable,
        cache: GatewayTokenCache,
        *,
        token_header: TokenHeader,
        tool_header: str,
        route_from_envoy: bool = False,
        subject_verifier: InboundVerifier | None = None,
    ) -> None:
        """`subject_verifier` (the verified-subject cache, in the service) is asked again at
        every cache hit: a cached token is served only while the user's token still verifies
        (red team session 13: after the IdP dropped the key that signed it, the gateway kept
        allowing the token from this cache until the minted one neared expiry)."""
        self._exchanger = exchanger
        self._subject_verifier = subject_verifier
        self._route_from_envoy = route_from_envoy
        self._routes = routes
        self._cache = cache
        self._token_header = token_header
        self._tool_header = tool_header
        # One exchange per key at a time: a burst of concurrent misses shares the first one,
        # which runs under the deadline of the Check that started it (math.inf = none).
        self._flights: SingleFlight[str, str] = SingleFlight()
        self._flight_deadlines: dict[asyncio.Future[str], float] = {}

    def _route_of(self, request: GatewayRequest) -> Route | None:
        # Envoy's own choice when it says which route it took: re-matching host and path here
        # could pick another downstream than the one Envoy forwards to (issue 15 item 3).
        if request.route_name is not None:
            return self._routes.named(request.route_name)
        if self._route_from_envoy:
            return None
        return self._routes.match(request.authority, request.path, request.method)

    async def authorize(self, request: GatewayRequest) -> Verdict:
        """Allowed with the minted token, or Denied with the HTTP answer; never raises."""
        route = self._route_of(request)
        if route is None:
            # The path only: a query string can carry credentials (?access_token=…), and the
            # value is the client's, so it is cut to a bound (redaction.py scrubs the rest).
            path = request.path.split("?", 1)[0][:256]
            log.info("gateway_no_route", extra={"path": path, "method": request.method[:16]})
            return Denied(403, {}, "no route for this request")
        subject_token = self._token_header.extract(request.headers)
        if not subject_token:
            return Denied(401, {"www-authenticate": 'Bearer realm="sekisho"'}, "token required")
        context = self._context(request)
        key = cache_key(subject_token, str(route.index), *_key_parts(request.caller, context))
        token = self._cache.get(key)
        if token is not None and not await self._still_verifies(subject_token):
            self._cache.drop(key)
            token = None
        if token is None:
            try:
                token = await self._shared_exchange(
                    _Exchange(subject_token, route, context, request.caller, key, request.flow),
                    self._deadline_of(request),
                )
            except ServiceError as error:
                return denial(error, route)
        return self._allowed(token)

    async def _still_verifies(self, subject_token: str) -> bool:
        """Whether the user's token verifies now, as the exchange read it (an access token).
        A refusal of any kind sends the request through the exchange, which answers it."""
        if self._subject_verifier is None:
            return True
        try:
            await self._subject_verifier.verify(subject_token, TOKEN_TYPE_ACCESS_TOKEN)
        except ServiceError:
            return False
        return True

    def _deadline_of(self, request: GatewayRequest) -> float:
        """The Check's deadline on the cache's clock; math.inf when Envoy sent none."""
        if request.time_budget is None:
            return math.inf
        return self._cache.clock.now() + request.time_budget

    async def _shared_exchange(self, work: "_Exchange", deadline: float) -> str:
        flight, flight_deadline = self._flight(work, deadline)
        # A gateway cancelling one Check must not cancel the exchange others wait on.
        try:
            return await asyncio.shield(flight)
        except ServiceError as error:
            if not (
                error.http_status in _RETRYABLE_STATUSES
                and flight_deadline < deadline
                and self._cache.clock.now() < deadline
            ):
                raise
        # The shared exchange ran out of its starter's time, not this Check's: one more, joined
        # or started under this Check's deadline, and no further.
        flight, _ = self._flight(work, deadline)
        return await asyncio.shield(flight)

    def _flight(self, work: "_Exchange", deadline: float) -> tuple["asyncio.Future[str]", float]:
        """The exchange running for the key (started under `deadline` when none is), and the
        deadline it runs under."""
        flight = self._flights.start(work.key, lambda: self._exchange(work, deadline))
        if flight not in self._flight_deadlines:  # started here
            self._flight_deadlines[flight] = deadline
            flight.add_done_callback(self._flight_deadlines.pop)
        return flight, self._flight_deadlines[flight]

    async def _exchange(self, work: "_Exchange", deadline: float) -> str:
        key = work.key
        generation = self._cache.generation  # a reload during the exchange: do not keep it
        budget = None if deadline == math.inf else max(0.0, deadline - self._cache.clock.now())
        result = await self._exchanger.handle(
            _GatewayCall(work.caller, params_of(work.subject_token, work.route, work.context)),
            time_budget=budget,
            flow=work.flow,
        )
        minted = result.minted
        self._cache.put(
            key,
            minted.token,
            minted.expires_at,
            covers=result.revocation_keys,
            generation=generation,
            kid=minted.kid,
        )
        return result.minted.token

    def _context(self, request: GatewayRequest) -> dict[str, str]:
        context = {
            GATEWAY_CONTEXT_MEMBER: "ext_authz",  # direct callers cannot send it (validation)
            "method": request.method.upper(),
            "path": request.path.split("?", 1)[0],  # query strings may carry secrets
            "host": request.authority,
        }
        tool = request.headers.get(self._tool_header, "")
        if tool:
            # Whole, never cut: policy must see the value the upstream reads (a long one is
            # refused by the context limits at validation, limits.max_context_bytes).
            context["tool"] = tool
        return context

    def _allowed(self, token: str) -> Allowed:
        remove: tuple[str, ...] = ()
        if self._token_header.name != AUTHORIZATION:
            # The IdP token must never reach the downstream, whatever header carried it.
            remove = (self._token_header.name,)
        return Allowed({AUTHORIZATION: f"Bearer {token}"}, remove)


def params_of(subject_token: str, route: Route, context: Mapping[str, str]) -> ExchangeParams:
    """What the route asks for on the user's behalf; the token is an access token (RFC 6750)."""
    return ExchangeParams(
        subject_token=subject_token,
        subject_token_type=TOKEN_TYPE_ACCESS_TOKEN,
        requested_token_type=route.requested_token_type,
        audience=route.audience,
        resources=route.resources,
        scopes=route.scopes,
        context=context,
        from_gateway=True,
    )


@dataclass(frozen=True, slots=True)
class _Exchange:
    """One exchange the route asks for, shared by the Checks of its cache key."""

    subject_token: str
    route: Route
    context: dict[str, str]
    caller: Caller
    key: str
    flow: str


@dataclass(frozen=True, slots=True)
class _GatewayCall:
    """A gateway request as the pipeline reads it (exchange.ExchangeCall): the caller was
    settled by the Check handler and the parameters by the route table."""

    known_caller: Caller
    known_params: ExchangeParams

    async def caller(self) -> Caller:
        return self.known_caller

    async def params(self) -> ExchangeParams:
        return self.known_params


def _key_parts(caller: Caller, context: Mapping[str, str]) -> list[str]:
    parts = [caller.id, caller.spiffe_id, caller.authenticated_by]
    parts.extend(f"{name}={context[name]}" for name in sorted(context))
    return parts


def _quoted(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _challenge(params: Mapping[str, str]) -> str:
    return "Bearer " + ", ".join(f"{name}={_quoted(value)}" for name, value in params.items())


def denial(error: ServiceError, route: Route) -> Denied:
    """The HTTP answer for a refused exchange: the class's RFC 6750 §3.1 `bearer_error`, or, for
    refusals that are not about the request (dependency down, rate limit, bug), its HTTP status
    with a generic body."""
    if error.bearer_error == "invalid_token":
        challenge = _challenge(
            {"error": "invalid_token", "error_description": error.public_message}
        )
        return Denied(401, {"www-authenticate": challenge}, "invalid token")
    if error.bearer_error == "invalid_request":
        return invalid_request()
    if error.bearer_error == "insufficient_scope":
        return _forbidden(error, route)
    if error.http_status in _RETRYABLE_STATUSES:
        # slow_down carries the overload control's own estimate of when to come back.
        retry_after = error.metadata.get("retry_after", "1")
        return Denied(error.http_status, {"retry-after": retry_after}, error.default_message)
    return Denied(500, {}, "internal error")


def invalid_request() -> Denied:
    """RFC 6750 §3.1 invalid_request: 400 with its challenge."""
    return Denied(
        400, {"www-authenticate": _challenge({"error": "invalid_request"})}, "invalid request"
    )


def _forbidden(error: ServiceError, route: Route) -> Denied:
    params = {"error": "insufficient_scope", "error_description": error.public_message}
    if route.scopes:
        params["scope"] = " ".join(route.scopes)
    for name in ("authorization_url", "acr_values", "max_age"):
        if error.metadata.get(name):
            params[name] = error.metadata[name]
    if isinstance(error, InvalidClientError):
        params["error_description"] = "caller not allowed"
    return Denied(403, {"www-authenticate": _challenge(params)}, error.reason)
