"""`sekisho exchange`: call ExchangeToken once and print the verified result."""

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from sekisho.config import Settings
from sekisho.constants import TOKEN_TYPE_ACCESS_TOKEN, TOKEN_TYPE_ID_JAG, TOKEN_TYPE_ID_TOKEN

if TYPE_CHECKING:  # lazy: `sekisho` starts fast
    from sekisho.client.exchange_cli import TlsArgs


def register(
    sub: "argparse._SubParsersAction[argparse.ArgumentParser]", common: argparse.ArgumentParser
) -> None:
    ex = sub.add_parser(
        "exchange", parents=[common], help="call ExchangeToken and print the result"
    )
    ex.add_argument("--target", default="", help="host:port (default: server.grpc_listen)")
    ex.add_argument("--subject-token", required=True, help="the IdP token, or - for stdin")
    ex.add_argument(
        "--subject-token-type",
        default=TOKEN_TYPE_ID_TOKEN,
        help=f"URN of the subject token's type (default: {TOKEN_TYPE_ID_TOKEN}; IdP access "
        f"tokens: {TOKEN_TYPE_ACCESS_TOKEN})",
    )
    ex.add_argument(
        "--audience", required=True, help="the downstream authorization server (or resource id)"
    )
    ex.add_argument(
        "--scope", action="append", default=[], help="a requested scope (repeat for more)"
    )
    ex.add_argument(
        "--resource", action="append", default=[], help="an RFC 8707 resource URI (repeatable)"
    )
    ex.add_argument("--access-token", action="store_true", help="request an RFC 9068 access token")
    ex.add_argument("--actor-token", default="", help="an actor token (RFC 8693 delegation)")
    ex.add_argument(
        "--actor-token-type",
        default=TOKEN_TYPE_ID_TOKEN,
        help=f"URN of the actor token's type (default: {TOKEN_TYPE_ID_TOKEN})",
    )
    ex.add_argument("--cacert", default="", help="PEM CA bundle: call over TLS, verifying with it")
    ex.add_argument("--cert", default="", help="PEM client certificate (mTLS; with --key)")
    ex.add_argument("--key", default="", help="PEM private key of --cert")
    ex.add_argument(
        "--tls-server-name", default="", help="the name to verify in the server's certificate"
    )
    ex.add_argument("--timeout", type=float, default=5.0, help="seconds to wait (default 5)")
    ex.add_argument("--show-token", action="store_true", help="also print the raw token")


def run(args: argparse.Namespace, settings: Settings) -> int:
    from sekisho.client.exchange_cli import ExchangeArgs, dumps, run_exchange

    token = sys.stdin.read().strip() if args.subject_token == "-" else args.subject_token
    requested = TOKEN_TYPE_ACCESS_TOKEN if args.access_token else TOKEN_TYPE_ID_JAG
    code, report = run_exchange(
        ExchangeArgs(
            target=args.target or settings.server.grpc_listen,
            subject_token=token,
            audience=args.audience,
            scopes=args.scope,
            resources=args.resource,
            requested_token_type=requested,
            subject_token_type=args.subject_token_type,
            timeout=args.timeout,
            actor_token=args.actor_token,
            actor_token_type=args.actor_token_type if args.actor_token else "",
            tls=_tls(args),
        )
    )
    if not args.show_token:
        report.pop("access_token", None)
    print(dumps(report))
    return code


def _tls(args: argparse.Namespace) -> "TlsArgs | None":
    """--cacert / --cert / --key / --tls-server-name. Raises: ValueError (unreadable file, a
    certificate without its key or the reverse, client files without a CA)."""
    from sekisho.client.exchange_cli import TlsArgs

    if bool(args.cert) != bool(args.key):
        raise ValueError("--cert and --key go together (the client certificate and its key)")
    if not args.cacert:
        if args.cert or args.tls_server_name:
            raise ValueError("--cert, --key and --tls-server-name need --cacert (TLS)")
        return None

    def read(option: str, path: str) -> bytes:
        try:
            return Path(path).read_bytes()
        except OSError as exc:
            raise ValueError(f"{option} {path}: {exc.strerror}") from exc

    return TlsArgs(
        root_certificates=read("--cacert", args.cacert),
        certificate_chain=read("--cert", args.cert) if args.cert else None,
        private_key=read("--key", args.key) if args.key else None,
        server_name=args.tls_server_name,
    )
