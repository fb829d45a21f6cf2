"""The `sekisho` command: serve | keys | policy | dev-idp | exchange | clients | revoke | audit.
Every subcommand takes `--config FILE` (default: $SEKISHO_CONFIG, else built-in defaults); each
lives in commands/.
"""

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from types import ModuleType

from sekisho.commands import audit, clients, devidp, exchange, keys, policy, revoke, serve
from sekisho.config import Settings, load_settings
from sekisho.errors import ConfigError, KeyStoreError, PolicyLoadError

Handler = Callable[[argparse.Namespace, Settings], int]
COMMANDS: dict[str, ModuleType] = {
    "serve": serve,
    "keys": keys,
    "policy": policy,
    "dev-idp": devidp,
    "exchange": exchange,
    "clients": clients,
    "revoke": revoke,
    "audit": audit,
}


def _settings(args: argparse.Namespace) -> Settings:
    path = getattr(args, "config", None) or os.environ.get("SEKISHO_CONFIG")
    return load_settings(Path(path) if path else None)


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    # SUPPRESS: a parent parser's default must not overwrite a --config given earlier on the line.
    common.add_argument(
        "--config", default=argparse.SUPPRESS, help="TOML config file (default: $SEKISHO_CONFIG)"
    )
    parser = argparse.ArgumentParser(prog="sekisho", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    for module in COMMANDS.values():
        module.register(sub, common)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handler: Handler = COMMANDS[args.command].run
    try:
        return handler(args, _settings(args))
    except (ConfigError, KeyStoreError, PolicyLoadError, ValueError, OSError) as exc:
        print(f"sekisho: {exc}", file=sys.stderr)
        return 2
