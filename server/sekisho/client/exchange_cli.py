"""`sekisho exchange`: call ExchangeToken once and print the response and the decoded token.

The token is verified against the JWKS returned by GetJwks before it is printed as verified.
"""

import json
from dataclasses import dataclass
from typing import Any

import grpc
import jwt
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from sekisho._gen.sekisho.v1 import token_exchange_pb2 as pb
from sekisho._gen.sekisho.v1 import token_exchange_pb2_grpc as pb_grpc


@dataclass(frozen=True)
class TlsArgs:
    """TLS to the service: the CA to verify it with, and a client certificate for mTLS."""

    root_certificates: bytes
    certificate_chain: bytes | None = None
    private_key: bytes | None = None
    server_name: str = ""  # the name to verify in the server's certificate ("" = the target's)


@dataclass(frozen=True)
class ExchangeArgs:
    target: str
    subject_token: str
    audience: str
    scopes: list[str]
    resources: list[str]
    requested_token_type: str
    subject_token_type: str
    timeout: float
    actor_token: str = ""
    actor_token_type: str = ""
    tls: TlsArgs | None = None


def _channel(args: ExchangeArgs) -> grpc.Channel:
    if args.tls is None:
        return grpc.insecure_channel(args.target)
    credentials = grpc.ssl_channel_credentials(
        args.tls.root_certificates, args.tls.private_key, args.tls.certificate_chain
    )
    options = []
    if args.tls.server_name:
        options.append(("grpc.ssl_target_name_override", args.tls.server_name))
    return grpc.secure_channel(args.target, credentials, options=options)


def _error_report(error: grpc.RpcError) -> dict[str, Any]:
    report: dict[str, Any] = {"code": error.code().name, "message": error.details()}
    status = rpc_status.from_call(error)
    for detail in status.details if status else ():
        info = error_details_pb2.ErrorInfo()
        if detail.Unpack(info):
            report.update(
                {"reason": info.reason, "domain": info.domain, "metadata": dict(info.metadata)}
            )
    return report


def run_exchange(args: ExchangeArgs) -> tuple[int, dict[str, Any]]:
    """Returns (exit code, report)."""
    with _channel(args) as channel:
        stub = pb_grpc.TokenExchangeServiceStub(channel)  # type: ignore[no-untyped-call]
        request = pb.ExchangeTokenRequest(
            subject_token=args.subject_token,
            subject_token_type=args.subject_token_type,
            requested_token_type=args.requested_token_type,
            audience=args.audience,
            scope=args.scopes,
            resource=args.resources,
            actor_token=args.actor_token,
            actor_token_type=args.actor_token_type,
        )
        try:
            response = stub.ExchangeToken(request, timeout=args.timeout)
            jwks = stub.GetJwks(pb.GetJwksRequest(), timeout=args.timeout).jwks
        except grpc.RpcError as error:
            return 1, {"error": _error_report(error)}
    try:
        header, claims = _verified(response, jwks)
    except (jwt.PyJWTError, ValueError) as exc:
        return 1, {"error": {"message": f"the minted token does not verify: {exc}"}}
    report = {
        "response": {
            "issued_token_type": response.issued_token_type,
            "token_type": response.token_type,
            "expires_in": response.expires_in,
            "scope": list(response.scope),
            "resource": list(response.resource),
            "audience": response.audience,
            "jti": response.jti,
            "decision_id": response.decision_id,
        },
        "verified_with_jwks": True,
        "header": header,
        "claims": claims,
        "access_token": response.access_token,
    }
    return 0, report


def _verified(
    response: pb.ExchangeTokenResponse, jwks: str
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The minted token's header and claims, checked with the key of its `kid` in `jwks`.

    Raises: ValueError (no such kid, or two keys with it: the verify SDK trusts neither),
    jwt.PyJWTError (the signature, expiry or audience does not hold)."""
    header = jwt.get_unverified_header(response.access_token)
    kid = header.get("kid")
    found = [k for k in json.loads(jwks).get("keys", []) if k.get("kid") == kid]
    if len(found) != 1:
        raise ValueError(f"the service's JWKS has {len(found)} keys with kid {kid!r}, not one")
    key = jwt.PyJWK(found[0])
    claims = jwt.decode(
        response.access_token,
        key=key.key,
        # The JWKS entry's algorithm, never the token header's (the header is what is checked).
        algorithms=[key.algorithm_name],
        audience=response.audience if response.token_type == "N_A" else None,
        options={"verify_aud": response.token_type == "N_A"},
    )
    return header, claims


def dumps(report: dict[str, Any]) -> str:
    return json.dumps(report, indent=2, sort_keys=False)
