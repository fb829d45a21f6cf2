"""Delegation (RFC 8693 §4.1 `act`, §4.4 `may_act`): who may act for the subject, and the chain
of actors a minted token records.

- An actor token is accepted only when the subject token's `may_act` names its subject (and, if
  `may_act` names an issuer, its issuer), or the policy approves it explicitly with
  `actor_approved: true`. Any token from a trusted IdP is otherwise just an identity, not a
  permission to act for someone else (issue 15 item 4).
- The authenticated caller stays in the chain: with an actor token, `act` names the actor and
  nests the caller that presented it, then the subject token's own `act`.
- An inbound `act` must be a chain of objects with a string `sub`, at most `max_depth` deep; only
  identity members (`sub`, `iss`, `client_id`) are carried into a minted token (RFC 8693 §4.1:
  other claims in `act` are not meaningful). A level without `iss` names its `sub` in its
  token's issuer's namespace, so it gets that issuer's `iss` when it is read: copied bare into
  Sekisho's token, it would read in Sekisho's namespace, as the authenticated caller's own level
  `{"sub": <caller id>}` does (an IdP-side actor "payments-gateway" looked like the Sekisho
  caller "payments-gateway"; red team session 12). A level naming a trusted issuer by another
  accepted spelling (an alias, a preset's other form) names it as trust.issuers does.
"""

import copy
from collections.abc import Iterator, Mapping
from typing import Any

from sekisho.errors import ActorNotPermittedError, MalformedTokenError
from sekisho.models import Caller, Decision, VerifiedToken

_IDENTITY_MEMBERS = ("sub", "iss", "client_id")


def _reject(detail: str) -> MalformedTokenError:
    return MalformedTokenError(log_detail=detail)


def inbound_act(
    claims: Mapping[str, Any], max_depth: int, issuer: str, configured: Mapping[str, str]
) -> dict[str, Any] | None:
    """The token's `act` chain, reduced to identity members, each level naming its issuer as
    trust.issuers names it: the level's `iss`, else `issuer` (the token's), mapped through
    `configured` (every accepted spelling of a trusted issuer → its `issuer`), by which users are
    keyed everywhere else (the revocation gate, the status store, `sekisho revoke subject`).
    Raises: MalformedTokenError."""
    if "act" not in claims:
        return None
    chain = _act_level(claims["act"], 1, max_depth)
    level: dict[str, Any] | None = chain
    while level is not None:
        iss = level.get("iss", issuer)
        level["iss"] = configured.get(iss, iss)
        level = level.get("act")
    return chain


def _act_level(value: Any, depth: int, max_depth: int) -> dict[str, Any]:
    if depth > max_depth:
        raise _reject(f"act is nested deeper than {max_depth}")
    if not isinstance(value, dict):
        raise _reject("act is not an object")
    level: dict[str, Any] = {}
    for name in _IDENTITY_MEMBERS:
        member = value.get(name)
        if member is not None and not isinstance(member, str):
            raise _reject(f"act.{name} is not a string")
        if member:
            level[name] = member
    if "sub" not in level:
        raise _reject("act has no sub")
    if "act" in value:
        level["act"] = _act_level(value["act"], depth + 1, max_depth)
    return level


def act_strings(act: Mapping[str, Any] | None) -> Iterator[str]:
    """Every identity string in an `act` chain."""
    while act is not None:
        yield from (act[name] for name in _IDENTITY_MEMBERS if name in act)
        act = act.get("act")


def may_act_names(subject: VerifiedToken, actor: VerifiedToken) -> bool:
    """RFC 8693 §4.4: the subject token's `may_act` names this actor (sub, and iss if given)."""
    may_act = subject.claims.get("may_act")
    if not isinstance(may_act, dict):
        return False
    if may_act.get("sub") != actor.subject:
        return False
    return "iss" not in may_act or may_act["iss"] == actor.issuer


def check_actor(subject: VerifiedToken, actor: VerifiedToken | None, decision: Decision) -> None:
    """Raises: ActorNotPermittedError when the actor is neither named by may_act nor approved."""
    if actor is None or may_act_names(subject, actor) or decision.actor_approved:
        return
    raise ActorNotPermittedError(
        log_detail="actor is neither named by the subject's may_act nor approved by policy"
    )


def actor_chain(
    caller: Caller, actor: VerifiedToken | None, inbound: Mapping[str, Any] | None
) -> dict[str, Any] | None:
    """The minted `act`: the current actor outermost, earlier actors nested (RFC 8693 §4.1)."""
    chain = copy.deepcopy(dict(inbound)) if inbound else None
    if caller.id and (actor is None or actor.subject != caller.id):
        chain = _wrap({"sub": caller.id}, chain)
    if actor is not None:
        chain = _wrap({"sub": actor.subject, "iss": actor.issuer}, chain)
    return chain


def _wrap(level: dict[str, Any], inner: dict[str, Any] | None) -> dict[str, Any]:
    if inner is not None:
        level["act"] = inner
    return level
