"""The `sekisho` command: serve | keys | policy | dev-idp | exchange. Every subcommand takes
`--config FILE` (default: $SEKISHO_CONFIG, else built-in defaults)."""

import argparse
import asyncio
import contextvars
import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from sekisho.config import Settings, load_settings
from sekisho.constants import TOKEN_TYPE_ACCESS_TOKEN, TOKEN_TYPE_ID_JAG, TOKEN_TYPE_ID_TOKEN
from sekisho.errors import ConfigError, KeyStoreError, PolicyLoadError
from sekisho.logs import configure_logging

Handler = Callable[[argparse.Namespace, Settings], int]


def _settings(args: argparse.Namespace) -> Settings:
    path = getattr(args, "config", None) or os.environ.get("SEKISHO_CONFIG")
    return load_settings(Path(path) if path else None)


def cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    from sekisho.service import run_until_signalled

    request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="")
    configure_logging(settings.logging.level, settings.logging.format, request_id)
    asyncio.run(run_until_signalled(settings, request_id))
    return 0


def cmd_keys(args: argparse.Namespace, settings: Settings) -> int:
    from sekisho.signing.filestore import FileKeyStore
    from sekisho.signing.keyring import Keyring

    if settings.keys.backend != "file":
        raise ConfigError("config key 'keys.backend': only 'file' is available in this version")
    store = FileKeyStore(settings.keys.dir)
    if args.keys_command == "init":
        if args.if_missing and store.exists():
            print(f"keystore already initialised at {store.directory}")
            return 0
        for record in store.init(settings.keys.algorithm, int(time.time())):
            print(f"created {record.state.value:<8} {record.alg:<6} {record.kid}")
        return 0
    if args.keys_command == "list":
        print(f"{'KID':<44} {'ALG':<6} {'STATE':<9} {'CREATED':<20} {'ACTIVATED':<20} RETIRE-AFTER")
        for record in store.records():
            print(
                f"{record.kid:<44} {record.alg:<6} {record.state.value:<9} "
                f"{_time(record.created_at):<20} {_time(record.activated_at):<20} "
                f"{_time(record.retire_after)}"
            )
        return 0
    keyring = Keyring(store)
    keyring.load()
    print(json.dumps(json.loads(keyring.jwks_bytes), indent=2))
    return 0


def _time(epoch: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch)) if epoch else "-"


def cmd_policy(args: argparse.Namespace, settings: Settings) -> int:
    from sekisho.policy.rego import RegoPolicyEngine

    if settings.policy.engine != "embedded":
        raise ConfigError(
            "config key 'policy.engine': only 'embedded' is available in this version"
        )
    engine = RegoPolicyEngine(settings.policy.path, settings.policy.query)
    engine.load()
    document = json.loads(Path(args.input).read_text(encoding="utf-8"))
    print(json.dumps(engine.evaluate_raw(document), indent=2, sort_keys=True))
    return 0


def cmd_dev_idp(args: argparse.Namespace, settings: Settings) -> int:
    from aiohttp import web

    from sekisho.devidp import DevIdentityProvider, create_app, issuer_for

    issuer = issuer_for(args.listen)
    idp = DevIdentityProvider.open(Path(args.dir), issuer)
    if args.dev_idp_command == "serve":
        host, _, port = args.listen.rpartition(":")
        print(f"DEV ONLY identity provider {issuer} (authenticates nobody)", file=sys.stderr)
        web.run_app(create_app(idp), host=host.strip("[]"), port=int(port), print=None)
        return 0
    claims: dict[str, object] = {"sub": args.sub, "aud": args.aud, "auth_time": int(time.time())}
    claims.update({"groups": args.groups.split(",") if args.groups else []})
    for name in ("tenant", "email", "acr", "name"):
        if getattr(args, name):
            claims[name] = getattr(args, name)
    if args.client_id:
        claims["client_id"] = args.client_id
    typ = "at+jwt" if args.access_token else "JWT"
    print(idp.token(claims, ttl=args.ttl, typ=typ))
    return 0


def cmd_exchange(args: argparse.Namespace, settings: Settings) -> int:
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
        )
    )
    if not args.show_token:
        report.pop("access_token", None)
    print(dumps(report))
    return code


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    # SUPPRESS: a parent parser's default must not overwrite a --config given earlier on the line.
    common.add_argument(
        "--config", default=argparse.SUPPRESS, help="TOML config file (default: $SEKISHO_CONFIG)"
    )
    parser = argparse.ArgumentParser(prog="sekisho", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    sub.add_parser("serve", parents=[common], help="run the gRPC and HTTP service")

    keys = sub.add_parser("keys", parents=[common], help="manage signing keys")
    keys_sub = keys.add_subparsers(dest="keys_command", required=True)
    init = keys_sub.add_parser("init", parents=[common], help="create an active and a next key")
    init.add_argument("--if-missing", action="store_true", help="do nothing if keys exist")
    keys_sub.add_parser("list", parents=[common], help="show every key and its state")
    keys_sub.add_parser("jwks", parents=[common], help="print the published JWK Set")

    policy = sub.add_parser("policy", parents=[common], help="policy author tools")
    policy_sub = policy.add_subparsers(dest="policy_command", required=True)
    evaluate = policy_sub.add_parser(
        "eval", parents=[common], help="print the decision for an input"
    )
    evaluate.add_argument("--input", required=True, help="JSON input document")

    _add_dev_idp(sub, common)
    _add_exchange(sub, common)
    return parser


def _add_dev_idp(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:  # type: ignore[type-arg]
    dev = sub.add_parser("dev-idp", parents=[common], help="DEV ONLY identity provider")
    dev_sub = dev.add_subparsers(dest="dev_idp_command", required=True)
    for name in ("serve", "token"):
        cmd = dev_sub.add_parser(name, parents=[common])
        cmd.add_argument("--listen", default="127.0.0.1:9400", help="loopback host:port")
        cmd.add_argument("--dir", default="var/dev-idp", help="where the dev IdP keeps its key")
    token = dev_sub.choices["token"]
    token.add_argument("--sub", required=True, help="user id")
    token.add_argument("--groups", default="", help="comma-separated groups")
    token.add_argument("--tenant", default="")
    token.add_argument("--email", default="")
    token.add_argument("--name", default="")
    token.add_argument("--acr", default="")
    token.add_argument("--aud", default="sekisho-dev", help="audience (the agent app's client id)")
    token.add_argument("--client-id", default="", help="client_id claim (access tokens)")
    token.add_argument("--ttl", type=int, default=3600)
    token.add_argument("--access-token", action="store_true", help="issue an at+jwt access token")


def _add_exchange(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:  # type: ignore[type-arg]
    ex = sub.add_parser(
        "exchange", parents=[common], help="call ExchangeToken and print the result"
    )
    ex.add_argument("--target", default="", help="host:port (default: server.grpc_listen)")
    ex.add_argument("--subject-token", required=True, help="the IdP token, or - for stdin")
    ex.add_argument("--subject-token-type", default=TOKEN_TYPE_ID_TOKEN)
    ex.add_argument("--audience", required=True)
    ex.add_argument("--scope", action="append", default=[])
    ex.add_argument("--resource", action="append", default=[])
    ex.add_argument("--access-token", action="store_true", help="request an RFC 9068 access token")
    ex.add_argument("--timeout", type=float, default=5.0)
    ex.add_argument("--show-token", action="store_true", help="also print the raw token")


HANDLERS: dict[str, Handler] = {
    "serve": cmd_serve,
    "keys": cmd_keys,
    "policy": cmd_policy,
    "dev-idp": cmd_dev_idp,
    "exchange": cmd_exchange,
}


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return HANDLERS[args.command](args, _settings(args))
    except (ConfigError, KeyStoreError, PolicyLoadError, ValueError, OSError) as exc:
        print(f"sekisho: {exc}", file=sys.stderr)
        return 2
