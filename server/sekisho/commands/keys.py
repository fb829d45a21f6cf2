"""`sekisho keys …`: the security team's signing-key commands.

init | list | rotate | promote | retire KID | revoke KID | jwks | reseal. Every change is
printed, runs under the keystore lock, and is appended to the key audit log with --operator
and --reason.
"""

import argparse
import getpass
import json
import os
import sys
from typing import TYPE_CHECKING

from sekisho.clock import utc_timestamp
from sekisho.config import Settings
from sekisho.errors import KeyStoreError

if TYPE_CHECKING:  # the imports stay lazy so `sekisho` starts fast
    from sekisho.signing.audit import Actor
    from sekisho.signing.keys import KeyRecord
    from sekisho.signing.lifecycle import Transition
    from sekisho.signing.manager import KeyManager


# Kids are base64url RFC 7638 thumbprints: about 1 in 64 starts with "-", which argparse
# would read as an option unless it follows "--".
KID_HELP = "the key id; a kid may start with '-': put -- before it (keys revoke -- -AbC…)"
# --operator as a refusal names it (its default is $USER, which may be the text at fault).
OPERATOR_OPTION = "--operator (default: $USER)"


def _audited(*, reason_required: bool) -> argparse.ArgumentParser:
    """--reason and --operator, recorded in the key audit log (--reason required for revoke)."""
    audited = argparse.ArgumentParser(add_help=False)
    audited.add_argument(
        "--reason",
        default="",
        required=reason_required,
        help="why (recorded in the audit log)" + ("; required" if reason_required else ""),
    )
    audited.add_argument(
        "--operator", default="", help="who (recorded in the audit log; default: $USER)"
    )
    return audited


def register(
    sub: "argparse._SubParsersAction[argparse.ArgumentParser]", common: argparse.ArgumentParser
) -> None:
    keys = sub.add_parser("keys", parents=[common], help="manage signing keys")
    keys_sub = keys.add_subparsers(dest="keys_command", required=True)
    audited, reasoned = _audited(reason_required=False), _audited(reason_required=True)
    forceable = argparse.ArgumentParser(add_help=False)
    forceable.add_argument(
        "--force", action="store_true", help="skip the timing rule (emergencies; needs --reason)"
    )
    init = keys_sub.add_parser(
        "init", parents=[common, audited], help="create an active and a next key"
    )
    init.add_argument("--if-missing", action="store_true", help="do nothing if keys exist")
    keys_sub.add_parser("list", parents=[common], help="show every key and its state")
    keys_sub.add_parser(
        "rotate", parents=[common, audited, forceable], help="take the next safe rotation step"
    )
    keys_sub.add_parser(
        "promote", parents=[common, audited, forceable], help="make the next key the active key"
    )
    retire = keys_sub.add_parser(
        "retire", parents=[common, audited, forceable], help="remove a retiring key from the JWKS"
    )
    retire.add_argument("kid", help=KID_HELP)
    revoke = keys_sub.add_parser(
        "revoke", parents=[common, reasoned], help="remove a key from the JWKS now (compromise)"
    )
    revoke.add_argument("kid", help=KID_HELP)
    keys_sub.add_parser("jwks", parents=[common], help="print the published JWK Set")
    keys_sub.add_parser(
        "reseal",
        parents=[common, audited],
        help="rewrite every key file with the configured protection (e.g. encrypt plain PEMs)",
    )


def run(args: argparse.Namespace, settings: Settings) -> int:
    from sekisho.clock import SystemClock
    from sekisho.keystores import build_key_manager, build_keystore

    clock = SystemClock()
    store = build_keystore(settings, clock)
    command: str = args.keys_command
    if command != "init":
        # Only init makes a keystore: the others say it is missing before the keystore lock
        # (or reseal's audit log) creates its folder and a file in it.
        records = store.records()
    if command == "list":
        return _list(records)
    if command == "jwks":
        print(json.dumps(store.load().jwks(), indent=2))
        return 0
    if command == "init" and args.if_missing and store.exists():
        print(f"keystore already initialised ({_where(settings)})")
        return 0
    manager = build_key_manager(settings, store, clock)
    if command == "reseal":
        return _reseal(store, manager, _actor(args))
    if not _mutate(args, manager, settings):
        return 0  # `waiting: …` or `nothing to do`: nothing was written, nothing to check
    return _after_change(settings, store, manager.records(), first=command == "init")


def _actor(args: argparse.Namespace) -> "Actor":
    """Who asks and why (--operator, else $USER; --reason), as the audit log can hold them.

    Raises: ValueError when either is not UTF-8 text (before any change)."""
    from sekisho.signing.audit import Actor, require_audited_text

    operator = require_audited_text(args.operator or current_operator(), OPERATOR_OPTION)
    return Actor(operator=operator, reason=require_audited_text(args.reason, "--reason"))


def _mutate(args: argparse.Namespace, manager: "KeyManager", settings: Settings) -> bool:
    """Apply and print the command's change; False when it changed nothing."""
    from sekisho.signing.audit import require_audited_text

    actor = _actor(args)
    if getattr(args, "kid", None) is not None:
        require_audited_text(args.kid, "KID")
    force = bool(getattr(args, "force", False))
    if (force or args.keys_command == "revoke") and not args.reason.strip():
        raise KeyStoreError(
            "`sekisho keys revoke` and --force need --reason TEXT (it goes to the audit log)"
        )
    command = args.keys_command
    if command == "init":
        transition = manager.init(actor)
        for change in transition.changes:
            print(f"created {change.to_state.value:<8} {change.alg:<6} {change.kid}")
        return True
    if command == "rotate":
        transition = manager.rotate(actor, force=force)
    elif command == "promote":
        transition = manager.promote(actor, force=force)
    elif command == "retire":
        transition = manager.retire(args.kid, actor, force=force)
    else:
        transition = manager.revoke(args.kid, actor)
    _print_changes(transition)
    return bool(transition.changes)


def _reseal(store: object, manager: "KeyManager", actor: "Actor") -> int:
    """Rewrite every key file, one audit line each (appended before anything is printed)."""
    from sekisho.signing.filestore import FileKeyStore

    if not isinstance(store, FileKeyStore):
        raise KeyStoreError("`sekisho keys reseal` applies to backends file and kms-wrapped")
    for change in manager.reseal(store, actor):
        print(f"resealed {change.kid}")
    return 0


def _after_change(
    settings: Settings, store: object, records: "list[KeyRecord]", *, first: bool
) -> int:
    """Shout when the service cannot read the change or a replica did not pick it up.

    After `init` (`first`) no replica runs yet, and what cannot be checked is not worth a line:
    a newcomer's `make run` shows only the keys made; a configured (or evident: the keystore
    folder is another user's) service user is still checked and reported."""
    from sekisho.commands.keys_check import pickup_lines

    keys = settings.keys
    readable, lines = _readability(settings, store, records, quiet=first)
    picked, more = (
        (True, []) if first else pickup_lines(keys.replica_urls, records, keys.pickup_wait_seconds)
    )
    for line in [*lines, *more]:  # stderr: stdout stays the list of changes
        print(line, file=sys.stderr)
    if readable and picked:
        return 0
    print("sekisho: the change is committed but has NOT taken effect everywhere", file=sys.stderr)
    return 1


def _readability(
    settings: Settings, store: object, records: "list[KeyRecord]", *, quiet: bool
) -> tuple[bool, list[str]]:
    """(ok, report) of the service user's check; `quiet`: no line when it cannot be checked."""
    from sekisho.commands.keys_check import readability_lines
    from sekisho.signing.filestore import FileKeyStore

    keys = settings.keys
    if not isinstance(store, FileKeyStore):
        return True, [] if quiet else [
            "service can read the keystore: KMS permissions are not checked"
        ]
    files = store.files(records)
    checked = readability_lines(
        keys.service_user, keys.dir, files, allow_loose=keys.allow_loose_key_files
    )
    if checked is not None:
        return checked
    unknown = "service can read the keystore: unknown (set keys.service_user to check the files "
    return True, [] if quiet else [unknown + "against the user the service runs as)"]


def _print_changes(transition: "Transition") -> None:
    for change in transition.changes:
        before = change.from_state.value if change.from_state else "(new)"
        line = f"{change.action.value:<8} {change.kid}  {change.alg}  {before} -> "
        print(line + change.to_state.value + (f"  ({change.note})" if change.note else ""))
        for rule in change.forced:
            print(f"  forced: skipped the rule: {rule}")
    if transition.waiting:
        print(f"waiting: {transition.waiting}")
    elif not transition.changes:
        print("nothing to do")


def _list(records: "list[KeyRecord]") -> int:
    print(f"{'KID':<44} {'ALG':<6} {'STATE':<9} {'CREATED':<20} {'ACTIVATED':<20} RETIRE-AFTER")
    for record in records:
        print(
            f"{record.kid:<44} {record.alg:<6} {record.state.value:<9} "
            f"{_time(record.created_at):<20} {_time(record.activated_at):<20} "
            f"{_time(record.retire_after)}"
        )
    return 0


def current_operator() -> str:
    """$USER, else the login name, else uid:N (containers without a passwd entry)."""
    try:
        return os.environ.get("USER") or getpass.getuser()
    except (OSError, KeyError):  # no passwd entry (some containers): KeyError on 3.11
        return f"uid:{os.getuid()}"


def _where(settings: Settings) -> str:
    if settings.keys.backend == "kms":
        return f"KMS aliases alias/{settings.keys.kms_alias_prefix}/"
    return str(settings.keys.dir)


def _time(epoch: int) -> str:
    return utc_timestamp(epoch) if epoch else "-"
