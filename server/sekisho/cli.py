"""The `sekisho` command (DESCRIPTION, its --help); each subcommand lives in commands/, which
registers its parser and runs it."""

import argparse
import os
import select
import shlex
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from types import ModuleType

from sekisho.commands import audit, clients, devidp, exchange, keys, policy, revoke, serve
from sekisho.config import Settings, load_settings
from sekisho.errors import ConfigError, KeyStoreError, KeyStoreMissingError, PolicyLoadError

# `sekisho --help`: what an operator needs, not where the code is.
DESCRIPTION = (
    "The `sekisho` command: serve | keys | policy | dev-idp | exchange | clients | revoke | "
    "audit. Every subcommand takes `--config FILE` (default: $SEKISHO_CONFIG, else built-in "
    "defaults); `sekisho COMMAND --help` lists its options."
)

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


def _config_path(args: argparse.Namespace) -> str | None:
    return getattr(args, "config", None) or os.environ.get("SEKISHO_CONFIG") or None


def _settings(args: argparse.Namespace) -> Settings:
    path = _config_path(args)
    return load_settings(Path(path) if path else None)


def _missing_keystore(exc: KeyStoreMissingError, config: str | None) -> str:
    """The way to make the keystore this config reads: `keys init` with the same config, which a
    bare `sekisho keys init` is not (it writes var/keys under the current directory). Without
    any config the likelier fault is the missing --config: a `sekisho keys revoke` copied from
    a runbook without one read ./var/keys, and "run `sekisho keys init`" sent the operator to
    make a second keystore in the middle of an emergency (newcomer run, session 19)."""
    if config:
        return f"sekisho: {exc.missing} (run `sekisho keys init --config {shlex.quote(config)}`)"
    return (
        f"sekisho: {exc.missing}: no --config given (nor $SEKISHO_CONFIG), so the built-in"
        " defaults were read; pass the service's config with --config FILE (or run `sekisho"
        " keys init` to make a new keystore there)"
    )


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    # SUPPRESS: a parent parser's default must not overwrite a --config given earlier on the line.
    common.add_argument(
        "--config", default=argparse.SUPPRESS, help="TOML config file (default: $SEKISHO_CONFIG)"
    )
    parser = argparse.ArgumentParser(prog="sekisho", description=DESCRIPTION)
    sub = parser.add_subparsers(dest="command", required=True)
    for module in COMMANDS.values():
        module.register(sub, common)
    return parser


# Kids (43 characters) and jtis (22) are base64url: about 1 in 64 starts with "-". argparse reads
# such a value as an option and says something unrelated ("argument -h/--help: ignored explicit
# argument 'FtV…'", "the following arguments are required: TOKEN"); values this long that start
# with a single "-" are not options of ours.
_DASHED_VALUE_MIN = 16


def dashed_value_hint(argv: Sequence[str]) -> str | None:
    """The way out when argparse refused a line holding a kid or jti that starts with "-"."""
    words = list(argv)
    if "--" in words:
        words = words[: words.index("--")]  # what follows "--" was read as values already
    dashed = [w for w in words if w.startswith("-") and not w.startswith("--")]
    value = next((w for w in dashed if len(w) >= _DASHED_VALUE_MIN and "=" not in w), None)
    if value is None:
        return None
    command = []
    for word in words:
        if word.startswith("-"):
            break
        command.append(word)
    return (
        f"sekisho: {value!r} was read as an option; a kid or jti may start with '-': put it after"
        f" --, as in `sekisho {' '.join(command)} [options] -- {value}`"
    )


def main(argv: Sequence[str] | None = None) -> int:
    given = list(sys.argv[1:] if argv is None else argv)
    try:
        args = build_parser().parse_args(given)
    except SystemExit as exc:
        hint = dashed_value_hint(given) if exc.code == 2 else None
        if hint:
            print(hint, file=sys.stderr)
        raise
    handler: Handler = COMMANDS[args.command].run
    try:
        status = handler(args, _settings(args))
        sys.stdout.flush()  # a reader that left is found here, not in Python's flush at exit
    except BrokenPipeError as exc:
        if _stdout_reader_gone():
            return 1  # `sekisho … | head`: what was cut off is the reader's choice, not an error
        print(f"sekisho: {exc}", file=sys.stderr)
        return 2
    except KeyStoreMissingError as exc:
        print(_missing_keystore(exc, _config_path(args)), file=sys.stderr)
        return 2
    except (ConfigError, KeyStoreError, PolicyLoadError, ValueError, OSError) as exc:
        print(f"sekisho: {exc}", file=sys.stderr)
        return 2
    return status


def _stdout_reader_gone() -> bool:
    """Whether stdout is a pipe nobody reads any more (poll reports POLLERR on such a write end),
    rather than some other broken connection; if so the rest of the output goes to /dev/null, so
    that Python's flush at exit does not print "Exception ignored … BrokenPipeError" (the recipe
    of the Python docs, "Note on SIGPIPE")."""
    try:
        fd = sys.stdout.fileno()
        poller = select.poll()
        poller.register(fd, select.POLLOUT)
        gone = any(events & select.POLLERR for _, events in poller.poll(0))
    except (OSError, ValueError):  # io.UnsupportedOperation is both: no real file behind stdout
        return False
    if gone:
        os.dup2(os.open(os.devnull, os.O_WRONLY), fd)
    return gone
