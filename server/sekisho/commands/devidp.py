"""`sekisho dev-idp serve|token`: the development-only identity provider."""

import argparse
import os
import socket
import sys
import time
from pathlib import Path

from sekisho.config import Settings
from sekisho.constants import DEV_IDP_AUDIENCE, DEV_IDP_LISTEN


def register(
    sub: "argparse._SubParsersAction[argparse.ArgumentParser]", common: argparse.ArgumentParser
) -> None:
    dev = sub.add_parser("dev-idp", parents=[common], help="DEV ONLY identity provider")
    dev_sub = dev.add_subparsers(dest="dev_idp_command", required=True)
    helps = {"serve": "serve OIDC discovery and JWKS", "token": "print a signed user token"}
    for name, text in helps.items():
        cmd = dev_sub.add_parser(name, parents=[common], help=text)
        cmd.add_argument("--listen", default=DEV_IDP_LISTEN, help="loopback host:port")
        cmd.add_argument("--dir", default="var/dev-idp", help="where the dev IdP keeps its key")
    dev_sub.choices["serve"].add_argument(
        "--exit-with-parent",
        action="store_true",
        help="stop when the process that started this one exits (`make run`)",
    )
    token = dev_sub.choices["token"]
    token.add_argument("--sub", required=True, help="user id")
    token.add_argument("--groups", default="", help="comma-separated groups")
    token.add_argument("--tenant", default="", help="tenant claim")
    token.add_argument("--email", default="", help="email claim")
    token.add_argument("--name", default="", help="name claim")
    token.add_argument("--acr", default="", help="acr claim (authentication context class)")
    token.add_argument("--aud", default=DEV_IDP_AUDIENCE, help="audience (the agent app's client)")
    token.add_argument("--client-id", default="", help="client_id claim (access tokens)")
    token.add_argument("--ttl", type=int, default=3600, help="lifetime in seconds (default 3600)")
    token.add_argument("--access-token", action="store_true", help="issue an at+jwt access token")


def run(args: argparse.Namespace, settings: Settings) -> int:
    from aiohttp import web

    from sekisho.devidp import DevIdentityProvider, create_app, issuer_for
    from sekisho.workers import exit_with_parent

    issuer = issuer_for(args.listen)
    idp = DevIdentityProvider.open(Path(args.dir), issuer)
    if args.dev_idp_command == "serve":
        if args.exit_with_parent:
            exit_with_parent()
        listening = _listening_socket(args.listen)
        print(f"DEV ONLY identity provider {issuer} (authenticates nobody)", file=sys.stderr)
        web.run_app(create_app(idp), sock=listening, print=None)
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


def _listening_socket(listen: str) -> socket.socket:
    """The dev IdP's socket, bound before it says it serves: a second `make run` used to print
    the banner and then `[Errno 98] error while attempting to bind …` (session 14 walkthrough).

    Raises: OSError saying what to do (the CLI prints it and exits 2).
    """
    host, _, port = listen.rpartition(":")
    host = host.strip("[]")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        return socket.create_server((host, int(port)), family=family)
    except OSError as exc:
        raise OSError(
            f"dev-idp: cannot listen on {listen}: {os.strerror(exc.errno or 0)} (another "
            "`make run` or dev IdP running? stop it, or pass --listen)"
        ) from exc
