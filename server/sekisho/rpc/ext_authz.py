"""Envoy's `envoy.service.auth.v3.Authorization/Check` (ext_authz) over the gateway authorizer.

Every outcome is an OK CheckResponse: allowed (headers to set/remove on the upstream request) or
denied (the HTTP status, headers and body Envoy answers the client with). A ServiceError never
becomes a gRPC error here, because Envoy would turn that into its own generic 403 and lose the
WWW-Authenticate challenge; a bug still answers 500, never allow (fail closed).

Caller identity: with mTLS on the gRPC listener the gateway itself is the caller (its certificate
identity, registered in [[callers]], `authenticated_by` "mtls"). `attributes.source.principal` is
what Envoy saw as the downstream peer (the URI SAN of its client certificate, a SPIFFE ID under
mTLS); it is asserted by the gateway, not authenticated by Sekisho, so `authenticated_by` stays
"none", and it replaces the gateway's identity only when `[gateway] trust_source_principal` says
the listener is reachable by the gateway alone (anyone else could claim any principal in a Check).
`[gateway] trusted_gateways` names the callers that may: a Check from any other registered caller
is refused (red team session 20: agents share grpc_listen with the gateway, so "only the gateway
reaches it" rarely held, and an agent could be exchanged as any workload it named). The gateway
is then in no key the exchange checks, so its own revocation or suspension (`sekisho revoke
caller <gateway>`) is checked here, before the authorizer: a revoked gateway's Checks stop, cache
hits included.
"""

import logging
from collections.abc import Callable, Iterable
from dataclasses import replace
from typing import Any

import grpc
from envoy.config.core.v3 import base_pb2
from envoy.service.auth.v3 import external_auth_pb2 as ext_authz_pb
from envoy.service.auth.v3 import external_auth_pb2_grpc as ext_authz_grpc
from envoy.type.v3 import http_status_pb2
from google.rpc import code_pb2, status_pb2

from sekisho.callers import CallerRegistry
from sekisho.errors import InvalidClientError, InvalidRequestError, ServiceError
from sekisho.gateway.authorizer import (
    Allowed,
    Denied,
    GatewayAuthorizer,
    GatewayRequest,
    invalid_request,
)
from sekisho.models import Caller
from sekisho.rpc.peer import PeerIdentities

log = logging.getLogger(__name__)

SERVICE_NAME = ext_authz_pb.DESCRIPTOR.services_by_name["Authorization"].full_name
_OVERWRITE = base_pb2.HeaderValueOption.OVERWRITE_IF_EXISTS_OR_ADD
_SPIFFE_PREFIX = "spiffe://"
# The per-route ext_authz context extension naming the [[gateway.routes]] entry Envoy chose.
ROUTE_EXTENSION = "sekisho_route"


def caller_of(source_principal: str) -> Caller:
    """The downstream peer Envoy reports; asserted by the gateway, not authenticated by us."""
    spiffe_id = source_principal if source_principal.startswith(_SPIFFE_PREFIX) else ""
    return Caller(id=source_principal, spiffe_id=spiffe_id, authenticated_by="none")


def gateway_request(
    check: Any, *, trust_source_principal: bool = False, peer: Caller | None = None
) -> GatewayRequest:
    """CheckRequest → GatewayRequest; headers from `headers` or, with raw headers, `header_map`.

    The caller is Envoy's source principal when trusted, else `peer` (the gateway's own mTLS
    identity), else anonymous.

    Raises: InvalidRequestError when a raw header is not UTF-8.
    """
    attributes = check.attributes
    http = attributes.request.http
    headers = {key.lower(): value for key, value in http.headers.items()}
    for key, value in _raw_headers(http.header_map).items():
        headers.setdefault(key, value)
    return GatewayRequest(
        authority=http.host or headers.get(":authority", ""),
        path=http.path,
        method=http.method,
        headers=headers,
        caller=caller_of(attributes.source.principal)
        if trust_source_principal
        else (peer or Caller()),
        route_name=attributes.context_extensions.get(ROUTE_EXTENSION),
    )


def _raw_headers(header_map: Any) -> dict[str, str]:
    """`header_map` (Envoy's `encode_raw_headers`) as the `headers` map reads: a repeated header
    joined with "," as Envoy joins it there, so both encodings give policy one value, and a
    repeated header never shows policy its first value while the upstream reads another.

    Raises: InvalidRequestError for bytes that are not UTF-8: never guessed ("replace" made
    b"x\\xff" and b"x\\xfe" one value for policy and the token cache, two for the upstream).

    Each name's values are joined once, at the end: joined entry by entry, every repeat copied
    the value so far, so a Check of one name repeated (32,000 entries of `a: b` in 256 KiB,
    within grpc_max_message_bytes) cost 40-85 ms of event-loop CPU, before any rate limit
    (red team session 20); now ~11 ms, the cost of reading the entries.
    """
    values: dict[str, list[str]] = {}
    for entry in header_map.headers:
        try:
            value = entry.value or entry.raw_value.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InvalidRequestError("a request header is not UTF-8") from exc
        values.setdefault(entry.key.lower(), []).append(value)
    return {key: ",".join(found) for key, found in values.items()}


def _header(name: str, value: str) -> Any:
    return base_pb2.HeaderValueOption(
        header=base_pb2.HeaderValue(key=name, value=value), append_action=_OVERWRITE
    )


def check_response(verdict: Allowed | Denied) -> Any:
    """The CheckResponse Envoy acts on."""
    if isinstance(verdict, Allowed):
        return ext_authz_pb.CheckResponse(
            status=status_pb2.Status(code=code_pb2.OK),
            ok_response=ext_authz_pb.OkHttpResponse(
                headers=[_header(k, v) for k, v in verdict.headers_to_set.items()],
                headers_to_remove=list(verdict.headers_to_remove),
            ),
        )
    return ext_authz_pb.CheckResponse(
        status=status_pb2.Status(code=code_pb2.PERMISSION_DENIED),
        denied_response=ext_authz_pb.DeniedHttpResponse(
            status=http_status_pb2.HttpStatus(code=verdict.status),
            headers=[_header(k, v) for k, v in verdict.headers.items()],
            body=verdict.body,
        ),
    )


class ExtAuthzServicer(ext_authz_grpc.AuthorizationServicer):  # type: ignore[misc]
    """ext_authz v3 Check: one exchange (or cache hit) per gateway request."""

    def __init__(
        self,
        authorizer: GatewayAuthorizer,
        *,
        trust_source_principal: bool,
        trusted_gateways: frozenset[str],
        callers: CallerRegistry,
        check_revoked: Callable[[Iterable[tuple[str, str]]], None] | None,
        audit_refusal: Callable[[ServiceError, Caller], None],
        crashed: Callable[[BaseException, Caller], ServiceError],
    ) -> None:
        # All required: defaults of "no client authentication" and "no audit" would fail open
        # in a composition that forgot them. `crashed` is the exchanger's: a bug here is logged
        # and audited as one at any other entry point (TokenExchanger.crashed).
        # `trusted_gateways`: the callers whose source principal is used (empty = any caller's).
        # `check_revoked`: the revocation gate's check_keys (None = no status store), for the
        # gateway's own id when the source principal replaces it.
        self._authorizer = authorizer
        self._trust_source_principal = trust_source_principal
        self._trusted_gateways = trusted_gateways
        self._check_revoked = check_revoked
        self._callers = callers
        self._peers = PeerIdentities()
        self._audit_refusal = audit_refusal  # a refused gateway is a decision: one audit line
        self._crashed = crashed

    async def Check(self, request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        try:
            # An mTLS gateway must be a registered caller, like any other (issue 7 item 1).
            peer = self._callers.authenticate(self._peers.of(context))
        except InvalidClientError as error:
            self._audit_refusal(error, Caller())
            return check_response(Denied(403, {}, "caller not allowed"))
        if self._trust_source_principal:
            try:
                self._check_gateway(peer)
            except ServiceError as error:
                self._audit_refusal(error, peer)
                return check_response(_refused(error))
        try:
            gateway = gateway_request(
                request, trust_source_principal=self._trust_source_principal, peer=peer
            )
            # The exchange runs under the Check's deadline (Envoy's ext_authz timeout), as
            # ExchangeToken's does: a Check Envoy gave up on holds no admission slot.
            gateway = replace(gateway, time_budget=context.time_remaining(), flow=context.peer())
            verdict = await self._authorizer.authorize(gateway)
        except InvalidRequestError as error:  # a header that cannot be read with one meaning
            self._audit_refusal(error, peer)
            verdict = invalid_request()
        except Exception as exc:  # the RPC boundary: a bug denies with 500, never allows
            self._crashed(exc, peer)
            verdict = Denied(500, {}, "internal error")
        return check_response(verdict)

    def _check_gateway(self, peer: Caller) -> None:
        """A Check whose source principal replaces the caller must come from a trusted gateway
        that is neither revoked nor suspended.

        Raises: InvalidClientError (not in trusted_gateways), RevokedError (the gateway's id is
        revoked or suspended), TemporarilyUnavailableError (the revocation view is stale)."""
        if self._trusted_gateways and peer.id not in self._trusted_gateways:
            raise InvalidClientError(
                "caller not allowed",
                log_detail=f"caller {peer.id!r} is not in [gateway] trusted_gateways: "
                "only those may name a principal (trust_source_principal)",
            )
        if self._check_revoked is not None:
            self._check_revoked([("caller", peer.id)])


def _refused(error: ServiceError) -> Denied:
    """The answer to a gateway refused before any route is read: retry later when the
    revocation view is stale (503, as the exchange answers), else 403."""
    if error.http_status == 503:
        retry_after = error.metadata.get("retry_after", "1")
        return Denied(503, {"retry-after": retry_after}, error.default_message)
    return Denied(403, {}, "caller not allowed")
