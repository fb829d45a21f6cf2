"""Values the status store holds: leases of indexes, issued-token records, revocations and
suspensions (draft-ietf-oauth-status-list §7.1: INVALID 0x01 is final, SUSPENDED 0x02 is
reversible)."""

from dataclasses import dataclass
from typing import Literal

RevocationKind = Literal["token", "subject", "caller", "audience"]
KINDS: tuple[RevocationKind, ...] = ("token", "subject", "caller", "audience")
_SEPARATOR = "\x1f"  # ASCII unit separator: cannot occur in an issuer URL


def subject_key(issuer: str, subject: str) -> str:
    """The store key of a user: the subject token's issuer and sub together."""
    return f"{issuer}{_SEPARATOR}{subject}"


def split_subject_key(key: str) -> tuple[str, str]:
    issuer, _, subject = key.partition(_SEPARATOR)
    return issuer, subject


def shown_key(kind: str, key: str) -> str:
    """A store key as `sekisho revoke` takes it: a user's as its --issuer and --sub options."""
    if kind != "subject":
        return key
    issuer, subject = split_subject_key(key)
    return f"--issuer {issuer} --sub {subject}"


@dataclass(frozen=True, slots=True)
class Lease:
    """Indexes [start, end) of list `list_id`, for one worker to use until `use_until`."""

    list_id: int
    start: int
    end: int
    use_until: int


@dataclass(frozen=True, slots=True)
class IssuedToken:
    """What a revocation needs to find a live token: who, for whom, where its status bit is."""

    jti: str
    subject: str  # subject_key(iss, sub)
    caller: str
    audience: str
    list_id: int
    idx: int
    expires_at: int
    actor: str = ""  # subject_key(iss, sub) of the actor token; "" without one
    resources: tuple[str, ...] = ()  # the granted resources (an access token's `aud`)
    # The authenticated caller's id when an actor token's `sub` took its place in `caller`
    # (None without an actor token; "" is the anonymous caller's id).
    peer: str | None = None
    # The earlier actors in the subject and actor tokens' `act` chains, as the gate names them
    # (status/revocations.py act_keys): each member's sub as a caller and iss + sub as a subject.
    acting: tuple[tuple[RevocationKind, str], ...] = ()

    def key(self, kind: RevocationKind) -> str:
        """The value a revocation of `kind` names for this token in its own right."""
        return {
            "token": self.jti,
            "subject": self.subject,
            "caller": self.caller,
            "audience": self.audience,
        }[kind]

    def also_named(self) -> list[tuple[RevocationKind, str]]:
        """The other (kind, value) pairs a revocation covers this token by, as the exchange gate
        refuses them (status/revocations.py covered_keys): a user revoked as a subject is
        revoked as the actor too, a workload revoked as a caller is revoked as the mTLS caller
        of an exchange with an actor token too, a downstream revoked as an audience is revoked
        as a resource (an access token's `aud`) too, and an agent or user revoked either way is
        revoked as an earlier actor nested in `act` too. Each pair once; pairs equal to
        key(kind) are left out."""
        named: list[tuple[RevocationKind, str]] = []
        if self.actor:
            named.append(("subject", self.actor))
        if self.peer is not None:
            named.append(("caller", self.peer))
        named.extend(("audience", resource) for resource in self.resources)
        named.extend(self.acting)
        own = {(kind, self.key(kind)) for kind in KINDS}
        return [name for name in dict.fromkeys(named) if name not in own]  # once each, in order

    def names(self) -> list[tuple[RevocationKind, str]]:
        """Every (kind, value) a revocation covering this token may name."""
        return [(kind, self.key(kind)) for kind in KINDS] + self.also_named()


@dataclass(frozen=True, slots=True)
class Revocation:
    """One revocation (or, in the store's suspensions, one suspension) in force: until lifted or
    reinstated (`until` = 0) or until `until` (those naming a minted token end with it)."""

    kind: RevocationKind
    key: str
    reason: str
    operator: str
    created_at: int
    until: int = 0

    def active(self, now: int) -> bool:
        return self.until == 0 or now < self.until


@dataclass(frozen=True, slots=True)
class InForce:
    """The revocations and the suspensions in force, read at one moment of the store."""

    revocations: list[Revocation]
    suspensions: list[Revocation]


@dataclass(frozen=True, slots=True)
class ListSnapshot:
    """One status list as stored: its size and the indexes marked INVALID or SUSPENDED (an index
    in both reads INVALID)."""

    list_id: int
    size: int
    invalid: frozenset[int]
    suspended: frozenset[int] = frozenset()
