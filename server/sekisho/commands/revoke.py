"""`sekisho revoke …`: the security team's revocation commands (docs/security-team.md
"Revocation").

token JTI | subject --issuer ISS --sub SUB | caller ID | audience AUD: put a revocation in force
(new exchanges it covers are refused on every worker within ~1 s) and mark every live token it
covers INVALID in the status lists (downstreams see it within the list ttl). `lift KIND …` ends a
revocation; `list` shows those in force. Each change is appended to the revocation audit log.
"""

import argparse
import sys
import time
from typing import TYPE_CHECKING

from sekisho.config import Settings
from sekisho.errors import ConfigError

if TYPE_CHECKING:  # lazy: `sekisho` starts fast
    from sekisho.status.audit import RevocationEvent
    from sekisho.status.models import RevocationKind
    from sekisho.status.store import StatusStore

KIND_HELP = {
    "token": "one token by its jti (a minted token, or an inbound IdP token's jti)",
    "subject": "every token of a user (the subject token's issuer and sub)",
    "caller": "every token minted for a workload (mTLS caller id / act.sub)",
    "audience": "every token for a downstream audience",
}


def _kind_parsers(
    sub: "argparse._SubParsersAction[argparse.ArgumentParser]",
    parents: list[argparse.ArgumentParser],
    verb: str,
) -> None:
    for kind, what in KIND_HELP.items():
        parser = sub.add_parser(kind, parents=parents, help=f"{verb} {what}")
        if kind == "subject":
            parser.add_argument("--issuer", required=True, help="the IdP issuer (iss)")
            parser.add_argument("--sub", required=True, help="the user's sub at that IdP")
        else:
            parser.add_argument("value", metavar=kind.upper(), help=what)


def register(
    sub: "argparse._SubParsersAction[argparse.ArgumentParser]", common: argparse.ArgumentParser
) -> None:
    revoke = sub.add_parser("revoke", parents=[common], help="revoke tokens, users, callers")
    kinds = revoke.add_subparsers(dest="revoke_command", required=True)
    audited = argparse.ArgumentParser(add_help=False)
    audited.add_argument("--reason", required=True, help="why (recorded in the audit log)")
    audited.add_argument("--operator", default="", help="who (audit log; default: $USER)")
    _kind_parsers(kinds, [common, audited], "revoke")
    lift = kinds.add_parser("lift", parents=[common], help="end a revocation")
    _kind_parsers(lift.add_subparsers(dest="lift_kind", required=True), [common, audited], "lift")
    kinds.add_parser("list", parents=[common], help="show the revocations in force")


def run(args: argparse.Namespace, settings: Settings) -> int:
    from sekisho.status.runtime import build_status_store

    if not settings.status_list.enabled:
        raise ConfigError("sekisho revoke needs [status_list] enabled = true")
    from sekisho.status.store import StatusStoreError

    store = build_status_store(settings.status_list)
    try:
        if args.revoke_command == "list":
            return _list(store)
        return _change(args, settings, store)
    except StatusStoreError as exc:  # unreachable or refusing: said, not a traceback
        print(f"sekisho: {exc}", file=sys.stderr)
        return 1
    finally:
        store.close()


def _key(args: argparse.Namespace, kind: "RevocationKind") -> str:
    from sekisho.status.models import subject_key

    return subject_key(args.issuer, args.sub) if kind == "subject" else str(args.value)


def _change(args: argparse.Namespace, settings: Settings, store: "StatusStore") -> int:
    from sekisho.commands.keys import current_operator
    from sekisho.status.audit import RevocationAuditLog, RevocationEvent
    from sekisho.status.models import Revocation

    lifting = args.revoke_command == "lift"
    kind: RevocationKind = args.lift_kind if lifting else args.revoke_command
    key, now = _key(args, kind), int(time.time())
    operator = args.operator or current_operator()
    if lifting:
        if not store.lift(kind, key):
            print(f"no {kind} revocation of {_shown(kind, key)} is in force")
            return 1
        event = RevocationEvent("lift", kind, key, operator, args.reason)
        print(f"lifted   {kind} {_shown(kind, key)}: new exchanges are served again")
    else:
        marked = store.revoke(now, Revocation(kind, key, args.reason, operator, now))
        until = next((r.until for r in store.revocations(now) if (r.kind, r.key) == (kind, key)), 0)
        event = RevocationEvent("revoke", kind, key, operator, args.reason, marked, until)
        _print_revoked(settings, event)
    RevocationAuditLog(settings.status_list.audit_log_path).record(now, event)
    return 0


def _print_revoked(settings: Settings, event: "RevocationEvent") -> None:
    config = settings.status_list
    until = _time(event.until) if event.until else "lifted (sekisho revoke lift …)"
    print(f"revoked  {event.kind} {_shown(event.kind, event.key)} until {until}")
    print(f"  {event.marked} live token(s) marked INVALID in the status lists")
    print(f"  new exchanges refused on every worker within ~{config.poll_seconds + 0.5:g} s")
    print(f"  downstreams refuse marked tokens within ~{config.ttl_seconds + 2} s (list ttl + 2 s)")


def _list(store: "StatusStore") -> int:
    revocations = store.revocations(int(time.time()))
    print(f"{'KIND':<9} {'SINCE':<20} {'UNTIL':<20} {'OPERATOR':<12} KEY  (REASON)")
    for r in revocations:
        until = _time(r.until) if r.until else "lifted"
        print(
            f"{r.kind:<9} {_time(r.created_at):<20} {until:<20} {r.operator:<12} "
            f"{_shown(r.kind, r.key)}  ({r.reason})"
        )
    return 0


def _shown(kind: str, key: str) -> str:
    from sekisho.status.models import split_subject_key

    if kind != "subject":
        return key
    issuer, subject = split_subject_key(key)
    return f"--issuer {issuer} --sub {subject}"


def _time(epoch: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))
