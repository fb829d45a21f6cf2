"""`sekisho revoke …`: the security team's revocation commands (docs/security-team.md
"Revocation").

token JTI | subject --issuer ISS --sub SUB | caller ID | audience AUD: put a revocation in force
(new exchanges it covers are refused on every worker within ~1 s) and mark every live token it
covers INVALID in the status lists (downstreams see it within the list ttl). `lift KIND …` ends a
revocation; `list` shows those in force. `suspend KIND …` is the reversible cut-off (SUSPENDED,
draft-ietf-oauth-status-list §7.1) and `reinstate KIND …` ends it, returning the live tokens no
other suspension covers to VALID (INVALID ones stay INVALID). Each change is audited in the
revocation audit log, write-ahead (status/changes.py).
"""

import argparse
import sys
import time
from typing import TYPE_CHECKING

from sekisho.clock import utc_timestamp
from sekisho.config import Settings
from sekisho.errors import ConfigError

if TYPE_CHECKING:  # lazy: `sekisho` starts fast
    from sekisho.status.audit import RevocationEvent
    from sekisho.status.models import Revocation, RevocationKind
    from sekisho.status.store import StatusStore

KIND_HELP = {
    "token": "one token by its jti (a minted token, or an inbound IdP token's jti)",
    "subject": "every token of a user (issuer and sub), as the subject or the actor",
    "caller": "every token minted for a workload (mTLS caller id / act.sub)",
    "audience": "every token for a downstream, as the audience or a granted resource",
}


def _kind_parsers(
    sub: "argparse._SubParsersAction[argparse.ArgumentParser]",
    parents: list[argparse.ArgumentParser],
    verb: str,
) -> None:
    for kind, what in KIND_HELP.items():
        parser = sub.add_parser(kind, parents=parents, help=f"{verb} {what}")
        if kind == "subject":
            parser.add_argument(
                "--issuer", required=True, help="the IdP issuer (iss), as trust.issuers names it"
            )
            parser.add_argument("--sub", required=True, help="the user's sub at that IdP")
            parser.add_argument(
                "--force",
                action="store_true",
                help="use --issuer as given although trust.issuers does not name it",
            )
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
    suspend = kinds.add_parser("suspend", parents=[common], help="suspend (reversible cut-off)")
    _kind_parsers(
        suspend.add_subparsers(dest="suspend_kind", required=True), [common, audited], "suspend"
    )
    reinstate = kinds.add_parser("reinstate", parents=[common], help="end a suspension")
    _kind_parsers(
        reinstate.add_subparsers(dest="reinstate_kind", required=True),
        [common, audited],
        "reinstate",
    )
    kinds.add_parser("list", parents=[common], help="show the revocations and suspensions in force")


def run(args: argparse.Namespace, settings: Settings) -> int:
    from sekisho.status_stores import build_status_store

    if not settings.status_list.enabled:
        raise ConfigError(
            "sekisho revoke needs [status_list] enabled = true: pass the service's config with"
            " --config (or $SEKISHO_CONFIG); without either the built-in defaults apply, and"
            " there it is off"
        )
    from sekisho.status.audit import AuditLogLockedError
    from sekisho.status.store import StatusStoreError

    _require_file_store(settings)
    store = build_status_store(settings.status_list)
    try:
        if args.revoke_command == "list":
            return _list(store)
        return _change(args, settings, store)
    except (StatusStoreError, AuditLogLockedError) as exc:  # said, not a traceback
        print(f"sekisho: {exc}", file=sys.stderr)
        return 1
    finally:
        store.close()


def _require_file_store(settings: Settings) -> None:
    """A file store must be there already: the service makes it when it starts. Opened
    anyway, a `--config` naming another path made an empty store there: `revoke list` said
    nothing was revoked, and a revocation went where no service reads it, while the command
    said it was in force (newcomer run, session 20).

    Raises: ConfigError naming status_list.path."""
    path = settings.status_list.path
    if settings.status_list.store == "file" and not path.exists():
        raise ConfigError(
            f"config key 'status_list.path': no status store at {path}; the service makes it"
            " when it starts: pass the service's config with --config (or $SEKISHO_CONFIG),"
            " or start the service once; nothing was changed"
        )


def _key(args: argparse.Namespace, kind: "RevocationKind", settings: Settings) -> str:
    """The store key a revocation of `kind` names. Raises: ValueError for an empty value (an
    empty caller id would name every anonymous caller's tokens) or an issuer Sekisho does not
    trust (nothing would match it: the gate keys users by trust.issuers' `issuer`)."""
    from sekisho.status.models import subject_key

    if kind != "subject":
        value = str(args.value)
        if not value.strip():
            raise ValueError(f"the {kind} to name is empty: give the exact {kind.upper()}")
        return value
    if not args.sub.strip():
        raise ValueError("--sub is empty: give the user's sub at that IdP")
    return subject_key(_trusted_issuer(settings, args.issuer, force=args.force), args.sub)


def _trusted_issuer(settings: Settings, issuer: str, *, force: bool) -> str:
    """The `issuer` of the trust.issuers entry that accepts `issuer` (any of its spellings:
    presets' other forms, issuer_aliases), which is what exchanges are keyed by."""
    for entry in settings.trust.issuers:
        if issuer in entry.accepted_issuers:
            return entry.issuer
    if not issuer.strip():
        raise ValueError("--issuer is empty: give the IdP's issuer")
    if force:
        return issuer
    configured = ", ".join(entry.issuer for entry in settings.trust.issuers) or "none"
    raise ValueError(
        f"--issuer {issuer!r} is not an issuer this configuration trusts (trust.issuers: "
        f"{configured}): a revocation under it would match no exchange. Give it as configured, "
        "or add --force"
    )


# The subcommands that name their kind one level down, and the attribute argparse puts it in.
_KIND_ATTR = {"lift": "lift_kind", "suspend": "suspend_kind", "reinstate": "reinstate_kind"}


def _change(args: argparse.Namespace, settings: Settings, store: "StatusStore") -> int:
    """revoke KIND | lift KIND | suspend KIND | reinstate KIND: change the store, audit, print."""
    from sekisho.commands.keys import OPERATOR_OPTION, current_operator
    from sekisho.keystores import refuse_keystore_file
    from sekisho.signing.audit import require_audited_text
    from sekisho.status.audit import RevocationAuditLog
    from sekisho.status.changes import apply_audited, nothing_in_force, standing_entry
    from sekisho.status.models import Revocation

    action = args.revoke_command if args.revoke_command in _KIND_ATTR else "revoke"
    kind: RevocationKind = getattr(args, _KIND_ATTR.get(action, "revoke_command"))
    # Before any change: text the store or the audit log cannot hold left a lift unaudited.
    for option, text in _texts(args, kind):
        require_audited_text(text, option)
    operator = require_audited_text(args.operator or current_operator(), OPERATOR_OPTION)
    # A CLI run is its own composition root: the wall clock is the clock (as SystemClock's).
    key, now = _key(args, kind, settings), int(time.time())
    if action == "suspend" and settings.status_list.bits == 1:  # no room for 0x02 (§4.1)
        raise ConfigError(
            "config key 'status_list.bits': sekisho revoke suspend needs bits = 2 or more "
            "(set it on the service too), or revoke instead"
        )
    audit = RevocationAuditLog(settings.status_list.audit_log_path)
    refuse_keystore_file(settings, audit.path, "status_list.audit_log")
    # The change and its lines are one ordered step under the log's lock: two operators changing
    # one value at once (revoke and lift) are appended in the order the store made the changes.
    # Audited before anything is printed: a print that fails (stdout a pipe its reader left,
    # Python unbuffered) left the change made and unaudited (red team session 17).
    with audit.locked():  # opened for appending first: a change is never made unaudited
        entry = Revocation(kind, key, args.reason, operator, now)
        event = apply_audited(store, audit, action, entry)  # write-ahead (status/changes.py)
    if event is None:
        print(nothing_in_force(action, kind, _shown(kind, key)))
        return 1
    if event.repeat:
        _print_repeat(event, standing_entry(store, action, kind, key, now))
    _print_change(settings, event, still=_still_in_force(store, action, kind, key, now))
    return 0


def _texts(args: argparse.Namespace, kind: "RevocationKind") -> list[tuple[str, str]]:
    """(option, text) of what a change stores and audits, besides the operator."""
    if kind == "subject":
        return [("--reason", args.reason), ("--issuer", args.issuer), ("--sub", args.sub)]
    return [("--reason", args.reason), (kind.upper(), args.value)]


def _still_in_force(store: "StatusStore", action: str, kind: str, key: str, now: int) -> str:
    """After a lift or reinstate: the other cut-off of the same key that keeps refusing new
    exchanges ("" when none), since a revocation and a suspension are independent."""
    other = {"lift": ("suspension", store.suspensions, "reinstate")}
    other["reinstate"] = ("revocation", store.revocations, "lift")
    if action not in other:
        return ""
    what, entries, ends = other[action]
    if any((e.kind, e.key) == (kind, key) for e in entries(now)):
        return f"a {kind} {what} of the same value is in force (sekisho revoke {ends} …)"
    return ""


_PRINTED = {  # action: (first word, what happened to the live tokens, how it is ended)
    "revoke": ("revoked", "marked INVALID in the status lists", "lifted (sekisho revoke lift …)"),
    "suspend": (
        "suspended",
        "marked SUSPENDED in the status lists",
        "reinstated (sekisho revoke reinstate …)",
    ),
    "reinstate": ("reinstated", "VALID again (revoked or otherwise suspended ones stay)", ""),
}


def _print_repeat(event: "RevocationEvent", standing: "Revocation | None") -> None:
    """A revoke or suspend of what was in force: the first entry stands (StatusStore.revoke)."""
    what = "revocation" if event.action == "revoke" else "suspension"
    if standing is None:  # lifted or ended since, by another command or the store's prune
        return
    print(
        f"already in force: the {what} of {event.kind} {_shown(event.kind, event.key)} made "
        f"{utc_timestamp(standing.created_at)} by {standing.operator} ({standing.reason}) "
        "stands as it was; this one is audited as a repeat"
    )


def _print_change(settings: Settings, event: "RevocationEvent", *, still: str = "") -> None:
    """`still`: after a lift or reinstate, what keeps refusing new exchanges all the same."""
    shown = f"{event.kind} {_shown(event.kind, event.key)}"
    if event.action == "lift":
        served = (
            f"new exchanges stay refused: {still}" if still else "new exchanges are served again"
        )
        print(f"lifted   {shown}: {served}")
        return
    from sekisho.status.propagation import (
        downstreams_within,
        exchanges_within,
        served_list_within,
    )

    config = settings.status_list
    word, tokens, ended_by = _PRINTED[event.action]
    refused = event.action != "reinstate"
    until = (utc_timestamp(event.until) if event.until else ended_by) if refused else ""
    print(f"{word:<8} {shown}" + (f" until {until}" if until else ""))
    poll = exchanges_within(config.poll_seconds)
    if refused and event.kind == "token" and not event.until:
        _print_no_live_minted_token(event, poll)
        return
    print(f"  {event.marked} live token(s) {tokens}")
    if event.marked == 0 and event.action != "reinstate":
        print(  # the count is of tokens whose status changed (StatusStore.revoke / suspend)
            "  (no live token changed status: none matched, or those that did read INVALID "
            "already, or SUSPENDED for a suspension. If some were expected, check the value is "
            "spelled as the tokens carry it; new exchanges it names are refused all the same)"
        )
    downstreams = downstreams_within(config.ttl_seconds)
    after_ttl = f"~{downstreams:g} s (list ttl + {served_list_within():g} s)"
    if refused and event.kind == "token" and event.until:  # a live minted token was found
        print(
            "  it names one minted token, not its user or workload: their exchanges go on "
            "(revoke subject | caller to refuse those)"
        )
        print(f"  the gateway's cache drops it on every worker within ~{poll:g} s")
        print(f"  downstreams refuse it within {after_ttl}")
    elif refused:
        print(f"  new exchanges refused on every worker within ~{poll:g} s")
        print(f"  downstreams refuse marked tokens within {after_ttl}")
    elif still:
        print(f"  new exchanges stay refused: {still}")
    else:
        print(f"  new exchanges served again within ~{poll:g} s")
        print(f"  downstreams accept them again within {after_ttl}")


def _print_no_live_minted_token(event: "RevocationEvent", poll: float) -> None:
    """`revoke | suspend token JTI` that found no live minted token. The store forgets a token
    once it expires, so what is left to tell a minted token that has expired from an inbound IdP
    token's jti is the jti's form: Sekisho mints only one (identifiers.has_minted_jti_form). A
    jti without it names no token Sekisho ever minted, and is said to be an inbound one; a jti
    with it is most likely an expired minted token (an IdP's jti of that form is possible, so the
    entry is kept for it all the same)."""
    from sekisho.identifiers import has_minted_jti_form

    ends = "lift" if event.action == "revoke" else "reinstate"
    ended = f"`sekisho revoke {ends} token {event.key}`"
    refused = f"exchanges presenting that token are refused on every worker within ~{poll:g} s"
    if not has_minted_jti_form(event.key):
        print(
            "  not a jti Sekisho mints (those are 22 base64url characters): no token Sekisho "
            "minted is affected"
        )
        print(f"  in force as an inbound IdP token's jti: {refused}, until {ended}")
        return
    print(
        "  no live token minted by Sekisho has this jti; it has the form of Sekisho's jtis, so "
        "Sekisho most likely minted it and it has expired: every verifier refuses it already "
        f"(nothing to withdraw; {ended} removes this entry)"
    )
    print(f"  kept in force in case an IdP issued a token with this jti: {refused}")


def _list(store: "StatusStore") -> int:
    now = int(time.time())  # a CLI run is its own composition root, as in _change
    loaded = store.in_force(now)
    # In force with no end set: ended only by the command named (not "lifted": it is not).
    entries = [("revoked", r, "no end: lift") for r in loaded.revocations]
    entries += [("suspended", s, "no end: reinstate") for s in loaded.suspensions]
    print(f"{'STATE':<10} {'KIND':<9} {'SINCE':<20} {'UNTIL':<20} {'OPERATOR':<12} KEY  (REASON)")
    for state, r, ended_by in entries:
        until = utc_timestamp(r.until) if r.until else ended_by
        print(
            f"{state:<10} {r.kind:<9} {utc_timestamp(r.created_at):<20} {until:<20} "
            f"{r.operator:<12} {_shown(r.kind, r.key)}  ({r.reason})"
        )
    return 0


def _shown(kind: str, key: str) -> str:
    from sekisho.status.models import shown_key

    return shown_key(kind, key)
