"""`sekisho clients hash-secret`: the argon2id hash to put in a [[clients]] entry's secret_hash.

The secret is read from stdin (or a TTY prompt), never from argv, where `ps` and shell history
would see it.
"""

import argparse
import getpass
import sys

from sekisho.config import Settings

MIN_SECRET_LENGTH = 16


def register(
    sub: "argparse._SubParsersAction[argparse.ArgumentParser]", common: argparse.ArgumentParser
) -> None:
    clients = sub.add_parser("clients", parents=[common], help="token-endpoint client helpers")
    clients_sub = clients.add_subparsers(dest="clients_command", required=True)
    clients_sub.add_parser(
        "hash-secret", parents=[common], help="read a client secret on stdin, print its hash"
    )


def run(args: argparse.Namespace, settings: Settings) -> int:
    from argon2 import PasswordHasher

    if sys.stdin.isatty():
        secret = getpass.getpass("client secret: ")
    else:
        secret = sys.stdin.readline().rstrip("\r\n")
    if len(secret) < MIN_SECRET_LENGTH:
        print(
            f"sekisho: a client secret needs at least {MIN_SECRET_LENGTH} characters",
            file=sys.stderr,
        )
        return 2
    print(PasswordHasher().hash(secret))
    return 0
